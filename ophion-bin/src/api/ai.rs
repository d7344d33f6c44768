//! `POST /api/v1/ai/analyze`, `GET /api/v1/ai/insights` and
//! `GET /api/v1/ai/forecast`: thin handlers over the AI service
//! ([`crate::ai::AiService`]).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, time::RangeParams};
use crate::{
    ai::{AiError, forecast::ForecastRequest},
    auth::Principal,
    read::ts_text,
};

impl From<AiError> for ApiError {
    fn from(e: AiError) -> Self {
        match e {
            AiError::Read(r) => r.into(),
            AiError::Metadata(m) => m.into(),
        }
    }
}

/// The body of `POST /api/v1/ai/analyze`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AnalyzeRequest {
    service: Option<String>,
    trace_id: Option<String>,
    start: String,
    end: String,
}

pub(super) async fn analyze(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Json(req): Json<AnalyzeRequest>,
) -> Result<Json<Value>, ApiError> {
    let range = RangeParams {
        from: Some(req.start),
        to: Some(req.end),
    }
    .resolve()?;
    let a =
        s.ai.analyze(
            &who.tenant,
            range,
            req.service.as_deref(),
            req.trace_id.as_deref(),
        )
        .await?;
    Ok(Json(a.to_json()))
}

/// `?service=` for insights.
#[derive(Debug, Default, Deserialize)]
pub(super) struct InsightParams {
    service: Option<String>,
}

pub(super) async fn insights(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<InsightParams>,
) -> Result<Json<Value>, ApiError> {
    let range = RangeParams {
        from: Some("now-15m".into()),
        to: Some("now".into()),
    }
    .resolve()?;
    let out =
        s.ai.insights(&who.tenant, range, q.service.as_deref())
            .await?;
    Ok(Json(
        json!({ "insights": out, "from": ts_text(range.from), "to": ts_text(range.to) }),
    ))
}

/// `GET /api/v1/ai/forecast` parameters.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ForecastParams {
    series: String,
    service: Option<String>,
    operation: Option<String>,
    from: Option<String>,
    to: Option<String>,
    horizon: Option<usize>,
}

pub(super) async fn forecast(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<ForecastParams>,
) -> Result<Json<Value>, ApiError> {
    let history = RangeParams {
        from: Some(q.from.unwrap_or_else(|| "now-24h".into())),
        to: Some(q.to.unwrap_or_else(|| "now".into())),
    }
    .resolve()?;
    let req = ForecastRequest {
        series: q.series,
        service: q.service.filter(|v| !v.is_empty()),
        operation: q.operation.filter(|v| !v.is_empty()),
        history,
        horizon: q.horizon.unwrap_or(60),
    };
    Ok(Json(s.ai.forecast(&who.tenant, &req).await?))
}
