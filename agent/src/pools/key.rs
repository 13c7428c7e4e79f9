//! The warm pool's vocabulary: which pool (runtime and memory size), its bounds, and
//! its numbers. The configuration names pools without depending on the pool itself.

use std::collections::BTreeMap;
use std::time::Duration;

/// A pool: runtime name, memory size and network (an outbound pool's sandboxes have
/// their network namespace and link made ahead, docs/NETWORK.md).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolKey {
    pub runtime: String,
    pub memory_mb: u32,
    pub network: crate::sandbox::NetworkMode,
}

/// Bounds; the defaults need no configuration.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Most sandboxes one pool keeps ready (0 disables the warm pool).
    pub max: u32,
    /// Pools that keep at least this many ready regardless of demand.
    pub floors: BTreeMap<PoolKey, u32>,
    /// How far back demand counts.
    pub window: Duration,
    /// Sandboxes being started at once, over all pools.
    pub parallel_starts: u32,
    /// /tmp size of pool sandboxes, in MB.
    pub tmp_mb: u32,
}

/// One pool's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStatus {
    pub key: PoolKey,
    pub ready: u32,
    pub starting: u32,
    pub target: u32,
}

/// Variables an interpreter reads only when it starts (JVM, Node and Ruby options): a
/// runtime pre-started without them cannot take them on, so a function that sets one
/// gets a sandbox and a runtime started for it instead of a pool hit.
pub const START_OPTION_VARIABLES: [&str; 5] = [
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "NODE_OPTIONS",
    "RUBYOPT",
];

/// True when `names` (a function's environment variable names, plain and secret)
/// include one of [`START_OPTION_VARIABLES`].
pub fn sets_start_options<'a>(mut names: impl Iterator<Item = &'a String>) -> bool {
    names.any(|n| START_OPTION_VARIABLES.contains(&n.as_str()))
}

#[cfg(test)]
mod start_option_tests {
    use super::sets_start_options;

    #[test]
    fn only_start_time_option_variables_rule_out_a_pool_hit() {
        let names = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(sets_start_options(
            names(&["COLOR", "JAVA_TOOL_OPTIONS"]).iter()
        ));
        assert!(sets_start_options(names(&["NODE_OPTIONS"]).iter()));
        assert!(!sets_start_options(names(&["COLOR", "JAVA_HOME"]).iter()));
        assert!(!sets_start_options(names(&[]).iter()));
    }
}
