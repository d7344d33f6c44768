//! [`MemoryTables`]: telemetry kept in memory and answered with the same SQL
//! dialect as the store, for tests and embedders that need the read seam
//! without a data directory.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use datafusion::{
    catalog::{Session, TableProvider},
    datasource::TableType,
    logical_expr::{Expr, TableProviderFilterPushDown},
    physical_plan::ExecutionPlan,
};
use ophion_core::{
    Signal, SinkError, TelemetryBatch, TelemetryQuery, TenantId,
    query::{Params, QueryError, QueryOutput},
};

use crate::{
    config::QueryConfig,
    error::Error,
    query::{empty_scan, new_session, query_schema, run_sql, scan_buffer},
    rollup::Rollups,
};

type Tables = HashMap<(TenantId, Signal), Vec<RecordBatch>>;

/// Telemetry in memory: a [`ophion_core::TelemetrySink`] that keeps every
/// batch and a [`TelemetryQuery`] over them with the store's dialect (hex
/// ids, `attributes['key']` on promoted keys, `Utf8View` strings), tenant
/// isolation and limits. Nothing is persisted. Cheap to clone; clones share
/// the rows.
///
/// ```
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use ophion_core::{TelemetryQuery, TenantId};
/// let tables = ophion_store::MemoryTables::default();
/// let out = tables.query(&TenantId::default(), "SELECT count(*) FROM spans", vec![]).await?;
/// assert_eq!(out.rows, 1);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct MemoryTables {
    tables: Arc<RwLock<Tables>>,
    limits: QueryConfig,
    /// Every minute of every span inserted (no window).
    rollups: Arc<Rollups>,
}

impl Default for MemoryTables {
    fn default() -> Self {
        Self::with_limits(QueryConfig::default())
    }
}

impl MemoryTables {
    /// Empty tables whose queries run under `limits`.
    pub fn with_limits(limits: QueryConfig) -> Self {
        Self {
            tables: Arc::default(),
            limits,
            rollups: Arc::new(Rollups::new(None, true)),
        }
    }

    /// Adds rows (in the signal's core schema) for `tenant`.
    pub fn insert(&self, tenant: &TenantId, batch: TelemetryBatch) {
        let signal = batch.signal();
        if signal == Signal::Traces {
            let now = ophion_core::Clock::now_nanos(&ophion_core::SystemClock);
            self.rollups.observe(tenant, batch.batch(), now);
        }
        self.tables
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry((tenant.clone(), signal))
            .or_default()
            .push(batch.into_batch());
    }

    fn rows(&self, tenant: &TenantId, signal: Signal) -> Vec<RecordBatch> {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&(tenant.clone(), signal))
            .cloned()
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl ophion_core::TelemetrySink for MemoryTables {
    async fn write(&self, tenant: &TenantId, batch: TelemetryBatch) -> Result<(), SinkError> {
        self.insert(tenant, batch);
        Ok(())
    }
}

#[async_trait::async_trait]
impl TelemetryQuery for MemoryTables {
    async fn query(
        &self,
        tenant: &TenantId,
        sql: &str,
        params: Params,
    ) -> Result<QueryOutput, QueryError> {
        let now = ophion_core::Clock::now_nanos(&ophion_core::SystemClock);
        let ctx = new_session(
            &self.limits,
            None,
            |signal| {
                Arc::new(MemoryTable {
                    signal,
                    batches: self.rows(tenant, signal),
                })
            },
            (&self.rollups, tenant, now),
            None,
        )
        .map_err(Error::into_query_error)?;
        run_sql(ctx, &self.limits, sql, params, &mut false)
            .await
            .map_err(Error::into_query_error)
    }

    fn is_empty(&self) -> bool {
        self.tables
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .all(Vec::is_empty)
    }
}

/// One tenant's rows of one signal, as the signal's query table.
#[derive(Debug)]
struct MemoryTable {
    signal: Signal,
    batches: Vec<RecordBatch>,
}

#[async_trait::async_trait]
impl TableProvider for MemoryTable {
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
        Ok(vec![
            TableProviderFilterPushDown::Unsupported;
            filters.len()
        ])
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        if self.batches.is_empty() {
            return empty_scan(&self.schema(), projection);
        }
        scan_buffer(self.batches.clone(), self.signal, projection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::cast::AsArray as _;
    use ophion_core::TelemetrySink as _;

    #[tokio::test]
    async fn answers_like_the_store_and_keeps_tenants_apart() {
        let tables = MemoryTables::default();
        let a = TenantId::new("a").expect("tenant");
        let b = TenantId::new("b").expect("tenant");
        let req = ophion_core::testing::Generator::new(1, 1_700_000_000_000_000_000).traces(50);
        let c = ophion_receiver::convert::traces(
            &req,
            &ophion_receiver::Limits::default(),
            ophion_receiver::convert::TimeWindow::ALL,
        );
        let spans = c.batch.expect("rows");
        let rows = spans.num_rows() as i64;
        let ids = spans
            .column_by_name("trace_id")
            .expect("trace_id")
            .as_fixed_size_binary()
            .value(0)
            .to_vec();
        let trace: [u8; 16] = ids.try_into().expect("16 bytes");
        tables
            .write(
                &a,
                TelemetryBatch::new(Signal::Traces, spans).expect("schema"),
            )
            .await
            .expect("write");
        let count = |t: TenantId| {
            let tables = tables.clone();
            async move {
                let out = tables
                    .query(&t, "SELECT count(*) AS n FROM spans", vec![])
                    .await
                    .expect("query");
                out.batches[0]
                    .column(0)
                    .as_primitive::<arrow_array::types::Int64Type>()
                    .value(0)
            }
        };
        assert_eq!(count(a.clone()).await, rows);
        assert_eq!(count(b.clone()).await, 0, "another tenant sees nothing");
        // The store's dialect: hex ids and bound parameters.
        let one = tables.trace(&a, trace).await.expect("trace");
        assert!(one.iter().map(RecordBatch::num_rows).sum::<usize>() >= 1);
        let bound = tables
            .query(
                &a,
                "SELECT count(*) FROM spans WHERE service_name = $s",
                vec![("s".into(), "no-such-service".into())],
            )
            .await
            .expect("bound");
        assert_eq!(
            bound.batches[0]
                .column(0)
                .as_primitive::<arrow_array::types::Int64Type>()
                .value(0),
            0
        );
        let refused = tables.query(&a, "DROP TABLE spans", vec![]).await;
        assert!(
            matches!(refused, Err(QueryError::NotReadOnly(_))),
            "{refused:?}"
        );
    }
}
