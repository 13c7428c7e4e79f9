//! CPU in proportion to memory, as Lambda allocates it: 1,769 MB of memory buys one
//! vCPU, so a 128 MB function gets 0.072 vCPU and a 3,538 MB one two vCPUs. Enforced
//! as a CFS bandwidth limit on the sandbox's cgroup (`cpu.max` on cgroup v2,
//! `cpu.cfs_quota_us` / `cpu.cfs_period_us` on v1): every period the sandbox may run
//! for `quota` microseconds of CPU time in total, across all its threads. The weight is
//! set when the sandbox is made, the quota when its instance has finished init (which
//! runs unthrottled, as Lambda's init phase does).

/// Memory (MB) that buys one whole vCPU (Lambda's documented ratio).
pub const MB_PER_VCPU: u64 = 1769;
/// The CFS period, in microseconds: short, so that a throttled sandbox runs in many
/// small slices rather than one long burst per period (the kernel default, 100 ms,
/// lets four spinning threads hold both cores of a small host for 15 ms at a time).
pub const PERIOD_US: u64 = 20_000;
/// The smallest quota the kernel accepts (1 ms per period): a floor for tiny memory
/// sizes (below 89 MB). Flint's own minimum (128 MB) is above it at Lambda's ratio
/// (1,447 µs every 20 ms).
pub const MIN_QUOTA_US: u64 = 1_000;

/// A CFS bandwidth limit: `quota_us` of CPU time every `period_us`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    /// CPU time per period, in microseconds, summed over all CPUs.
    pub quota_us: u64,
    /// The period, in microseconds.
    pub period_us: u64,
}

impl CpuQuota {
    /// Lambda's share for `memory_mb`: `memory_mb / 1769` vCPUs, never below
    /// [`MIN_QUOTA_US`] per period.
    pub fn for_memory(memory_mb: u32) -> Self {
        let quota = u64::from(memory_mb) * PERIOD_US / MB_PER_VCPU;
        Self {
            quota_us: quota.max(MIN_QUOTA_US),
            period_us: PERIOD_US,
        }
    }

    /// The v1 `cpu.shares` for the same proportion (1024 for one vCPU), which weighs
    /// a sandbox against its siblings while both want CPU.
    pub fn shares(&self) -> u64 {
        (1024 * self.quota_us / self.period_us).clamp(2, 262_144)
    }

    /// The v2 `cpu.weight` for the same proportion (100 for one vCPU).
    pub fn weight(&self) -> u64 {
        (100 * self.quota_us / self.period_us).clamp(1, 10_000)
    }

    /// The share in vCPUs (for logs and docs).
    pub fn vcpus(&self) -> f64 {
        self.quota_us as f64 / self.period_us as f64
    }

    /// The contents of cgroup v2's `cpu.max`.
    pub fn cpu_max(&self) -> String {
        format!("{} {}", self.quota_us, self.period_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lambda_ratio_one_vcpu_per_1769_mb() {
        assert_eq!(CpuQuota::for_memory(1769).quota_us, PERIOD_US);
        assert_eq!(CpuQuota::for_memory(3538).quota_us, 2 * PERIOD_US);
        let small = CpuQuota::for_memory(128);
        assert_eq!(small.quota_us, 1447);
        assert!((small.vcpus() - 0.072).abs() < 0.001);
        assert_eq!(CpuQuota::for_memory(10240).quota_us, 115_771);
    }

    #[test]
    fn tiny_sizes_get_the_kernel_minimum() {
        assert_eq!(CpuQuota::for_memory(0).quota_us, MIN_QUOTA_US);
        assert_eq!(CpuQuota::for_memory(10).quota_us, MIN_QUOTA_US);
        assert_eq!(CpuQuota::for_memory(88).quota_us, MIN_QUOTA_US);
        assert_eq!(CpuQuota::for_memory(128).cpu_max(), "1447 20000");
        assert_eq!(CpuQuota::for_memory(128).shares(), 74);
        assert_eq!(CpuQuota::for_memory(128).weight(), 7);
        assert_eq!(CpuQuota::for_memory(1769).shares(), 1024);
        assert_eq!(CpuQuota::for_memory(1769).weight(), 100);
        assert_eq!(CpuQuota::for_memory(0).weight(), 5);
    }
}
