//! `/api/v1/dashboards`: saved dashboards of the caller's tenant
//! ([`crate::dashboards`]); viewers read, editors write.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::{auth::Principal, dashboards::spec_from};

fn missing(id: i64) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no dashboard {id}"),
    )
}

fn body(
    b: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Value, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {}", e.body_text())))
}

pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({ "dashboards": s.dashboards.list(&who.tenant).await? }),
    ))
}

pub(super) async fn get(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let d = s
        .dashboards
        .get(&who.tenant, id)
        .await?
        .ok_or_else(|| missing(id))?;
    Ok(Json(json!(d)))
}

pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let spec = spec_from(body(b)?).map_err(ApiError::bad_request)?;
    let id = s
        .dashboards
        .create(&who.tenant, &who.username, &spec)
        .await?;
    let d = s.dashboards.get(&who.tenant, id).await?;
    Ok((StatusCode::CREATED, Json(json!(d))).into_response())
}

pub(super) async fn update(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
    b: Result<Json<Value>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let spec = spec_from(body(b)?).map_err(ApiError::bad_request)?;
    if !s
        .dashboards
        .update(&who.tenant, id, &who.username, &spec)
        .await?
    {
        return Err(missing(id));
    }
    let d = s.dashboards.get(&who.tenant, id).await?;
    Ok(Json(json!(d)))
}

pub(super) async fn delete(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if s.dashboards.delete(&who.tenant, id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(missing(id))
    }
}
