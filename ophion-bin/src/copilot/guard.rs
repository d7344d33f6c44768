//! The SQL guard: what a query must be before the copilot (or an MCP
//! client) may run it.
//!
//! Parsed with DataFusion's own parser (`sqlparser`, its generic dialect):
//! exactly one statement, a query (`SELECT`, `WITH`, `VALUES`, set
//! operations of those), reading only the telemetry tables ([`TABLES`])
//! by their bare names or the query's own `WITH` names.
//! Table functions, qualified names (another catalog, schema or tenant),
//! `information_schema`, URLs and file paths as tables are refused.
//! Tenant isolation is not the guard's job: the read seam answers for the
//! caller's tenant only, whatever the text says; the guard narrows what
//! reaches it. Rows and time are capped by the read seam and by
//! [`Guarded::limit`].

use std::{collections::HashSet, ops::ControlFlow};

use sqlparser::{
    ast::{Statement, visit_relations},
    dialect::GenericDialect,
    parser::Parser,
};

/// The tables a guarded query may read: the telemetry and the store's
/// per-minute span rollups.
pub const TABLES: [&str; 6] = [
    "spans",
    "logs",
    "metrics",
    ophion_store::rollup::SPAN_MINUTES,
    ophion_store::rollup::SERVICE_MINUTES,
    ophion_store::rollup::SERVICE_EDGES,
];

/// Why a query was refused; the message is meant for the person (or
/// model) who wrote it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("query refused: {0}")]
pub struct Refused(pub String);

/// A query that passed the guard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Guarded {
    /// The query as written (trailing semicolons removed).
    pub sql: String,
    /// At most this many rows are returned.
    pub limit: usize,
}

/// Checks `sql`; `limit` caps the rows it may return.
pub fn check(sql: &str, limit: usize) -> Result<Guarded, Refused> {
    let statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| Refused(format!("not valid SQL: {e}")))?;
    let [statement] = statements.as_slice() else {
        return Err(Refused(format!(
            "exactly one statement is allowed, not {}",
            statements.len()
        )));
    };
    let Statement::Query(query) = statement else {
        return Err(Refused(
            "only a read-only query (SELECT or WITH) is allowed".into(),
        ));
    };
    // Names the query defines itself: `WITH x AS (...)`, at any depth.
    let mut defined: HashSet<String> = HashSet::new();
    collect_ctes(query, &mut defined);
    let mut refused = None;
    let _ = visit_relations(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .map(|p| p.to_string().to_lowercase())
            .collect();
        let bare = parts.join(".");
        let ok = parts.len() == 1
            && (TABLES.contains(&parts[0].trim_matches('"')) || defined.contains(&parts[0]));
        if ok {
            ControlFlow::Continue(())
        } else {
            refused = Some(bare);
            ControlFlow::Break(())
        }
    });
    if let Some(name) = refused {
        return Err(Refused(format!(
            "it reads `{name}`; only the tables {} may be read",
            TABLES.join(", ")
        )));
    }
    if has_table_function(statement) {
        return Err(Refused("table functions are not allowed".into()));
    }
    Ok(Guarded {
        sql: sql.trim().trim_end_matches(';').trim().to_owned(),
        limit,
    })
}

/// Adds the `WITH` names of `query` and of every query inside it.
fn collect_ctes(query: &sqlparser::ast::Query, into: &mut HashSet<String>) {
    let mut stack = vec![query.clone()];
    while let Some(q) = stack.pop() {
        if let Some(with) = &q.with {
            for cte in &with.cte_tables {
                into.insert(cte.alias.name.value.to_lowercase());
                stack.push((*cte.query).clone());
            }
        }
    }
}

/// Whether a `FROM` item is a function call (`read_csv(...)`,
/// `generate_series(...)`) rather than a table.
fn has_table_function(statement: &Statement) -> bool {
    use sqlparser::ast::{TableFactor, Visit, Visitor};
    struct Finder(bool);
    impl Visitor for Finder {
        type Break = ();
        fn pre_visit_table_factor(&mut self, t: &TableFactor) -> ControlFlow<()> {
            let call = match t {
                TableFactor::Table { args, .. } => args.is_some(),
                TableFactor::TableFunction { .. } | TableFactor::Function { .. } => true,
                _ => false,
            };
            if call {
                self.0 = true;
                return ControlFlow::Break(());
            }
            ControlFlow::Continue(())
        }
    }
    let mut f = Finder(false);
    let _ = statement.visit(&mut f);
    f.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_queries_of_the_telemetry_tables_pass() {
        for sql in [
            "SELECT count(*) FROM spans",
            "select service_name, avg(duration_ns) from spans group by 1;",
            "WITH e AS (SELECT * FROM spans WHERE status_code = 'error') SELECT count(*) FROM e",
            "SELECT body FROM logs WHERE body LIKE '%timeout%' UNION ALL SELECT name FROM spans",
            "SELECT s.name FROM spans s JOIN spans p ON s.parent_span_id = p.span_id",
            "SELECT * FROM (SELECT metric_name FROM metrics) m",
            "SELECT 1",
        ] {
            assert!(check(sql, 100).is_ok(), "{sql}: {:?}", check(sql, 100));
        }
    }

    #[test]
    fn everything_else_is_refused() {
        for sql in [
            "DROP TABLE spans",
            "DELETE FROM spans",
            "INSERT INTO spans VALUES (1)",
            "UPDATE spans SET name = 'x'",
            "COPY spans TO '/tmp/x.csv'",
            "COPY (SELECT * FROM spans) TO '/tmp/x.parquet'",
            "CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/etc/passwd'",
            "CREATE TABLE x AS SELECT * FROM spans",
            "SET datafusion.execution.batch_size = 1",
            "SELECT 1; SELECT 2",
            "SELECT * FROM spans; DROP TABLE spans",
            "SELECT * FROM other.spans",
            "SELECT * FROM datafusion.public.spans",
            "SELECT * FROM spans UNION SELECT * FROM tenant_b.spans",
            "SELECT * FROM information_schema.tables",
            "SELECT * FROM read_csv('/etc/passwd')",
            "SELECT * FROM '/etc/passwd'",
            "SELECT * FROM 'ophion://tenants/b/spans/x.parquet'",
            "SELECT * FROM generate_series(1, 10)",
            "EXPLAIN ANALYZE SELECT * FROM spans",
            "SHOW TABLES",
            "",
            "SELEC nonsense",
        ] {
            assert!(check(sql, 100).is_err(), "{sql} passed");
        }
    }
}
