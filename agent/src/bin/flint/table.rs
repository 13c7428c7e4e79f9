//! `flint usage` output: a text table (FUNCTION REQUESTS ERRORS COLD GB-S COST, a
//! TOTAL line and the prices) or a JSON document.

use flint_agent::timefmt::rfc3339_millis as rfc3339;
use flint_proto::v1::{FunctionUsage, UsageReport};
use std::fmt::Write;

fn row(out: &mut String, name: &str, u: &FunctionUsage) {
    let _ = writeln!(
        out,
        "{:<32} {:>10} {:>8} {:>6} {:>14.6} {:>16}",
        name,
        u.requests,
        u.errors,
        u.cold_starts,
        u.gb_seconds,
        format!("${:.10}", u.cost_usd)
    );
}

/// The report as a table, for invocations since `since_unix_ms` (0 = all).
pub fn text(r: &UsageReport, since_unix_ms: u64) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<32} {:>10} {:>8} {:>6} {:>14} {:>16}",
        "FUNCTION", "REQUESTS", "ERRORS", "COLD", "GB-S", "COST"
    );
    for f in &r.functions {
        row(&mut out, &f.function_name, f);
    }
    let total = r.total.clone().unwrap_or_default();
    row(&mut out, "TOTAL", &total);
    if let Some(p) = &r.prices {
        let _ = writeln!(
            out,
            "prices: ${} per GB-second, ${} per million requests; the first {} requests are free (deducted from the total only)",
            p.per_gb_second_usd, p.per_million_requests_usd, p.free_requests
        );
    }
    let since = if since_unix_ms == 0 {
        "the first invocation".to_string()
    } else {
        rfc3339(since_unix_ms / 1000, (since_unix_ms % 1000) as u32)
    };
    let _ = writeln!(out, "since: {since}");
    out
}

fn usage_json(u: &FunctionUsage) -> serde_json::Value {
    serde_json::json!({
        "function_name": u.function_name, "requests": u.requests, "errors": u.errors,
        "cold_starts": u.cold_starts, "billed_ms": u.billed_ms, "gb_seconds": u.gb_seconds,
        "request_cost_usd": u.request_cost_usd, "compute_cost_usd": u.compute_cost_usd,
        "cost_usd": u.cost_usd,
    })
}

/// The report as JSON (the `flint.v1.UsageReport` fields, plus since_unix_ms).
pub fn json(r: &UsageReport, since_unix_ms: u64) -> serde_json::Value {
    let p = r.prices.unwrap_or_default();
    serde_json::json!({
        "functions": r.functions.iter().map(usage_json).collect::<Vec<_>>(),
        "total": usage_json(&r.total.clone().unwrap_or_default()),
        "prices": {
            "per_gb_second_usd": p.per_gb_second_usd,
            "per_million_requests_usd": p.per_million_requests_usd,
            "free_requests": p.free_requests,
        },
        "since_unix_ms": since_unix_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flint_proto::v1::Prices;

    /// What flintd reports for 10 requests (1 error, 2 cold starts) billed 20 ms at
    /// 128 MB, at Lambda's x86 prices.
    fn report() -> UsageReport {
        let hello = FunctionUsage {
            function_name: "hello".into(),
            requests: 10,
            errors: 1,
            cold_starts: 2,
            billed_ms: 20,
            gb_seconds: 0.0025,
            request_cost_usd: 0.000002,
            compute_cost_usd: 0.0025 * 0.0000166667,
            cost_usd: 0.000002 + 0.0025 * 0.0000166667,
        };
        let total = FunctionUsage {
            function_name: String::new(),
            request_cost_usd: 0.0,
            cost_usd: 0.0025 * 0.0000166667,
            ..hello.clone()
        };
        UsageReport {
            functions: vec![hello],
            total: Some(total),
            prices: Some(Prices {
                per_gb_second_usd: 0.0000166667,
                per_million_requests_usd: 0.2,
                free_requests: 1_000_000,
            }),
        }
    }

    #[test]
    fn table_has_a_row_per_function_a_total_and_the_prices() {
        let t = text(&report(), 1_795_787_634_005);
        let lines: Vec<&str> = t.lines().collect();
        assert!(lines[0].starts_with("FUNCTION") && lines[0].ends_with("COST"));
        let cols: Vec<&str> = lines[1].split_whitespace().collect();
        // 20 ms x 128 MB = 0.0025 GB-s; 10 requests = $0.000002 before the free tier.
        assert_eq!(cols, ["hello", "10", "1", "2", "0.002500", "$0.0000020417"]);
        let total: Vec<&str> = lines[2].split_whitespace().collect();
        // The free tier covers the requests: only compute is billed.
        assert_eq!(
            total,
            ["TOTAL", "10", "1", "2", "0.002500", "$0.0000000417"]
        );
        assert!(lines[3].contains("$0.20 per million") || lines[3].contains("$0.2 per million"));
        assert_eq!(lines[4], "since: 2026-11-27T13:53:54.005Z");
    }

    #[test]
    fn json_carries_every_field() {
        let j = json(&report(), 0);
        assert_eq!(j["functions"][0]["function_name"], "hello");
        assert_eq!(j["total"]["requests"], 10);
        assert_eq!(j["total"]["request_cost_usd"], 0.0);
        assert_eq!(j["prices"]["free_requests"], 1_000_000);
        assert_eq!(j["since_unix_ms"], 0);
    }
}
