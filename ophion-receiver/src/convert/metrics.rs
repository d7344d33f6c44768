//! `ExportMetricsServiceRequest` -> metric point rows (one wide table for
//! the five point types).

use std::sync::Arc;

use arrow_array::{
    ArrayRef, RecordBatch,
    builder::{
        BooleanBuilder, FixedSizeBinaryBuilder, Float64Builder, Int32Builder, ListBuilder,
        StringBuilder, UInt32Builder, UInt64Builder,
    },
};
use opentelemetry_proto::tonic::{
    collector::metrics::v1::ExportMetricsServiceRequest,
    common::v1::KeyValue,
    metrics::v1::{
        AggregationTemporality, Exemplar, ExponentialHistogramDataPoint, HistogramDataPoint,
        Metric, NumberDataPoint, SummaryDataPoint, exemplar, metric::Data, number_data_point,
        summary_data_point::ValueAtQuantile,
    },
};
use ophion_core::schema;

use super::{
    Converted, Ctx, Reason, TimeWindow,
    attrs::{
        AttrMapBuilder, Prepared, ResourceScopeCols, attr_map_builder, non_empty, truncate_utf8,
        write_attrs,
    },
    traces::{list, list_with_nulls, push_offset, timestamps},
    valid_id,
};
use crate::config::Limits;

/// What one metric contributes to each of its points.
struct MetricInfo<'a> {
    name: &'a str,
    description: Option<&'a str>,
    unit: Option<&'a str>,
    ty: &'static str,
    temporality: Option<&'static str>,
    monotonic: Option<bool>,
}

/// One data point, whatever its type.
#[derive(Default)]
struct Point<'a> {
    attrs: &'a [KeyValue],
    start: u64,
    flags: u32,
    exemplars: &'a [Exemplar],
    value: Option<f64>,
    count: Option<u64>,
    sum: Option<f64>,
    min: Option<f64>,
    max: Option<f64>,
    buckets: Option<(&'a [u64], &'a [f64])>,
    exp: Option<&'a ExponentialHistogramDataPoint>,
    quantiles: Option<&'a [ValueAtQuantile]>,
}

struct MetricCols {
    time: Vec<i64>,
    start: Vec<Option<i64>>,
    name: StringBuilder,
    description: StringBuilder,
    unit: StringBuilder,
    ty: StringBuilder,
    temporality: StringBuilder,
    monotonic: BooleanBuilder,
    value: Float64Builder,
    count: UInt64Builder,
    sum: Float64Builder,
    min: Float64Builder,
    max: Float64Builder,
    bucket_counts: ListBuilder<UInt64Builder>,
    explicit_bounds: ListBuilder<Float64Builder>,
    exp_scale: Int32Builder,
    exp_zero_count: UInt64Builder,
    exp_zero_threshold: Float64Builder,
    exp_pos_offset: Int32Builder,
    exp_pos: ListBuilder<UInt64Builder>,
    exp_neg_offset: Int32Builder,
    exp_neg: ListBuilder<UInt64Builder>,
    q_quantile: Vec<f64>,
    q_value: Vec<f64>,
    q_offsets: Vec<i32>,
    q_valid: Vec<bool>,
    ex_time: Vec<i64>,
    ex_value: Vec<f64>,
    ex_trace: FixedSizeBinaryBuilder,
    ex_span: FixedSizeBinaryBuilder,
    ex_attrs: AttrMapBuilder,
    ex_offsets: Vec<i32>,
    flags: UInt32Builder,
    rs: ResourceScopeCols,
    attrs: AttrMapBuilder,
    dropped_attrs: UInt32Builder,
}

impl MetricCols {
    fn new(n: usize) -> Self {
        Self {
            time: Vec::with_capacity(n),
            start: Vec::with_capacity(n),
            name: StringBuilder::with_capacity(n, n * 24),
            description: StringBuilder::with_capacity(n, n * 32),
            unit: StringBuilder::with_capacity(n, n * 4),
            ty: StringBuilder::with_capacity(n, n * 5),
            temporality: StringBuilder::with_capacity(n, n * 10),
            monotonic: BooleanBuilder::with_capacity(n),
            value: Float64Builder::with_capacity(n),
            count: UInt64Builder::with_capacity(n),
            sum: Float64Builder::with_capacity(n),
            min: Float64Builder::with_capacity(n),
            max: Float64Builder::with_capacity(n),
            bucket_counts: ListBuilder::new(UInt64Builder::new()),
            explicit_bounds: ListBuilder::new(Float64Builder::new()),
            exp_scale: Int32Builder::with_capacity(n),
            exp_zero_count: UInt64Builder::with_capacity(n),
            exp_zero_threshold: Float64Builder::with_capacity(n),
            exp_pos_offset: Int32Builder::with_capacity(n),
            exp_pos: ListBuilder::new(UInt64Builder::new()),
            exp_neg_offset: Int32Builder::with_capacity(n),
            exp_neg: ListBuilder::new(UInt64Builder::new()),
            q_quantile: Vec::new(),
            q_value: Vec::new(),
            q_offsets: vec![0],
            q_valid: Vec::with_capacity(n),
            ex_time: Vec::new(),
            ex_value: Vec::new(),
            ex_trace: FixedSizeBinaryBuilder::new(16),
            ex_span: FixedSizeBinaryBuilder::new(8),
            ex_attrs: attr_map_builder(0, 0),
            ex_offsets: vec![0],
            flags: UInt32Builder::with_capacity(n),
            rs: ResourceScopeCols::new(n),
            attrs: attr_map_builder(n, 3),
            dropped_attrs: UInt32Builder::with_capacity(n),
        }
    }

    fn append(
        &mut self,
        ctx: &mut Ctx<'_>,
        p: &Prepared,
        m: &MetricInfo<'_>,
        pt: &Point<'_>,
        time: i64,
    ) {
        self.time.push(time);
        self.start
            .push(i64::try_from(pt.start).ok().filter(|s| *s != 0));
        self.name.append_value(m.name);
        self.description.append_option(m.description);
        self.unit.append_option(m.unit);
        self.ty.append_value(m.ty);
        self.temporality.append_option(m.temporality);
        self.monotonic.append_option(m.monotonic);
        self.value.append_option(pt.value);
        self.count.append_option(pt.count);
        self.sum.append_option(pt.sum);
        self.min.append_option(pt.min);
        self.max.append_option(pt.max);
        match pt.buckets {
            Some((counts, bounds)) => {
                self.bucket_counts.values().append_slice(counts);
                self.bucket_counts.append(true);
                self.explicit_bounds.values().append_slice(bounds);
                self.explicit_bounds.append(true);
            }
            None => {
                self.bucket_counts.append(false);
                self.explicit_bounds.append(false);
            }
        }
        match pt.exp {
            Some(e) => {
                self.exp_scale.append_value(e.scale);
                self.exp_zero_count.append_value(e.zero_count);
                self.exp_zero_threshold.append_value(e.zero_threshold);
                let pos = e.positive.as_ref();
                self.exp_pos_offset
                    .append_value(pos.map_or(0, |b| b.offset));
                self.exp_pos
                    .values()
                    .append_slice(pos.map_or(&[][..], |b| &b.bucket_counts));
                self.exp_pos.append(true);
                let neg = e.negative.as_ref();
                self.exp_neg_offset
                    .append_value(neg.map_or(0, |b| b.offset));
                self.exp_neg
                    .values()
                    .append_slice(neg.map_or(&[][..], |b| &b.bucket_counts));
                self.exp_neg.append(true);
            }
            None => {
                self.exp_scale.append_null();
                self.exp_zero_count.append_null();
                self.exp_zero_threshold.append_null();
                self.exp_pos_offset.append_null();
                self.exp_pos.append(false);
                self.exp_neg_offset.append_null();
                self.exp_neg.append(false);
            }
        }
        let quantiles = pt.quantiles.unwrap_or(&[]);
        for q in quantiles {
            self.q_quantile.push(q.quantile);
            self.q_value.push(q.value);
        }
        push_offset(&mut self.q_offsets, quantiles.len());
        self.q_valid.push(pt.quantiles.is_some());
        for ex in pt.exemplars {
            self.ex_time
                .push(i64::try_from(ex.time_unix_nano).unwrap_or(i64::MAX));
            self.ex_value.push(match ex.value {
                Some(exemplar::Value::AsDouble(d)) => d,
                Some(exemplar::Value::AsInt(i)) => i as f64,
                None => f64::NAN,
            });
            if valid_id(&ex.trace_id, 16) {
                let _ = self.ex_trace.append_value(&ex.trace_id);
            } else {
                self.ex_trace.append_null();
            }
            if valid_id(&ex.span_id, 8) {
                let _ = self.ex_span.append_value(&ex.span_id);
            } else {
                self.ex_span.append_null();
            }
            write_attrs(ctx, &mut self.ex_attrs, &ex.filtered_attributes, None);
            let _ = self.ex_attrs.append(true);
        }
        push_offset(&mut self.ex_offsets, pt.exemplars.len());
        self.flags.append_value(pt.flags);
        self.rs.append(p);
        let dropped = write_attrs(ctx, &mut self.attrs, pt.attrs, None);
        let _ = self.attrs.append(true);
        self.dropped_attrs.append_value(dropped);
    }

    fn finish(mut self) -> Result<RecordBatch, arrow_schema::ArrowError> {
        let start: arrow_array::TimestampNanosecondArray = self.start.into_iter().collect();
        let mut cols: Vec<ArrayRef> = vec![
            timestamps(self.time),
            Arc::new(start.with_timezone("UTC")),
            Arc::new(self.name.finish()),
            Arc::new(self.description.finish()),
            Arc::new(self.unit.finish()),
            Arc::new(self.ty.finish()),
            Arc::new(self.temporality.finish()),
            Arc::new(self.monotonic.finish()),
            Arc::new(self.value.finish()),
            Arc::new(self.count.finish()),
            Arc::new(self.sum.finish()),
            Arc::new(self.min.finish()),
            Arc::new(self.max.finish()),
            Arc::new(self.bucket_counts.finish()),
            Arc::new(self.explicit_bounds.finish()),
            Arc::new(self.exp_scale.finish()),
            Arc::new(self.exp_zero_count.finish()),
            Arc::new(self.exp_zero_threshold.finish()),
            Arc::new(self.exp_pos_offset.finish()),
            Arc::new(self.exp_pos.finish()),
            Arc::new(self.exp_neg_offset.finish()),
            Arc::new(self.exp_neg.finish()),
            list_with_nulls(
                schema::quantile_fields(),
                vec![
                    Arc::new(arrow_array::Float64Array::from(self.q_quantile)),
                    Arc::new(arrow_array::Float64Array::from(self.q_value)),
                ],
                self.q_offsets,
                Some(self.q_valid),
            ),
            list(
                schema::exemplar_fields(),
                vec![
                    timestamps(self.ex_time),
                    Arc::new(arrow_array::Float64Array::from(self.ex_value)),
                    Arc::new(self.ex_trace.finish()),
                    Arc::new(self.ex_span.finish()),
                    Arc::new(self.ex_attrs.finish()),
                ],
                self.ex_offsets,
            ),
            Arc::new(self.flags.finish()),
        ];
        self.rs.finish(&mut cols);
        cols.push(Arc::new(self.attrs.finish()));
        cols.push(Arc::new(self.dropped_attrs.finish()));
        RecordBatch::try_new(schema::metrics_schema(), cols)
    }
}

fn temporality(t: i32) -> Option<&'static str> {
    Some(match AggregationTemporality::try_from(t) {
        Ok(AggregationTemporality::Delta) => "delta",
        Ok(AggregationTemporality::Cumulative) => "cumulative",
        _ => "unspecified",
    })
}

fn number_point(p: &NumberDataPoint) -> Result<Point<'_>, Reason> {
    let value = match p.value {
        Some(number_data_point::Value::AsDouble(d)) => d,
        Some(number_data_point::Value::AsInt(i)) => i as f64,
        None => return Err(Reason::MissingValue),
    };
    Ok(Point {
        attrs: &p.attributes,
        start: p.start_time_unix_nano,
        flags: p.flags,
        exemplars: &p.exemplars,
        value: Some(value),
        ..Default::default()
    })
}

fn histogram_point(p: &HistogramDataPoint) -> Result<Point<'_>, Reason> {
    let has_buckets = !p.bucket_counts.is_empty() || !p.explicit_bounds.is_empty();
    if has_buckets && p.bucket_counts.len() != p.explicit_bounds.len() + 1 {
        return Err(Reason::InvalidBuckets);
    }
    Ok(Point {
        attrs: &p.attributes,
        start: p.start_time_unix_nano,
        flags: p.flags,
        exemplars: &p.exemplars,
        count: Some(p.count),
        sum: p.sum,
        min: p.min,
        max: p.max,
        buckets: Some((&p.bucket_counts, &p.explicit_bounds)),
        ..Default::default()
    })
}

fn exp_point(p: &ExponentialHistogramDataPoint) -> Point<'_> {
    Point {
        attrs: &p.attributes,
        start: p.start_time_unix_nano,
        flags: p.flags,
        exemplars: &p.exemplars,
        count: Some(p.count),
        sum: p.sum,
        min: p.min,
        max: p.max,
        exp: Some(p),
        ..Default::default()
    }
}

fn summary_point(p: &SummaryDataPoint) -> Point<'_> {
    Point {
        attrs: &p.attributes,
        start: p.start_time_unix_nano,
        flags: p.flags,
        count: Some(p.count),
        sum: Some(p.sum),
        quantiles: Some(&p.quantile_values),
        ..Default::default()
    }
}

fn points_of(data: &Data) -> usize {
    match data {
        Data::Gauge(g) => g.data_points.len(),
        Data::Sum(s) => s.data_points.len(),
        Data::Histogram(h) => h.data_points.len(),
        Data::ExponentialHistogram(h) => h.data_points.len(),
        Data::Summary(s) => s.data_points.len(),
    }
}

/// Converts a metrics export request into point rows (schema
/// [`ophion_core::schema::metrics_schema`]), rejecting invalid points.
pub fn metrics(
    req: &ExportMetricsServiceRequest,
    limits: &Limits,
    window: TimeWindow,
) -> Converted {
    let n: usize = req
        .resource_metrics
        .iter()
        .flat_map(|r| &r.scope_metrics)
        .flat_map(|s| &s.metrics)
        .filter_map(|m| m.data.as_ref().map(points_of))
        .sum();
    let mut ctx = Ctx::new(limits, window);
    let mut cols = MetricCols::new(n);
    let mut rows = 0;
    for rm in &req.resource_metrics {
        let mut prepared = Prepared::resource(&mut ctx, rm.resource.as_ref(), &rm.schema_url);
        for sm in &rm.scope_metrics {
            prepared.set_scope(&mut ctx, sm.scope.as_ref(), &sm.schema_url);
            for m in &sm.metrics {
                rows += metric(&mut ctx, &mut cols, &prepared, m);
            }
        }
    }
    ctx.finish(rows, || cols.finish())
}

/// Appends the valid points of one metric; returns how many.
fn metric(ctx: &mut Ctx<'_>, cols: &mut MetricCols, prepared: &Prepared, m: &Metric) -> usize {
    let Some(data) = &m.data else {
        // A metric without data has no points to count.
        return 0;
    };
    if m.name.is_empty() {
        ctx.rejected
            .add_n(Reason::MissingMetricName, points_of(data) as u64);
        return 0;
    }
    let max = ctx.limits.max_attribute_value_bytes;
    let info = |ty, temporality, monotonic| MetricInfo {
        name: truncate_utf8(&m.name, max),
        description: non_empty(&m.description, max),
        unit: non_empty(&m.unit, max),
        ty,
        temporality,
        monotonic,
    };
    let mut rows = 0;
    let mut emit =
        |ctx: &mut Ctx<'_>, info: &MetricInfo<'_>, time: u64, point: Result<Point<'_>, Reason>| {
            match point.and_then(|p| ctx.window.check(time).map(|t| (p, t))) {
                Ok((p, t)) => {
                    cols.append(ctx, prepared, info, &p, t);
                    rows += 1;
                }
                Err(reason) => ctx.rejected.add(reason),
            }
        };
    match data {
        Data::Gauge(g) => {
            let info = info("gauge", None, None);
            for p in &g.data_points {
                emit(ctx, &info, p.time_unix_nano, number_point(p));
            }
        }
        Data::Sum(s) => {
            let info = info(
                "sum",
                temporality(s.aggregation_temporality),
                Some(s.is_monotonic),
            );
            for p in &s.data_points {
                emit(ctx, &info, p.time_unix_nano, number_point(p));
            }
        }
        Data::Histogram(h) => {
            let info = info("histogram", temporality(h.aggregation_temporality), None);
            for p in &h.data_points {
                emit(ctx, &info, p.time_unix_nano, histogram_point(p));
            }
        }
        Data::ExponentialHistogram(h) => {
            let info = info(
                "exponential_histogram",
                temporality(h.aggregation_temporality),
                None,
            );
            for p in &h.data_points {
                emit(ctx, &info, p.time_unix_nano, Ok(exp_point(p)));
            }
        }
        Data::Summary(s) => {
            let info = info("summary", None, None);
            for p in &s.data_points {
                emit(ctx, &info, p.time_unix_nano, Ok(summary_point(p)));
            }
        }
    }
    rows
}
