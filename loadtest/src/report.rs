//! Results as a table, JSON and an SVG plot of latency percentiles over time.

use crate::stats::{Kind, Recorder, Series};
use crate::{Args, seconds};
use serde_json::{Value, json};
use std::fmt::Write;
use std::time::Duration;

const QUANTILES: [(f64, &str); 4] = [(0.5, "p50"), (0.9, "p90"), (0.99, "p99"), (0.999, "p99.9")];

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// The human table: calls, rate, decisions/s, errors and percentiles per kind.
pub fn table(rec: &Recorder, measured: Duration) -> String {
    let secs = seconds(measured);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<12} {:>10} {:>11} {:>13} {:>8} {:>8} {:>8} {:>8} {:>8}  errors",
        "rpc", "calls", "calls/s", "decisions/s", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for kind in Kind::ALL {
        if let Some(s) = rec.total.get(&kind) {
            row(&mut out, kind.name(), 12, s, secs);
        }
    }
    if !rec.per_target.is_empty() {
        let names: Vec<String> = rec
            .per_target
            .keys()
            .map(|(kind, target)| format!("{} {target}", kind.name()))
            .collect();
        let width = names.iter().map(String::len).max().unwrap_or(12);
        let _ = writeln!(out, "per replica:");
        for (name, s) in names.iter().zip(rec.per_target.values()) {
            row(&mut out, name, width, s, secs);
        }
    }
    let _ = writeln!(
        out,
        "measured {secs:.1} s; decisions checked against the bundle: mismatches {}",
        rec.mismatches
    );
    out
}

/// One line of the table.
fn row(out: &mut String, name: &str, width: usize, s: &Series, secs: f64) {
    let h = &s.latency;
    let errors = if s.errors.is_empty() {
        "none".to_owned()
    } else {
        let counts: Vec<String> = s.errors.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!(
            "{} (answered in p50 {:.3} / p99 {:.3} ms)",
            counts.join(" "),
            ms(s.error_latency.value_at_quantile(0.5)),
            ms(s.error_latency.value_at_quantile(0.99))
        )
    };
    let _ = writeln!(
        out,
        "{name:<width$} {:>10} {:>11.0} {:>13.0} {:>8.3} {:>8.3} {:>8.3} {:>8.3} {:>8.3}  {errors}",
        s.calls(),
        s.calls() as f64 / secs,
        s.decisions as f64 / secs,
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.value_at_quantile(0.999)),
        ms(h.max()),
    );
}

fn series_json(s: &Series, secs: f64) -> Value {
    let mut q = serde_json::Map::new();
    for (quantile, name) in QUANTILES {
        q.insert(format!("{name}_ms"), json!(ms(s.latency.value_at_quantile(quantile))));
    }
    q.insert("max_ms".into(), json!(ms(s.latency.max())));
    q.insert(
        "errors_p99_ms".into(),
        json!(ms(s.error_latency.value_at_quantile(0.99))),
    );
    json!({
        "calls": s.calls(),
        "calls_per_s": s.calls() as f64 / secs,
        "decisions_per_s": s.decisions as f64 / secs,
        "errors": s.errors,
        "latency": q,
    })
}

/// Everything as JSON, with the per-second series.
pub fn json(args: &Args, rec: &Recorder, measured: Duration) -> Value {
    let secs = seconds(measured);
    let total: serde_json::Map<String, Value> = rec
        .total
        .iter()
        .map(|(k, s)| (k.name().to_owned(), series_json(s, secs)))
        .collect();
    let per_second: Vec<Value> = rec
        .seconds()
        .iter()
        .map(|b| {
            Value::Object(
                b.iter()
                    .map(|(k, s)| (k.name().to_owned(), series_json(s, 1.0)))
                    .collect(),
            )
        })
        .collect();
    json!({
        "target": args.target,
        "bundle": args.bundle,
        "mode": if args.rate.is_some() { "open" } else { "closed" },
        "rate": args.rate,
        "concurrency": args.concurrency,
        "connections": args.connections,
        "mix": args.mix,
        "measured_s": secs,
        "mismatches": rec.mismatches,
        "total": total,
        "per_replica": rec
            .per_target
            .iter()
            .map(|((k, target), s)| json!({"kind": k.name(), "target": target, "series": series_json(s, secs)}))
            .collect::<Vec<_>>(),
        "per_second": per_second,
    })
}

/// p50 and p99 per kind over time, as an SVG line chart (no fonts or libraries needed).
pub fn svg(rec: &Recorder) -> String {
    let (w, h, pad) = (900.0, 420.0, 50.0);
    let kinds: Vec<Kind> = Kind::ALL.into_iter().filter(|k| rec.total.contains_key(k)).collect();
    let seconds = rec.seconds();
    let points = |k: Kind, q: f64| -> Vec<(usize, f64)> {
        seconds
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                b.get(&k)
                    .filter(|s| !s.latency.is_empty())
                    .map(|s| (i, ms(s.latency.value_at_quantile(q))))
            })
            .collect()
    };
    let max_ms = kinds
        .iter()
        .flat_map(|k| points(*k, 0.99))
        .map(|(_, v)| v)
        .fold(0.001, f64::max)
        * 1.1;
    let n = seconds.len().max(2) as f64;
    let x = |i: usize| pad + (i as f64) * (w - 2.0 * pad) / (n - 1.0);
    let y = |v: f64| h - pad - v / max_ms * (h - 2.0 * pad);
    let colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];
    let mut out = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <line x1=\"{pad}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n\
         <text x=\"{pad}\" y=\"20\">latency (ms) per second of the run: solid p50, dashed p99; max {max_ms:.3} ms</text>\n",
        h - pad,
        w - pad,
        h - pad,
        h - pad
    );
    for (i, k) in kinds.iter().enumerate() {
        let colour = colours.get(i % colours.len()).copied().unwrap_or("black");
        for (q, dash) in [(0.5, ""), (0.99, " stroke-dasharray=\"5,4\"")] {
            let path: Vec<String> = points(*k, q)
                .iter()
                .map(|(s, v)| format!("{:.1},{:.1}", x(*s), y(*v)))
                .collect();
            let _ = writeln!(
                out,
                "<polyline fill=\"none\" stroke=\"{colour}\"{dash} points=\"{}\"/>",
                path.join(" ")
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{}\" y=\"{}\" fill=\"{colour}\">{}</text>",
            w - pad - 60.0,
            pad + 16.0 * i as f64,
            k.name()
        );
    }
    out.push_str("</svg>\n");
    out
}
