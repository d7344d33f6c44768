//! `ExportTraceServiceRequest` -> span rows.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, RecordBatch, StructArray,
    array::{ListArray, PrimitiveArray},
    builder::{FixedSizeBinaryBuilder, Int64Builder, StringBuilder, UInt32Builder},
    types::TimestampNanosecondType,
};
use arrow_buffer::OffsetBuffer;
use opentelemetry_proto::tonic::{
    collector::trace::v1::ExportTraceServiceRequest,
    common::v1::AnyValue,
    trace::v1::{Span, span::SpanKind, status::StatusCode},
};
use ophion_core::{
    schema,
    semconv::{self, Level},
};

use super::{
    Converted, Ctx, Reason, TimeWindow,
    attrs::{
        AttrMapBuilder, Prepared, PromotedBuilder, ResourceScopeCols, attr_map_builder, non_empty,
        truncate_utf8, write_attrs,
    },
    valid_id,
};
use crate::config::Limits;

/// Lowercase name of a span kind, as stored in the `kind` column.
pub fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

/// Lowercase name of a status code, as stored in the `status_code` column.
pub fn status_name(code: i32) -> &'static str {
    match StatusCode::try_from(code) {
        Ok(StatusCode::Ok) => "ok",
        Ok(StatusCode::Error) => "error",
        _ => "unset",
    }
}

pub(crate) fn timestamps(v: Vec<i64>) -> ArrayRef {
    Arc::new(PrimitiveArray::<TimestampNanosecondType>::from(v).with_timezone("UTC"))
}

/// A list-of-struct column from its flattened children, offsets and (for
/// nullable lists) validity.
pub(crate) fn list(
    item_fields: arrow_schema::Fields,
    children: Vec<ArrayRef>,
    offsets: Vec<i32>,
) -> ArrayRef {
    list_with_nulls(item_fields, children, offsets, None)
}

pub(crate) fn list_with_nulls(
    item_fields: arrow_schema::Fields,
    children: Vec<ArrayRef>,
    offsets: Vec<i32>,
    valid: Option<Vec<bool>>,
) -> ArrayRef {
    let values = StructArray::new(item_fields.clone(), children, None);
    let field = Arc::new(arrow_schema::Field::new(
        "item",
        arrow_schema::DataType::Struct(item_fields),
        true,
    ));
    let nulls = valid.map(arrow_buffer::NullBuffer::from);
    Arc::new(ListArray::new(
        field,
        OffsetBuffer::new(offsets.into()),
        Arc::new(values),
        nulls,
    ))
}

struct Events {
    time: Vec<i64>,
    name: StringBuilder,
    attrs: AttrMapBuilder,
    dropped: UInt32Builder,
    offsets: Vec<i32>,
}

struct Links {
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    attrs: AttrMapBuilder,
    dropped: UInt32Builder,
    offsets: Vec<i32>,
}

struct SpanCols {
    trace_id: FixedSizeBinaryBuilder,
    span_id: FixedSizeBinaryBuilder,
    parent: FixedSizeBinaryBuilder,
    trace_state: StringBuilder,
    flags: UInt32Builder,
    name: StringBuilder,
    kind: StringBuilder,
    start: Vec<i64>,
    end: Vec<i64>,
    duration: Int64Builder,
    status_code: StringBuilder,
    status_message: StringBuilder,
    rs: ResourceScopeCols,
    promoted: Vec<PromotedBuilder>,
    attrs: AttrMapBuilder,
    dropped_attrs: UInt32Builder,
    events: Events,
    dropped_events: UInt32Builder,
    links: Links,
    dropped_links: UInt32Builder,
}

impl SpanCols {
    fn new(n: usize) -> Self {
        Self {
            trace_id: FixedSizeBinaryBuilder::with_capacity(n, 16),
            span_id: FixedSizeBinaryBuilder::with_capacity(n, 8),
            parent: FixedSizeBinaryBuilder::with_capacity(n, 8),
            trace_state: StringBuilder::new(),
            flags: UInt32Builder::with_capacity(n),
            name: StringBuilder::with_capacity(n, n * 24),
            kind: StringBuilder::with_capacity(n, n * 6),
            start: Vec::with_capacity(n),
            end: Vec::with_capacity(n),
            duration: Int64Builder::with_capacity(n),
            status_code: StringBuilder::with_capacity(n, n * 5),
            status_message: StringBuilder::new(),
            rs: ResourceScopeCols::new(n),
            promoted: PromotedBuilder::for_level(Level::Span, n),
            attrs: attr_map_builder(n, 10),
            dropped_attrs: UInt32Builder::with_capacity(n),
            events: Events {
                time: Vec::new(),
                name: StringBuilder::new(),
                attrs: attr_map_builder(0, 0),
                dropped: UInt32Builder::new(),
                offsets: vec![0],
            },
            dropped_events: UInt32Builder::with_capacity(n),
            links: Links {
                trace_id: FixedSizeBinaryBuilder::new(16),
                span_id: FixedSizeBinaryBuilder::new(8),
                trace_state: StringBuilder::new(),
                flags: UInt32Builder::new(),
                attrs: attr_map_builder(0, 0),
                dropped: UInt32Builder::new(),
                offsets: vec![0],
            },
            dropped_links: UInt32Builder::with_capacity(n),
        }
    }

    /// Validates a span; the reason it must be rejected, if any.
    fn check(span: &Span, window: &TimeWindow) -> Result<(i64, i64), Reason> {
        if !valid_id(&span.trace_id, 16) {
            return Err(Reason::InvalidTraceId);
        }
        if !valid_id(&span.span_id, 8) {
            return Err(Reason::InvalidSpanId);
        }
        if !span.parent_span_id.is_empty() && !valid_id(&span.parent_span_id, 8) {
            return Err(Reason::InvalidParentSpanId);
        }
        let start = window.check(span.start_time_unix_nano)?;
        let end =
            i64::try_from(span.end_time_unix_nano).map_err(|_| Reason::TimestampOutOfWindow)?;
        if end < start {
            return Err(Reason::EndBeforeStart);
        }
        Ok((start, end))
    }

    fn append(&mut self, ctx: &mut Ctx<'_>, p: &Prepared, span: &Span, start: i64, end: i64) {
        let max = ctx.limits.max_attribute_value_bytes;
        // Lengths were checked in `check`, so these appends cannot fail.
        let _ = self.trace_id.append_value(&span.trace_id);
        let _ = self.span_id.append_value(&span.span_id);
        if span.parent_span_id.is_empty() {
            self.parent.append_null();
        } else {
            let _ = self.parent.append_value(&span.parent_span_id);
        }
        self.trace_state
            .append_option(non_empty(&span.trace_state, max));
        self.flags.append_value(span.flags);
        self.name.append_value(truncate_utf8(&span.name, max));
        self.kind.append_value(kind_name(span.kind));
        self.start.push(start);
        self.end.push(end);
        self.duration.append_value(end - start);
        let status = span.status.as_ref();
        self.status_code
            .append_value(status_name(status.map_or(0, |s| s.code)));
        self.status_message
            .append_option(status.and_then(|s| non_empty(&s.message, max)));
        self.rs.append(p);

        let mut slots: [Option<&AnyValue>; 16] = [None; 16];
        let n_promoted = self.promoted.len();
        let dropped = write_attrs(
            ctx,
            &mut self.attrs,
            &span.attributes,
            Some((Level::Span, &mut slots[..n_promoted])),
        );
        let _ = self.attrs.append(true);
        for (b, v) in self.promoted.iter_mut().zip(slots) {
            b.append(ctx, v);
        }
        self.dropped_attrs
            .append_value(span.dropped_attributes_count.saturating_add(dropped));

        // Events.
        let keep = span.events.len().min(ctx.limits.max_events_per_span);
        let cut = (span.events.len() - keep) as u32;
        for ev in &span.events[..keep] {
            let e = &mut self.events;
            e.time
                .push(i64::try_from(ev.time_unix_nano).unwrap_or(i64::MAX));
            e.name.append_value(truncate_utf8(&ev.name, max));
            let d = write_attrs(ctx, &mut e.attrs, &ev.attributes, None);
            let _ = e.attrs.append(true);
            e.dropped
                .append_value(ev.dropped_attributes_count.saturating_add(d));
        }
        push_offset(&mut self.events.offsets, keep);
        self.dropped_events
            .append_value(span.dropped_events_count.saturating_add(cut));

        // Links: a link with invalid ids is dropped and counted.
        let mut kept = 0;
        let mut cut = 0u32;
        for link in &span.links {
            if kept >= ctx.limits.max_links_per_span
                || !valid_id(&link.trace_id, 16)
                || !valid_id(&link.span_id, 8)
            {
                cut += 1;
                continue;
            }
            let l = &mut self.links;
            let _ = l.trace_id.append_value(&link.trace_id);
            let _ = l.span_id.append_value(&link.span_id);
            l.trace_state
                .append_option(non_empty(&link.trace_state, max));
            l.flags.append_value(link.flags);
            let d = write_attrs(ctx, &mut l.attrs, &link.attributes, None);
            let _ = l.attrs.append(true);
            l.dropped
                .append_value(link.dropped_attributes_count.saturating_add(d));
            kept += 1;
        }
        push_offset(&mut self.links.offsets, kept);
        self.dropped_links
            .append_value(span.dropped_links_count.saturating_add(cut));
        ctx.stats.dropped_events_and_links += u64::from(cut) + (span.events.len() - keep) as u64;
    }

    fn finish(mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(self.trace_id.finish()),
            Arc::new(self.span_id.finish()),
            Arc::new(self.parent.finish()),
            Arc::new(self.trace_state.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.name.finish()),
            Arc::new(self.kind.finish()),
            timestamps(self.start),
            timestamps(self.end),
            Arc::new(self.duration.finish()),
            Arc::new(self.status_code.finish()),
            Arc::new(self.status_message.finish()),
        ];
        self.rs.finish(&mut cols);
        for b in &mut self.promoted {
            cols.push(b.finish());
        }
        cols.push(Arc::new(self.attrs.finish()));
        cols.push(Arc::new(self.dropped_attrs.finish()));
        let mut e = self.events;
        cols.push(list(
            schema::event_fields(),
            vec![
                timestamps(e.time),
                Arc::new(e.name.finish()),
                Arc::new(e.attrs.finish()),
                Arc::new(e.dropped.finish()),
            ],
            e.offsets,
        ));
        cols.push(Arc::new(self.dropped_events.finish()));
        let mut l = self.links;
        cols.push(list(
            schema::link_fields(),
            vec![
                Arc::new(l.trace_id.finish()),
                Arc::new(l.span_id.finish()),
                Arc::new(l.trace_state.finish()),
                Arc::new(l.flags.finish()),
                Arc::new(l.attrs.finish()),
                Arc::new(l.dropped.finish()),
            ],
            l.offsets,
        ));
        cols.push(Arc::new(self.dropped_links.finish()));
        RecordBatch::try_new(schema::spans_schema(), cols)
    }
}

pub(crate) fn push_offset(offsets: &mut Vec<i32>, n: usize) {
    let last = offsets.last().copied().unwrap_or(0);
    offsets.push(last + n as i32);
}

/// Converts a trace export request into span rows (schema
/// [`ophion_core::schema::spans_schema`]), rejecting invalid spans.
pub fn traces(req: &ExportTraceServiceRequest, limits: &Limits, window: TimeWindow) -> Converted {
    debug_assert!(semconv::promoted(Level::Span).count() <= 16);
    let n: usize = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .map(|s| s.spans.len())
        .sum();
    let mut ctx = Ctx::new(limits, window);
    let mut cols = SpanCols::new(n);
    let mut rows = 0;
    for rs in &req.resource_spans {
        let mut prepared = Prepared::resource(&mut ctx, rs.resource.as_ref(), &rs.schema_url);
        for ss in &rs.scope_spans {
            prepared.set_scope(&mut ctx, ss.scope.as_ref(), &ss.schema_url);
            for span in &ss.spans {
                match SpanCols::check(span, &ctx.window) {
                    Ok((start, end)) => {
                        cols.append(&mut ctx, &prepared, span, start, end);
                        rows += 1;
                    }
                    Err(reason) => ctx.rejected.add(reason),
                }
            }
        }
    }
    ctx.finish(rows, || cols.finish())
}
