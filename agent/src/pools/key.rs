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
