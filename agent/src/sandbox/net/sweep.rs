//! Removal of what a killed flintd left: the host ends of sandbox links (`flv*`;
//! deleting one deletes its pair) and the nftables table. Run at start-up and stop,
//! in flintd's network namespace only; one networked flintd per network namespace.

use super::{nft, IF_PREFIX};
use std::process::Command;

/// The `flv*` links in this network namespace.
pub fn leftover_links() -> Vec<String> {
    let Ok(rd) = std::fs::read_dir("/sys/class/net") else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
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
