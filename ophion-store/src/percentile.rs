//! `approx_percentile_cont(x, p)` answered by a relative-error sketch.
//!
//! DataFusion answers it with a t-digest through its generic per-group
//! adapter: every batch is sliced per group, each slice sorted and merged
//! into that group's digest. On the store bench's p50/p95/p99 by service
//! and operation that sorting and merging were over half of the query's
//! CPU. Latency percentiles are what the dashboards, the API and the
//! copilot ask for most, so Ophion's sessions register this function under
//! the same name instead:
//!
//! - a group's first [`EXACT_UP_TO`] values are kept as they are and
//!   answered by DataFusion's own t-digest, so small groups get exactly the
//!   answers they got before;
//! - past that, values are counted in log-linear buckets (as
//!   HdrHistogram and DDSketch do): each power of two is cut into 128
//!   buckets of equal width, so a value's bucket is its exponent and the
//!   top 7 bits of its mantissa, read straight off its bits. A quantile is
//!   answered with the middle of the bucket holding the value of rank
//!   `p × (n - 1)`, which is within [`relative_error`] (0.39 %) of the
//!   true value of that rank whatever the distribution: for the tails that
//!   matter in latency (p99, p999) this is a guarantee the t-digest does
//!   not give. Zeros, negative values and infinities are counted apart;
//!   the exact minimum and maximum bound every answer; NaN is ignored.
//!   Adding a value is a shift and an increment, in any order, so the
//!   sketch of a group is the same however the rows were split.
//!
//! The three-argument form (`approx_percentile_cont(x, p, centroids)`)
//! asks for a t-digest of a given size and is still DataFusion's.

use std::sync::{Arc, LazyLock};

use arrow_array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Float64Array, RecordBatch, cast::AsArray,
    types::Float64Type,
};
use arrow_schema::{DataType, Field, FieldRef, Schema};
use datafusion::{
    common::{ScalarValue, internal_err, plan_err},
    error::Result,
    functions_aggregate::approx_percentile_cont::ApproxPercentileCont,
    logical_expr::{
        Accumulator, AggregateUDF, AggregateUDFImpl, Documentation, EmitTo, GroupsAccumulator,
        Signature,
        function::{AccumulatorArgs, StateFieldsArgs},
        utils::format_state_name,
    },
    physical_expr::PhysicalExpr,
};
use datafusion_functions_aggregate_common::tdigest::{DEFAULT_MAX_SIZE, TDigest};

/// Values a group keeps as they are before it switches to buckets.
pub(crate) const EXACT_UP_TO: usize = 100;
/// Each power of two is cut into `2^SUB_BITS` buckets of equal width.
const SUB_BITS: u32 = 7;
/// Buckets kept for each sign (512 powers of two, 154 decades); past this
/// many the lowest are folded together, so only values over 10^154 times
/// smaller than a group's largest lose their accuracy. A group's buckets
/// are one array from its lowest to its highest: 8 bytes a bucket, about
/// 10 KiB for the three decades of a typical operation's latencies.
const MAX_BINS: usize = 1 << 16;

/// The bound on an answer's relative error once a group has buckets:
/// half a bucket's width over its lower bound, `2^-(SUB_BITS + 1)`
/// (0.39 %).
#[cfg(test)]
fn relative_error() -> f64 {
    0.5f64.powi(SUB_BITS as i32 + 1)
}

/// The bucket of a positive, finite `v`: its exponent and the top
/// [`SUB_BITS`] bits of its mantissa, which order like the values do.
fn bucket(v: f64) -> i32 {
    (v.to_bits() >> (52 - SUB_BITS)) as i32
}

/// The value a bucket answers with, the middle of its range: within
/// [`relative_error`] of everything in it.
fn bucket_value(i: i32) -> f64 {
    let low = f64::from_bits(u64::from(i as u32) << (52 - SUB_BITS));
    let high = f64::from_bits(u64::from(i as u32 + 1) << (52 - SUB_BITS));
    (low + (high - low) / 2.0).min(f64::MAX)
}

/// Counts of consecutive buckets of one sign.
#[derive(Debug, Clone, Default, PartialEq)]
struct Bins {
    offset: i32,
    counts: Vec<u64>,
}

impl Bins {
    fn add(&mut self, i: i32, n: u64) {
        if self.counts.is_empty() {
            self.offset = i;
            self.counts.push(n);
            return;
        }
        let top = self.offset + self.counts.len() as i32 - 1;
        if i < self.offset {
            if (top - i) as usize >= MAX_BINS {
                // Too far below the range: into the lowest bucket.
                self.counts[0] += n;
                return;
            }
            let grow = (self.offset - i) as usize;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = i;
        } else if i > top {
            if (i - self.offset) as usize >= MAX_BINS {
                // Fold the lowest buckets into the new lowest one.
                let offset = i - MAX_BINS as i32 + 1;
                let mut counts = vec![0; MAX_BINS];
                for (k, c) in self.counts.iter().enumerate() {
                    counts[((self.offset + k as i32).max(offset) - offset) as usize] += c;
                }
                self.offset = offset;
                self.counts = counts;
            } else {
                self.counts.resize((i - self.offset) as usize + 1, 0);
            }
        }
        self.counts[(i - self.offset) as usize] += n;
    }

    /// `(bucket, count)`, lowest bucket first.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(k, c)| (self.offset + k as i32, *c))
    }
}

/// One group's values: as they are while few, then as buckets.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sketch {
    exact: Vec<f64>,
    bucketed: bool,
    positive: Bins,
    negative: Bins,
    zeros: u64,
    positive_infinite: u64,
    negative_infinite: u64,
    count: u64,
    min: f64,
    max: f64,
}

impl Sketch {
    fn insert(&mut self, v: f64) {
        if v.is_nan() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (v, v);
        } else {
            self.min = self.min.min(v);
            self.max = self.max.max(v);
        }
        self.count += 1;
        if self.bucketed {
            self.bucket(v, 1);
        } else {
            self.exact.push(v);
            if self.exact.len() > EXACT_UP_TO {
                self.switch_to_buckets();
            }
        }
    }

    fn bucket(&mut self, v: f64, n: u64) {
        if v == 0.0 {
            self.zeros += n;
        } else if v == f64::INFINITY {
            self.positive_infinite += n;
        } else if v == f64::NEG_INFINITY {
            self.negative_infinite += n;
        } else if v > 0.0 {
            self.positive.add(bucket(v), n);
        } else {
            self.negative.add(bucket(-v), n);
        }
    }

    fn switch_to_buckets(&mut self) {
        self.bucketed = true;
        for v in std::mem::take(&mut self.exact) {
            self.bucket(v, 1);
        }
    }

    fn merge(&mut self, other: &Sketch) {
        if other.count == 0 {
            return;
        }
        if self.count == 0 {
            *self = other.clone();
            return;
        }
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        self.count += other.count;
        if !self.bucketed && !other.bucketed && self.exact.len() + other.exact.len() <= EXACT_UP_TO
        {
            self.exact.extend_from_slice(&other.exact);
            return;
        }
        if !self.bucketed {
            self.switch_to_buckets();
        }
        for &v in &other.exact {
            self.bucket(v, 1);
        }
        for (i, c) in other.positive.iter() {
            self.positive.add(i, c);
        }
        for (i, c) in other.negative.iter() {
            self.negative.add(i, c);
        }
        self.zeros += other.zeros;
        self.positive_infinite += other.positive_infinite;
        self.negative_infinite += other.negative_infinite;
    }

    /// The value at `q` (0 to 1), `None` for no values.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 {
            return None;
        }
        if !self.bucketed {
            let digest = TDigest::new(DEFAULT_MAX_SIZE).merge_unsorted_f64(self.exact.clone());
            return Some(digest.estimate_quantile(q));
        }
        let rank = q * (self.count - 1) as f64;
        let mut seen = 0u64;
        let mut passes = |n: u64| {
            seen += n;
            seen as f64 > rank
        };
        let value = 'found: {
            if passes(self.negative_infinite) {
                break 'found f64::NEG_INFINITY;
            }
            for (i, c) in self.negative.iter().rev() {
                if passes(c) {
                    break 'found -bucket_value(i);
                }
            }
            if passes(self.zeros) {
                break 'found 0.0;
            }
            for (i, c) in self.positive.iter() {
                if passes(c) {
                    break 'found bucket_value(i);
                }
            }
            f64::INFINITY
        };
        Some(value.clamp(self.min, self.max))
    }

    /// The partial-aggregation state: tag 0 and the values, or tag 1 and
    /// the buckets.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if !self.bucketed {
            out.push(0);
            for v in &self.exact {
                out.extend_from_slice(&v.to_le_bytes());
            }
            return out;
        }
        out.push(1);
        for n in [
            self.count,
            self.zeros,
            self.positive_infinite,
            self.negative_infinite,
        ] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        out.extend_from_slice(&self.min.to_le_bytes());
        out.extend_from_slice(&self.max.to_le_bytes());
        for bins in [&self.positive, &self.negative] {
            out.extend_from_slice(&bins.offset.to_le_bytes());
            out.extend_from_slice(&(bins.counts.len() as u32).to_le_bytes());
            for c in &bins.counts {
                out.extend_from_slice(&c.to_le_bytes());
            }
        }
        out
    }

    fn decode(bytes: &[u8]) -> Result<Sketch> {
        let mut r = Reader(bytes);
        let mut s = Sketch::default();
        match r.take::<1>()? {
            [0] => {
                while !r.0.is_empty() {
                    s.insert(f64::from_le_bytes(r.take()?));
                }
            }
            [1] => {
                s.bucketed = true;
                s.count = r.u64()?;
                s.zeros = r.u64()?;
                s.positive_infinite = r.u64()?;
                s.negative_infinite = r.u64()?;
                s.min = f64::from_le_bytes(r.take()?);
                s.max = f64::from_le_bytes(r.take()?);
                for bins in [&mut s.positive, &mut s.negative] {
                    bins.offset = i32::from_le_bytes(r.take()?);
                    let n = u32::from_le_bytes(r.take()?) as usize;
                    if n > MAX_BINS {
                        return internal_err!("percentile sketch: {n} buckets");
                    }
                    bins.counts = (0..n).map(|_| r.u64()).collect::<Result<_>>()?;
                }
            }
            _ => return internal_err!("percentile sketch: unknown state"),
        }
        Ok(s)
    }

    fn size(&self) -> usize {
        size_of::<Self>()
            + self.exact.capacity() * 8
            + (self.positive.counts.capacity() + self.negative.counts.capacity()) * 8
    }
}

struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Result<[u8; N]> {
        let Some((head, rest)) = self.0.split_first_chunk::<N>() else {
            return internal_err!("percentile sketch: truncated state");
        };
        self.0 = rest;
        Ok(*head)
    }

    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take()?))
    }
}

/// The function sessions register, made once per process.
pub(crate) fn udaf() -> AggregateUDF {
    static UDAF: LazyLock<AggregateUDF> =
        LazyLock::new(|| AggregateUDF::new_from_impl(SketchPercentile::default()));
    UDAF.clone()
}

/// `approx_percentile_cont` with [`Sketch`]es for its two-argument form.
#[derive(Debug, Default, PartialEq, Eq, Hash)]
pub(crate) struct SketchPercentile {
    /// DataFusion's function: its signature, return type and docs, and the
    /// three-argument form.
    tdigest: ApproxPercentileCont,
}

impl SketchPercentile {
    /// The percentile an accumulator answers: the literal second argument,
    /// mirrored for `WITHIN GROUP (ORDER BY x DESC)`.
    fn percentile(args: &AccumulatorArgs<'_>) -> Result<f64> {
        let constant = args.exprs.get(1).and_then(|e| literal(e.as_ref()));
        let p = match constant {
            Some(ScalarValue::Float64(Some(p))) => p,
            Some(ScalarValue::Float32(Some(p))) => f64::from(p),
            _ => {
                return plan_err!(
                    "Percentile value for 'APPROX_PERCENTILE_CONT' must be a Float32 or Float64 literal"
                );
            }
        };
        if !(0.0..=1.0).contains(&p) {
            return plan_err!(
                "Percentile value must be between 0.0 and 1.0 inclusive, {p} is invalid"
            );
        }
        let descending = args.order_bys.first().is_some_and(|s| s.options.descending);
        Ok(if descending { 1.0 - p } else { p })
    }
}

/// The value of a constant expression.
fn literal(e: &dyn PhysicalExpr) -> Option<ScalarValue> {
    let empty = RecordBatch::new_empty(Arc::new(Schema::empty()));
    match e.evaluate(&empty).ok()? {
        datafusion::logical_expr::ColumnarValue::Scalar(s) => Some(s),
        datafusion::logical_expr::ColumnarValue::Array(_) => None,
    }
}

impl AggregateUDFImpl for SketchPercentile {
    fn name(&self) -> &str {
        self.tdigest.name()
    }

    fn signature(&self) -> &Signature {
        self.tdigest.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.tdigest.return_type(arg_types)
    }

    fn state_fields(&self, args: StateFieldsArgs<'_>) -> Result<Vec<FieldRef>> {
        if args.input_fields.len() == 3 {
            return self.tdigest.state_fields(args);
        }
        Ok(vec![Arc::new(Field::new(
            format_state_name(args.name, "sketch"),
            DataType::Binary,
            true,
        ))])
    }

    fn accumulator(&self, args: AccumulatorArgs<'_>) -> Result<Box<dyn Accumulator>> {
        if args.exprs.len() == 3 {
            return self.tdigest.accumulator(args);
        }
        Ok(Box::new(One {
            sketch: Sketch::default(),
            percentile: Self::percentile(&args)?,
            return_type: args.return_type().clone(),
        }))
    }

    fn groups_accumulator_supported(&self, args: AccumulatorArgs<'_>) -> bool {
        args.exprs.len() == 2
    }

    fn create_groups_accumulator(
        &self,
        args: AccumulatorArgs<'_>,
    ) -> Result<Box<dyn GroupsAccumulator>> {
        Ok(Box::new(Groups {
            sketches: Vec::new(),
            percentile: Self::percentile(&args)?,
            return_type: args.return_type().clone(),
        }))
    }

    fn supports_within_group_clause(&self) -> bool {
        true
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.tdigest.documentation()
    }
}

/// The input as doubles (the signature has coerced it to a float type).
fn doubles(values: &ArrayRef) -> Result<Arc<Float64Array>> {
    let cast = datafusion::arrow::compute::cast(values, &DataType::Float64)?;
    Ok(Arc::new(cast.as_primitive::<Float64Type>().clone()))
}

/// Answers as the function's return type (the input's float type).
fn answers(values: Vec<Option<f64>>, return_type: &DataType) -> Result<ArrayRef> {
    let array: ArrayRef = Arc::new(Float64Array::from(values));
    Ok(datafusion::arrow::compute::cast(&array, return_type)?)
}

fn states(sketches: &[Sketch]) -> ArrayRef {
    let encoded: Vec<Vec<u8>> = sketches.iter().map(Sketch::encode).collect();
    Arc::new(BinaryArray::from_iter_values(encoded))
}

/// The function without `GROUP BY`.
#[derive(Debug)]
struct One {
    sketch: Sketch,
    percentile: f64,
    return_type: DataType,
}

impl Accumulator for One {
    fn update_batch(&mut self, values: &[ArrayRef]) -> Result<()> {
        let v = doubles(&values[0])?;
        for x in v.iter().flatten() {
            self.sketch.insert(x);
        }
        Ok(())
    }

    fn evaluate(&mut self) -> Result<ScalarValue> {
        let a = answers(
            vec![self.sketch.quantile(self.percentile)],
            &self.return_type,
        )?;
        ScalarValue::try_from_array(&a, 0)
    }

    fn size(&self) -> usize {
        size_of_val(self) - size_of::<Sketch>() + self.sketch.size()
    }

    fn state(&mut self) -> Result<Vec<ScalarValue>> {
        Ok(vec![ScalarValue::Binary(Some(self.sketch.encode()))])
    }

    fn merge_batch(&mut self, states: &[ArrayRef]) -> Result<()> {
        for s in states[0].as_binary::<i32>().iter().flatten() {
            self.sketch.merge(&Sketch::decode(s)?);
        }
        Ok(())
    }
}

/// The function per group.
#[derive(Debug)]
struct Groups {
    sketches: Vec<Sketch>,
    percentile: f64,
    return_type: DataType,
}

impl GroupsAccumulator for Groups {
    fn update_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        opt_filter: Option<&BooleanArray>,
        total_num_groups: usize,
    ) -> Result<()> {
        self.sketches.resize_with(total_num_groups, Sketch::default);
        let v = doubles(&values[0])?;
        if v.null_count() == 0 && opt_filter.is_none() {
            for (&g, &x) in group_indices.iter().zip(v.values()) {
                self.sketches[g].insert(x);
            }
            return Ok(());
        }
        for (row, &g) in group_indices.iter().enumerate() {
            let wanted = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            if wanted && v.is_valid(row) {
                self.sketches[g].insert(v.value(row));
            }
        }
        Ok(())
    }

    fn evaluate(&mut self, emit_to: EmitTo) -> Result<ArrayRef> {
        let taken = emit_to.take_needed(&mut self.sketches);
        answers(
            taken.iter().map(|s| s.quantile(self.percentile)).collect(),
            &self.return_type,
        )
    }

    fn state(&mut self, emit_to: EmitTo) -> Result<Vec<ArrayRef>> {
        Ok(vec![states(&emit_to.take_needed(&mut self.sketches))])
    }

    fn merge_batch(
        &mut self,
        values: &[ArrayRef],
        group_indices: &[usize],
        total_num_groups: usize,
    ) -> Result<()> {
        self.sketches.resize_with(total_num_groups, Sketch::default);
        let states = values[0].as_binary::<i32>();
        for (row, &g) in group_indices.iter().enumerate() {
            if states.is_valid(row) {
                self.sketches[g].merge(&Sketch::decode(states.value(row))?);
            }
        }
        Ok(())
    }

    fn convert_to_state(
        &self,
        values: &[ArrayRef],
        opt_filter: Option<&BooleanArray>,
    ) -> Result<Vec<ArrayRef>> {
        let v = doubles(&values[0])?;
        let rows = (0..v.len()).map(|row| {
            let wanted = opt_filter.is_none_or(|f| f.is_valid(row) && f.value(row));
            let mut state = vec![0u8];
            if wanted && v.is_valid(row) && !v.value(row).is_nan() {
                state.extend_from_slice(&v.value(row).to_le_bytes());
            }
            state
        });
        Ok(vec![Arc::new(BinaryArray::from_iter_values(rows))])
    }

    fn size(&self) -> usize {
        size_of_val(self) + self.sketches.iter().map(Sketch::size).sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::{
        datasource::MemTable,
        prelude::{SessionConfig, SessionContext},
    };
    use rand::{Rng, SeedableRng, rngs::StdRng};

    /// A table `t(g, x)` of `groups`, each a list of values, in batches of
    /// 1,000 rows spread over two partitions (so partial states are merged).
    fn context(groups: &[Vec<f64>], sketches: bool) -> SessionContext {
        let config = SessionConfig::new().with_target_partitions(2);
        let ctx = SessionContext::new_with_config(config);
        if sketches {
            ctx.register_udaf(udaf());
        }
        let rows: Vec<(i64, f64)> = groups
            .iter()
            .enumerate()
            .flat_map(|(g, xs)| xs.iter().map(move |x| (g as i64, *x)))
            .collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("g", DataType::Int64, false),
            Field::new("x", DataType::Float64, true),
        ]));
        let batches: Vec<RecordBatch> = rows
            .chunks(1000)
            .map(|c| {
                RecordBatch::try_new(
                    Arc::clone(&schema),
                    vec![
                        Arc::new(arrow_array::Int64Array::from_iter_values(
                            c.iter().map(|r| r.0),
                        )),
                        Arc::new(Float64Array::from_iter_values(c.iter().map(|r| r.1))),
                    ],
                )
                .expect("batch")
            })
            .collect();
        let (a, b): (Vec<_>, Vec<_>) = batches
            .into_iter()
            .enumerate()
            .partition(|(i, _)| i % 2 == 0);
        let parts = vec![
            a.into_iter().map(|(_, b)| b).collect(),
            b.into_iter().map(|(_, b)| b).collect(),
        ];
        ctx.register_table(
            "t",
            Arc::new(MemTable::try_new(schema, parts).expect("table")),
        )
        .expect("register");
        ctx
    }

    async fn run(ctx: &SessionContext, sql: &str) -> Vec<RecordBatch> {
        ctx.sql(sql)
            .await
            .expect("plan")
            .collect()
            .await
            .expect("run")
    }

    /// The value of rank `q × (n - 1)` (rounded down) of `sorted`.
    fn at_rank(sorted: &[f64], q: f64) -> f64 {
        sorted[(q * (sorted.len() - 1) as f64).floor() as usize]
    }

    /// `(g, answer)` for each group, in group order.
    async fn answers_of(ctx: &SessionContext, sql: &str) -> Vec<(i64, Option<f64>)> {
        let batches = run(ctx, sql).await;
        let mut out: Vec<(i64, Option<f64>)> = batches
            .iter()
            .flat_map(|b| {
                let g = b
                    .column(0)
                    .as_primitive::<arrow_array::types::Int64Type>()
                    .clone();
                let v = b.column(1).as_primitive::<Float64Type>().clone();
                (0..b.num_rows())
                    .map(|i| (g.value(i), v.is_valid(i).then(|| v.value(i))))
                    .collect::<Vec<_>>()
            })
            .collect();
        out.sort_by_key(|r| r.0);
        out
    }

    /// Values from several shapes: latencies (log-normal), uniform, with
    /// zeros and negatives, integers with many ties, a wide range.
    fn values(r: &mut StdRng, shape: usize, n: usize) -> Vec<f64> {
        (0..n)
            .map(|_| match shape % 5 {
                0 => (r.random_range(-2.0..2.0f64) * 3.0 + 12.0).exp().round(),
                1 => r.random_range(0.0..1000.0),
                2 => {
                    if r.random_range(0..4) == 0 {
                        0.0
                    } else {
                        r.random_range(-500.0..500.0)
                    }
                }
                3 => f64::from(r.random_range(0..5u8)),
                _ => 10f64.powf(r.random_range(-30.0..30.0)),
            })
            .collect()
    }

    #[tokio::test]
    async fn small_groups_answer_as_datafusion_did_and_large_ones_within_half_a_percent() {
        let mut r = StdRng::seed_from_u64(20);
        let mut groups = Vec::new();
        for shape in 0..40 {
            let n = match shape % 4 {
                0 => r.random_range(1..=EXACT_UP_TO),
                1 => r.random_range(EXACT_UP_TO + 1..3 * EXACT_UP_TO),
                _ => r.random_range(1000..20_000),
            };
            groups.push(values(&mut r, shape, n));
        }
        let ours = context(&groups, true);
        let theirs = context(&groups, false);
        let alpha = relative_error();
        for q in [0.0, 0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0] {
            let sql = format!("SELECT g, approx_percentile_cont(x, {q}) FROM t GROUP BY g");
            let got = answers_of(&ours, &sql).await;
            let before = answers_of(&theirs, &sql).await;
            assert_eq!(got.len(), groups.len());
            for ((g, v), (_, old)) in got.iter().zip(&before) {
                let xs = &groups[*g as usize];
                let v = v.expect("an answer");
                if xs.len() <= EXACT_UP_TO {
                    assert_eq!(Some(v), *old, "group {g} of {} values, q {q}", xs.len());
                    continue;
                }
                let mut sorted = xs.clone();
                sorted.sort_by(f64::total_cmp);
                let truth = at_rank(&sorted, q);
                assert!(
                    (v - truth).abs() <= alpha * truth.abs() * (1.0 + 1e-9),
                    "group {g} ({} values), q {q}: {v} against {truth}",
                    xs.len()
                );
            }
        }
        // Without GROUP BY, as one group; a value of every group.
        let all: Vec<f64> = groups.concat();
        let mut sorted = all.clone();
        sorted.sort_by(f64::total_cmp);
        let batches = run(&ours, "SELECT approx_percentile_cont(x, 0.9) FROM t").await;
        let v = batches[0].column(0).as_primitive::<Float64Type>().value(0);
        let truth = at_rank(&sorted, 0.9);
        assert!(
            (v - truth).abs() <= alpha * truth.abs() * (1.0 + 1e-9),
            "{v} against {truth}"
        );
    }

    #[tokio::test]
    async fn other_forms_nulls_filters_and_errors() {
        let mut r = StdRng::seed_from_u64(7);
        let groups = vec![values(&mut r, 0, 5000), Vec::new()];
        let ctx = context(&groups, true);
        let mut sorted = groups[0].clone();
        sorted.sort_by(f64::total_cmp);
        let alpha = relative_error();
        let one = |sql: &'static str| {
            let ctx = ctx.clone();
            async move {
                let b = run(&ctx, sql).await;
                b[0].column(0).as_primitive::<Float64Type>().value(0)
            }
        };
        let p90 = at_rank(&sorted, 0.9);
        let p10 = at_rank(&sorted, 0.1);
        for (sql, truth) in [
            (
                "SELECT approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY x) FROM t",
                p90,
            ),
            (
                "SELECT approx_percentile_cont(0.9) WITHIN GROUP (ORDER BY x DESC) FROM t",
                p10,
            ),
            (
                "SELECT approx_percentile_cont(x, 0.9) FILTER (WHERE x > 0) FROM t",
                p90,
            ),
            (
                "SELECT approx_percentile_cont(CASE WHEN x > 1e6 THEN NULL ELSE x END, 0.9) FROM t WHERE x <= 1e6",
                sorted
                    .iter()
                    .filter(|x| **x <= 1e6)
                    .nth((0.9 * (sorted.iter().filter(|x| **x <= 1e6).count() - 1) as f64) as usize)
                    .copied()
                    .expect("a value"),
            ),
        ] {
            let v = one(sql).await;
            assert!(
                (v - truth).abs() <= alpha * truth * (1.0 + 1e-9),
                "{sql}: {v} against {truth}"
            );
        }
        // The t-digest form still answers; no rows give NULL; a bad
        // percentile is a plan error.
        let v = one("SELECT approx_percentile_cont(x, 0.9, 200) FROM t").await;
        assert!((v - p90).abs() < 0.05 * p90, "{v} against {p90}");
        let b = run(
            &ctx,
            "SELECT approx_percentile_cont(x, 0.5) FROM t WHERE g = 1",
        )
        .await;
        assert!(b[0].column(0).is_null(0));
        let err = ctx
            .sql("SELECT approx_percentile_cont(x, 1.5) FROM t")
            .await
            .and_then(|df| futures::executor::block_on(df.collect()))
            .expect_err("1.5 is no percentile");
        assert!(err.to_string().contains("between 0.0 and 1.0"), "{err}");
    }

    #[test]
    fn states_round_trip_and_extremes_are_bounded() {
        let mut r = StdRng::seed_from_u64(3);
        for shape in 0..5 {
            for n in [0, 1, EXACT_UP_TO, EXACT_UP_TO + 1, 10_000] {
                let mut s = Sketch::default();
                for v in values(&mut r, shape, n) {
                    s.insert(v);
                }
                let back = Sketch::decode(&s.encode()).expect("decode");
                assert_eq!(back, s, "shape {shape}, {n} values");
                assert!(
                    Sketch::decode(&s.encode()[..s.encode().len().saturating_sub(3)]).is_err()
                        || n == 0
                );
            }
        }
        let mut s = Sketch::default();
        for v in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, 0.0, 1e-9, 1e9]
            .into_iter()
            .cycle()
            .take(600)
        {
            s.insert(v);
        }
        assert_eq!(s.count, 500, "NaN is not counted");
        assert_eq!(s.quantile(0.0), Some(f64::NEG_INFINITY));
        assert_eq!(s.quantile(1.0), Some(f64::INFINITY));
        let middle = s.quantile(0.5).expect("a value");
        assert!((middle - 1e-9).abs() <= relative_error() * 1e-9, "{middle}");
        // Values 10^600 apart: the range is capped, the top stays accurate.
        let mut wide = Sketch::default();
        for e in -300..300 {
            wide.insert(10f64.powi(e));
        }
        assert!(wide.positive.counts.len() <= MAX_BINS);
        let top = wide.quantile(1.0).expect("a value");
        assert!((top - 1e299).abs() <= relative_error() * 1e299, "{top}");
        let high = wide.quantile(0.9).expect("a value");
        let truth = 10f64.powi(-300 + (0.9 * 599.0) as i32);
        assert!(
            (high - truth).abs() <= relative_error() * truth * (1.0 + 1e-9),
            "{high} against {truth}"
        );
    }
}
