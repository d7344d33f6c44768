//! `/api/v1/playbooks` and `/api/v1/heal/runs`: the healing service
//! ([`crate::heal`]) for the caller's tenant. Viewers read; editors write
//! playbooks, start runs by hand, approve and reject. A playbook refused
//! by its checks is audited, like every run and decision.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::{
    alerts::model::Labels,
    auth::Principal,
    heal::{HealError, Trigger, model::PlaybookSpec},
};

type Body = Result<Json<Value>, axum::extract::rejection::JsonRejection>;

fn body(b: Body) -> Result<Value, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::bad_request(format!("the body must be JSON: {}", e.body_text())))
}

impl From<HealError> for ApiError {
    fn from(e: HealError) -> Self {
        match e {
            HealError::Invalid(m) => ApiError::bad_request(m),
            HealError::NotFound(m) => ApiError::new(StatusCode::NOT_FOUND, "not_found", m),
            HealError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, "conflict", m),
            HealError::Store(s) => s.into(),
        }
    }
}

pub(super) async fn list(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    let all = s.heal.store().playbooks(Some(&who.tenant)).await?;
    Ok(Json(
        json!({ "playbooks": all.iter().map(|p| p.to_json()).collect::<Vec<_>>() }),
    ))
}

pub(super) async fn get(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    s.heal
        .store()
        .playbook(&who.tenant, &name)
        .await?
        .map(|p| Json(p.to_json()))
        .ok_or_else(|| HealError::NotFound(format!("no playbook `{name}`")).into())
}

/// Checks, stores and audits a playbook (a refusal is audited too).
async fn save(
    s: &ApiState,
    who: &Principal,
    v: Value,
    name: Option<&str>,
) -> Result<Value, ApiError> {
    let checked = serde_json::from_value::<PlaybookSpec>(v)
        .map_err(|e| format!("invalid playbook: {e}"))
        .and_then(|spec| match name {
            Some(n) if n != spec.name => {
                Err(format!("the body names `{}`, the URL `{n}`", spec.name))
            }
            _ => s.heal.check(&spec).map(|()| spec),
        });
    let target = format!("playbook {}", name.unwrap_or(""));
    let spec = match checked {
        Ok(spec) => spec,
        Err(why) => {
            s.heal
                .audit(
                    &who.tenant,
                    &who.username,
                    "playbook_put",
                    target,
                    "denied",
                    why.clone(),
                )
                .await;
            return Err(ApiError::bad_request(why));
        }
    };
    let version = s
        .heal
        .store()
        .put_playbook(&who.tenant, &spec.name, &json!(spec), &who.username)
        .await?;
    s.heal
        .audit(
            &who.tenant,
            &who.username,
            "playbook_put",
            format!("playbook {}", spec.name),
            "ok",
            format!("version {version}"),
        )
        .await;
    Ok(json!({"name": spec.name, "version": version}))
}

pub(super) async fn create(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    let v = save(&s, &who, body(b)?, None).await?;
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(super) async fn replace(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(name): Path<String>,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(save(&s, &who, body(b)?, Some(&name)).await?))
}

pub(super) async fn delete(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    if !s.heal.store().delete_playbook(&who.tenant, &name).await? {
        return Err(HealError::NotFound(format!("no playbook `{name}`")).into());
    }
    s.heal
        .audit(
            &who.tenant,
            &who.username,
            "playbook_delete",
            format!("playbook {name}"),
            "ok",
            String::new(),
        )
        .await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `?state=&limit=` of the run list.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RunParams {
    state: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn runs(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Query(q): Query<RunParams>,
) -> Result<Json<Value>, ApiError> {
    let runs = s
        .heal
        .store()
        .runs(
            Some(&who.tenant),
            q.state.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 1000),
        )
        .await?;
    Ok(Json(
        json!({ "runs": runs.into_iter().map(|r| r.1).collect::<Vec<_>>() }),
    ))
}

pub(super) async fn run(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    s.heal
        .store()
        .run(&who.tenant, id)
        .await?
        .map(Json)
        .ok_or_else(|| HealError::NotFound(format!("no run {id}")).into())
}

/// A run started by hand.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Start {
    playbook: String,
    #[serde(default)]
    labels: Labels,
    #[serde(default)]
    value: f64,
    /// Only show what would run.
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn start(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    let req: Start = serde_json::from_value(body(b)?).map_err(|e| {
        ApiError::bad_request(format!(
            "a run is {{playbook, labels, value, dry_run}}: {e}"
        ))
    })?;
    let id = s
        .heal
        .trigger(
            &who.tenant,
            &req.playbook,
            Trigger {
                source: "manual",
                labels: req.labels,
                value: req.value,
                fingerprint: None,
                by: Some(who.username.clone()),
                dry_run: req.dry_run,
            },
        )
        .await?;
    let run = s
        .heal
        .store()
        .run(&who.tenant, id)
        .await?
        .unwrap_or(Value::Null);
    Ok((StatusCode::CREATED, Json(run)).into_response())
}

async fn decide(
    s: &ApiState,
    who: &Principal,
    id: i64,
    approve: bool,
) -> Result<Json<Value>, ApiError> {
    s.heal
        .decide(&who.tenant, id, &who.username, approve)
        .await?;
    Ok(Json(
        s.heal
            .store()
            .run(&who.tenant, id)
            .await?
            .unwrap_or(Value::Null),
    ))
}

pub(super) async fn approve(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &who, id, true).await
}

pub(super) async fn reject(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    decide(&s, &who, id, false).await
}
