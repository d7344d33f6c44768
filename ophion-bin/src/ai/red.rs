//! The RED series of requests, per minute, with one aggregate query: what
//! the watch scores every pass and what `/ai/analyze` scores over its
//! window. A request is an entry span (server, consumer, or a root).

use std::collections::BTreeMap;

use ophion_ai::red::Minute;
use ophion_core::TenantId;
use serde_json::Value;

use crate::read::{ENTRY_SPANS, Params, Range, ReadError, Reader, json, rollup, text};

pub(crate) use crate::read::rollup::MINUTE_NS;

/// What a series is kept per.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Per {
    /// Each (service, operation).
    Operation,
    /// Each service, all its operations together (operation `""`).
    Service,
}

/// (service, operation or `""`) -> minute since the epoch -> counts.
pub(crate) type RedSeries = BTreeMap<(String, String), BTreeMap<i64, Minute>>;

/// The minutes of `range` (whole minutes; a minute belongs to where its
/// requests start) as RED series `per` operation or service, optionally
/// of one service only. Minutes without requests are absent.
pub(crate) async fn series(
    reader: &Reader,
    tenant: &TenantId,
    range: Range,
    per: Per,
    service: Option<&str>,
) -> Result<RedSeries, ReadError> {
    let name = match per {
        Per::Operation => "name",
        Per::Service => "'' AS name",
    };
    // The rollups first (whole minutes from per-minute buckets, partial
    // ones from spans); spans alone when they do not cover the range.
    let mut p = Params::default();
    let mut out = None;
    if rollup::bind(range, &mut p).is_some() {
        let common = match service {
            Some(s) => {
                p.bind("service", text(s));
                "service_name = $service"
            }
            None => "TRUE",
        };
        let sql = format!(
            "SELECT service_name, {name}, CAST(minute AS BIGINT) / {MINUTE_NS} AS minute, \
             CAST(sum(spans) AS BIGINT) AS n, CAST(sum(errors) AS BIGINT) AS errors, \
             {} AS p95 FROM ({}) r GROUP BY 1, 2, 3",
            rollup::percentile(0.95),
            rollup::rows(common, true)
        );
        match reader.sql(tenant, &sql, &p).await {
            Ok(o) => out = Some(o),
            Err(ophion_core::QueryError::NotCovered(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let out = match out {
        Some(o) => o,
        None => {
            let mut p: Params = range.filter("start_time");
            p.when(ENTRY_SPANS);
            if let Some(s) = service {
                p.filter("service_name = $service", "service", text(s));
            }
            let group = match per {
                Per::Operation => "service_name, name, minute",
                Per::Service => "service_name, minute",
            };
            let sql = format!(
                "SELECT service_name, {name}, CAST(start_time AS BIGINT) / {MINUTE_NS} AS minute, \
                 count(*) AS n, sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS errors, \
                 approx_percentile_cont(duration_ns, 0.95) AS p95 \
                 FROM spans WHERE {} GROUP BY {group}",
                p.conditions()
            );
            reader.sql(tenant, &sql, &p).await?
        }
    };
    let mut series = RedSeries::new();
    for r in json::objects(&out.batches) {
        let text = |k: &str| {
            r.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let num = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(f64::NAN);
        series
            .entry((text("service_name"), text("name")))
            .or_default()
            .insert(
                num("minute") as i64,
                Minute {
                    requests: num("n"),
                    errors: num("errors"),
                    p95_ns: num("p95"),
                },
            );
    }
    Ok(series)
}
