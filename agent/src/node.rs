//! This node's capacity as a cluster scheduler sees it: memory and vCPUs, sandboxes
//! by state, instances per function, warm pools, concurrency; and draining.

use crate::core::Agent;
use flint_proto::v1::{Capacity, FunctionInstances, PoolSize, SandboxCounts};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Memory per vCPU as Lambda allocates CPU (1,769 MB = one vCPU).
pub const MB_PER_VCPU: f64 = 1769.0;

fn mem_total_mb() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map(|kb| kb / 1024)
        .unwrap_or(0)
}

fn node_id() -> String {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

impl Agent {
    /// The node's capacity now.
    pub fn capacity(&self) -> Capacity {
        let sequence = self.occupancy().sequence();
        let mut functions: BTreeMap<String, FunctionInstances> = BTreeMap::new();
        let mut reserved_mb: u64 = 0;
        let mut counts = SandboxCounts::default();
        for (name, n) in self.occupancy().functions() {
            counts.starting += n.starting;
            counts.busy += n.busy;
            reserved_mb += n.memory_mb;
            let e = functions.entry(name.clone()).or_default();
            e.function_name = name;
            e.busy = n.busy;
        }
        for (name, idle, mem) in self.idle().idle_by_function() {
            counts.idle += idle;
            reserved_mb += mem;
            let e = functions.entry(name.clone()).or_default();
            e.function_name = name;
            e.idle = idle;
        }
        if let Ok(all) = self.store().list() {
            for f in all {
                if let Some(e) = functions.get_mut(&f.name) {
                    e.reserved_concurrency = f.reserved_concurrency;
                }
            }
        }
        let mut pools = Vec::new();
        for p in self.sandbox_pool().status() {
            counts.pool_ready += p.ready;
            counts.starting += p.starting;
            reserved_mb += u64::from(p.key.memory_mb) * u64::from(p.ready + p.starting);
            pools.push(PoolSize {
                runtime: p.key.runtime,
                memory_mb: p.key.memory_mb,
                network: p.key.network.to_string(),
                ready: p.ready,
                target: p.target,
            });
        }
        let memory_total_mb = mem_total_mb();
        let vcpus_total = std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1);
        let vcpus_reserved = reserved_mb as f64 / MB_PER_VCPU;
        Capacity {
            node_id: node_id(),
            sandbox_backend: self.backend().kind().to_string(),
            draining: self.limiter().draining(),
            memory_total_mb,
            memory_reserved_mb: reserved_mb,
            memory_free_mb: memory_total_mb.saturating_sub(reserved_mb),
            vcpus_total,
            vcpus_reserved,
            vcpus_free: (f64::from(vcpus_total) - vcpus_reserved).max(0.0),
            sandboxes: Some(counts),
            functions: functions.into_values().collect(),
            pools,
            concurrency_limit: self.limiter().agent_limit(),
            concurrency_in_use: self.limiter().in_use(),
            sequence,
        }
    }

    /// A receiver that wakes whenever the numbers of [`Agent::capacity`] may have
    /// changed.
    pub fn capacity_changes(&self) -> tokio::sync::watch::Receiver<u64> {
        self.occupancy().subscribe()
    }

    /// Stops admitting invocations and empties the warm pool; with `wait`, returns
    /// once running invocations have finished or `timeout` passed. Returns how many
    /// are still running.
    pub async fn drain(&self, wait: bool, timeout: Duration) -> u32 {
        self.limiter().set_draining(true);
        self.sandbox_pool().set_paused(true);
        self.occupancy().bump();
        tracing::info!("draining: new invocations are refused");
        let t0 = Instant::now();
        while wait && self.limiter().in_use() > 0 && t0.elapsed() < timeout {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.limiter().in_use()
    }

    /// Admits invocations again.
    pub fn resume(&self) {
        self.limiter().set_draining(false);
        self.sandbox_pool().set_paused(false);
        self.occupancy().bump();
        tracing::info!("resumed: accepting invocations");
    }
}
