//! Turning per-function sums into a priced `flint.v1.UsageReport`. Each function's
//! request cost is before the free tier; the free requests are deducted from the
//! total's request cost only (see pricing.rs).

use super::pricing::{compute_cost, gb_seconds, gross_request_cost, net_request_cost, Prices};
use super::store::Aggregate;
use flint_proto::v1::{FunctionUsage, Prices as ProtoPrices, UsageReport};

fn priced(name: &str, a: &Aggregate, request_cost_usd: f64, p: &Prices) -> FunctionUsage {
    let gb_s = gb_seconds(a.billed_ms_x_memory_mb);
    let compute_cost_usd = compute_cost(p, gb_s);
    FunctionUsage {
        function_name: name.to_string(),
        requests: a.requests,
        errors: a.errors,
        cold_starts: a.cold_starts,
        billed_ms: a.billed_ms,
        gb_seconds: gb_s,
        request_cost_usd,
        compute_cost_usd,
        cost_usd: request_cost_usd + compute_cost_usd,
    }
}

/// The report for `rows` (one per function) at prices `p`; the total's name is "".
pub fn build(rows: &[Aggregate], p: &Prices) -> UsageReport {
    let mut sum = Aggregate::default();
    let functions = rows
        .iter()
        .map(|a| {
            sum.requests += a.requests;
            sum.errors += a.errors;
            sum.cold_starts += a.cold_starts;
            sum.billed_ms += a.billed_ms;
            sum.billed_ms_x_memory_mb += a.billed_ms_x_memory_mb;
            priced(&a.function, a, gross_request_cost(p, a.requests), p)
        })
        .collect();
    let total = priced("", &sum, net_request_cost(p, sum.requests), p);
    UsageReport {
        functions,
        total: Some(total),
        prices: Some(ProtoPrices {
            per_gb_second_usd: p.per_gb_second_usd,
            per_million_requests_usd: p.per_million_requests_usd,
            free_requests: p.free_requests,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg(f: &str, requests: u64, billed_ms: u64, memory_mb: u64) -> Aggregate {
        Aggregate {
            function: f.into(),
            requests,
            errors: 1,
            cold_starts: 1,
            billed_ms,
            billed_ms_x_memory_mb: billed_ms * memory_mb,
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12 * b.abs().max(1e-9)
    }

    #[test]
    fn report_matches_a_hand_computation_below_and_above_the_free_tier() {
        let rows = [agg("a", 3, 30, 128), agg("b", 2, 100, 512)];
        // $2 a request, $0.5 a GB-s, 4 requests free.
        let p = Prices {
            per_gb_second_usd: 0.5,
            per_million_requests_usd: 2_000_000.0,
            free_requests: 4,
        };
        let r = build(&rows, &p);
        let a = &r.functions[0];
        // a: 30 ms x 128 MB = 0.03 s x 0.125 GB = 0.00375 GB-s.
        assert!(close(a.gb_seconds, 0.003_75));
        assert!(close(a.compute_cost_usd, 0.001_875));
        assert!(close(a.request_cost_usd, 6.0), "before the free tier");
        assert!(close(a.cost_usd, 6.001_875));
        let b = &r.functions[1];
        // b: 0.1 s x 0.5 GB = 0.05 GB-s.
        assert!(close(b.gb_seconds, 0.05));
        assert!(close(b.request_cost_usd, 4.0));
        let t = r.total.unwrap();
        assert_eq!(
            (t.requests, t.errors, t.cold_starts, t.billed_ms),
            (5, 2, 2, 130)
        );
        assert!(close(t.gb_seconds, 0.053_75));
        assert!(close(t.compute_cost_usd, 0.026_875));
        // 5 requests, 4 free: one billed.
        assert!(close(t.request_cost_usd, 2.0));
        assert!(close(t.cost_usd, 2.026_875));
        assert_eq!(r.prices.unwrap().free_requests, 4);

        // Exactly at the boundary nothing is billed for requests.
        let at = build(
            &rows,
            &Prices {
                free_requests: 5,
                ..p
            },
        );
        assert_eq!(at.total.unwrap().request_cost_usd, 0.0);
        // No free tier: the total is the sum of the functions.
        let none = build(
            &rows,
            &Prices {
                free_requests: 0,
                ..p
            },
        );
        let t = none.total.unwrap();
        assert!(close(
            t.cost_usd,
            none.functions.iter().map(|f| f.cost_usd).sum()
        ));
    }

    #[test]
    fn an_empty_report_has_a_zero_total() {
        let r = build(&[], &Prices::default());
        assert!(r.functions.is_empty());
        let t = r.total.unwrap();
        assert_eq!((t.requests, t.cost_usd), (0, 0.0));
    }
}
