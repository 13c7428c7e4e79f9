//! Hand-written SVG charts: horizontal bar panels (one per unit, median bars with p90
//! and p99 ticks, baselines in grey) and a line chart for series over a log2 x axis.

use std::fmt::Write;

const W: f64 = 860.0;
const LABEL_W: f64 = 300.0;
const ROW: f64 = 26.0;
const FLINT: &str = "#d9480f";
const BASE: &str = "#868e96";
const PALETTE: [&str; 4] = [FLINT, BASE, "#1c7ed6", "#2f9e44"];

/// One bar: a median and optional whisker ticks (p90, p99).
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub unit: String,
    pub value: f64,
    pub ticks: Vec<f64>,
    pub baseline: bool,
}

/// One line of a line chart.
#[derive(Debug, Clone)]
pub struct Line {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// Escapes text for XML.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A round number at or above `x` (1, 2 or 5 times a power of ten).
fn nice_max(x: f64) -> f64 {
    if x <= 0.0 || !x.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(x.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|v| *v >= x)
        .unwrap_or(10.0 * p)
}

/// Short number format for axis and bar labels.
pub fn fmt_num(x: f64) -> String {
    if x == 0.0 {
        "0".into()
    } else if x.abs() >= 100.0 || (x.fract() == 0.0 && x.abs() < 1e15) {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else if x.abs() >= 0.1 {
        format!("{x:.2}")
    } else {
        format!("{x:.4}")
    }
}

fn header(out: &mut String, h: f64, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{h}" viewBox="0 0 {W} {h}" font-family="sans-serif" font-size="12"><rect width="100%" height="100%" fill="white"/><text x="10" y="22" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
}

/// Horizontal bars, one panel per unit (in order of first appearance).
pub fn bar_chart(title: &str, bars: &[Bar]) -> String {
    let mut units: Vec<&str> = Vec::new();
    for b in bars {
        if !units.contains(&b.unit.as_str()) {
            units.push(&b.unit);
        }
    }
    let panel_h = |n: usize| 30.0 + n as f64 * ROW + 10.0;
    let h = 40.0
        + units
            .iter()
            .map(|u| panel_h(bars.iter().filter(|b| &b.unit == u).count()))
            .sum::<f64>();
    let mut out = String::new();
    header(&mut out, h, title);
    let mut y = 40.0;
    let plot_w = W - LABEL_W - 80.0;
    for unit in units {
        let rows: Vec<&Bar> = bars.iter().filter(|b| b.unit == unit).collect();
        let max = nice_max(
            rows.iter()
                .flat_map(|b| b.ticks.iter().copied().chain([b.value]))
                .fold(0.0, f64::max),
        );
        let _ = write!(
            out,
            r##"<text x="{LABEL_W}" y="{}" fill="#495057">{} (0 to {}; bar = median, ticks = p90, p99)</text>"##,
            y + 14.0,
            esc(unit),
            fmt_num(max)
        );
        y += 24.0;
        for b in rows {
            let bw = (b.value / max * plot_w).max(1.0);
            let text_x = b.ticks.iter().fold(bw, |m, t| m.max(t / max * plot_w));
            let color = if b.baseline { BASE } else { FLINT };
            let _ = write!(
                out,
                r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{LABEL_W}" y="{}" width="{bw:.1}" height="{}" fill="{color}"/><text x="{:.1}" y="{}">{}</text>"#,
                LABEL_W - 8.0,
                y + ROW * 0.6,
                esc(&b.label),
                y + 4.0,
                ROW - 8.0,
                LABEL_W + text_x + 4.0,
                y + ROW * 0.6,
                fmt_num(b.value)
            );
            for t in &b.ticks {
                let tx = LABEL_W + t / max * plot_w;
                let _ = write!(
                    out,
                    r#"<line x1="{tx:.1}" x2="{tx:.1}" y1="{}" y2="{}" stroke="black" stroke-width="1.5"/>"#,
                    y + 2.0,
                    y + ROW - 2.0
                );
            }
            y += ROW;
        }
        y += 16.0;
    }
    out.push_str("</svg>\n");
    out
}

/// A line chart with a log2 x axis (for concurrency levels) and a linear y axis from 0.
pub fn line_chart(title: &str, x_label: &str, y_label: &str, lines: &[Line]) -> String {
    let (h, left, top, pw, ph) = (420.0, 80.0, 50.0, W - 260.0, 300.0);
    let pts = || lines.iter().flat_map(|l| l.points.iter().copied());
    let xmin = pts()
        .map(|p| p.0.max(1.0).log2())
        .fold(f64::INFINITY, f64::min);
    let xmax = pts().map(|p| p.0.max(1.0).log2()).fold(0.0, f64::max);
    let (xmin, xspan) = if xmin.is_finite() && xmax > xmin {
        (xmin, xmax - xmin)
    } else {
        (0.0, 1.0)
    };
    let ymax = nice_max(pts().map(|p| p.1).fold(0.0, f64::max));
    let sx = |x: f64| left + (x.max(1.0).log2() - xmin) / xspan * pw;
    let sy = |y: f64| top + ph - y / ymax * ph;
    let mut out = String::new();
    header(&mut out, h, title);
    let _ = write!(
        out,
        r#"<line x1="{left}" y1="{}" x2="{}" y2="{}" stroke="black"/><line x1="{left}" y1="{top}" x2="{left}" y2="{}" stroke="black"/><text x="{}" y="{}" text-anchor="middle">{}</text><text x="14" y="{}" transform="rotate(-90 14 {})" text-anchor="middle">{}</text>"#,
        top + ph,
        left + pw,
        top + ph,
        top + ph,
        left + pw / 2.0,
        top + ph + 36.0,
        esc(x_label),
        top + ph / 2.0,
        top + ph / 2.0,
        esc(y_label)
    );
    for i in 0..=4 {
        let v = ymax * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            left - 6.0,
            sy(v) + 4.0,
            fmt_num(v)
        );
    }
    let mut xs: Vec<f64> = pts().map(|p| p.0).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = write!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            sx(x),
            top + ph + 16.0,
            fmt_num(x)
        );
    }
    for (i, l) in lines.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let path: Vec<String> = l
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", sx(x), sy(y)))
            .collect();
        let _ = write!(
            out,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/><rect x="{}" y="{}" width="12" height="12" fill="{color}"/><text x="{}" y="{}">{}</text>"#,
            path.join(" "),
            left + pw + 20.0,
            top + 20.0 * i as f64,
            left + pw + 38.0,
            top + 20.0 * i as f64 + 11.0,
            esc(&l.name)
        );
        for &(x, y) in &l.points {
            let _ = write!(
                out,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                sx(x),
                sy(y)
            );
        }
    }
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, unit: &str, value: f64) -> Bar {
        Bar {
            label: label.into(),
            unit: unit.into(),
            value,
            ticks: vec![value * 1.5],
            baseline: false,
        }
    }

    #[test]
    fn nice_max_rounds_up_to_1_2_5() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(51.0), 100.0);
        assert_eq!(nice_max(0.15), 0.2);
    }

    #[test]
    fn whole_numbers_print_without_decimals() {
        assert_eq!(fmt_num(256.0), "256");
        assert_eq!(fmt_num(4.0), "4");
        assert_eq!(fmt_num(2.5), "2.50");
        assert_eq!(fmt_num(0.05), "0.0500");
    }

    #[test]
    fn bar_chart_has_one_panel_per_unit_and_escapes_labels() {
        let svg = bar_chart("t<1>", &[bar("a&b", "ms", 2.0), bar("c", "MiB", 3.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("t&lt;1&gt;") && svg.contains("a&amp;b"));
        assert!(svg.contains("ms (0 to 5;") && svg.contains("MiB (0 to 5;"));
        assert_eq!(svg.matches("<rect x=\"300\"").count(), 2);
    }

    #[test]
    fn line_chart_draws_each_series() {
        let l = |n: &str| Line {
            name: n.into(),
            points: vec![(1.0, 10.0), (2.0, 18.0), (4.0, 30.0)],
        };
        let svg = line_chart("tp", "concurrency", "req/s", &[l("flint"), l("echo")]);
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 6);
    }
}
