//! Optimisation tips with evidence, from spans and log-pattern counts.
//!
//! Each rule looks for one kind of waste and reports it only with the
//! numbers that show it, so a healthy system gets no tips:
//!
//! - [`TipKind::NPlusOneQueries`]: many near-identical database calls
//!   under one parent span (the same statement once its literals are
//!   masked).
//! - [`TipKind::SlowEndpoint`]: an endpoint that takes a large share of all
//!   server time *and* is slow (p95 above a bound).
//! - [`TipKind::ErrorHotSpot`]: an operation whose error ratio and count
//!   are both high.
//! - [`TipKind::ChattyServices`]: a caller that calls the same service many
//!   times within one trace.
//! - [`TipKind::OversizedPayload`]: an operation whose typical request or
//!   response body is large.
//! - [`TipKind::NoisyLogPattern`]: one log template that is a large share
//!   of all log volume.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::spans::SpanInfo;

/// The kinds of tips.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TipKind {
    /// Repeated near-identical queries under one parent.
    NPlusOneQueries,
    /// An endpoint dominating server time while slow.
    SlowEndpoint,
    /// An operation failing often.
    ErrorHotSpot,
    /// Many calls between two services within one trace.
    ChattyServices,
    /// Large request or response bodies.
    OversizedPayload,
    /// One log template dominating log volume.
    NoisyLogPattern,
}

/// How urgent a tip is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth a look.
    Info,
    /// Costs noticeably.
    Warning,
    /// Costs a lot.
    Critical,
}

/// One tip.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tip {
    /// Which rule found it.
    pub kind: TipKind,
    /// How urgent.
    pub severity: Severity,
    /// The service concerned.
    pub service: String,
    /// The operation (or template) concerned.
    pub operation: String,
    /// One line.
    pub title: String,
    /// The numbers behind it.
    pub detail: String,
    /// Example trace ids (or template ids) to look at.
    pub evidence: Vec<String>,
}

/// Thresholds of the rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TipConfig {
    /// Same-statement database calls under one parent to count as N+1.
    pub n_plus_one_min: usize,
    /// Share of all server time an endpoint must take to be reported.
    pub slow_share: f64,
    /// ... and the p95 latency it must exceed, in milliseconds.
    pub slow_p95_ms: f64,
    /// Smallest error ratio of an error hot spot.
    pub error_ratio: f64,
    /// Fewest errors of an error hot spot.
    pub error_min: usize,
    /// Calls from one service to another within one trace to count as
    /// chatty (mean over the traces where the pair occurs).
    pub chatty_calls_per_trace: f64,
    /// Median body size, in bytes, to count as oversized.
    pub oversized_bytes: u64,
    /// Share of all log lines one template must take to count as noisy.
    pub noisy_share: f64,
    /// ... and the fewest lines it must have.
    pub noisy_min_lines: u64,
}

impl Default for TipConfig {
    fn default() -> Self {
        Self {
            n_plus_one_min: 10,
            slow_share: 0.3,
            slow_p95_ms: 500.0,
            error_ratio: 0.05,
            error_min: 5,
            chatty_calls_per_trace: 20.0,
            oversized_bytes: 1 << 20,
            noisy_share: 0.3,
            noisy_min_lines: 1000,
        }
    }
}

/// A statement with its literals masked: numbers and quoted strings become
/// `?`, runs of whitespace one space, so `WHERE id = 7` and `WHERE id = 8`
/// are the same query.
pub fn normalize_statement(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' | '"' => {
                // A quoted literal, with doubled quotes inside.
                while let Some(d) = chars.next() {
                    if d == c {
                        if chars.peek() == Some(&c) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                }
                out.push('?');
            }
            c if c.is_ascii_digit()
                && !out.ends_with(|p: char| p.is_alphanumeric() || p == '_') =>
            {
                while chars
                    .peek()
                    .is_some_and(|d| d.is_ascii_alphanumeric() || *d == '.')
                {
                    chars.next();
                }
                out.push('?');
            }
            c if c.is_whitespace() => {
                if !out.ends_with(' ') {
                    out.push(' ');
                }
            }
            c => out.push(c),
        }
    }
    out.trim().to_owned()
}

fn percentile(sorted: &[i64], q: f64) -> i64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

/// A few distinct example trace ids.
fn examples<'a>(ids: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for id in ids {
        if !out.iter().any(|o| o == id) {
            out.push(id.to_owned());
            if out.len() == 3 {
                break;
            }
        }
    }
    out
}

/// Tips from spans, most severe first.
pub fn span_tips(spans: &[SpanInfo], cfg: &TipConfig) -> Vec<Tip> {
    let mut tips = Vec::new();
    n_plus_one(spans, cfg, &mut tips);
    slow_endpoints(spans, cfg, &mut tips);
    error_hot_spots(spans, cfg, &mut tips);
    chatty(spans, cfg, &mut tips);
    oversized(spans, cfg, &mut tips);
    tips.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.title.cmp(&b.title)));
    tips
}

fn n_plus_one(spans: &[SpanInfo], cfg: &TipConfig, tips: &mut Vec<Tip>) {
    let by_id: HashMap<(&str, &str), &SpanInfo> = spans
        .iter()
        .map(|s| ((s.trace_id.as_str(), s.span_id.as_str()), s))
        .collect();
    // (trace, parent, statement) -> calls and their total time.
    let mut groups: HashMap<(&str, &str, String), (usize, i64, &SpanInfo)> = HashMap::new();
    for s in spans {
        let (Some(parent), Some(stmt)) = (&s.parent_id, &s.db_statement) else {
            continue;
        };
        let e = groups
            .entry((&s.trace_id, parent, normalize_statement(stmt)))
            .or_insert((0, 0, s));
        e.0 += 1;
        e.1 += s.duration_ns;
    }
    // One tip per (service, parent operation, statement), with the worst trace.
    let mut worst: HashMap<(String, String, String), (usize, i64, String)> = HashMap::new();
    for ((trace, parent, stmt), (n, total, child)) in groups {
        if n < cfg.n_plus_one_min {
            continue;
        }
        let op = by_id
            .get(&(trace, parent))
            .map_or_else(|| "(unknown parent)".to_owned(), |p| p.name.clone());
        let e = worst
            .entry((child.service.clone(), op, stmt))
            .or_insert((0, 0, trace.to_owned()));
        if n > e.0 {
            *e = (n, total, trace.to_owned());
        }
    }
    for ((service, op, stmt), (n, total, trace)) in worst {
        tips.push(Tip {
            kind: TipKind::NPlusOneQueries,
            severity: if n >= 5 * cfg.n_plus_one_min {
                Severity::Critical
            } else {
                Severity::Warning
            },
            service,
            operation: op.clone(),
            title: format!("N+1 queries under {op}"),
            detail: format!(
                "{n} calls of `{stmt}` under one {op} span, {:.1} ms in total; fetch them in one query",
                total as f64 / 1e6
            ),
            evidence: vec![trace],
        });
    }
}

fn slow_endpoints(spans: &[SpanInfo], cfg: &TipConfig, tips: &mut Vec<Tip>) {
    let mut by_op: HashMap<(&str, &str), Vec<&SpanInfo>> = HashMap::new();
    for s in spans.iter().filter(|s| s.is_entry()) {
        by_op.entry((&s.service, &s.name)).or_default().push(s);
    }
    let all: i64 = by_op.values().flatten().map(|s| s.duration_ns).sum();
    if all <= 0 {
        return;
    }
    for ((service, op), list) in by_op {
        let total: i64 = list.iter().map(|s| s.duration_ns).sum();
        let share = total as f64 / all as f64;
        let mut d: Vec<i64> = list.iter().map(|s| s.duration_ns).collect();
        d.sort_unstable();
        let p95 = percentile(&d, 0.95) as f64 / 1e6;
        if share < cfg.slow_share || p95 < cfg.slow_p95_ms {
            continue;
        }
        let mut slowest = list.clone();
        slowest.sort_by_key(|s| std::cmp::Reverse(s.duration_ns));
        tips.push(Tip {
            kind: TipKind::SlowEndpoint,
            severity: if share >= 0.6 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            service: service.to_owned(),
            operation: op.to_owned(),
            title: format!("{op} takes {:.0}% of server time", share * 100.0),
            detail: format!(
                "{} calls, p50 {:.0} ms, p95 {p95:.0} ms, {:.1} s in total",
                d.len(),
                percentile(&d, 0.5) as f64 / 1e6,
                total as f64 / 1e9
            ),
            evidence: examples(slowest.iter().map(|s| s.trace_id.as_str())),
        });
    }
}

fn error_hot_spots(spans: &[SpanInfo], cfg: &TipConfig, tips: &mut Vec<Tip>) {
    let mut by_op: HashMap<(&str, &str), (usize, Vec<&str>)> = HashMap::new();
    for s in spans {
        let e = by_op.entry((&s.service, &s.name)).or_default();
        e.0 += 1;
        if s.error {
            e.1.push(&s.trace_id);
        }
    }
    for ((service, op), (n, errors)) in by_op {
        let ratio = errors.len() as f64 / n as f64;
        if errors.len() < cfg.error_min || ratio < cfg.error_ratio {
            continue;
        }
        tips.push(Tip {
            kind: TipKind::ErrorHotSpot,
            severity: if ratio >= 0.25 {
                Severity::Critical
            } else {
                Severity::Warning
            },
            service: service.to_owned(),
            operation: op.to_owned(),
            title: format!("{op} fails {:.0}% of the time", ratio * 100.0),
            detail: format!("{} errors in {n} calls", errors.len()),
            evidence: examples(errors.into_iter()),
        });
    }
}

fn chatty(spans: &[SpanInfo], cfg: &TipConfig, tips: &mut Vec<Tip>) {
    let service_of: HashMap<(&str, &str), &str> = spans
        .iter()
        .map(|s| {
            (
                (s.trace_id.as_str(), s.span_id.as_str()),
                s.service.as_str(),
            )
        })
        .collect();
    // (caller, callee) -> calls per trace.
    let mut pairs: HashMap<(&str, &str), HashMap<&str, usize>> = HashMap::new();
    for s in spans {
        let Some(parent) = &s.parent_id else { continue };
        let Some(caller) = service_of.get(&(s.trace_id.as_str(), parent.as_str())) else {
            continue;
        };
        if *caller != s.service && s.is_entry() {
            *pairs
                .entry((caller, &s.service))
                .or_default()
                .entry(&s.trace_id)
                .or_default() += 1;
        }
    }
    for ((caller, callee), traces) in pairs {
        let calls: usize = traces.values().sum();
        let mean = calls as f64 / traces.len() as f64;
        if mean < cfg.chatty_calls_per_trace {
            continue;
        }
        let mut worst: Vec<(&str, usize)> = traces.into_iter().collect();
        worst.sort_by_key(|(id, n)| (std::cmp::Reverse(*n), *id));
        tips.push(Tip {
            kind: TipKind::ChattyServices,
            severity: if mean >= 5.0 * cfg.chatty_calls_per_trace {
                Severity::Critical
            } else {
                Severity::Warning
            },
            service: caller.to_owned(),
            operation: callee.to_owned(),
            title: format!("{caller} calls {callee} {mean:.0} times per request"),
            detail: format!(
                "{calls} calls in {} traces; batch them or cache the answers",
                worst.len()
            ),
            evidence: examples(worst.iter().map(|(id, _)| *id)),
        });
    }
}

fn oversized(spans: &[SpanInfo], cfg: &TipConfig, tips: &mut Vec<Tip>) {
    let mut by_op: HashMap<(&str, &str), Vec<(u64, &str)>> = HashMap::new();
    for s in spans {
        let size = s
            .request_bytes
            .unwrap_or(0)
            .max(s.response_bytes.unwrap_or(0));
        if s.request_bytes.is_some() || s.response_bytes.is_some() {
            by_op
                .entry((&s.service, &s.name))
                .or_default()
                .push((size, &s.trace_id));
        }
    }
    for ((service, op), mut sizes) in by_op {
        sizes.sort_by_key(|(b, _)| std::cmp::Reverse(*b));
        let median = sizes[sizes.len() / 2].0;
        if median < cfg.oversized_bytes {
            continue;
        }
        tips.push(Tip {
            kind: TipKind::OversizedPayload,
            severity: if median >= 10 * cfg.oversized_bytes {
                Severity::Critical
            } else {
                Severity::Warning
            },
            service: service.to_owned(),
            operation: op.to_owned(),
            title: format!("{op} moves {:.1} MiB per call", median as f64 / 1048576.0),
            detail: format!(
                "median body {median} bytes over {} calls, largest {}; paginate or compress",
                sizes.len(),
                sizes[0].0
            ),
            evidence: examples(sizes.iter().map(|(_, id)| *id)),
        });
    }
}

/// Tips from log-template counts: `(template id, template, lines)`.
pub fn log_tips(templates: &[(u64, String, u64)], cfg: &TipConfig) -> Vec<Tip> {
    let total: u64 = templates.iter().map(|t| t.2).sum();
    if total == 0 {
        return Vec::new();
    }
    templates
        .iter()
        .filter(|(_, _, n)| {
            *n >= cfg.noisy_min_lines && *n as f64 / total as f64 >= cfg.noisy_share
        })
        .map(|(id, template, n)| Tip {
            kind: TipKind::NoisyLogPattern,
            severity: Severity::Info,
            service: String::new(),
            operation: template.clone(),
            title: format!(
                "One log pattern is {:.0}% of all lines",
                *n as f64 * 100.0 / total as f64
            ),
            detail: format!("{n} of {total} lines are `{template}`; lower its level or sample it"),
            evidence: vec![id.to_string()],
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(
        trace: &str,
        id: &str,
        parent: Option<&str>,
        service: &str,
        name: &str,
        kind: &str,
        ms: i64,
    ) -> SpanInfo {
        SpanInfo {
            trace_id: trace.into(),
            span_id: id.into(),
            parent_id: parent.map(Into::into),
            service: service.into(),
            name: name.into(),
            kind: kind.into(),
            duration_ns: ms * 1_000_000,
            ..Default::default()
        }
    }

    fn kinds(tips: &[Tip]) -> Vec<TipKind> {
        tips.iter().map(|t| t.kind).collect()
    }

    /// A request handled by `shop` that queries the database `queries`
    /// times with the statements `stmt(i)`.
    fn request(trace: &str, queries: usize, stmt: impl Fn(usize) -> String) -> Vec<SpanInfo> {
        let mut v = vec![span(
            trace,
            "root",
            None,
            "shop",
            "GET /orders",
            "server",
            40,
        )];
        for i in 0..queries {
            let mut q = span(
                trace,
                &format!("q{i}"),
                Some("root"),
                "shop",
                "SELECT",
                "client",
                1,
            );
            q.db_system = Some("postgresql".into());
            q.db_statement = Some(stmt(i));
            v.push(q);
        }
        v
    }

    #[test]
    fn statements_are_compared_without_their_literals() {
        assert_eq!(
            normalize_statement("SELECT * FROM t WHERE id = 42 AND name = 'o''brien'"),
            "SELECT * FROM t WHERE id = ? AND name = ?"
        );
        assert_eq!(
            normalize_statement("select  col1\n from t2"),
            "select col1 from t2"
        );
    }

    #[test]
    fn n_plus_one_is_found_and_distinct_queries_are_not() {
        let cfg = TipConfig::default();
        let bad = request("t1", 25, |i| {
            format!("SELECT * FROM items WHERE order_id = {i}")
        });
        let tips = span_tips(&bad, &cfg);
        let t = tips
            .iter()
            .find(|t| t.kind == TipKind::NPlusOneQueries)
            .expect("n+1");
        assert!(
            t.detail.contains("25 calls") && t.detail.contains("order_id = ?"),
            "{t:?}"
        );
        assert_eq!(t.operation, "GET /orders");
        assert_eq!(t.evidence, vec!["t1".to_owned()]);

        // Twelve different queries, or a few repeats: no tip.
        let fine = request("t2", 12, |i| {
            format!(
                "SELECT * FROM table_{} WHERE x = 1",
                ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"][i]
            )
        });
        assert!(!kinds(&span_tips(&fine, &cfg)).contains(&TipKind::NPlusOneQueries));
        let few = request("t3", 5, |i| {
            format!("SELECT * FROM items WHERE order_id = {i}")
        });
        assert!(!kinds(&span_tips(&few, &cfg)).contains(&TipKind::NPlusOneQueries));
    }

    #[test]
    fn a_slow_dominant_endpoint_is_found_and_a_fast_one_is_not() {
        let cfg = TipConfig::default();
        let mut spans = Vec::new();
        for i in 0..50 {
            let t = format!("s{i}");
            spans.push(span(
                &t,
                "a",
                None,
                "shop",
                "POST /checkout",
                "server",
                900 + i,
            ));
            spans.push(span(&t, "b", None, "shop", "GET /health", "server", 2));
        }
        let tips = span_tips(&spans, &cfg);
        let t = tips
            .iter()
            .find(|t| t.kind == TipKind::SlowEndpoint)
            .expect("slow");
        assert_eq!(t.operation, "POST /checkout");
        assert_eq!(t.evidence[0], "s49", "the slowest trace first");

        // Dominant but fast (p95 well under 500 ms): no tip.
        let fast: Vec<SpanInfo> = (0..50)
            .map(|i| span(&format!("f{i}"), "a", None, "shop", "GET /", "server", 30))
            .collect();
        assert!(!kinds(&span_tips(&fast, &cfg)).contains(&TipKind::SlowEndpoint));
    }

    #[test]
    fn error_hot_spots_need_both_ratio_and_count() {
        let cfg = TipConfig::default();
        let mut spans: Vec<SpanInfo> = (0..100)
            .map(|i| {
                let mut s = span(
                    &format!("e{i}"),
                    "a",
                    None,
                    "pay",
                    "POST /charge",
                    "server",
                    10,
                );
                s.error = i % 5 == 0;
                s
            })
            .collect();
        let tips = span_tips(&spans, &cfg);
        let t = tips
            .iter()
            .find(|t| t.kind == TipKind::ErrorHotSpot)
            .expect("errors");
        assert!(t.detail.starts_with("20 errors in 100 calls"), "{t:?}");
        // One error in a hundred: no tip.
        for (i, s) in spans.iter_mut().enumerate() {
            s.error = i == 3;
        }
        assert!(!kinds(&span_tips(&spans, &cfg)).contains(&TipKind::ErrorHotSpot));
    }

    #[test]
    fn chatty_pairs_are_found_and_normal_fan_out_is_not() {
        let cfg = TipConfig::default();
        let trace = |t: &str, calls: usize| {
            let mut v = vec![
                span(t, "root", None, "web", "GET /page", "server", 100),
                span(t, "c", Some("root"), "web", "HTTP GET", "client", 90),
            ];
            for i in 0..calls {
                v.push(span(
                    t,
                    &format!("p{i}"),
                    Some("root"),
                    "prices",
                    "GET /price",
                    "server",
                    2,
                ));
            }
            v
        };
        let chatty: Vec<SpanInfo> = (0..3).flat_map(|i| trace(&format!("c{i}"), 40)).collect();
        let tips = span_tips(&chatty, &cfg);
        let t = tips
            .iter()
            .find(|t| t.kind == TipKind::ChattyServices)
            .expect("chatty");
        assert_eq!(
            (t.service.as_str(), t.operation.as_str()),
            ("web", "prices")
        );
        assert!(t.title.contains("40 times"), "{t:?}");
        let normal: Vec<SpanInfo> = (0..3).flat_map(|i| trace(&format!("n{i}"), 2)).collect();
        assert!(!kinds(&span_tips(&normal, &cfg)).contains(&TipKind::ChattyServices));
    }

    #[test]
    fn oversized_payloads_are_found_and_small_ones_are_not() {
        let cfg = TipConfig::default();
        let with_size = |bytes: u64| -> Vec<SpanInfo> {
            (0..20)
                .map(|i| {
                    let mut s = span(
                        &format!("o{i}"),
                        "a",
                        None,
                        "api",
                        "GET /export",
                        "server",
                        50,
                    );
                    s.response_bytes = Some(bytes + i);
                    s
                })
                .collect()
        };
        let tips = span_tips(&with_size(8 << 20), &cfg);
        let t = tips
            .iter()
            .find(|t| t.kind == TipKind::OversizedPayload)
            .expect("oversized");
        assert!(t.title.contains("8.0 MiB"), "{t:?}");
        assert!(!kinds(&span_tips(&with_size(20_000), &cfg)).contains(&TipKind::OversizedPayload));
    }

    #[test]
    fn a_noisy_log_pattern_is_found_and_a_balanced_mix_is_not() {
        let cfg = TipConfig::default();
        let noisy = vec![
            (1, "cache hit for key <*>".to_owned(), 90_000),
            (2, "request <*> done".to_owned(), 8_000),
            (3, "user <*> logged in".to_owned(), 2_000),
        ];
        let tips = log_tips(&noisy, &cfg);
        assert_eq!(tips.len(), 1);
        assert_eq!(tips[0].evidence, vec!["1".to_owned()]);
        assert!(tips[0].title.contains("90%"));
        let balanced: Vec<_> = (0..10)
            .map(|i| (i, format!("event {i} <*>"), 5_000))
            .collect();
        assert!(log_tips(&balanced, &cfg).is_empty());
        assert!(log_tips(&[], &cfg).is_empty());
    }

    #[test]
    fn a_healthy_trace_mix_gets_no_tips() {
        let mut spans = Vec::new();
        for i in 0..40 {
            let t = format!("h{i}");
            spans.extend(request(&t, 3, |j| format!("SELECT {j} FROM t{j}")));
            spans.push(span(
                &t,
                "x",
                Some("root"),
                "stock",
                "GET /stock",
                "server",
                5,
            ));
        }
        assert!(span_tips(&spans, &TipConfig::default()).is_empty());
    }
}
