//! The Parquet scans' predicates, tidied once DataFusion has pushed its
//! filters down.
//!
//! A scan of the store's files gets its predicate twice. The table hands
//! the query's filters to the scan it plans (they prune files, row groups
//! and pages), and DataFusion keeps them above it in a `FilterExec`, since
//! only the scan's time bounds are applied exactly (`TelemetryTable`).
//! DataFusion's physical filter pushdown then moves that `FilterExec` into
//! the scan and conjoins its predicate with the one already there, so every
//! conjunct was pruned with, and evaluated on the rows, twice (`status_code
//! = 'error' AND status_code = 'error'` in `EXPLAIN`).
//!
//! DataFusion also tests every row group's bloom filters whenever the
//! session reads them, by evaluating the whole pruning predicate once per
//! row group, even when no column in it has one. Only
//! [`persist::BLOOM_COLUMN`] does. On the error-spans scan over 10M spans
//! that cost as much as the statistics and page index pruning together.
//!
//! [`ScanPredicates`], a physical optimizer rule that runs after the
//! pushdown, keeps each distinct conjunct of a scan's predicate once, in
//! its first place, and turns bloom filter reading off for scans whose
//! predicate does not name [`persist::BLOOM_COLUMN`]. Neither changes which
//! rows a scan returns: a conjunct repeated adds no condition (dynamic filters, which
//! a join or a TopK fills in while the query runs, are all kept), and a
//! bloom filter only ever prunes on an equality of its column.

use std::sync::Arc;

use datafusion::{
    common::tree_node::{Transformed, TreeNode},
    config::ConfigOptions,
    datasource::{
        physical_plan::{FileScanConfig, FileSource as _, ParquetSource},
        source::DataSourceExec,
    },
    error::Result,
    physical_expr::{
        DynamicFilterTracking, PhysicalExpr, conjunction, split_conjunction, utils::collect_columns,
    },
    physical_optimizer::PhysicalOptimizerRule,
    physical_plan::ExecutionPlan,
};

use crate::persist;

/// See the module's notes.
#[derive(Debug, Default)]
pub(crate) struct ScanPredicates;

impl PhysicalOptimizerRule for ScanPredicates {
    fn optimize(
        &self,
        plan: Arc<dyn ExecutionPlan>,
        _config: &ConfigOptions,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        replace_nodes(plan, tidy)
    }

    fn name(&self) -> &str {
        "ophion_scan_predicates"
    }

    fn schema_check(&self) -> bool {
        true
    }
}

/// `plan` with each node for which `replace` has a replacement replaced,
/// bottom up: the walk of the store's physical optimizer rules (this one
/// and `groupby`'s).
pub(crate) fn replace_nodes(
    plan: Arc<dyn ExecutionPlan>,
    replace: impl Fn(&Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>>,
) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| {
        Ok(match replace(&node) {
            Some(replaced) => Transformed::yes(replaced),
            None => Transformed::no(node),
        })
    })
    .map(|t| t.data)
}

/// `node` with its Parquet source's predicate tidied, or `None` when it is
/// not such a scan or there is nothing to change.
fn tidy(node: &Arc<dyn ExecutionPlan>) -> Option<Arc<dyn ExecutionPlan>> {
    let exec = node.downcast_ref::<DataSourceExec>()?;
    let config = exec.data_source().downcast_ref::<FileScanConfig>()?;
    let source = config.file_source.downcast_ref::<ParquetSource>()?;
    let mut tidied = source.clone();
    let mut changed = false;
    let mut tests_bloom_column = false;
    if let Some(predicate) = source.filter() {
        let conjuncts = split_conjunction(&predicate);
        let mut kept: Vec<Arc<dyn PhysicalExpr>> = Vec::with_capacity(conjuncts.len());
        for &c in &conjuncts {
            // A dynamic filter (a join's or a TopK's) is a placeholder
            // until the query runs: two may look alike now and differ then.
            let dynamic = DynamicFilterTracking::classify(c).contains_dynamic_filter();
            if dynamic || !kept.iter().any(|k| k.as_ref() == c.as_ref()) {
                kept.push(Arc::clone(c));
            }
        }
        if kept.len() < conjuncts.len() {
            tidied = tidied.with_predicate(conjunction(kept));
            changed = true;
        }
        tests_bloom_column = collect_columns(&predicate)
            .iter()
            .any(|c| c.name() == persist::BLOOM_COLUMN);
    }
    if source.table_parquet_options().global.bloom_filter_on_read && !tests_bloom_column {
        tidied = tidied.with_bloom_filter_on_read(false);
        changed = true;
    }
    if !changed {
        return None;
    }
    let mut config = config.clone();
    config.file_source = Arc::new(tidied);
    Some(DataSourceExec::from_data_source(config))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow_schema::{DataType, Field, Schema};
    use datafusion::{
        config::ConfigOptions,
        datasource::{
            physical_plan::{
                FileScanConfig, FileScanConfigBuilder, FileSource as _, ParquetSource,
            },
            source::DataSourceExec,
        },
        execution::object_store::ObjectStoreUrl,
        logical_expr::Operator,
        physical_expr::{
            PhysicalExpr, conjunction,
            expressions::{BinaryExpr, Column, lit},
            split_conjunction,
        },
        physical_optimizer::PhysicalOptimizerRule as _,
        physical_plan::ExecutionPlan,
    };

    use super::ScanPredicates;
    use crate::persist::BLOOM_COLUMN;

    fn eq(column: &str, index: usize, value: &str) -> Arc<dyn PhysicalExpr> {
        Arc::new(BinaryExpr::new(
            Arc::new(Column::new(column, index)),
            Operator::Eq,
            lit(value),
        ))
    }

    /// A scan with `predicate`, reading bloom filters, tidied by the rule:
    /// its predicate's conjuncts and whether it reads bloom filters.
    fn tidied(predicate: Arc<dyn PhysicalExpr>) -> (Vec<String>, bool) {
        let schema = Arc::new(Schema::new(vec![
            Field::new("status_code", DataType::Utf8View, true),
            Field::new(BLOOM_COLUMN, DataType::Binary, true),
        ]));
        let source = ParquetSource::new(schema)
            .with_bloom_filter_on_read(true)
            .with_predicate(predicate);
        let config =
            FileScanConfigBuilder::new(ObjectStoreUrl::local_filesystem(), Arc::new(source))
                .build();
        let plan: Arc<dyn ExecutionPlan> = DataSourceExec::from_data_source(config);
        let plan = ScanPredicates
            .optimize(plan, &ConfigOptions::default())
            .expect("optimize");
        let exec = plan.downcast_ref::<DataSourceExec>().expect("a scan");
        let config = exec
            .data_source()
            .downcast_ref::<FileScanConfig>()
            .expect("files");
        let source = config
            .file_source
            .downcast_ref::<ParquetSource>()
            .expect("parquet");
        let predicate = source.filter().expect("a predicate");
        (
            split_conjunction(&predicate)
                .iter()
                .map(|c| c.to_string())
                .collect(),
            source.table_parquet_options().global.bloom_filter_on_read,
        )
    }

    #[test]
    fn each_conjunct_is_kept_once_in_its_first_place() {
        let status = eq("status_code", 0, "error");
        let trace = eq(BLOOM_COLUMN, 1, "x");
        let (conjuncts, _) = tidied(conjunction([
            Arc::clone(&status),
            Arc::clone(&trace),
            Arc::clone(&status),
            eq("status_code", 0, "error"),
            Arc::clone(&trace),
        ]));
        assert_eq!(conjuncts, [status.to_string(), trace.to_string()]);
        // Different conditions on one column stay.
        let (conjuncts, _) = tidied(conjunction([
            eq("status_code", 0, "error"),
            eq("status_code", 0, "ok"),
        ]));
        assert_eq!(conjuncts.len(), 2, "{conjuncts:?}");
    }

    #[test]
    fn bloom_filters_are_read_only_for_the_bloom_column() {
        let (_, bloom) = tidied(eq("status_code", 0, "error"));
        assert!(!bloom, "no condition on {BLOOM_COLUMN}");
        let (_, bloom) = tidied(conjunction([
            eq("status_code", 0, "error"),
            eq(BLOOM_COLUMN, 1, "x"),
        ]));
        assert!(bloom, "a condition on {BLOOM_COLUMN}");
    }
}
