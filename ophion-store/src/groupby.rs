//! `GROUP BY` one string expression, looked up by the string's view.
//!
//! Telemetry is grouped by a string of few values most of the time
//! (`service_name`, `name`, `status_code`, `severity_text`). DataFusion's
//! partial aggregation hashes every row's bytes and compares them with its
//! group's (`ArrowBytesViewMap`): about 9 ns a row, half the CPU of
//! `SELECT service_name, count(*) FROM spans GROUP BY service_name` over 10M
//! spans (docs/benchmarks.md). The Parquet reader hands such a column out as
//! views into its dictionary page, so the rows of one value share one
//! 16-byte view.
//!
//! [`StringGroups`], a physical optimizer rule, swaps each partial
//! aggregation grouped by exactly one `Utf8View` expression for a
//! [`StringGroupsExec`]. That looks each row's view up in a small
//! direct-mapped table first and hashes the bytes only when the view is new
//! in its batch, then feeds DataFusion's own group accumulators the group
//! indices, arguments and `FILTER`s exactly as the aggregation it replaces
//! would. Its output (the groups' values and the accumulators' states) has
//! the replaced node's schema, so the final aggregation above merges it
//! unchanged.
//!
//! Left to DataFusion: several group columns, grouping sets, `DISTINCT` or
//! ordered aggregates, aggregates without a group accumulator, `LIMIT`ed
//! groups, sorted input, and sessions that plan across a cluster (the
//! fragments sent to other nodes hold only DataFusion's own nodes).
//!
//! Memory stays bounded: after at most [`MAX_GROUPS`] groups (4M: a
//! partial aggregation that held fewer would hand on most rows of a key
//! with a few hundred thousand values, as measured), or when the
//! query's memory pool refuses more, the groups so far are handed on and
//! counting starts again (partial states of one group may then come in
//! several rows, which the final aggregation merges, as DataFusion's own
//! partial aggregation does when it runs short of memory).
//!
//! Keys of many values (a message body, a URL) gain nothing from a partial
//! aggregation. As DataFusion's own does, the node probes: once it has read
//! `datafusion.execution.skip_partial_aggregation_probe_rows_threshold`
//! rows, if it has found more groups per row than
//! `skip_partial_aggregation_probe_ratio_threshold`, it hands its groups on
//! and from then on turns each row into its own partial state
//! (`GroupsAccumulator::convert_to_state`), leaving the grouping to the
//! final aggregation (`skipped_aggregation_rows` in `EXPLAIN ANALYZE`).

use std::{collections::HashMap, fmt, sync::Arc};

use arrow_array::{
    Array, ArrayRef, RecordBatch, StringViewArray, builder::StringViewBuilder, cast::AsArray,
};
use arrow_schema::{DataType, SchemaRef};
use datafusion::{
    common::{hash_utils::RandomState, tree_node::TreeNodeRecursion},
    config::ConfigOptions,
    error::{DataFusionError, Result},
    execution::{
        TaskContext,
        memory_pool::{MemoryConsumer, MemoryReservation},
    },
    logical_expr::{EmitTo, GroupsAccumulator},
    physical_expr::PhysicalExpr,
    physical_optimizer::PhysicalOptimizerRule,
    physical_plan::{
        ChildStats, ChildrenPropertiesMode, DisplayAs, DisplayFormatType, ExecutionPlan,
        InputDistributionRequirements, InputOrderMode, PlanProperties, ReplaceChildrenOptions,
        SendableRecordBatchStream, Statistics, StatisticsArgs,
        aggregates::{AggregateExec, AggregateMode},
        metrics::{BaselineMetrics, Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet},
        stream::RecordBatchStreamAdapter,
    },
};
use futures::StreamExt as _;

/// Groups held before they are handed on (see the module's notes); group
/// numbers are `u32`s.
pub(crate) const MAX_GROUPS: usize = 1 << 22;

/// Slots of the view table: 2^10. Collisions only cost a lookup by bytes.
const SLOT_BITS: u32 = 10;

/// The physical optimizer rule (see the module's notes).
#[derive(Debug)]
pub(crate) struct StringGroups {
    /// Groups held before they are handed on: [`MAX_GROUPS`], or fewer
    /// in tests.
    pub(crate) max_groups: usize,
}

impl Default for StringGroups {
    fn default() -> Self {
        Self {
            max_groups: MAX_GROUPS,
        }
    }
}

impl PhysicalOptimizerRule for StringGroups {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        crate::scanrules::replace_nodes(plan, |node| {
            node.downcast_ref::<AggregateExec>()
                .filter(|agg| fits(agg))
                .map(|agg| {
                    Arc::new(StringGroupsExec::new(agg.clone(), self.max_groups))
                        as Arc<dyn ExecutionPlan>
                })
        })
    }

    fn name(&self) -> &str {
        "ophion_string_groups"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// Whether `agg` is a partial aggregation [`StringGroupsExec`] computes
/// exactly as DataFusion would.
fn fits(agg: &AggregateExec) -> bool {
    let group = agg.group_expr();
    *agg.mode() == AggregateMode::Partial
        && group.is_single()
        && group.expr().len() == 1
        && agg.limit_options().is_none()
        && *agg.input_order_mode() == InputOrderMode::Linear
        && group.expr()[0]
            .0
            .data_type(&agg.input_schema())
            .is_ok_and(|t| t == DataType::Utf8View)
        && agg.aggr_expr().iter().all(|a| {
            a.groups_accumulator_supported() && !a.is_distinct() && a.order_bys().is_empty()
        })
}

/// A partial aggregation grouped by one `Utf8View` expression (see the
/// module's notes).
#[derive(Debug)]
pub(crate) struct StringGroupsExec {
    /// The aggregation this one computes: its expressions, output schema
    /// and plan properties.
    agg: AggregateExec,
    max_groups: usize,
    metrics: ExecutionPlanMetricsSet,
}

impl StringGroupsExec {
    fn new(agg: AggregateExec, max_groups: usize) -> Self {
        Self {
            agg,
            max_groups,
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }
}

impl DisplayAs for StringGroupsExec {
    fn fmt_as(&self, t: DisplayFormatType, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StringGroupsExec, for ")?;
        self.agg.fmt_as(t, f)
    }
}

impl ExecutionPlan for StringGroupsExec {
    fn name(&self) -> &str {
        "StringGroupsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        self.agg.properties()
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![self.agg.input()]
    }

    fn input_distribution_requirements(&self) -> InputDistributionRequirements {
        self.agg.input_distribution_requirements()
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        self.agg.apply_expressions(f)
    }

    fn with_new_children(
        self: Arc<Self>,
        children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let replaced = Arc::new(self.agg.clone()).replace_children(
            children,
            ReplaceChildrenOptions::new(ChildrenPropertiesMode::Recompute),
        )?;
        let agg = replaced
            .downcast_ref::<AggregateExec>()
            .ok_or_else(|| DataFusionError::Internal("not an aggregation".into()))?;
        Ok(Arc::new(Self::new(agg.clone(), self.max_groups)))
    }

    fn statistics_from_inputs(
        &self,
        input_stats: &[Arc<Statistics>],
        args: &StatisticsArgs,
    ) -> Result<Arc<Statistics>> {
        self.agg.statistics_from_inputs(input_stats, args)
    }

    fn child_stats_requests(&self, partition: Option<usize>) -> Vec<ChildStats> {
        self.agg.child_stats_requests(partition)
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.agg.input().execute(partition, Arc::clone(&context))?;
        let schema = self.agg.schema();
        let reservation = MemoryConsumer::new(format!("StringGroupsExec[{partition}]"))
            .register(context.memory_pool());
        let options = &context.session_config().options().execution;
        let probe =
            (options.skip_partial_aggregation_probe_ratio_threshold < 1.0).then_some(Probe {
                rows_threshold: options.skip_partial_aggregation_probe_rows_threshold,
                ratio: options.skip_partial_aggregation_probe_ratio_threshold,
                rows: 0,
                groups_handed_on: 0,
            });
        let run = Run {
            input,
            schema: Arc::clone(&schema),
            key: Arc::clone(&self.agg.group_expr().expr()[0].0),
            args: self
                .agg
                .aggr_expr()
                .iter()
                .map(|a| a.expressions())
                .collect(),
            filters: self.agg.filter_expr().to_vec(),
            accumulators: self
                .agg
                .aggr_expr()
                .iter()
                .map(|a| a.create_groups_accumulator())
                .collect::<Result<_>>()?,
            groups: Groups::default(),
            max_groups: self.max_groups,
            indices: Vec::new(),
            reservation,
            emit_now: false,
            ended: false,
            probe,
            skipping: false,
            skipped_rows: MetricBuilder::new(&self.metrics)
                .counter("skipped_aggregation_rows", partition),
            metrics: BaselineMetrics::new(&self.metrics, partition),
        };
        let stream = futures::stream::try_unfold(run, |mut run| async move {
            let out = run.next_batch().await?;
            Ok::<_, DataFusionError>(out.map(|b| (b, run)))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

/// One partition's aggregation.
struct Run {
    input: SendableRecordBatchStream,
    schema: SchemaRef,
    key: Arc<dyn PhysicalExpr>,
    args: Vec<Vec<Arc<dyn PhysicalExpr>>>,
    filters: Vec<Option<Arc<dyn PhysicalExpr>>>,
    accumulators: Vec<Box<dyn GroupsAccumulator>>,
    groups: Groups,
    max_groups: usize,
    /// Each row's group, for the batch at hand.
    indices: Vec<usize>,
    reservation: MemoryReservation,
    /// The groups so far are handed on before the next batch.
    emit_now: bool,
    ended: bool,
    /// Whether grouping pays (see the module's notes); `None` when the
    /// session turned the probe off.
    probe: Option<Probe>,
    /// The probe found too many groups: each row is handed on as a state.
    skipping: bool,
    skipped_rows: Count,
    metrics: BaselineMetrics,
}

/// DataFusion's skip-partial-aggregation probe, with its session settings.
struct Probe {
    rows_threshold: usize,
    ratio: f64,
    /// Rows read so far.
    rows: usize,
    /// Groups handed on so far (each hand-on starts the count again).
    groups_handed_on: usize,
}

impl Run {
    /// The next output: the groups so far once the input ends or they
    /// reach their bound; `None` when all are out.
    async fn next_batch(&mut self) -> Result<Option<RecordBatch>> {
        loop {
            while !self.ended && !self.emit_now && !self.skipping {
                match self.input.next().await {
                    Some(batch) => self.add(&batch?)?,
                    None => self.ended = true,
                }
            }
            self.emit_now = false;
            if self.groups.len() > 0 {
                let out = self.emit()?;
                self.metrics.record_output(out.num_rows());
                return Ok(Some(out));
            }
            if self.ended {
                self.metrics.done();
                return Ok(None);
            }
            if self.skipping {
                match self.input.next().await {
                    Some(batch) => {
                        let batch = batch?;
                        if batch.num_rows() > 0 {
                            let out = self.states(&batch)?;
                            self.skipped_rows.add(out.num_rows());
                            self.metrics.record_output(out.num_rows());
                            return Ok(Some(out));
                        }
                    }
                    None => self.ended = true,
                }
            }
            // Otherwise the pool refused memory while no group was held:
            // read on.
        }
    }

    /// Aggregate `i`'s argument values and `FILTER` over `batch`.
    fn inputs(&self, i: usize, batch: &RecordBatch) -> Result<(Vec<ArrayRef>, Option<ArrayRef>)> {
        let rows = batch.num_rows();
        let values = self.args[i]
            .iter()
            .map(|e| e.evaluate(batch).and_then(|v| v.into_array(rows)))
            .collect::<Result<_>>()?;
        let filter = self.filters[i]
            .as_ref()
            .map(|f| f.evaluate(batch).and_then(|v| v.into_array(rows)))
            .transpose()?;
        Ok((values, filter))
    }

    /// Each row of `batch` as a group of its own: its key and the
    /// accumulators' states of that row alone.
    fn states(&mut self, batch: &RecordBatch) -> Result<RecordBatch> {
        let elapsed = self.metrics.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let keys = self.key.evaluate(batch)?.into_array(batch.num_rows())?;
        let mut columns = vec![keys];
        for i in 0..self.accumulators.len() {
            let (values, filter) = self.inputs(i, batch)?;
            columns.extend(
                self.accumulators[i]
                    .convert_to_state(&values, filter.as_ref().map(|f| f.as_boolean()))?,
            );
        }
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }

    fn add(&mut self, batch: &RecordBatch) -> Result<()> {
        let elapsed = self.metrics.elapsed_compute().clone();
        let _timer = elapsed.timer();
        let rows = batch.num_rows();
        let keys = self.key.evaluate(batch)?.into_array(rows)?;
        let keys = keys
            .as_string_view_opt()
            .ok_or_else(|| DataFusionError::Internal("group key is not a Utf8View".into()))?;
        self.groups.intern(keys, &mut self.indices);
        let total = self.groups.len();
        for i in 0..self.accumulators.len() {
            let (values, filter) = self.inputs(i, batch)?;
            self.accumulators[i].update_batch(
                &values,
                &self.indices,
                filter.as_ref().map(|f| f.as_boolean()),
                total,
            )?;
        }
        let bytes = self.groups.size() + self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        if total >= self.max_groups || self.reservation.try_resize(bytes).is_err() {
            self.emit_now = true;
        }
        // As DataFusion decides: once past the probe's rows, on every batch
        // until it skips.
        if let Some(p) = &mut self.probe {
            p.rows += rows;
            if p.rows >= p.rows_threshold
                && (p.groups_handed_on + total) as f64 / p.rows as f64 > p.ratio
            {
                self.skipping = true;
                self.emit_now = true;
            }
        }
        Ok(())
    }

    /// The groups so far, with the accumulators' states, as the replaced
    /// aggregation's output; starts over.
    fn emit(&mut self) -> Result<RecordBatch> {
        let elapsed = self.metrics.elapsed_compute().clone();
        let _timer = elapsed.timer();
        if let Some(p) = &mut self.probe {
            p.groups_handed_on += self.groups.len();
        }
        let mut columns = vec![Arc::new(self.groups.take()) as ArrayRef];
        for acc in &mut self.accumulators {
            columns.extend(acc.state(EmitTo::All)?);
        }
        let bytes = self.accumulators.iter().map(|a| a.size()).sum::<usize>();
        self.reservation.resize(bytes);
        Ok(RecordBatch::try_new(Arc::clone(&self.schema), columns)?)
    }
}

/// The distinct values seen, numbered in order of arrival.
struct Groups {
    /// Group of each value.
    by_value: HashMap<Arc<str>, usize, RandomState>,
    /// Each group's value; `None` for the group of nulls.
    values: Vec<Option<Arc<str>>>,
    null_group: Option<usize>,
    /// The batch at hand's views, each with its group, by
    /// [`Groups::slot`]; `u128::MAX` (a length no array has) marks a free
    /// slot. A view names its bytes only within its own array, so the table
    /// is cleared for every batch.
    views: Vec<(u128, u32)>,
    /// Bytes held by the values.
    value_bytes: usize,
}

impl Default for Groups {
    fn default() -> Self {
        Self {
            by_value: HashMap::with_hasher(RandomState::default()),
            values: Vec::new(),
            null_group: None,
            views: vec![(u128::MAX, 0); 1 << SLOT_BITS],
            value_bytes: 0,
        }
    }
}

impl Groups {
    fn len(&self) -> usize {
        self.values.len()
    }

    fn slot(view: u128) -> usize {
        let mixed = (view as u64 ^ (view >> 64) as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (mixed >> (64 - SLOT_BITS)) as usize
    }

    /// Sets `out` to the group of each of `keys`.
    fn intern(&mut self, keys: &StringViewArray, out: &mut Vec<usize>) {
        out.clear();
        out.reserve(keys.len());
        self.views.fill((u128::MAX, 0));
        let has_nulls = keys.null_count() > 0;
        for (i, &view) in keys.views().iter().enumerate() {
            if has_nulls && keys.is_null(i) {
                let group = match self.null_group {
                    Some(g) => g,
                    None => self.push(None),
                };
                self.null_group = Some(group);
                out.push(group);
                continue;
            }
            let slot = Self::slot(view);
            let (seen, group) = self.views[slot];
            if seen == view {
                out.push(group as usize);
                continue;
            }
            let value = keys.value(i);
            let group = match self.by_value.get(value) {
                Some(&g) => g,
                None => {
                    let value: Arc<str> = Arc::from(value);
                    let g = self.push(Some(Arc::clone(&value)));
                    self.by_value.insert(value, g);
                    g
                }
            };
            // Groups stay under MAX_GROUPS plus one batch: they fit a u32.
            self.views[slot] = (view, group as u32);
            out.push(group);
        }
    }

    fn push(&mut self, value: Option<Arc<str>>) -> usize {
        self.value_bytes += value.as_ref().map_or(0, |v| v.len());
        self.values.push(value);
        self.values.len() - 1
    }

    /// Bytes held, about.
    fn size(&self) -> usize {
        self.value_bytes
            + self.values.capacity() * std::mem::size_of::<Option<Arc<str>>>()
            + self.by_value.capacity() * (std::mem::size_of::<(Arc<str>, usize)>() + 8)
            + self.views.len() * std::mem::size_of::<(u128, u32)>()
    }

    /// The groups' values in group order; starts over.
    fn take(&mut self) -> StringViewArray {
        let mut out = StringViewBuilder::with_capacity(self.values.len());
        for v in self.values.drain(..) {
            match v {
                Some(v) => out.append_value(v),
                None => out.append_null(),
            }
        }
        self.by_value.clear();
        self.null_group = None;
        self.value_bytes = 0;
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_array::{
        Array as _, Float64Array, Int64Array, RecordBatch, StringViewArray, cast::AsArray as _,
    };
    use arrow_schema::{DataType, Field, Schema, SchemaRef};
    use datafusion::{
        datasource::MemTable,
        execution::SessionStateBuilder,
        prelude::{SessionConfig, SessionContext},
    };

    use ophion_core::testing::SplitMix64;

    use super::{DataFusionError, MemoryReservation, Result, StringGroups};

    /// The groups the node holds in these tests, so that a few batches
    /// pass the bound.
    const MAX_GROUPS: usize = 1 << 16;

    fn rule() -> Arc<StringGroups> {
        Arc::new(StringGroups {
            max_groups: MAX_GROUPS,
        })
    }

    /// Keys: a few values of every shape (empty, short and inline, long
    /// and in buffers, non-ASCII, differing only after the 4-byte prefix),
    /// nulls, and in `rare` of 20 rows one of `distinct` other values.
    fn table(
        seed: u64,
        rows_per_batch: usize,
        batches: usize,
        rare: u64,
        distinct: u64,
    ) -> MemTable {
        let (schema, partitions) = partitions(seed, rows_per_batch, batches, rare, distinct);
        MemTable::try_new(schema, partitions).expect("table")
    }

    /// [`table`]'s schema and batches, in two partitions.
    fn partitions(
        seed: u64,
        rows_per_batch: usize,
        batches: usize,
        rare: u64,
        distinct: u64,
    ) -> (SchemaRef, Vec<Vec<RecordBatch>>) {
        let common = [
            "",
            "a",
            "frontend",
            "checkout-service",
            "checkout-servicf",
            "payment-service-with-a-long-name",
            "zählwerk-δ",
            "exactly12chr",
            "thirteen-char",
        ];
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Utf8View, true),
            Field::new("s", DataType::Utf8View, false),
            Field::new("v", DataType::Int64, true),
            Field::new("f", DataType::Float64, false),
        ]));
        let mut rng = SplitMix64(seed);
        let mut partitions = vec![Vec::new(), Vec::new()];
        for b in 0..batches {
            let mut k = Vec::new();
            let mut s = Vec::new();
            let mut v = Vec::new();
            let mut f = Vec::new();
            for _ in 0..rows_per_batch {
                k.push(match rng.below(20) {
                    0 => None,
                    r if r <= rare => Some(format!("rare-{:08}", rng.below(distinct))),
                    _ => Some(common[rng.below(common.len() as u64) as usize].to_owned()),
                });
                s.push(["ok", "error", "unset"][rng.below(3) as usize]);
                v.push((rng.below(10) > 0).then(|| rng.below(1000) as i64 - 100));
                f.push(rng.below(1 << 20) as f64 / 1024.0);
            }
            let batch = RecordBatch::try_new(
                Arc::clone(&schema),
                vec![
                    Arc::new(StringViewArray::from(k)),
                    Arc::new(StringViewArray::from(s)),
                    Arc::new(Int64Array::from(v)),
                    Arc::new(Float64Array::from(f)),
                ],
            )
            .expect("batch");
            partitions[b % 2].push(batch);
        }
        (schema, partitions)
    }

    fn context(rule: bool, table: MemTable) -> SessionContext {
        context_with(rule, table, config())
    }

    fn config() -> SessionConfig {
        SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(1000)
    }

    fn context_with(with_rule: bool, table: MemTable, config: SessionConfig) -> SessionContext {
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if with_rule {
            state = state.with_physical_optimizer_rule(rule());
        }
        let ctx = SessionContext::new_with_state(state.build());
        ctx.register_table("t", Arc::new(table)).expect("register");
        ctx
    }

    /// `batches`' rows, rendered as a table's lines and sorted.
    fn sorted_rows(batches: &[RecordBatch]) -> Vec<String> {
        let text = arrow_cast::pretty::pretty_format_batches(batches)
            .expect("format")
            .to_string();
        let mut rows: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with('|'))
            .skip(1)
            .map(str::to_owned)
            .collect();
        rows.sort();
        rows
    }

    /// The rows of `sql`'s answer, rendered and sorted, and its plan.
    async fn answer(ctx: &SessionContext, sql: &str) -> (Vec<String>, String) {
        let df = ctx.sql(sql).await.expect(sql);
        let plan = df.clone().create_physical_plan().await.expect("plan");
        let plan = datafusion::physical_plan::displayable(plan.as_ref())
            .indent(false)
            .to_string();
        let batches = df.collect().await.expect(sql);
        let rows = sorted_rows(&batches);
        (rows, plan)
    }

    /// (query, whether the rule applies to it)
    const QUERIES: &[(&str, bool)] = &[
        (
            "SELECT k, count(*), count(v), sum(v), min(v), max(v), min(k), max(k), \
             round(avg(f), 6), round(sum(f), 6) FROM t GROUP BY k",
            true,
        ),
        (
            "SELECT k, avg(CASE WHEN s = 'error' THEN 1.0 ELSE 0.0 END) AS rate, count(*) \
             FROM t GROUP BY k",
            true,
        ),
        (
            "SELECT k, count(*) FILTER (WHERE v > 10), sum(v) FILTER (WHERE f < 300), \
             count(v) FILTER (WHERE s = 'error') FROM t GROUP BY k",
            true,
        ),
        (
            "SELECT lower(k) AS l, count(*) FROM t GROUP BY lower(k)",
            true,
        ),
        (
            "SELECT s, count(*), sum(v) FROM t WHERE k IS NOT NULL GROUP BY s",
            true,
        ),
        (
            "SELECT k, count(*) AS n FROM t WHERE v > 5 GROUP BY k HAVING count(*) > 3 \
             ORDER BY n DESC, k",
            true,
        ),
        (
            "SELECT k, bool_and(v > 0), bool_or(v > 800), bit_xor(v), \
             round(stddev(f), 6), round(var_pop(f), 6) FROM t GROUP BY k",
            true,
        ),
        ("SELECT k FROM t GROUP BY k", true),
        // The distinct values are grouped first, by two columns; then by k.
        ("SELECT k, count(DISTINCT v) FROM t GROUP BY k", true),
        ("SELECT k, s, count(*) FROM t GROUP BY k, s", false),
        ("SELECT k, array_agg(v ORDER BY v) FROM t GROUP BY k", false),
        ("SELECT count(*), sum(v) FROM t", false),
    ];

    async fn compare(
        queries: &[(&str, bool)],
        seed: u64,
        rows_per_batch: usize,
        batches: usize,
        rare: u64,
        distinct: u64,
    ) {
        let with = context(true, table(seed, rows_per_batch, batches, rare, distinct));
        let without = context(false, table(seed, rows_per_batch, batches, rare, distinct));
        for &(sql, applies) in queries {
            let (ours, plan) = answer(&with, sql).await;
            let (theirs, stock) = answer(&without, sql).await;
            assert!(!ours.is_empty(), "{sql}: no rows");
            assert_eq!(ours, theirs, "{sql} (seed {seed}):\n{plan}");
            assert_eq!(plan.contains("StringGroupsExec"), applies, "{sql}:\n{plan}");
            assert!(!stock.contains("StringGroupsExec"));
        }
    }

    #[tokio::test]
    async fn answers_as_datafusion_does() {
        for seed in 1..4 {
            compare(QUERIES, seed, 1000, 12, 1, 50).await;
        }
        // No rare keys: every group is one of a few views.
        compare(QUERIES, 9, 997, 7, 0, 1).await;
    }

    /// Keys in runs, as sorted files give them: each batch sorted by key,
    /// so nulls come right before the empty string, whose view is the
    /// same (a lookup by runs of equal views was tried: slower on the
    /// store bench, not kept).
    #[tokio::test]
    async fn keys_in_runs_answer_as_datafusion_does() {
        use datafusion::arrow::compute::{sort_to_indices, take_record_batch};
        let (schema, parts) = partitions(11, 1000, 12, 1, 50);
        let sorted: Vec<Vec<RecordBatch>> = parts
            .into_iter()
            .map(|p| {
                p.into_iter()
                    .map(|b| {
                        let order = sort_to_indices(b.column(0), None, None).expect("sort");
                        take_record_batch(&b, &order).expect("take")
                    })
                    .collect()
            })
            .collect();
        let first = sorted[0][0].column(0).as_string_view();
        assert!(
            first.is_null(0) && first.views()[0] == 0,
            "a null first, view 0"
        );
        let table = || MemTable::try_new(Arc::clone(&schema), sorted.clone()).expect("table");
        let ours = context(true, table());
        let stock = context(false, table());
        for &(sql, applies) in QUERIES {
            let (got, plan) = answer(&ours, sql).await;
            let (want, _) = answer(&stock, sql).await;
            assert_eq!(got, want, "{sql}");
            assert_eq!(plan.contains("StringGroupsExec"), applies, "{sql}");
        }
    }

    /// Grants every reservation but this node's.
    #[derive(Debug)]
    struct Refusing(datafusion::execution::memory_pool::UnboundedMemoryPool);

    impl std::fmt::Display for Refusing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("refusing")
        }
    }

    impl datafusion::execution::memory_pool::MemoryPool for Refusing {
        fn name(&self) -> &str {
            "refusing"
        }

        fn grow(&self, r: &MemoryReservation, additional: usize) {
            self.0.grow(r, additional);
        }

        fn shrink(&self, r: &MemoryReservation, shrink: usize) {
            self.0.shrink(r, shrink);
        }

        fn try_grow(&self, r: &MemoryReservation, additional: usize) -> Result<()> {
            if r.consumer().name().starts_with("StringGroupsExec") {
                return Err(DataFusionError::ResourcesExhausted("refused".into()));
            }
            self.0.try_grow(r, additional)
        }

        fn reserved(&self) -> usize {
            self.0.reserved()
        }
    }

    /// Refused memory, the node hands its groups on after every batch,
    /// and reads on past batches that leave it none (empty ones).
    #[tokio::test]
    async fn refused_memory_hands_groups_on_after_every_batch() {
        let (schema, parts) = partitions(3, 1000, 12, 1, 50);
        let parts: Vec<Vec<RecordBatch>> = parts
            .into_iter()
            .map(|p| {
                let empty = RecordBatch::new_empty(Arc::clone(&schema));
                let mut out = vec![empty.clone()];
                for b in p {
                    out.extend([b, empty.clone()]);
                }
                out
            })
            .collect();
        let runtime = datafusion::execution::runtime_env::RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(Refusing(Default::default())))
            .build_arc()
            .expect("runtime");
        let config = SessionConfig::new()
            .with_target_partitions(2)
            .with_batch_size(1000);
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .with_physical_optimizer_rule(rule())
            .build();
        let refused = SessionContext::new_with_state(state);
        refused
            .register_table(
                "t",
                Arc::new(MemTable::try_new(schema, parts).expect("table")),
            )
            .expect("register");
        let stock = context(false, table(3, 1000, 12, 1, 50));
        for &(sql, applies) in &QUERIES[..3] {
            let (ours, plan) = answer(&refused, sql).await;
            let (theirs, _) = answer(&stock, sql).await;
            assert!(applies && plan.contains("StringGroupsExec"), "{plan}");
            assert_eq!(ours, theirs, "{sql}");
        }
    }

    /// `sql`'s answer as [`answer`] renders it, run plan in hand, and the
    /// rows its `StringGroupsExec` nodes handed on without grouping.
    async fn answer_and_skipped(ctx: &SessionContext, sql: &str) -> (Vec<String>, usize) {
        let plan = ctx
            .sql(sql)
            .await
            .expect(sql)
            .create_physical_plan()
            .await
            .expect("plan");
        let batches = datafusion::physical_plan::collect(Arc::clone(&plan), ctx.task_ctx())
            .await
            .expect(sql);
        let rows = sorted_rows(&batches);
        fn skipped(plan: &Arc<dyn datafusion::physical_plan::ExecutionPlan>) -> usize {
            let here = if plan.name() == "StringGroupsExec" {
                plan.metrics()
                    .and_then(|m| m.sum_by_name("skipped_aggregation_rows"))
                    .map_or(0, |v| v.as_usize())
            } else {
                0
            };
            here + plan.children().into_iter().map(skipped).sum::<usize>()
        }
        let skipped = skipped(&plan);
        (rows, skipped)
    }

    /// Keys of many values: past the probe's rows the node hands each row
    /// on as its own state; the answers stay DataFusion's. Keys of few
    /// values are grouped all the way.
    #[tokio::test]
    async fn keys_of_many_values_skip_the_partial_aggregation() {
        let probing = || {
            let mut c = config();
            let e = &mut c.options_mut().execution;
            e.skip_partial_aggregation_probe_rows_threshold = 3000;
            e.skip_partial_aggregation_probe_ratio_threshold = 0.5;
            c
        };
        // 80 % of the rows draw their key from 10M values: about 0.8 groups
        // a row. Then, a few values only.
        for (rare, distinct, skips) in [(16, 10_000_000, true), (0, 1, false)] {
            let table = || table(7, 1000, 16, rare, distinct);
            let ours = context_with(true, table(), probing());
            let stock = context_with(false, table(), probing());
            let plain = context(false, table());
            for &(sql, applies) in QUERIES {
                let (got, skipped) = answer_and_skipped(&ours, sql).await;
                let (want, _) = answer(&stock, sql).await;
                let (grouped, _) = answer(&plain, sql).await;
                assert_eq!(got, want, "{sql}");
                assert_eq!(got, grouped, "{sql}");
                // Each partition has 8,000 rows (about 6,400 past the
                // `WHERE`); the probe decides after 3,000 of them. The count
                // of distinct values is grouped by (k, v) first: not checked.
                if sql.contains("DISTINCT") {
                    continue;
                }
                if skips && applies && !sql.contains("GROUP BY s") {
                    assert!(skipped >= 4000, "{sql}: {skipped} rows skipped");
                } else {
                    assert_eq!(skipped, 0, "{sql}");
                }
            }
        }
    }

    #[tokio::test]
    async fn more_groups_than_it_holds_are_handed_on_in_parts() {
        // 80 % of 196,608 rows are keys drawn from 10M: each of the two
        // partitions sees about 78,000 distinct keys, more than MAX_GROUPS.
        let (rows, batches) = (8192, 24);
        assert!(rows * batches / 2 * 16 / 20 > MAX_GROUPS + 10_000);
        compare(&QUERIES[..3], 5, rows, batches, 16, 10_000_000).await;
    }
}
