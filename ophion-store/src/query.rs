//! SQL over buffered rows and Parquet files, through DataFusion.
//!
//! Each query gets a session that sees only its tenant's tables `spans`,
//! `logs` and `metrics`: tenant isolation is a property of what is
//! registered, not of a filter a query could remove. A table scan unions
//! the rows still in memory with the Parquet files the catalog says may
//! hold rows in the query's time range (time bounds are read from the
//! pushed-down filters); inside the files, row-group statistics, page
//! indexes and the `trace_id` bloom filter prune further.
//!
//! Ids are fixed-size binary, but `trace_id = '4bf9…'` works: an analyzer
//! rule, run before type coercion, turns hex string literals compared with
//! `trace_id`, `span_id` or `parent_span_id` (`=`, `<>`, `<`, `<=`, `>`,
//! `>=`, `IN`) into binary literals. Files are sorted by status code,
//! then trace id, so `trace_id < '08000000000000000000000000000000'` (a
//! sample of whole traces) reads only the pages that can hold such ids (the
//! start of each status's run), and `status_code = 'error'` only the run
//! of error spans.
//!
//! Attribute maps are read with `attributes['key']` and
//! `resource_attributes['key']`, e.g.
//! `SELECT attributes['app.user_id'] FROM spans WHERE service_name = 'cart'`.
//! Keys promoted to columns (`http.route`, `service.name`, ...) work the
//! same way: the analyzer rule reads their column instead (integers as
//! text, like every map value), so a query need not know what is promoted.

use std::{
    sync::{Arc, OnceLock},
    time::Duration,
};

use arrow_array::RecordBatch;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::{
    catalog::{Session, TableProvider},
    common::{
        DFSchema, ScalarValue, Statistics,
        config::ConfigOptions,
        stats::Precision,
        tree_node::{Transformed, TreeNode},
    },
    datasource::{
        TableType,
        physical_plan::{
            FileGroup, FileScanConfigBuilder, ParquetSource, parquet::ParquetRowSelection,
        },
        source::DataSourceExec,
    },
    error::DataFusionError,
    execution::{
        SessionStateBuilder,
        cache::cache_manager::{CacheManagerConfig, FileMetadataCache},
        disk_manager::{DiskManagerBuilder, DiskManagerMode},
        object_store::ObjectStoreUrl,
        runtime_env::{RuntimeEnv, RuntimeEnvBuilder},
    },
    logical_expr::{
        BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, cast,
        expr::InList,
        expr_rewriter::NamePreserver,
        utils::{conjunction, split_conjunction},
    },
    optimizer::{Analyzer, AnalyzerRule},
    physical_expr::{
        PhysicalExpr,
        expressions::{CastExpr, Column},
    },
    physical_plan::{
        ExecutionPlan, empty::EmptyExec, filter::FilterExec, projection::ProjectionExec,
        union::UnionExec,
    },
    prelude::{SQLOptions, SessionConfig, SessionContext, col as dcol},
};
use datafusion_datasource::{PartitionedFile, memory::MemorySourceConfig};
use futures::StreamExt as _;
use ophion_core::{
    Signal, TelemetryQuery, TenantId,
    query::{Param, Params, QueryError, QueryOutput},
    schema::col,
    semconv,
};

use object_store::ObjectStoreExt as _;
use parquet::arrow::arrow_reader::RowSelection;

use crate::{
    catalog::FileMeta,
    config::{ClusterConfig, QueryConfig},
    distributed::Workers,
    error::{Error, Result},
    footers::CachedFooters,
    objstore::STORE_URL,
    persist::{self, time_column},
    rollup::{
        MINUTE, Rollups, SERVICE_EDGES, SERVICE_MINUTES, SPAN_MINUTES, service_edges_schema,
        service_minutes_schema, span_minutes_schema,
    },
    store::{Inner, Store},
    textindex::{self, FileIndex, TextSearch},
};

/// One signal's table, for one tenant.
#[derive(Debug)]
struct TelemetryTable {
    signal: Signal,
    tenant: TenantId,
    store: Arc<Inner>,
}

/// `column <op> <timestamp literal>` (either way round), normalized to
/// `column <op> ns`, for the comparisons a time range is made of.
fn time_bound(e: &Expr, column: &str) -> Option<(Operator, i64)> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = e else {
        return None;
    };
    let (op, value) = match (left.as_ref(), right.as_ref()) {
        (Expr::Column(c), Expr::Literal(v, _)) if c.name == column => (*op, v),
        (Expr::Literal(v, _), Expr::Column(c)) if c.name == column => (op.swap()?, v),
        _ => return None,
    };
    let ns = timestamp_ns(value)?;
    matches!(
        op,
        Operator::Gt | Operator::GtEq | Operator::Lt | Operator::LtEq | Operator::Eq
    )
    .then_some((op, ns))
}

/// Whether time `t` passes the bound.
fn within(t: i64, (op, ns): (Operator, i64)) -> bool {
    match op {
        Operator::Gt => t > ns,
        Operator::GtEq => t >= ns,
        Operator::Lt => t < ns,
        Operator::LtEq => t <= ns,
        _ => t == ns,
    }
}

/// The time range `[from, to]` (ns) the filters allow on `column`.
pub(crate) fn time_bounds(filters: &[Expr], column: &str) -> (i64, i64) {
    let mut from = i64::MIN;
    let mut to = i64::MAX;
    for e in filters.iter().flat_map(split_conjunction) {
        match time_bound(e, column) {
            Some((Operator::Gt | Operator::GtEq, ns)) => from = from.max(ns),
            Some((Operator::Lt | Operator::LtEq, ns)) => to = to.min(ns),
            Some((_, ns)) => {
                from = from.max(ns);
                to = to.min(ns);
            }
            None => {}
        }
    }
    (from, to)
}

fn timestamp_ns(v: &ScalarValue) -> Option<i64> {
    match v {
        ScalarValue::TimestampNanosecond(Some(t), _) => Some(*t),
        ScalarValue::TimestampMicrosecond(Some(t), _) => t.checked_mul(1_000),
        ScalarValue::TimestampMillisecond(Some(t), _) => t.checked_mul(1_000_000),
        ScalarValue::TimestampSecond(Some(t), _) => t.checked_mul(1_000_000_000),
        _ => None,
    }
}

#[async_trait::async_trait]
impl TableProvider for TelemetryTable {
    fn schema(&self) -> SchemaRef {
        query_schema(self.signal)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // Time bounds are applied by the scan itself, and only where a
        // file or the buffer can hold rows outside them; every other filter
        // prunes files and row groups, and DataFusion still checks the rows.
        let column = time_column(self.signal);
        Ok(filters
            .iter()
            .map(|f| match time_bound(f, column) {
                Some(_) => TableProviderFilterPushDown::Exact,
                None => TableProviderFilterPushDown::Inexact,
            })
            .collect())
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = self.schema();
        // Files other nodes published since the last query (shared
        // catalogs only). Without the catalog database, the query still
        // answers from the files this node knows: the newest publications
        // of other nodes are missing until it is back.
        if let Err(e) = self.store.catalog.refresh().await {
            tracing::warn!(error = %e, "cannot refresh the file catalog; answering from the files already known");
        }
        let column = time_column(self.signal);
        let (from, to) = time_bounds(filters, column);
        let (time_filters, other_filters): (Vec<Expr>, Vec<Expr>) = filters
            .iter()
            .cloned()
            .partition(|f| time_bound(f, column).is_some());
        let bounds: Vec<(Operator, i64)> = time_filters
            .iter()
            .filter_map(|f| time_bound(f, column))
            .collect();
        let exact = TimeFilter::new(&schema, column, projection, &time_filters)?;

        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        let (files, buffered) = self.files_and_unflushed(from, to).await;
        if !buffered.is_empty() {
            let scan = scan_buffer(buffered, self.signal, exact.projection(projection))?;
            inputs.push(exact.apply(state, scan)?);
        }
        // Text searches read only the blocks of each file that may match.
        let search = self
            .store
            .config
            .query
            .text_index
            .then(|| TextSearch::from_filters(filters, textindex::indexed_columns(self.signal)))
            .flatten();
        let files = select_rows(&self.store, files, search.as_ref()).await;
        // Files whose whole time span passes the bounds need no row filter.
        let (covered, partial): (Vec<_>, Vec<_>) = files.into_iter().partition(|(f, _)| {
            bounds
                .iter()
                .all(|&b| within(f.min_time, b) && within(f.max_time, b))
        });
        if !covered.is_empty() {
            inputs.push(self.scan_files(state, &covered, projection, &other_filters, limit)?);
        }
        if !partial.is_empty() {
            let scan =
                self.scan_files(state, &partial, exact.projection(projection), filters, None)?;
            inputs.push(exact.apply(state, scan)?);
        }
        if inputs.is_empty() {
            return empty_scan(&schema, projection);
        }
        UnionExec::try_new(inputs)
    }
}

impl TelemetryTable {
    /// The files that may hold rows in `[from, to]`, and the rows in no
    /// live file: this node's buffer and, in a cluster, every other
    /// node's (see `cluster`). The files are a whole catalog version and
    /// the other nodes answer for that version, so no row is missed or
    /// read twice.
    async fn files_and_unflushed(
        &self,
        from: i64,
        to: i64,
    ) -> (Vec<Arc<FileMeta>>, Vec<RecordBatch>) {
        let store = &self.store;
        let mut tries = 0;
        loop {
            let (version, files, mut rows) =
                store
                    .catalog
                    .files_at(&self.tenant, self.signal, from, to, || {
                        crate::store::buffered(store, &self.tenant, self.signal)
                    });
            let Some(cluster) = &store.cluster else {
                return (files, rows);
            };
            match cluster
                .unflushed(
                    &store.catalog,
                    &store.stats.peer_failures,
                    &self.tenant,
                    self.signal,
                    version,
                )
                .await
            {
                Ok(theirs) => {
                    rows.extend(theirs);
                    return (files, rows);
                }
                Err(crate::cluster::PeerError::Behind) if tries < 3 => {
                    tries += 1;
                    if let Err(e) = store.catalog.refresh().await {
                        tracing::warn!(error = %e, "cannot refresh the file catalog");
                    }
                }
                Err(e) => {
                    store
                        .stats
                        .peer_failures
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    tracing::warn!(error = ?e, "answering without the other nodes' unflushed rows");
                    return (files, rows);
                }
            }
        }
    }
}

/// The time bounds a scan applies itself (see `supports_filters_pushdown`):
/// a filter over a projection widened by the time column, then the
/// projection DataFusion asked for.
struct TimeFilter {
    /// `None` when there are no bounds.
    predicate: Option<Expr>,
    /// The projection with the time column, when it had to be added.
    widened: Option<Vec<usize>>,
    /// How many columns the caller asked for.
    width: usize,
}

impl TimeFilter {
    fn new(
        schema: &SchemaRef,
        column: &str,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
    ) -> datafusion::error::Result<Self> {
        let time = schema.index_of(column)?;
        let widened = match projection {
            Some(p) if !filters.is_empty() && !p.contains(&time) => {
                let mut w = p.clone();
                w.push(time);
                Some(w)
            }
            _ => None,
        };
        Ok(Self {
            predicate: conjunction(filters.to_vec()),
            widened,
            width: projection.map_or(schema.fields().len(), Vec::len),
        })
    }

    /// The projection the filtered scans read.
    fn projection<'a>(&'a self, asked: Option<&'a Vec<usize>>) -> Option<&'a Vec<usize>> {
        self.widened.as_ref().or(asked)
    }

    /// `scan` (read with [`Self::projection`]) filtered by the bounds, with
    /// the asked-for columns.
    fn apply(
        &self,
        state: &dyn Session,
        scan: Arc<dyn ExecutionPlan>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let Some(predicate) = &self.predicate else {
            return Ok(scan);
        };
        let schema = scan.schema();
        let df_schema = DFSchema::try_from(schema.as_ref().clone())?;
        let physical = state.create_physical_expr(predicate.clone(), &df_schema)?;
        let filtered: Arc<dyn ExecutionPlan> = Arc::new(FilterExec::try_new(physical, scan)?);
        if self.widened.is_none() {
            return Ok(filtered);
        }
        let exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = (0..self.width)
            .map(|i| {
                let name = schema.field(i).name().clone();
                (
                    Arc::new(Column::new(&name, i)) as Arc<dyn PhysicalExpr>,
                    name,
                )
            })
            .collect();
        Ok(Arc::new(ProjectionExec::try_new(exprs, filtered)?))
    }
}

/// `schema` with its top-level strings as `Utf8View`.
fn as_views(schema: &Schema) -> Schema {
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| match f.data_type() {
            DataType::Utf8 => f.as_ref().clone().with_data_type(DataType::Utf8View),
            _ => f.as_ref().clone(),
        })
        .collect();
    Schema::new_with_metadata(fields, schema.metadata().clone())
}

/// The schema SQL sees for `signal`: the core schema with top-level strings
/// as `Utf8View`. The Parquet reader then hands out views into the pages'
/// dictionaries instead of copying every value, and grouping and comparing
/// short strings (service names, status codes) work on the 16-byte views,
/// the way DataFusion reads Parquet by default.
pub fn query_schema(signal: Signal) -> SchemaRef {
    static SCHEMAS: OnceLock<[SchemaRef; 3]> = OnceLock::new();
    let all = SCHEMAS.get_or_init(|| Signal::ALL.map(|s| Arc::new(as_views(&s.schema()))));
    let i = Signal::ALL
        .iter()
        .position(|s| *s == signal)
        .expect("every signal is in Signal::ALL");
    Arc::clone(&all[i])
}

/// A scan of no rows with `schema` (projected).
pub(crate) fn empty_scan(
    schema: &SchemaRef,
    projection: Option<&Vec<usize>>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let projected = match projection {
        Some(p) => Arc::new(schema.project(p)?),
        None => Arc::clone(schema),
    };
    Ok(Arc::new(EmptyExec::new(projected)))
}

/// Scans the rows still in memory (core schema), with the projected string
/// columns cast to views: the output has the query schema.
pub(crate) fn scan_buffer(
    buffered: Vec<RecordBatch>,
    signal: Signal,
    projection: Option<&Vec<usize>>,
) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
    let core = signal.schema();
    let memory =
        MemorySourceConfig::try_new_exec(&[buffered], Arc::clone(&core), projection.cloned())?;
    let scanned = memory.schema();
    let table = query_schema(signal);
    let wanted: Vec<usize> = projection
        .cloned()
        .unwrap_or_else(|| (0..core.fields().len()).collect());
    let mut exprs: Vec<(Arc<dyn PhysicalExpr>, String)> = Vec::with_capacity(wanted.len());
    for (j, &i) in wanted.iter().enumerate() {
        let field = table.field(i);
        let column: Arc<dyn PhysicalExpr> = Arc::new(Column::new(field.name(), j));
        let expr = if scanned.field(j).data_type() == field.data_type() {
            column
        } else {
            Arc::new(CastExpr::new(column, field.data_type().clone(), None))
        };
        exprs.push((expr, field.name().clone()));
    }
    Ok(Arc::new(ProjectionExec::try_new(exprs, memory)?))
}

/// A file to scan, with the rows worth reading when an index narrowed them.
type FileScan = (Arc<FileMeta>, Option<RowSelection>);

/// `files` with the rows `search` may match in each (by their text
/// indexes), without the files where it matches none. A file without an
/// index, or whose index cannot be read, is scanned whole.
async fn select_rows(
    inner: &Arc<Inner>,
    files: Vec<Arc<FileMeta>>,
    search: Option<&TextSearch>,
) -> Vec<FileScan> {
    let Some(search) = search else {
        return files.into_iter().map(|f| (f, None)).collect();
    };
    let scans: Vec<FileScan> = futures::stream::iter(files)
        .map(|f| async move {
            let selection = match text_index(inner, &f).await {
                Ok(index) => index.and_then(|i| i.select(search)),
                Err(e) => {
                    tracing::warn!(path = %f.path, error = %e, "cannot read a file's text index; scanning it whole");
                    None
                }
            };
            (f, selection)
        })
        .buffered(8)
        .collect()
        .await;
    let skipped: u64 = scans
        .iter()
        .filter_map(|(f, s)| Some(f.rows.saturating_sub(s.as_ref()?.row_count() as u64)))
        .sum();
    inner
        .stats
        .text_index_rows_skipped
        .fetch_add(skipped, std::sync::atomic::Ordering::Relaxed);
    scans
        .into_iter()
        .filter(|(_, s)| s.as_ref().is_none_or(RowSelection::selects_any))
        .collect()
}

/// The text index of `file`, from the cache or read from the file.
async fn text_index(inner: &Arc<Inner>, file: &FileMeta) -> Result<Option<Arc<FileIndex>>> {
    if let Some(index) = inner.text_indexes.get(&file.path) {
        return Ok(Some(index));
    }
    let object = PartitionedFile::new(file.path.clone(), file.bytes).object_meta;
    let footer =
        crate::footers::footer(inner.objects.as_ref(), &inner.metadata_cache, &object, None)
            .await?;
    let Some((offset, len)) = persist::text_index_range(&footer) else {
        return Ok(None);
    };
    let bytes = inner
        .objects
        .get_range(&object.location, offset..offset + len)
        .await?;
    let index = Arc::new(FileIndex::parse(bytes)?);
    inner.text_indexes.insert(&file.path, Arc::clone(&index));
    Ok(Some(index))
}

impl TelemetryTable {
    /// Scans Parquet files, which lack the derived columns, and recomputes
    /// them: the output has the table's (projected) schema.
    fn scan_files(
        &self,
        state: &dyn Session,
        files: &[FileScan],
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let table = query_schema(self.signal);
        let storage = Arc::new(as_views(&persist::storage_schema(self.signal)));
        let derived = persist::derived_columns(self.signal);
        let wanted: Vec<usize> = projection
            .cloned()
            .unwrap_or_else(|| (0..table.fields().len()).collect());
        // Storage columns the wanted table columns need.
        let mut needed: Vec<usize> = Vec::new();
        for &i in &wanted {
            let name = table.field(i).name().as_str();
            let inputs: &[&str] = if name == col::END_TIME && derived.contains(&col::END_TIME) {
                &[col::START_TIME, col::DURATION_NS]
            } else {
                std::slice::from_ref(&name)
            };
            for n in inputs {
                let j = storage.index_of(n)?;
                if !needed.contains(&j) {
                    needed.push(j);
                }
            }
        }
        needed.sort_unstable();
        let url = ObjectStoreUrl::parse(STORE_URL)?;
        let runtime = state.runtime_env();
        let mut source = ParquetSource::new(Arc::clone(&storage))
            .with_table_parquet_options(state.table_options().parquet.clone())
            .with_bloom_filter_on_read(true)
            .with_parquet_file_reader_factory(Arc::new(CachedFooters {
                store: runtime.object_store(&url)?,
                cache: runtime.cache_manager.get_file_metadata_cache(),
            }));
        // Prune with the filters that only use stored columns.
        let storable: Vec<Expr> = filters
            .iter()
            .filter(|f| {
                f.column_refs()
                    .iter()
                    .all(|c| storage.index_of(&c.name).is_ok())
            })
            .cloned()
            .collect();
        if let Some(predicate) = conjunction(storable) {
            let df_schema = DFSchema::try_from(storage.as_ref().clone())?;
            source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
        }
        let partitions = state.config().target_partitions().max(1);
        let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); partitions.min(files.len())];
        // Newest first in every group: the queries that stop early read
        // newest first (a log explorer's, the API's and the copilot's
        // `ORDER BY time DESC LIMIT n`), and once their top n are full,
        // the dynamic filter DataFusion pushes down from the `TopK` skips
        // the older files. Each file carries its exact time span (the
        // catalog's), so DataFusion prunes a file before reading its
        // footer: at 100 million lines, loading the footers of the 300
        // files a search passed took 300 ms of a 340 ms first page. What
        // else is read whole does not depend on the order.
        let time = storage.index_of(time_column(self.signal))?;
        let DataType::Timestamp(TimeUnit::Nanosecond, zone) = storage.field(time).data_type()
        else {
            return Err(DataFusionError::Internal(format!(
                "{} is not a nanosecond timestamp",
                time_column(self.signal)
            )));
        };
        let at = |t: i64| Precision::Exact(ScalarValue::TimestampNanosecond(Some(t), zone.clone()));
        let mut files: Vec<&FileScan> = files.iter().collect();
        files.sort_by_key(|(f, _)| std::cmp::Reverse(f.max_time));
        for (i, (f, selection)) in files.into_iter().enumerate() {
            let n = groups.len();
            let mut stats = Statistics::new_unknown(&storage);
            let span = &mut stats.column_statistics[time];
            (span.min_value, span.max_value) = (at(f.min_time), at(f.max_time));
            span.null_count = Precision::Exact(0);
            let mut file =
                PartitionedFile::new(f.path.clone(), f.bytes).with_statistics(Arc::new(stats));
            if let Some(s) = selection {
                file = file.with_extension(ParquetRowSelection::new(s.clone()));
            }
            groups[i % n].push(file);
        }
        let config = FileScanConfigBuilder::new(url, Arc::new(source))
            .with_file_groups(groups.into_iter().map(FileGroup::new).collect())
            .with_projection_indices(Some(needed))?
            .with_limit(limit)
            .build();
        let scan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        // Put the columns in the table's order, computing derived ones.
        let df_scanned = DFSchema::try_from(scan.schema().as_ref().clone())?;
        let mut exprs = Vec::with_capacity(wanted.len());
        for &i in &wanted {
            let field = table.field(i);
            let logical = if field.name() == col::END_TIME && derived.contains(&col::END_TIME) {
                // end_time = start_time + duration_ns, as a UTC timestamp.
                let start = cast(dcol(col::START_TIME), DataType::Int64);
                cast(start + dcol(col::DURATION_NS), field.data_type().clone())
            } else {
                dcol(field.name().as_str())
            };
            exprs.push((
                state.create_physical_expr(logical, &df_scanned)?,
                field.name().clone(),
            ));
        }
        Ok(Arc::new(ProjectionExec::try_new(exprs, scan)?))
    }
}

/// Ophion's query rewrites, run before type coercion: `trace_id = '<hex>'`
/// (and `span_id`, `parent_span_id`, `IN` lists) compare binary ids,
/// attribute-map access to promoted keys reads their columns, and
/// case-insensitive substring searches skip the regular expression and the
/// lower-cased copy ([`crate::textmatch`]).
#[derive(Debug)]
struct HexIds;

fn id_len(e: &Expr) -> Option<i32> {
    match e {
        Expr::Column(c) if c.name == col::TRACE_ID => Some(16),
        Expr::Column(c) if c.name == col::SPAN_ID || c.name == col::PARENT_SPAN_ID => Some(8),
        _ => None,
    }
}

/// A binary literal for a hex string literal; one that is not `len` bytes of
/// hex becomes a null literal, which matches no row.
fn hex_literal(e: &Expr, len: i32) -> Option<Expr> {
    let Expr::Literal(
        ScalarValue::Utf8(Some(s))
        | ScalarValue::Utf8View(Some(s))
        | ScalarValue::LargeUtf8(Some(s)),
        _,
    ) = e
    else {
        return None;
    };
    let bytes = hex::decode(s.trim())
        .ok()
        .filter(|b| b.len() == len as usize);
    Some(Expr::Literal(
        ScalarValue::FixedSizeBinary(len, bytes),
        None,
    ))
}

fn rewrite_ids(e: Expr) -> datafusion::error::Result<Transformed<Expr>> {
    match e {
        Expr::BinaryExpr(BinaryExpr { left, op, right })
            if matches!(
                op,
                Operator::Eq
                    | Operator::NotEq
                    | Operator::Lt
                    | Operator::LtEq
                    | Operator::Gt
                    | Operator::GtEq
            ) =>
        {
            if let Some(lit) = id_len(&left).and_then(|n| hex_literal(&right, n)) {
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left,
                    op,
                    right: Box::new(lit),
                })));
            }
            if let Some(lit) = id_len(&right).and_then(|n| hex_literal(&left, n)) {
                return Ok(Transformed::yes(Expr::BinaryExpr(BinaryExpr {
                    left: Box::new(lit),
                    op,
                    right,
                })));
            }
            Ok(Transformed::no(Expr::BinaryExpr(BinaryExpr {
                left,
                op,
                right,
            })))
        }
        Expr::InList(InList {
            expr,
            list,
            negated,
        }) if id_len(&expr).is_some() => {
            let n = id_len(&expr).unwrap_or(16);
            let list = list
                .into_iter()
                .map(|e| hex_literal(&e, n).unwrap_or(e))
                .collect();
            Ok(Transformed::yes(Expr::InList(InList {
                expr,
                list,
                negated,
            })))
        }
        other => Ok(Transformed::no(other)),
    }
}

/// `attributes['http.route']` on a key that is promoted to a column reads
/// that column (`http_route`, cast to text like map values), so users need
/// not know which keys are promoted. Applies to `attributes` (span-level
/// keys, spans only) and `resource_attributes` (all tables), and only when
/// the target column is in the same input.
fn rewrite_promoted(e: Expr, inputs: &[&DFSchema]) -> datafusion::error::Result<Transformed<Expr>> {
    let Expr::ScalarFunction(f) = &e else {
        return Ok(Transformed::no(e));
    };
    if f.name() != "get_field" || f.args.len() != 2 {
        return Ok(Transformed::no(e));
    }
    let (
        Expr::Column(map),
        Expr::Literal(ScalarValue::Utf8(Some(key)) | ScalarValue::Utf8View(Some(key)), _),
    ) = (&f.args[0], &f.args[1])
    else {
        return Ok(Transformed::no(e));
    };
    let level = match map.name.as_str() {
        col::ATTRIBUTES => semconv::Level::Span,
        col::RESOURCE_ATTRIBUTES => semconv::Level::Resource,
        _ => return Ok(Transformed::no(e)),
    };
    let Some((i, ty)) = semconv::promoted_index(level, key) else {
        return Ok(Transformed::no(e));
    };
    let Some(p) = semconv::promoted(level).nth(i) else {
        return Ok(Transformed::no(e));
    };
    let target = datafusion::common::Column::new(map.relation.clone(), p.column);
    if !inputs.iter().any(|s| s.has_column(&target)) {
        return Ok(Transformed::no(e));
    }
    let column = Expr::Column(target);
    Ok(Transformed::yes(match ty {
        semconv::PromotedType::Str => column,
        semconv::PromotedType::Int => cast(column, DataType::Utf8),
    }))
}

impl AnalyzerRule for HexIds {
    fn analyze(
        &self,
        plan: LogicalPlan,
        _config: &ConfigOptions,
    ) -> datafusion::error::Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|p| {
            let names = NamePreserver::new(&p);
            let inputs: Vec<DFSchema> = p
                .inputs()
                .iter()
                .map(|i| i.schema().as_ref().clone())
                .collect();
            let inputs: Vec<&DFSchema> = inputs.iter().collect();
            p.map_expressions(|e| {
                let saved = names.save(&e);
                let t = e.transform_up(|e| {
                    let t = rewrite_ids(e)?;
                    if t.transformed {
                        return Ok(t);
                    }
                    let t = rewrite_promoted(t.data, &inputs)?;
                    if t.transformed {
                        return Ok(t);
                    }
                    crate::textmatch::rewrite(t.data, &inputs)
                })?;
                Ok(t.update_data(|e| saved.restore(e)))
            })
        })
        .map(|t| t.data)
    }

    fn name(&self) -> &str {
        "ophion_rewrites"
    }
}

/// A readable message without DataFusion's internals (backtraces, plan
/// dumps): the first line of the innermost error.
fn user_message(e: &DataFusionError) -> String {
    let inner = e.find_root().to_string();
    let first = inner.lines().next().unwrap_or("").trim();
    first
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("SQL error: ")
        .trim_start_matches("Schema error: ")
        .chars()
        .take(300)
        .collect()
}

fn classify(e: DataFusionError) -> Error {
    match e.find_root() {
        DataFusionError::External(x) if x.downcast_ref::<QueryError>().is_some() => Error::Query(
            x.downcast_ref::<QueryError>()
                .cloned()
                .unwrap_or_else(|| QueryError::Internal("a derived table failed".into())),
        ),
        DataFusionError::ResourcesExhausted(_) => Error::Query(QueryError::OutOfMemory),
        DataFusionError::Plan(_)
        | DataFusionError::SQL(..)
        | DataFusionError::SchemaError(..)
        | DataFusionError::NotImplemented(_) => {
            let msg = user_message(&e);
            if msg.contains("not allowed")
                || msg.contains("DDL not supported")
                || msg.contains("DML not supported")
                || msg.contains("Statement not supported")
                || msg.contains("only supports a single")
                || msg.contains("single SQL statement")
            {
                Error::Query(QueryError::NotReadOnly(msg))
            } else {
                Error::Query(QueryError::Invalid(msg))
            }
        }
        _ => Error::DataFusion(e),
    }
}

/// Which rollup table a [`RollupTable`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Which {
    SpanMinutes,
    ServiceMinutes,
    ServiceEdges,
}

/// `span_minutes`, `service_minutes` or `service_edges` of one tenant, as a DataFusion table:
/// the scan materializes the minutes the time filters allow.
#[derive(Debug)]
pub(crate) struct RollupTable {
    pub(crate) which: Which,
    pub(crate) rollups: Arc<Rollups>,
    pub(crate) tenant: TenantId,
    /// Now, in nanoseconds (the window's end).
    pub(crate) now_ns: i64,
}

impl RollupTable {
    fn name(&self) -> &'static str {
        match self.which {
            Which::SpanMinutes => SPAN_MINUTES,
            Which::ServiceMinutes => SERVICE_MINUTES,
            Which::ServiceEdges => SERVICE_EDGES,
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for RollupTable {
    fn schema(&self) -> SchemaRef {
        match self.which {
            Which::SpanMinutes => span_minutes_schema(),
            Which::ServiceMinutes => service_minutes_schema(),
            Which::ServiceEdges => service_edges_schema(),
        }
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        // The scan reads the minutes the time bounds allow; DataFusion
        // applies every filter to the rows again.
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let (from, to) = time_bounds(filters, MINUTE);
        self.rollups
            .check(self.name(), from, self.now_ns)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let batch = match self.which {
            Which::SpanMinutes => self.rollups.span_minutes(&self.tenant, from, to),
            Which::ServiceMinutes => self.rollups.service_minutes(&self.tenant, from, to),
            Which::ServiceEdges => self.rollups.service_edges(&self.tenant, from, to),
        };
        let exec =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}

/// The name SQL knows `signal`'s table by.
pub fn table_name(signal: Signal) -> &'static str {
    match signal {
        Signal::Traces => "spans",
        Signal::Logs => "logs",
        Signal::Metrics => "metrics",
    }
}

/// A query session with Ophion's rules (hex ids, promoted attribute keys,
/// Parquet pushdown), `limits`' memory limit and no spilling, `objects`
/// registered under [`STORE_URL`], and `table(signal)` as each signal's
/// table. Everything that answers SQL over telemetry (the store,
/// [`crate::MemoryTables`]) builds its sessions here, so both read the same
/// dialect.
pub(crate) fn new_session(
    limits: &QueryConfig,
    objects: Option<(Arc<dyn object_store::ObjectStore>, Arc<FileMetadataCache>)>,
    mut table: impl FnMut(Signal) -> Arc<dyn TableProvider>,
    rollups: (&Arc<Rollups>, &TenantId, i64),
    distribute: Option<(&ClusterConfig, &Workers)>,
) -> Result<SessionContext> {
    let runtime = runtime(limits, objects)?;
    let mut config = SessionConfig::new().with_information_schema(true);
    config.options_mut().execution.parquet.pushdown_filters = true;
    config.options_mut().execution.parquet.reorder_filters = true;
    let mut rules: Vec<Arc<dyn AnalyzerRule + Send + Sync>> = vec![Arc::new(HexIds)];
    rules.extend(Analyzer::new().rules);
    let mut state = SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        .with_analyzer_rules(rules);
    // Once DataFusion has pushed its filters into the scans: each
    // conjunct once, bloom filters read only where they can prune.
    state = state.with_physical_optimizer_rule(Arc::new(crate::scanrules::ScanPredicates));
    // Scans larger than this node's partitions run across the query
    // nodes, when there are others (see `distributed`).
    if let Some((cluster, workers)) = distribute
        && cluster.distribute_bytes_per_partition > 0
        && workers.len() > 1
    {
        // The planner cuts plans where partitions meet (repartitions,
        // merges); a one-core node plans a single partition and so has no
        // such place: plan at least one partition per query node.
        if let Some(config) = state.config() {
            let execution = &mut config.options_mut().execution;
            execution.target_partitions = execution.target_partitions.max(workers.len());
        }
        state = crate::distributed::coordinate(
            state,
            workers,
            cluster.distribute_bytes_per_partition,
            &cluster.secret,
        )?;
    } else {
        // Not in plans other nodes run: their wire format has only
        // DataFusion's own nodes.
        state =
            state.with_physical_optimizer_rule(Arc::new(crate::groupby::StringGroups::default()));
    }
    let ctx = SessionContext::new_with_state(state.build());
    // Percentiles from relative-error sketches (see `percentile`).
    ctx.register_udaf(crate::percentile::udaf());
    for signal in Signal::ALL {
        ctx.register_table(table_name(signal), table(signal))?;
    }
    let (rollups, tenant, now_ns) = rollups;
    for (name, which) in [
        (SPAN_MINUTES, Which::SpanMinutes),
        (SERVICE_MINUTES, Which::ServiceMinutes),
        (SERVICE_EDGES, Which::ServiceEdges),
    ] {
        let t = RollupTable {
            which,
            rollups: Arc::clone(rollups),
            tenant: tenant.clone(),
            now_ns,
        };
        ctx.register_table(name, Arc::new(t))?;
    }
    Ok(ctx)
}

/// A query's runtime: `limits`' memory limit and no spilling, and
/// `objects` registered under [`STORE_URL`] with the footer cache.
fn runtime(
    limits: &QueryConfig,
    objects: Option<(Arc<dyn object_store::ObjectStore>, Arc<FileMetadataCache>)>,
) -> Result<Arc<RuntimeEnv>> {
    // No spilling to disk: a query over its memory limit fails with a
    // clear error instead of filling the temp directory.
    let mut runtime = RuntimeEnvBuilder::new()
        .with_memory_limit(limits.memory_limit_bytes, 1.0)
        .with_disk_manager_builder(
            DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
        );
    if let Some((_, cache)) = &objects {
        // Files never change once written, so their footers and page
        // indexes are parsed once for all sessions, not once per query.
        runtime = runtime.with_cache_manager(
            CacheManagerConfig::default()
                .with_file_metadata_cache(Some(Arc::clone(cache)))
                .with_metadata_cache_limit(limits.metadata_cache_mb << 20),
        );
    }
    let runtime = runtime.build_arc()?;
    if let Some((objects, _)) = objects {
        runtime.register_object_store(
            &url::Url::parse(STORE_URL).map_err(|e| Error::Config(e.to_string()))?,
            objects,
        );
    }
    Ok(runtime)
}

/// The sessions other query nodes' plan fragments run in here: this
/// node's runtime (memory limit, bucket, footer cache) and Ophion's
/// functions; the plan brings everything else.
impl crate::distributed::FragmentSessions for std::sync::Weak<Inner> {
    fn session(
        &self,
        mut builder: SessionStateBuilder,
    ) -> Option<datafusion::execution::SessionState> {
        let inner = self.upgrade()?;
        let runtime = runtime(
            &inner.config.query,
            Some((
                Arc::clone(&inner.objects),
                Arc::clone(&inner.metadata_cache),
            )),
        )
        .ok()?;
        builder = builder.with_runtime_env(runtime);
        builder
            .aggregate_functions()
            .get_or_insert_default()
            .push(Arc::new(crate::percentile::udaf()));
        builder
            .scalar_functions()
            .get_or_insert_default()
            .extend(crate::textmatch::udfs());
        inner
            .stats
            .worker_tasks
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Some(builder.build())
    }
}

/// A bound parameter as DataFusion's value.
fn scalar(p: Param) -> ScalarValue {
    match p {
        Param::Bool(v) => ScalarValue::Boolean(Some(v)),
        Param::Int32(v) => ScalarValue::Int32(Some(v)),
        Param::Int64(v) => ScalarValue::Int64(Some(v)),
        Param::Float64(v) => ScalarValue::Float64(Some(v)),
        Param::Text(v) => ScalarValue::Utf8(Some(v)),
        Param::TimestampNs(v) => ScalarValue::TimestampNanosecond(Some(v), Some("UTC".into())),
        _ => ScalarValue::Null,
    }
}

/// Runs one read-only query in `ctx` under `limits` (timeout, row cap).
/// `split` is set when the plan runs on several nodes.
pub(crate) async fn run_sql(
    ctx: SessionContext,
    limits: &QueryConfig,
    sql: &str,
    params: Params,
    split: &mut bool,
) -> Result<QueryOutput> {
    let started = std::time::Instant::now();
    let timeout = Duration::from_secs(limits.timeout_secs.max(1));
    let max_rows = limits.max_rows;
    let options = SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false);
    let run = async {
        let mut df = ctx.sql_with_options(sql, options).await.map_err(classify)?;
        if !params.is_empty() {
            let values: Vec<(String, ScalarValue)> =
                params.into_iter().map(|(k, v)| (k, scalar(v))).collect();
            df = df.with_param_values(values).map_err(classify)?;
        }
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        let task = Arc::new(df.task_ctx());
        let plan = df.create_physical_plan().await.map_err(classify)?;
        *split = crate::distributed::is_distributed(&plan);
        let mut stream = datafusion::physical_plan::execute_stream(plan, task).map_err(classify)?;
        let mut batches = Vec::new();
        let mut rows = 0;
        let mut truncated = false;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(classify)?;
            if rows + batch.num_rows() > max_rows {
                batches.push(batch.slice(0, max_rows - rows));
                rows = max_rows;
                truncated = true;
                break;
            }
            rows += batch.num_rows();
            batches.push(batch);
        }
        Ok::<_, Error>(QueryOutput {
            schema,
            batches,
            rows,
            truncated,
            elapsed: Duration::ZERO,
        })
    };
    let mut out = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| Error::Query(QueryError::Timeout(timeout)))??;
    out.elapsed = started.elapsed();
    Ok(out)
}

impl Store {
    /// A query session that sees `tenant`'s tables only; with `split`,
    /// large scans run across the cluster's query nodes.
    pub(crate) fn session(&self, tenant: &TenantId, split: bool) -> Result<SessionContext> {
        let inner = &self.inner;
        new_session(
            &inner.config.query,
            Some((
                Arc::clone(&inner.objects),
                Arc::clone(&inner.metadata_cache),
            )),
            |signal| {
                Arc::new(TelemetryTable {
                    signal,
                    tenant: tenant.clone(),
                    store: Arc::clone(inner),
                })
            },
            (&inner.rollups, tenant, inner.clock.now_nanos()),
            inner
                .cluster
                .as_ref()
                .filter(|_| split)
                .map(|c| (&inner.config.cluster, &c.workers)),
        )
    }

    /// Runs one read-only SQL query for `tenant`, under the configured
    /// timeout, memory limit and row cap.
    pub async fn sql(&self, tenant: &TenantId, sql: &str) -> Result<QueryOutput> {
        self.sql_with_params(tenant, sql, Vec::new()).await
    }

    /// [`Store::sql`] with named placeholders (`$service`, `$from`) bound to
    /// `params`: values never pass through the SQL text, so they cannot
    /// change the query (what the API and the copilot use for user input).
    pub async fn sql_with_params(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Params,
    ) -> Result<QueryOutput> {
        let limits = &self.inner.config.query;
        let stats = &self.inner.stats;
        let mut split = false;
        let first = run_sql(
            self.session(tenant, true)?,
            limits,
            sql,
            params.clone(),
            &mut split,
        )
        .await;
        if !split {
            return first;
        }
        stats
            .distributed_queries
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        match first {
            // A query node gone mid-query, or one that refuses this
            // node: the query runs again here alone (reads have no side
            // effects), so an answer never misses the rows of a part
            // that failed.
            Err(e) if !matches!(e, Error::Query(QueryError::Timeout(_))) => {
                tracing::warn!(error = %e, "a query split across the query nodes failed; running it on this node alone");
                stats
                    .distributed_fallbacks
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                run_sql(
                    self.session(tenant, false)?,
                    limits,
                    sql,
                    params,
                    &mut split,
                )
                .await
            }
            other => other,
        }
    }

    /// Every span of one trace: the fast path behind "trace by id" (the
    /// `trace_id` bloom filters prune the files), as
    /// [`TelemetryQuery::trace`] answers it.
    pub async fn trace(&self, tenant: &TenantId, trace_id: [u8; 16]) -> Result<Vec<RecordBatch>> {
        Ok(TelemetryQuery::trace(self, tenant, trace_id).await?)
    }
}

#[async_trait::async_trait]
impl TelemetryQuery for Store {
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Params,
    ) -> std::result::Result<QueryOutput, QueryError> {
        self.sql_with_params(tenant, sql, params)
            .await
            .map_err(Error::into_query_error)
    }

    fn is_empty(&self) -> bool {
        self.files().is_empty()
            && self
                .stats()
                .rows_written
                .load(std::sync::atomic::Ordering::Relaxed)
                == 0
            && self.buffered_bytes() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_bounds_from_filters() {
        use datafusion::prelude::{col as c, lit};
        let ts = |v: i64| {
            lit(ScalarValue::TimestampNanosecond(
                Some(v),
                Some("UTC".into()),
            ))
        };
        let f = vec![
            c("start_time")
                .gt_eq(ts(10))
                .and(c("start_time").lt(ts(20))),
            c("name").eq(lit("x")),
        ];
        assert_eq!(time_bounds(&f, "start_time"), (10, 20));
        assert_eq!(
            time_bounds(&[ts(5).lt_eq(c("start_time"))], "start_time"),
            (5, i64::MAX)
        );
        assert_eq!(time_bounds(&[], "start_time"), (i64::MIN, i64::MAX));
    }
}
