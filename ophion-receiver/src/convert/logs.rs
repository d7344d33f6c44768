//! `ExportLogsServiceRequest` -> log rows.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, RecordBatch,
    builder::{FixedSizeBinaryBuilder, Int32Builder, StringBuilder, UInt32Builder},
};
use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest, logs::v1::LogRecord,
};
use ophion_core::schema;

use super::{
    Converted, Ctx, Reason, TimeWindow,
    attrs::{
        AttrMapBuilder, Prepared, ResourceScopeCols, TooDeep, attr_map_builder, non_empty, render,
        write_attrs,
    },
    traces::timestamps,
    valid_id,
};
use crate::config::Limits;

struct LogCols {
    time: Vec<i64>,
    observed: Vec<i64>,
    severity_number: Int32Builder,
    severity_text: StringBuilder,
    body: StringBuilder,
    event_name: StringBuilder,
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    flags: UInt32Builder,
    rs: ResourceScopeCols,
    attrs: AttrMapBuilder,
    dropped_attrs: UInt32Builder,
}

impl LogCols {
    fn new(n: usize) -> Self {
        Self {
            time: Vec::with_capacity(n),
            observed: Vec::with_capacity(n),
            severity_number: Int32Builder::with_capacity(n),
            severity_text: StringBuilder::with_capacity(n, n * 5),
            body: StringBuilder::with_capacity(n, n * 64),
            event_name: StringBuilder::new(),
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            flags: UInt32Builder::with_capacity(n),
            rs: ResourceScopeCols::new(n),
            attrs: attr_map_builder(n, 5),
            dropped_attrs: UInt32Builder::with_capacity(n),
        }
    }

    fn append(
        &mut self,
        ctx: &mut Ctx<'_>,
        p: &Prepared,
        log: &LogRecord,
        time: i64,
        observed: i64,
    ) {
        let max = ctx.limits.max_attribute_value_bytes;
        self.time.push(time);
        self.observed.push(observed);
        self.severity_number.append_value(log.severity_number);
        self.severity_text
            .append_option(non_empty(&log.severity_text, max));
        match render(ctx, log.body.as_ref()) {
            Ok(body) => self.body.append_option(body),
            Err(TooDeep) => {
                ctx.stats.truncated_values += 1;
                self.body
                    .append_value("[body nested deeper than max_value_depth]");
            }
        }
        self.event_name
            .append_option(non_empty(&log.event_name, max));
        // A log with a bad trace or span id is kept, but not linked to a trace.
        let linked =
            valid_id(&log.trace_id, 16) && (log.span_id.is_empty() || valid_id(&log.span_id, 8));
        if !linked && (!log.trace_id.is_empty() || !log.span_id.is_empty()) {
            ctx.stats.unlinked_logs += 1;
        }
        if linked {
            let _ = self.trace_id.append_value(&log.trace_id);
        } else {
            self.trace_id.append_null();
        }
        if linked && !log.span_id.is_empty() {
            let _ = self.span_id.append_value(&log.span_id);
        } else {
            self.span_id.append_null();
        }
        self.flags.append_value(log.flags);
        self.rs.append(p);
        let dropped = write_attrs(ctx, &mut self.attrs, &log.attributes, None);
        let _ = self.attrs.append(true);
        self.dropped_attrs
            .append_value(log.dropped_attributes_count.saturating_add(dropped));
    }

    fn finish(mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            timestamps(self.time),
            timestamps(self.observed),
            Arc::new(self.severity_number.finish()),
            Arc::new(self.severity_text.finish()),
            Arc::new(self.body.finish()),
            Arc::new(self.event_name.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.flags.finish()),
        ];
        self.rs.finish(&mut cols);
        cols.push(Arc::new(self.attrs.finish()));
        cols.push(Arc::new(self.dropped_attrs.finish()));
        RecordBatch::try_new(schema::logs_schema(), cols)
    }
}

/// Converts a logs export request into log rows (schema
/// [`ophion_core::schema::logs_schema`]).
///
/// A record's `timestamp` is its `time_unix_nano`, else its
/// `observed_time_unix_nano`, else `received_ns`; `observed_timestamp` is
/// the observed time, else `received_ns`. Records whose timestamp falls
/// outside the window are rejected.
pub fn logs(
    req: &ExportLogsServiceRequest,
    limits: &Limits,
    window: TimeWindow,
    received_ns: i64,
) -> Converted {
    let n: usize = req
        .resource_logs
        .iter()
        .flat_map(|r| &r.scope_logs)
        .map(|s| s.log_records.len())
        .sum();
    let mut ctx = Ctx::new(limits, window);
    let mut cols = LogCols::new(n);
    let mut rows = 0;
    let received = u64::try_from(received_ns).unwrap_or(0);
    for rl in &req.resource_logs {
        let mut prepared = Prepared::resource(&mut ctx, rl.resource.as_ref(), &rl.schema_url);
        for sl in &rl.scope_logs {
            prepared.set_scope(&mut ctx, sl.scope.as_ref(), &sl.schema_url);
            for log in &sl.log_records {
                let observed_ns = if log.observed_time_unix_nano != 0 {
                    log.observed_time_unix_nano
                } else {
                    received
                };
                let time_ns = if log.time_unix_nano != 0 {
                    log.time_unix_nano
                } else {
                    observed_ns
                };
                let checked = window.check(time_ns).and_then(|t| {
                    let observed =
                        i64::try_from(observed_ns).map_err(|_| Reason::TimestampOutOfWindow)?;
                    Ok((t, observed))
                });
                match checked {
                    Ok((time, observed)) => {
                        cols.append(&mut ctx, &prepared, log, time, observed);
                        rows += 1;
                    }
                    Err(reason) => ctx.rejected.add(reason),
                }
            }
        }
    }
    ctx.finish(rows, || cols.finish())
}
