//! Lambda-style pay-per-use prices, as pure functions: compute is billed per
//! GB-second (billed milliseconds x memory), requests per million after a free tier.
//!
//! The free tier is deducted once, from the report's TOTAL request cost. Each
//! function's own request cost is its share before the free tier, so the functions'
//! costs add up to the total only when no free requests apply.

/// The prices a report is computed with (flintd flags `--price-per-gb-second`,
/// `--price-per-million-requests`, `--free-requests`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// US dollars per GB-second of billed compute.
    pub per_gb_second_usd: f64,
    /// US dollars per million requests (after the free ones).
    pub per_million_requests_usd: f64,
    /// Requests in a report that cost nothing.
    pub free_requests: u64,
}

impl Default for Prices {
    /// Lambda's x86 list prices: $0.0000166667 per GB-s, $0.20 per million requests,
    /// the first million requests free.
    fn default() -> Self {
        Prices {
            per_gb_second_usd: DEFAULT_PER_GB_SECOND_USD,
            per_million_requests_usd: DEFAULT_PER_MILLION_REQUESTS_USD,
            free_requests: DEFAULT_FREE_REQUESTS,
        }
    }
}

/// Default price of one GB-second.
pub const DEFAULT_PER_GB_SECOND_USD: f64 = 0.000_016_666_7;
/// Default price of one million requests.
pub const DEFAULT_PER_MILLION_REQUESTS_USD: f64 = 0.20;
/// Default free requests.
pub const DEFAULT_FREE_REQUESTS: u64 = 1_000_000;

/// Milli-GB-seconds per (billed ms x MB): 1000 ms per second x 1024 MB per GB.
const MS_MB_PER_GB_SECOND: f64 = 1000.0 * 1024.0;

/// GB-seconds from the sum of billed_ms x memory_mb over invocations (an exact integer
/// sum, divided once).
pub fn gb_seconds(billed_ms_x_memory_mb: u64) -> f64 {
    billed_ms_x_memory_mb as f64 / MS_MB_PER_GB_SECOND
}

/// Compute cost of `gb_seconds`.
pub fn compute_cost(p: &Prices, gb_seconds: f64) -> f64 {
    gb_seconds * p.per_gb_second_usd
}

/// Request cost of `requests` before the free tier (a function's share).
pub fn gross_request_cost(p: &Prices, requests: u64) -> f64 {
    requests as f64 / 1e6 * p.per_million_requests_usd
}

/// Request cost of `requests` after the free tier (the report's total).
pub fn net_request_cost(p: &Prices, requests: u64) -> f64 {
    gross_request_cost(p, requests.saturating_sub(p.free_requests))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1.0)
    }

    #[test]
    fn gb_seconds_of_known_workloads() {
        // 1000 ms at 1024 MB is one GB-second.
        assert!(close(gb_seconds(1000 * 1024), 1.0));
        // 3 invocations of 2 ms at 128 MB: 0.006 s x 0.125 GB = 0.00075 GB-s.
        assert!(close(gb_seconds(3 * 2 * 128), 0.000_75));
        assert_eq!(gb_seconds(0), 0.0);
    }

    #[test]
    fn compute_cost_is_gb_seconds_times_the_price() {
        let p = Prices::default();
        // 400,000 GB-s (Lambda's monthly compute free tier) at list price: $6.66668.
        assert!(close(compute_cost(&p, 400_000.0), 6.666_68));
        assert!(close(
            compute_cost(&p, 0.000_75),
            0.000_75 * 0.000_016_666_7
        ));
    }

    #[test]
    fn free_tier_boundary() {
        let p = Prices::default();
        assert_eq!(net_request_cost(&p, 0), 0.0);
        assert_eq!(net_request_cost(&p, 999_999), 0.0);
        assert_eq!(net_request_cost(&p, 1_000_000), 0.0);
        // One request over: a millionth of $0.20.
        assert!(close(net_request_cost(&p, 1_000_001), 0.000_000_2));
        // Three million: two million billed, $0.40.
        assert!(close(net_request_cost(&p, 3_000_000), 0.40));
        // The gross cost ignores the free tier.
        assert!(close(gross_request_cost(&p, 3_000_000), 0.60));
    }

    #[test]
    fn custom_prices_and_no_free_tier() {
        let p = Prices {
            per_gb_second_usd: 0.5,
            per_million_requests_usd: 2_000_000.0,
            free_requests: 0,
        };
        // $2 a request.
        assert!(close(net_request_cost(&p, 7), 14.0));
        assert!(close(compute_cost(&p, 3.0), 1.5));
    }
}
