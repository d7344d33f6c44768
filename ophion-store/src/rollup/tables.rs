//! The rollups as Arrow tables: what a query scans.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

use arrow_array::{
    BooleanArray, Int64Array, RecordBatch, StringViewArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use ophion_core::{TenantId, schema::col};

use super::{MINUTE, MINUTE_NS, Rollups, Waited, lock, representative};

/// A string column of interned strings.
fn views(v: &[Arc<str>]) -> StringViewArray {
    StringViewArray::from_iter_values(v.iter().map(|s| &**s))
}

impl Rollups {
    /// `service_minutes` rows of `tenant` with minutes in `[from_ns,
    /// to_ns]`: requests per minute, service and latency bucket.
    pub(crate) fn service_minutes(
        &self,
        tenant: &TenantId,
        from_ns: i64,
        to_ns: i64,
    ) -> RecordBatch {
        let (lo, hi) = (from_ns.div_euclid(MINUTE_NS), to_ns.div_euclid(MINUTE_NS));
        let (mut minute, mut service, mut duration, mut spans, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let tenants = lock(&self.tenants);
        if let Some(r) = tenants.get(tenant).filter(|_| lo <= hi) {
            for (&m, cells) in r.minutes.range(lo..=hi) {
                for (svc, buckets) in &cells.requests {
                    for (&b, &[s, e]) in buckets {
                        minute.push(m * MINUTE_NS);
                        service.push(Arc::clone(svc));
                        duration.push(representative(b));
                        spans.push(s as i64);
                        errors.push(e as i64);
                    }
                }
            }
        }
        drop(tenants);
        RecordBatch::try_new(
            service_minutes_schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(minute).with_timezone("UTC")),
                Arc::new(views(&service)),
                Arc::new(Int64Array::from(duration)),
                Arc::new(Int64Array::from(spans)),
                Arc::new(Int64Array::from(errors)),
            ],
        )
        .expect("columns match the service_minutes schema")
    }

    /// `span_minutes` rows of `tenant` with minutes in `[from_ns, to_ns]`
    /// (minute starts).
    pub(crate) fn span_minutes(&self, tenant: &TenantId, from_ns: i64, to_ns: i64) -> RecordBatch {
        let (lo, hi) = (from_ns.div_euclid(MINUTE_NS), to_ns.div_euclid(MINUTE_NS));
        let mut minute = Vec::new();
        let (mut service, mut name, mut route, mut kind) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let (mut entry, mut duration, mut spans, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let tenants = lock(&self.tenants);
        if let Some(r) = tenants.get(tenant).filter(|_| lo <= hi) {
            for (&m, cells) in r.minutes.range(lo..=hi) {
                for (k, buckets) in &cells.ops {
                    for (&b, &[s, e]) in buckets {
                        minute.push(m * MINUTE_NS);
                        service.push(Arc::clone(&k.service));
                        name.push(Arc::clone(&k.name));
                        route.push(k.route.clone());
                        kind.push(Arc::clone(&k.kind));
                        entry.push(k.entry);
                        duration.push(representative(b));
                        spans.push(s as i64);
                        errors.push(e as i64);
                    }
                }
            }
        }
        drop(tenants);
        RecordBatch::try_new(
            span_minutes_schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(minute).with_timezone("UTC")),
                Arc::new(views(&service)),
                Arc::new(views(&name)),
                Arc::new(StringViewArray::from_iter(
                    route.iter().map(|r| r.as_deref()),
                )),
                Arc::new(views(&kind)),
                Arc::new(BooleanArray::from(entry)),
                Arc::new(Int64Array::from(duration)),
                Arc::new(Int64Array::from(spans)),
                Arc::new(Int64Array::from(errors)),
            ],
        )
        .expect("columns match the span_minutes schema")
    }

    /// `service_edges` rows of `tenant` with minutes in `[from_ns, to_ns]`.
    pub(crate) fn service_edges(&self, tenant: &TenantId, from_ns: i64, to_ns: i64) -> RecordBatch {
        let (lo, hi) = (from_ns.div_euclid(MINUTE_NS), to_ns.div_euclid(MINUTE_NS));
        let (mut minute, mut caller, mut callee, mut calls, mut errors) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut duration = Vec::new();
        let tenants = lock(&self.tenants);
        if let Some(r) = tenants.get(tenant).filter(|_| lo <= hi) {
            // Client spans still waiting for a child count as calls to
            // their peer for now: a query sees every call it can.
            let mut waiting: Waited<'_> = HashMap::new();
            for w in r.pending.parents.values() {
                if let Some(peer) = w.peer.as_ref().filter(|p| **p != w.service)
                    && (lo..=hi).contains(&w.minute)
                {
                    let c = waiting
                        .entry((w.minute, &w.service, peer, w.bucket))
                        .or_default();
                    c[0] += 1;
                    c[1] += u64::from(w.error);
                }
            }
            for (&m, cells) in r.minutes.range(lo..=hi) {
                for ((a, b), buckets) in &cells.edges {
                    for (&d, &[n, e]) in buckets {
                        let [wn, we] = waiting.remove(&(m, a, b, d)).unwrap_or_default();
                        minute.push(m * MINUTE_NS);
                        caller.push(Arc::clone(a));
                        callee.push(Arc::clone(b));
                        duration.push(representative(d));
                        calls.push((n + wn) as i64);
                        errors.push((e + we) as i64);
                    }
                }
            }
            for ((m, a, b, d), [n, e]) in waiting {
                duration.push(representative(d));
                minute.push(m * MINUTE_NS);
                caller.push(Arc::clone(a));
                callee.push(Arc::clone(b));
                calls.push(n as i64);
                errors.push(e as i64);
            }
        }
        drop(tenants);
        RecordBatch::try_new(
            service_edges_schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(minute).with_timezone("UTC")),
                Arc::new(views(&caller)),
                Arc::new(views(&callee)),
                Arc::new(Int64Array::from(duration)),
                Arc::new(Int64Array::from(calls)),
                Arc::new(Int64Array::from(errors)),
            ],
        )
        .expect("columns match the service_edges schema")
    }
}

fn minute_field() -> Field {
    Field::new(
        MINUTE,
        DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
        false,
    )
}

/// The schema of `span_minutes`.
pub fn span_minutes_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            minute_field(),
            Field::new(col::SERVICE_NAME, DataType::Utf8View, false),
            Field::new(col::NAME, DataType::Utf8View, false),
            Field::new("http_route", DataType::Utf8View, true),
            Field::new(col::KIND, DataType::Utf8View, false),
            Field::new("entry", DataType::Boolean, false),
            Field::new(col::DURATION_NS, DataType::Int64, false),
            Field::new("spans", DataType::Int64, false),
            Field::new("errors", DataType::Int64, false),
        ]))
    }))
}

/// The schema of `service_edges`.
pub fn service_edges_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            minute_field(),
            Field::new("caller", DataType::Utf8View, false),
            Field::new("callee", DataType::Utf8View, false),
            Field::new(col::DURATION_NS, DataType::Int64, false),
            Field::new("calls", DataType::Int64, false),
            Field::new("errors", DataType::Int64, false),
        ]))
    }))
}

/// The schema of `service_minutes`.
pub fn service_minutes_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    Arc::clone(S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            minute_field(),
            Field::new(col::SERVICE_NAME, DataType::Utf8View, false),
            Field::new(col::DURATION_NS, DataType::Int64, false),
            Field::new("spans", DataType::Int64, false),
            Field::new("errors", DataType::Int64, false),
        ]))
    }))
}
