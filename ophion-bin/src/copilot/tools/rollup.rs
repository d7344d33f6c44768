//! The RED tools (`list_services`, `service_red`, `top_operations`,
//! `service_calls`) answered from the store's per-minute rollups (see
//! [`crate::read::rollup`]). Exact counts; percentiles from latency
//! buckets, except when a range holds at most [`EXACT_REQUESTS`] requests:
//! then the exact query over `spans` runs instead, as it does when the
//! rollups do not cover the range or find no calls.

use ophion_core::TenantId;
use serde_json::Value;

use super::{QueryRecord, RangeArgs, ToolError, ToolOutput, Toolbox, required, service_evidence};
use crate::read::{
    Params, Range,
    rollup::{bind, calls, not_covered, red},
    text,
};

/// Requests up to which percentiles are computed exactly from `spans`.
const EXACT_REQUESTS: f64 = 10_000.0;

/// The sum of a `requests` column.
fn requests(q: &QueryRecord) -> f64 {
    let Some(i) = q.columns.iter().position(|c| c == "requests") else {
        return 0.0;
    };
    q.rows
        .iter()
        .filter_map(|r| r.get(i).and_then(Value::as_f64))
        .sum()
}

impl Toolbox {
    /// Tool `name` over `range` from the rollups; `None`: ask `spans`.
    pub(super) async fn red_from_rollups(
        &self,
        tenant: &TenantId,
        name: &str,
        a: &RangeArgs,
        range: Range,
    ) -> Result<Option<ToolOutput>, ToolError> {
        let mut p = Params::default();
        if bind(range, &mut p).is_none() {
            return Ok(None);
        }
        let limit = a.limit.unwrap_or(10).clamp(1, 1000);
        let mut evidence = Vec::new();
        let mut common = Vec::new();
        if let Some(s) = a.service.as_deref().filter(|s| !s.trim().is_empty()) {
            if name != "service_calls" {
                common.push("service_name = $service");
            }
            p.bind("service", text(s));
            evidence.push(service_evidence(s));
        }
        // (SQL, whether exact percentiles are wanted when few requests)
        let (sql, exact_if_few) = match name {
            "list_services" => (
                red(
                    "service_name AS service,",
                    "TRUE",
                    true,
                    true,
                    "GROUP BY service_name ORDER BY service_name",
                ),
                true,
            ),
            "service_red" => {
                required(name, &a.service, "service")?;
                let op = a.operation.as_deref().filter(|o| !o.trim().is_empty());
                if let Some(op) = op {
                    p.bind("operation", text(op));
                    common.push("(name = $operation OR http_route = $operation)");
                }
                let latency = a.latency != Some(false);
                (
                    red("", &common.join(" AND "), op.is_none(), latency, ""),
                    latency,
                )
            }
            "top_operations" => {
                let order = order_by(name, a)?;
                let common = if common.is_empty() {
                    "TRUE".to_owned()
                } else {
                    common.join(" AND ")
                };
                (
                    red(
                        "service_name AS service, name AS operation,",
                        &common,
                        true,
                        true,
                        &format!(
                            "GROUP BY service_name, name \
                             ORDER BY {order}, service, operation LIMIT {limit}"
                        ),
                    ),
                    true,
                )
            }
            "service_calls" => {
                required(name, &a.service, "service")?;
                (calls(callers(name, a)?), false)
            }
            _ => return Ok(None),
        };
        let q = match self.run(tenant, &sql, &p, 1000).await {
            Ok(q) => q,
            Err(ToolError::Read(e)) if not_covered(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        // Few requests: exact percentiles cost little. No calls: the join
        // over spans also finds calls between spans of other kinds.
        if (exact_if_few && requests(&q) <= EXACT_REQUESTS)
            || (name == "service_calls" && q.rows.is_empty())
        {
            return Ok(None);
        }
        Ok(Some(self.output(vec![q], evidence)))
    }
}

/// `top_operations`' `order_by` as an `ORDER BY` term.
pub(super) fn order_by(tool: &str, a: &RangeArgs) -> Result<&'static str, ToolError> {
    match a.order_by.as_deref().unwrap_or("p95") {
        "p95" => Ok("p95_ms DESC"),
        "errors" => Ok("errors DESC"),
        "requests" => Ok("requests DESC"),
        other => Err(ToolError::Arguments {
            tool: tool.into(),
            message: format!("order_by `{other}`: use p95, errors or requests"),
        }),
    }
}

/// `service_calls`' `direction`: whether callers are asked for.
pub(super) fn callers(tool: &str, a: &RangeArgs) -> Result<bool, ToolError> {
    match a.direction.as_deref() {
        Some("callers") => Ok(true),
        Some("callees") => Ok(false),
        _ => Err(ToolError::Arguments {
            tool: tool.into(),
            message: "`direction` is callers or callees".into(),
        }),
    }
}
