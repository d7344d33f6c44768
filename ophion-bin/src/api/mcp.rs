//! The copilot's tools over HTTP: `GET /api/v1/ai/tools` and
//! `POST /api/v1/ai/tools/{name}` (what `ophion mcp` forwards to), and the
//! MCP streamable HTTP endpoint `/api/v1/mcp`. Every request passed the
//! access layer; the tenant the tools read is the caller's.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Request, State},
    response::Response,
};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::{
    auth::Principal,
    copilot::{mcp, tools},
};

pub(super) async fn list(State(_): State<Arc<ApiState>>, _who: Principal) -> Json<Value> {
    let tools: Vec<Value> = tools::SPECS
        .iter()
        .map(|s| json!({"name": s.name, "description": s.description, "parameters": (s.parameters)()}))
        .collect();
    Json(json!({ "tools": tools }))
}

pub(super) async fn call(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(name): Path<String>,
    body: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(args) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be the tool's arguments as a JSON object: {}",
            e.body_text()
        ))
    })?;
    let out = s
        .copilot
        .tools()
        .call(&who.tenant, &name, &args)
        .await
        .map_err(|e| match e {
            tools::ToolError::Read(r) => r.into(),
            tools::ToolError::Unknown(_) => ApiError::new(
                axum::http::StatusCode::NOT_FOUND,
                "not_found",
                e.to_string(),
            ),
            other => ApiError::new(
                axum::http::StatusCode::BAD_REQUEST,
                "refused",
                other.to_string(),
            ),
        })?;
    Ok(Json(mcp::output_json(&out)))
}

/// Streamable HTTP MCP: the request goes to the SDK's service with the
/// caller's tenant in its extensions.
pub(super) async fn serve(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    mut request: Request,
) -> Response {
    request.extensions_mut().insert(who.tenant.clone());
    s.mcp.handle(request).await
}
