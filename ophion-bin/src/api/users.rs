//! Sign-in, sessions, users, tenants and the audit log.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, Query, State, rejection::JsonRejection},
    http::StatusCode,
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{ApiError, ApiState, access::Client};
use crate::auth::{Principal, Role, UserPatch, audit};

fn body<T>(b: Result<Json<T>, JsonRejection>, shape: &str) -> Result<T, ApiError> {
    b.map(|Json(v)| v).map_err(|e| {
        ApiError::bad_request(format!("the body must be JSON {shape}: {}", e.body_text()))
    })
}

#[derive(Deserialize)]
pub(super) struct Login {
    username: String,
    password: String,
    /// The user's tenant; needed when the name is not the default
    /// tenant's and exists in several tenants.
    tenant: Option<String>,
}

pub(super) async fn login(
    State(s): State<Arc<ApiState>>,
    Client(from): Client,
    b: Result<Json<Login>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let l = body(
        b,
        r#"{"username": "...", "password": "...", "tenant": "... (optional)"}"#,
    )?;
    let tokens = s
        .auth
        .login(l.tenant.as_deref(), &l.username, &l.password, &from)
        .await?;
    Ok(Json(json!(tokens)))
}

#[derive(Deserialize)]
pub(super) struct Refresh {
    refresh_token: String,
}

pub(super) async fn refresh(
    State(s): State<Arc<ApiState>>,
    Client(from): Client,
    b: Result<Json<Refresh>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let r = body(b, r#"{"refresh_token": "..."}"#)?;
    Ok(Json(json!(s.auth.refresh(&r.refresh_token, &from).await?)))
}

#[derive(Deserialize, Default)]
pub(super) struct Logout {
    refresh_token: Option<String>,
}

pub(super) async fn logout(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    b: Option<Json<Logout>>,
) -> Result<StatusCode, ApiError> {
    let refresh = b.and_then(|Json(l)| l.refresh_token);
    s.auth.logout(&p, refresh.as_deref()).await?;
    s.auth
        .audit(event(&p, "logout", &p.username, &from, ""))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

fn event(
    p: &Principal,
    action: &'static str,
    target: &str,
    from: &str,
    detail: &str,
) -> audit::Event {
    audit::Event {
        tenant: p.tenant.as_str().to_owned(),
        actor: p.username.clone(),
        action,
        target: target.to_owned(),
        source: from.to_owned(),
        outcome: "ok",
        detail: detail.to_owned(),
    }
}

pub(super) async fn me(p: Principal) -> Json<Value> {
    Json(json!({
        "id": p.user_id,
        "username": p.username,
        "tenant": p.tenant.as_str(),
        "role": p.role,
    }))
}

#[derive(Deserialize)]
pub(super) struct PasswordChange {
    current_password: String,
    new_password: String,
}

pub(super) async fn change_password(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    b: Result<Json<PasswordChange>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let c = body(b, r#"{"current_password": "...", "new_password": "..."}"#)?;
    s.auth
        .change_password(&p, &c.current_password, &c.new_password)
        .await?;
    s.auth
        .audit(event(&p, "password_change", &p.username, &from, ""))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn list_users(
    State(s): State<Arc<ApiState>>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "users": s.auth.users(&p.tenant).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUser {
    username: String,
    password: String,
    role: Role,
}

pub(super) async fn create_user(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    b: Result<Json<NewUser>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let u = body(
        b,
        r#"{"username": "...", "password": "...", "role": "viewer|editor|admin"}"#,
    )?;
    let user = s
        .auth
        .create_user(&p.tenant, &u.username, &u.password, u.role)
        .await?;
    s.auth
        .audit(event(
            &p,
            "user_create",
            &u.username,
            &from,
            &format!("role {}", u.role.as_str()),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(json!(user))))
}

pub(super) async fn update_user(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    Path(id): Path<i64>,
    b: Result<Json<UserPatch>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let patch = body(
        b,
        r#"{"role": "viewer|editor|admin", "disabled": true|false, "password": "..."}"#,
    )?;
    let mut what = Vec::new();
    if let Some(r) = patch.role {
        what.push(format!("role {}", r.as_str()));
    }
    if let Some(d) = patch.disabled {
        what.push(if d { "disabled" } else { "enabled" }.to_owned());
    }
    if patch.password.is_some() {
        what.push("password reset".to_owned());
    }
    let user = s.auth.update_user(&p.tenant, id, patch).await?;
    s.auth
        .audit(event(
            &p,
            "user_update",
            &user.username,
            &from,
            &what.join(", "),
        ))
        .await;
    Ok(Json(json!(user)))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewTenant {
    id: String,
    name: String,
    admin_username: String,
    admin_password: String,
}

pub(super) async fn create_tenant(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    b: Result<Json<NewTenant>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let t = body(
        b,
        r#"{"id": "...", "name": "...", "admin_username": "...", "admin_password": "..."}"#,
    )?;
    let admin = s
        .auth
        .create_tenant(&t.id, &t.name, &t.admin_username, &t.admin_password)
        .await?;
    s.auth
        .audit(event(
            &p,
            "tenant_create",
            &t.id,
            &from,
            &format!("first admin {}", t.admin_username),
        ))
        .await;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": t.id, "name": t.name, "admin": admin})),
    ))
}

pub(super) async fn rotate_signing_key(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
) -> Result<StatusCode, ApiError> {
    s.auth.rotate_signing_key().await?;
    s.auth
        .audit(event(
            &p,
            "signing_key_rotate",
            "signing key",
            &from,
            "every session ended",
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub(super) struct AuditQuery {
    action: Option<String>,
    actor: Option<String>,
    outcome: Option<String>,
    from: Option<String>,
    to: Option<String>,
    limit: Option<usize>,
}

pub(super) async fn audit_log(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    let range = if q.from.is_some() || q.to.is_some() {
        Some(super::time::resolve(q.from.as_deref(), q.to.as_deref())?)
    } else {
        None
    };
    let filter = audit::Filter {
        action: q.action,
        actor: q.actor,
        outcome: q.outcome,
        from_ms: range.map(|r| r.from / 1_000_000),
        to_ms: range.map(|r| r.to / 1_000_000),
        limit: q.limit.unwrap_or(100).clamp(1, 10_000),
    };
    let records = s.auth.audit_records(&p.tenant, filter).await?;
    Ok(Json(json!({ "records": records })))
}

pub(super) async fn audit_verify(
    State(s): State<Arc<ApiState>>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    let v = s.auth.audit_verify(&p.tenant).await?;
    Ok(Json(json!({
        "ok": v.broken_at.is_none(),
        "records": v.records,
        "broken_at": v.broken_at,
        "reason": v.reason,
    })))
}

pub(super) async fn list_keys(
    State(s): State<Arc<ApiState>>,
    p: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(json!({ "keys": s.auth.list_keys(&p.tenant).await? })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewKey {
    name: String,
}

pub(super) async fn create_key(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    b: Result<Json<NewKey>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let k = body(b, r#"{"name": "..."}"#)?;
    let (info, secret) = s.auth.create_key(&p.tenant, &k.name).await?;
    s.auth
        .audit(event(
            &p,
            "key_create",
            &format!("{} ({})", info.name, info.prefix),
            &from,
            "",
        ))
        .await;
    let mut v = json!(info);
    v["key"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(v)))
}

pub(super) async fn revoke_key(
    State(s): State<Arc<ApiState>>,
    p: Principal,
    Client(from): Client,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let info = s.auth.revoke_key(&p.tenant, id).await?;
    s.auth
        .audit(event(
            &p,
            "key_revoke",
            &format!("{} ({})", info.name, info.prefix),
            &from,
            "",
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
