//! The nftables table `inet flint`: NAT for the sandboxes' traffic and the egress
//! policy, replaced as a whole in one `nft -f -` transaction, deleted on stop and by
//! the start-up sweep. Every rule matches the sandboxes' host interfaces (`flv*`),
//! so nothing else on the host is filtered.

use super::cidr::{Cidr, EgressRule};
use super::{NetError, IF_PREFIX};
use std::io::Write;
use std::process::{Command, Stdio};

/// The table's family and name.
pub const TABLE: &str = "inet flint";

/// The ruleset for the sandboxes of `subnet` under the egress policy.
pub fn ruleset(subnet: &Cidr, allow: &[EgressRule], deny: &[EgressRule]) -> String {
    let sbx = format!("\"{IF_PREFIX}*\"");
    let mut egress = vec![
        "# The metadata and link-local range (cloud credentials live there).".to_string(),
        "ip daddr 169.254.0.0/16 drop".to_string(),
        "# Other sandboxes, and Flint's own subnet.".to_string(),
        format!("ip daddr {subnet} drop"),
        "# Addresses a sandbox did not get (none can be set from inside).".to_string(),
        format!("ip saddr != {subnet} drop"),
        "# Another sandbox's address (a microVM guest is root of its own eth0): the".to_string(),
        "# source must route back through the link it came in on.".to_string(),
        "fib saddr . iif oif missing drop".to_string(),
        "meta nfproto ipv6 drop".to_string(),
    ];
    for r in deny {
        egress.extend(rule_lines(r, "drop"));
    }
    for r in allow {
        egress.extend(rule_lines(r, "accept"));
    }
    egress.push(if allow.is_empty() { "accept" } else { "drop" }.to_string());
    let egress: String = egress.iter().map(|l| format!("    {l}\n")).collect();
    format!(
        "table {TABLE}
delete table {TABLE}
table {TABLE} {{
  chain input {{
    type filter hook input priority filter - 10; policy accept;
    # Nothing from a sandbox reaches this host itself: its addresses and services.
    iifname {sbx} drop
  }}
  chain forward {{
    type filter hook forward priority filter - 10; policy accept;
    # Replies to what a sandbox opened; nothing else in, not from another sandbox.
    oifname {sbx} ct state established,related accept
    oifname {sbx} drop
    iifname {sbx} jump egress
  }}
  chain egress {{
{egress}  }}
  chain postrouting {{
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr {subnet} oifname != {sbx} masquerade
  }}
}}
"
    )
}

/// `ip daddr BLOCK [tcp|udp dport {PORTS}] VERDICT` lines of one rule.
fn rule_lines(r: &EgressRule, verdict: &str) -> Vec<String> {
    if r.ports.is_empty() {
        return vec![format!("ip daddr {} {verdict}", r.cidr)];
    }
    let ports: Vec<String> = r
        .ports
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                lo.to_string()
            } else {
                format!("{lo}-{hi}")
            }
        })
        .collect();
    let set = ports.join(", ");
    ["tcp", "udp"]
        .iter()
        .map(|p| format!("ip daddr {} {p} dport {{ {set} }} {verdict}", r.cidr))
        .collect()
}

/// Runs `nft -f -` with `script`.
pub fn apply(script: &str) -> Result<(), NetError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Tool("nft", e.to_string()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|e| NetError::Tool("nft", e.to_string()))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| NetError::Tool("nft", e.to_string()))?;
    if !out.status.success() {
        return Err(NetError::Tool(
            "nft",
            String::from_utf8_lossy(&out.stderr).trim().to_string(),
        ));
    }
    Ok(())
}

/// Deletes the table (nothing happens when it is not there).
pub fn delete_table() -> Result<(), NetError> {
    apply(&format!("table {TABLE}\ndelete table {TABLE}\n"))
}

/// True when `nft list tables` shows the table.
pub fn table_exists() -> bool {
    matches!(Command::new("nft").args(["list", "tables"]).output(),
        Ok(o) if String::from_utf8_lossy(&o.stdout).lines().any(|l| l.trim() == format!("table {TABLE}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ruleset_orders_denies_before_allows_and_closes_with_the_default() {
        let subnet = Cidr::parse("100.96.0.0/16").unwrap();
        let allow = [EgressRule::parse("203.0.113.0/24:80,8000-8080").unwrap()];
        let deny = [EgressRule::parse("203.0.113.9/32").unwrap()];
        let r = ruleset(&subnet, &allow, &deny);
        let at = |s: &str| r.find(s).unwrap_or_else(|| panic!("{s} missing in\n{r}"));
        assert!(at("ip daddr 169.254.0.0/16 drop") < at("ip daddr 203.0.113.9/32 drop"));
        assert!(
            at("ip daddr 203.0.113.9/32 drop")
                < at("ip daddr 203.0.113.0/24 tcp dport { 80, 8000-8080 } accept")
        );
        assert!(r.contains("ip daddr 203.0.113.0/24 udp dport { 80, 8000-8080 } accept"));
        assert!(
            r.trim_end().contains("    drop\n  }\n  chain postrouting"),
            "{r}"
        );
        assert!(r.contains("iifname \"flv*\" drop"));
        assert!(r.contains("fib saddr . iif oif missing drop"), "{r}");
        assert!(r.contains("ip saddr 100.96.0.0/16 oifname != \"flv*\" masquerade"));
        let open = ruleset(&subnet, &[], &[]);
        assert!(
            open.contains("    accept\n  }\n  chain postrouting"),
            "{open}"
        );
    }
}
