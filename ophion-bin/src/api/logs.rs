//! `GET /api/v1/logs` (search, newest first, with a count histogram) and
//! `GET /api/v1/logs/tail` (live, as server-sent events).

use crate::auth::Principal;
use std::{convert::Infallible, sync::Arc, time::Duration};

use arrow_array::RecordBatch;
use axum::{
    Json,
    extract::{Query, State},
    response::sse::{Event, KeepAlive, Sse},
};
use futures::Stream;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::sync::broadcast::error::RecvError;

use super::{ApiError, ApiState, time::resolve, traces::fold_promoted};
use crate::read::{Params, attribute_filter, hex_id, json as to_json, text, ts, ts_text};
use ophion_core::Param;

/// Search parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LogParams {
    /// Text the body contains (case-insensitive).
    q: Option<String>,
    service: Option<String>,
    /// Minimum severity: trace, debug, info, warn, error, fatal (or a
    /// severity number).
    severity: Option<String>,
    trace_id: Option<String>,
    /// `key=value`.
    attribute: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
    /// Histogram buckets (default 60; 0: no histogram, as for later pages).
    buckets: Option<usize>,
    /// The cursor of a later page: the `next` of the page before.
    before: Option<String>,
}

/// The lowest severity number of a level name, per the OpenTelemetry log
/// data model (TRACE 1-4, DEBUG 5-8, INFO 9-12, WARN 13-16, ERROR 17-20,
/// FATAL 21-24).
fn min_severity(text: &str) -> Result<i32, ApiError> {
    let t = text.trim().to_ascii_lowercase();
    if let Ok(n) = t.parse::<i32>() {
        return Ok(n);
    }
    Ok(match t.as_str() {
        "trace" => 1,
        "debug" => 5,
        "info" => 9,
        "warn" | "warning" => 13,
        "error" => 17,
        "fatal" => 21,
        _ => {
            return Err(ApiError::bad_request(format!(
                "severity `{text}`: use trace, debug, info, warn, error, fatal or a number"
            )));
        }
    })
}

impl LogParams {
    /// The filters other than time.
    fn filters(&self, p: &mut Params) -> Result<(), ApiError> {
        if let Some(q) = self.q.as_deref().filter(|q| !q.is_empty()) {
            p.filter("strpos(lower(body), $q) > 0", "q", text(&q.to_lowercase()));
        }
        if let Some(v) = &self.service {
            p.filter("service_name = $service", "service", text(v));
        }
        if let Some(v) = &self.severity {
            p.filter(
                "severity_number >= $severity",
                "severity",
                Param::Int32(min_severity(v)?),
            );
        }
        if let Some(v) = &self.trace_id {
            // Validated hex, so it may be written into the SQL.
            p.when(format!("trace_id = '{}'", hex_id(v, 16, "trace id")?));
        }
        if let Some(a) = &self.attribute {
            let (k, v) = attribute_filter(a)?;
            p.filter(&format!("attributes['{k}'] = $attr"), "attr", text(v));
        }
        Ok(())
    }
}

/// The records of one page, newest first. A full page is completed with
/// every record sharing its last timestamp, so the next page (`timestamp <
/// next`) neither repeats nor skips a record however many share a
/// timestamp; such a page may hold more than `limit` records.
async fn page(
    s: &ApiState,
    who: &Principal,
    p: &Params,
    limit: usize,
) -> Result<(Vec<Map<String, Value>>, Option<i64>), ApiError> {
    let select = "SELECT *, CAST(timestamp AS BIGINT) AS timestamp_unix_nano FROM logs";
    let where_ = p.conditions();
    let sql = format!("{select} WHERE {where_} ORDER BY timestamp DESC LIMIT {limit}");
    let mut logs = to_json::objects(&s.reader.sql(&who.tenant, &sql, p).await?.batches);
    let stamp = |r: &Map<String, Value>| r.get("timestamp_unix_nano").and_then(Value::as_i64);
    let last = match logs.last() {
        Some(r) if logs.len() >= limit => stamp(r),
        _ => None,
    };
    if let Some(last) = last {
        logs.retain(|r| stamp(r) != Some(last));
        let mut tp = p.clone();
        tp.filter("timestamp = $last", "last", ts(last));
        let sql = format!("{select} WHERE {}", tp.conditions());
        logs.extend(to_json::objects(
            &s.reader.sql(&who.tenant, &sql, &tp).await?.batches,
        ));
    }
    logs.iter_mut().for_each(fold_promoted);
    Ok((logs, last))
}

pub(super) async fn search(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<LogParams>,
) -> Result<Json<Value>, ApiError> {
    let range = resolve(q.from.as_deref(), q.to.as_deref())?;
    let limit = q.limit.unwrap_or(100).clamp(1, 10_000);
    let buckets = q.buckets.unwrap_or(60).min(1000) as i64;
    let mut p = range.filter("timestamp");
    q.filters(&mut p)?;
    let mut paged = p.clone();
    if let Some(b) = &q.before {
        let b = b.parse::<i64>().map_err(|_| {
            ApiError::bad_request(format!("before `{b}`: pass the `next` of the page before"))
        })?;
        paged.filter("timestamp < $before", "before", ts(b));
    }
    let (logs, next) = page(&s, &who, &paged, limit).await?;
    let mut out = json!({
        "logs": logs,
        "next": next.map(|n| n.to_string()),
        "from": ts_text(range.from),
        "to": ts_text(range.to),
    });
    if buckets > 0 {
        let width = ((range.to - range.from) / buckets).max(1);
        let mut hp = p.clone();
        hp.bind("from_ns", Param::Int64(range.from))
            .bind("width", Param::Int64(width));
        let hist = s
            .reader
            .sql(
                &who.tenant,
                &format!(
                    "SELECT (CAST(timestamp AS BIGINT) - $from_ns) / $width AS bucket, count(*) AS n \
                     FROM logs WHERE {} GROUP BY 1 ORDER BY 1",
                    p.conditions()
                ),
                &hp,
            )
            .await?;
        let mut counts = vec![0i64; buckets as usize];
        for row in to_json::rows(&hist.batches) {
            if let (Some(b), Some(n)) = (row[0].as_i64(), row[1].as_i64())
                && let Some(slot) = usize::try_from(b).ok().and_then(|b| counts.get_mut(b))
            {
                *slot += n;
            }
        }
        let histogram: Vec<Value> = counts
            .iter()
            .enumerate()
            .map(|(i, n)| json!({"start": ts_text(range.from + i as i64 * width), "count": n}))
            .collect();
        out["total"] = json!(counts.iter().sum::<i64>());
        out["histogram"] = json!(histogram);
        out["bucket_ns"] = json!(width);
    }
    Ok(Json(out))
}

/// Whether a tailed record passes the filters (checked in memory).
struct TailFilter {
    q: Option<String>,
    service: Option<String>,
    severity: Option<i32>,
}

impl TailFilter {
    fn new(p: &LogParams) -> Result<Self, ApiError> {
        if p.trace_id.is_some() || p.attribute.is_some() {
            return Err(ApiError::bad_request(
                "the tail filters by q, service and severity; search by trace id or attribute with /api/v1/logs",
            ));
        }
        Ok(Self {
            q: p.q.as_ref().map(|q| q.to_lowercase()),
            service: p.service.clone(),
            severity: p.severity.as_deref().map(min_severity).transpose()?,
        })
    }

    fn pass(&self, r: &Map<String, Value>) -> bool {
        let s = |k: &str| r.get(k).and_then(Value::as_str);
        self.q
            .as_ref()
            .is_none_or(|q| s("body").is_some_and(|b| b.to_lowercase().contains(q.as_str())))
            && self
                .service
                .as_ref()
                .is_none_or(|svc| s("service_name") == Some(svc.as_str()))
            && self.severity.is_none_or(|min| {
                r.get("severity_number")
                    .and_then(Value::as_i64)
                    .is_some_and(|n| n >= i64::from(min))
            })
    }
}

fn records(batch: &RecordBatch, filter: &TailFilter) -> Vec<Map<String, Value>> {
    let mut rows = to_json::objects(std::slice::from_ref(batch));
    rows.retain(|r| filter.pass(r));
    rows.iter_mut().for_each(fold_promoted);
    rows
}

/// How often a tail stream checks that its token is still good: a stream
/// ends within this long of its token's logout, revocation or expiry.
const RECHECK: Duration = Duration::from_secs(2);

/// What a tail stream carries between events.
struct Tailing {
    rx: tokio::sync::broadcast::Receiver<Arc<super::tail::Published>>,
    filter: TailFilter,
    tenant: ophion_core::TenantId,
    pending: Vec<Event>,
    state: Arc<ApiState>,
    token: String,
    recheck: tokio::time::Interval,
    ended: bool,
}

impl Tailing {
    /// The next event, or `None` at the end of the stream.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            tokio::select! {
                _ = self.recheck.tick() => {
                    if let Err(e) = self.state.auth.authenticate(&self.token).await {
                        // The credential is gone: say why, then end.
                        self.ended = true;
                        return Some(Event::default()
                            .event("end")
                            .data(json!({"reason": e.to_string()}).to_string()));
                    }
                }
                got = self.rx.recv() => match got {
                    Ok(published) => {
                        let (t, batch) = published.as_ref();
                        if *t != self.tenant {
                            continue;
                        }
                        self.pending = records(batch, &self.filter)
                            .into_iter()
                            .rev()
                            .map(|r| Event::default().event("log").data(Value::Object(r).to_string()))
                            .collect();
                    }
                    Err(RecvError::Lagged(n)) => {
                        return Some(Event::default()
                            .event("lagged")
                            .data(json!({"missed_batches": n}).to_string()));
                    }
                    Err(RecvError::Closed) => return None,
                },
            }
        }
    }
}

/// `GET /api/v1/logs/tail`: new records as server-sent events. The stream
/// lives as long as the token that opened it: after its logout,
/// revocation or expiry it sends an `end` event and closes.
pub(super) async fn tail(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    headers: axum::http::HeaderMap,
    Query(q): Query<LogParams>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = TailFilter::new(&q)?;
    let token = crate::auth::bearer(&headers).unwrap_or_default().to_owned();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tailing = Tailing {
        rx: s.tail.subscribe(),
        filter,
        tenant: who.tenant.clone(),
        pending: Vec::new(),
        state: Arc::clone(&s),
        token,
        recheck,
        ended: false,
    };
    let stream = futures::stream::unfold(tailing, |mut t| async move {
        t.next().await.map(|e| (Ok(e), t))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
