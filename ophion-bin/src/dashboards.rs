//! Saved dashboards, per tenant, in the metadata database (their own
//! table, by their own migration). A dashboard is a title and panels, each
//! a title, a chart kind and either one read-only query over `$from`/`$to`
//! that passes the copilot's SQL guard when saved, or a metric as the
//! builder states it (name, aggregation, group-by, service: what
//! `GET /api/v1/metrics/query` draws). The copilot writes them
//! ("dashboard for checkout"); the web dashboard draws and edits them.

use ophion_core::TenantId;
use ophion_store::metadata::OptionalExtension as _;
use ophion_store::metadata::{Metadata, Migrations};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    copilot::guard,
    read::{attribute_key, metrics::Agg},
};

/// The table, in order. Never edit a released migration.
const MIGRATIONS: Migrations = Migrations {
    sqlite: &["CREATE TABLE dashboards (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        tenant_id TEXT NOT NULL,
        title TEXT NOT NULL,
        spec TEXT NOT NULL,
        created_by TEXT NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE INDEX dashboards_by_tenant ON dashboards (tenant_id);"],
    postgres: None,
};

/// Chart kinds a panel may have.
pub const CHARTS: [&str; 5] = ["timeseries", "stat", "table", "logs", "bar"];

/// Most panels on one dashboard.
pub const MAX_PANELS: usize = 50;

/// One panel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Panel {
    /// Title.
    pub title: String,
    /// One of [`CHARTS`].
    pub chart: String,
    /// One read-only query; `$from` and `$to` are the dashboard's range
    /// (empty when the panel is a `metric`).
    #[serde(default)]
    pub sql: String,
    /// A metric built without SQL, instead of `sql`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<MetricPanel>,
}

/// A panel's metric, as the metrics explorer picks it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricPanel {
    /// Metric name.
    pub name: String,
    /// `avg`, `sum`, `min`, `max`, `rate`, `p50`, `p95` or `p99`; absent:
    /// what the metric's type calls for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aggregation: Option<String>,
    /// Attribute keys the series are split by.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// One service only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl MetricPanel {
    fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("the metric needs a name".into());
        }
        if let Some(a) = &self.aggregation {
            Agg::parse(a).map_err(|e| e.to_string())?;
        }
        for k in &self.group_by {
            attribute_key(k).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A dashboard as sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// Title.
    pub title: String,
    /// The service it is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// Panels, in order.
    pub panels: Vec<Panel>,
}

impl Spec {
    /// Checks a spec: a title, 1 to [`MAX_PANELS`] panels with known chart
    /// kinds, each with SQL the guard accepts or a valid metric (not both).
    pub fn validate(&self) -> Result<(), String> {
        if self.title.trim().is_empty() || self.title.len() > 200 {
            return Err("the title must hold 1 to 200 characters".into());
        }
        if self.panels.is_empty() || self.panels.len() > MAX_PANELS {
            return Err(format!("a dashboard has 1 to {MAX_PANELS} panels"));
        }
        for (i, p) in self.panels.iter().enumerate() {
            if !CHARTS.contains(&p.chart.as_str()) {
                return Err(format!(
                    "panel {}: chart `{}` is not one of {}",
                    i + 1,
                    p.chart,
                    CHARTS.join(", ")
                ));
            }
            match (&p.metric, p.sql.trim().is_empty()) {
                (Some(m), true) => m.validate(),
                (None, false) => guard::check(&p.sql, 10_000)
                    .map(drop)
                    .map_err(|e| e.to_string()),
                (Some(_), false) => Err("give either sql or metric, not both".into()),
                (None, true) => Err("give sql or a metric".into()),
            }
            .map_err(|e| format!("panel {}: {e}", i + 1))?;
        }
        Ok(())
    }
}

/// A stored dashboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dashboard {
    /// Id.
    pub id: i64,
    /// The spec.
    #[serde(flatten)]
    pub spec: Spec,
    /// Who saved it last.
    pub created_by: String,
    /// When, seconds since the epoch.
    pub updated_at: i64,
}

/// The dashboards of every tenant.
#[derive(Debug, Clone)]
pub struct Dashboards {
    metadata: Metadata,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn row(
    r: &ophion_store::metadata::sql::Row,
) -> ophion_store::metadata::sql::Result<(i64, String, String, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn parse((id, spec, by, at): (i64, String, String, i64)) -> Option<Dashboard> {
    Some(Dashboard {
        id,
        spec: serde_json::from_str(&spec).ok()?,
        created_by: by,
        updated_at: at,
    })
}

impl Dashboards {
    /// Migrates the table.
    pub async fn open(metadata: Metadata) -> Result<Self, ophion_store::Error> {
        metadata.migrate("dashboards", &MIGRATIONS).await?;
        Ok(Self { metadata })
    }

    /// `tenant`'s dashboards, by id.
    pub async fn list(&self, tenant: &TenantId) -> Result<Vec<Dashboard>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        let rows = self
            .metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, spec, created_by, updated_at FROM dashboards WHERE tenant_id = ?1 ORDER BY id",
                )?;
                st.query_map([&t], row)?.collect::<Result<Vec<_>, _>>()
            })
            .await?;
        Ok(rows.into_iter().filter_map(parse).collect())
    }

    /// One of `tenant`'s dashboards.
    pub async fn get(
        &self,
        tenant: &TenantId,
        id: i64,
    ) -> Result<Option<Dashboard>, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        let r = self
            .metadata
            .call(move |c| {
                c.query_row(
                    "SELECT id, spec, created_by, updated_at FROM dashboards WHERE tenant_id = ?1 AND id = ?2",
                    (&t, id),
                    row,
                )
                .optional()
            })
            .await?;
        Ok(r.and_then(parse))
    }

    /// Saves a new dashboard (the spec validated before); its id.
    pub async fn create(
        &self,
        tenant: &TenantId,
        by: &str,
        spec: &Spec,
    ) -> Result<i64, ophion_store::Error> {
        let (t, by, title) = (
            tenant.as_str().to_owned(),
            by.to_owned(),
            spec.title.clone(),
        );
        let json = serde_json::to_string(spec).unwrap_or_default();
        self.metadata
            .call(move |c| {
                c.query_row(
                    "INSERT INTO dashboards (tenant_id, title, spec, created_by, updated_at) VALUES (?1, ?2, ?3, ?4, ?5) RETURNING id",
                    (&t, &title, &json, &by, now_secs()),
                    |r| r.get(0),
                )
            })
            .await
    }

    /// Replaces one of `tenant`'s dashboards; whether it existed.
    pub async fn update(
        &self,
        tenant: &TenantId,
        id: i64,
        by: &str,
        spec: &Spec,
    ) -> Result<bool, ophion_store::Error> {
        let (t, by, title) = (
            tenant.as_str().to_owned(),
            by.to_owned(),
            spec.title.clone(),
        );
        let json = serde_json::to_string(spec).unwrap_or_default();
        self.metadata
            .call(move |c| {
                Ok(c.execute(
                    "UPDATE dashboards SET title = ?3, spec = ?4, created_by = ?5, updated_at = ?6 WHERE tenant_id = ?1 AND id = ?2",
                    (&t, id, &title, &json, &by, now_secs()),
                )? == 1)
            })
            .await
    }

    /// Deletes one of `tenant`'s dashboards; whether it existed.
    pub async fn delete(&self, tenant: &TenantId, id: i64) -> Result<bool, ophion_store::Error> {
        let t = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                Ok(c.execute(
                    "DELETE FROM dashboards WHERE tenant_id = ?1 AND id = ?2",
                    (&t, id),
                )? == 1)
            })
            .await
    }
}

/// The spec in a request body, checked.
pub fn spec_from(body: Value) -> Result<Spec, String> {
    let spec: Spec = serde_json::from_value(body).map_err(|e| {
        format!(
            "a dashboard is {{\"title\", \"panels\": [{{\"title\", \"chart\", \"sql\" or \"metric\": {{\"name\", \"aggregation\", \"group_by\", \"service\"}}}}]}}: {e}"
        )
    })?;
    spec.validate()?;
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(panel: Value) -> Result<Spec, String> {
        spec_from(json!({"title": "t", "panels": [panel]}))
    }

    #[test]
    fn a_panel_is_sql_or_a_built_metric_never_both_or_neither() {
        let built = one(json!({"title": "p95 of rpc", "chart": "timeseries",
            "metric": {"name": "rpc.server.duration", "aggregation": "p95", "group_by": ["rpc.method"], "service": "cart"}}))
        .expect("a built metric panel");
        let m = built.panels[0].metric.as_ref().expect("metric");
        assert_eq!(
            (m.aggregation.as_deref(), m.group_by.as_slice()),
            (Some("p95"), &["rpc.method".to_owned()][..])
        );
        // Stored and read back the same; no empty sql written out as a query.
        let back: Spec = serde_json::from_value(json!(built)).expect("round trip");
        assert_eq!(back, built);
        assert!(
            one(json!({"title": "n", "chart": "stat", "metric": {"name": "queue.depth"}})).is_ok()
        );
        let err = |panel: Value| one(panel).expect_err("refused");
        assert!(err(json!({"title": "x", "chart": "timeseries", "metric": {"name": "m", "aggregation": "median"}})).contains("aggregation `median`"));
        assert!(err(json!({"title": "x", "chart": "timeseries", "metric": {"name": "m", "group_by": ["a'b"]}})).contains("panel 1"));
        assert!(
            err(json!({"title": "x", "chart": "timeseries", "metric": {"name": " "}}))
                .contains("name")
        );
        assert!(err(json!({"title": "x", "chart": "timeseries", "metric": {"name": "m"}, "sql": "SELECT 1"})).contains("not both"));
        assert!(err(json!({"title": "x", "chart": "timeseries"})).contains("sql or a metric"));
        assert!(
            err(
                json!({"title": "x", "chart": "timeseries", "metric": {"name": "m", "step": "1m"}})
            )
            .contains("step")
        );
    }
}
