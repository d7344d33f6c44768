//! `POST /api/v1/ai/analyze` and `GET /api/v1/ai/insights`: thin handlers
//! over the AI service ([`crate::ai::AiService`]).

use std::sync::Arc;

use axum::{
    Json,
    extract::{Query, State},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, time::RangeParams};
use crate::{ai::AiError, auth::Principal, read::ts_text};

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
