//! Removal of what a killed flintd left: the host ends of sandbox links (`flv*`;
//! deleting one deletes its pair) and the nftables table. Run at start-up and stop,
//! in flintd's network namespace only; one networked flintd per network namespace.

use super::{nft, IF_PREFIX};
use std::process::Command;

/// The `flv*` links in this network namespace (asked of `ip`, which runs in flintd's
/// namespace: /sys/class/net shows the namespace /sys was mounted in).
pub fn leftover_links() -> Vec<String> {
    let Ok(out) = Command::new("ip").args(["-o", "link", "show"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .filter(|n| n.starts_with(IF_PREFIX))
        .collect()
}

/// Deletes every `flv*` link and the table; returns how many things went.
pub fn remove_leftovers() -> usize {
    let mut n = 0;
    for link in leftover_links() {
        if Command::new("ip")
            .args(["link", "del", &link])
            .output()
            .is_ok_and(|o| o.status.success())
        {
            n += 1;
        }
    }
    if nft::table_exists() && nft::delete_table().is_ok() {
        n += 1;
    }
    n
}
