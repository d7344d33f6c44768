//! `/api/v1/alerts`, `/api/v1/channels`, `/api/v1/silences`,
//! `/api/v1/incidents`: the alerting service ([`crate::alerts`]) for the
//! caller's tenant. Viewers read; editors write rules, silences and
//! inhibition rules; admins manage channels. Channel secrets are never
//! returned.

use std::sync::Arc;

use axum::{
    Json,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde_json::{Value, json};

use super::{ApiError, ApiState};
use crate::{
    alerts::{
        model::{ChannelSpec, InhibitSpec, RuleSpec, SilenceSpec},
        store::{Kind, Stored, WriteError},
    },
    auth::Principal,
};

type Body = Result<Json<Value>, axum::extract::rejection::JsonRejection>;

fn parse<T: serde::de::DeserializeOwned>(b: Body) -> Result<T, ApiError> {
    let Json(v) =
        b.map_err(|e| ApiError::bad_request(format!("the body must be JSON: {}", e.body_text())))?;
    serde_json::from_value(v).map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))
}

fn write_error(e: WriteError) -> ApiError {
    match e {
        WriteError::Exists(n) => ApiError::new(
            StatusCode::CONFLICT,
            "exists",
            format!("`{n}` already exists"),
        ),
        WriteError::Missing => ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found"),
        WriteError::Store(e) => e.into(),
    }
}

fn missing() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "not found")
}

/// What the API shows of a stored object: its spec (secrets dropped by
/// the spec's own serialisation), id and extra columns.
fn show(kind: Kind, s: Stored) -> Value {
    let spec = match kind {
        Kind::Channel => serde_json::from_value::<ChannelSpec>(s.spec.clone())
            .map(|c| {
                let mut v = json!(c);
                v["has_secret"] = json!(c.secret.is_some());
                v
            })
            .unwrap_or(Value::Null),
        _ => s.spec.clone(),
    };
    let mut v = json!({"id": s.id});
    if let (Some(o), Some(spec)) = (v.as_object_mut(), spec.as_object()) {
        o.extend(spec.clone());
        o.extend(s.extra);
    }
    v
}

async fn list_of(
    s: &ApiState,
    who: &Principal,
    kind: Kind,
    key: &str,
) -> Result<Json<Value>, ApiError> {
    let items: Vec<Value> = s
        .alerts
        .store()
        .list(kind, Some(&who.tenant))
        .await?
        .into_iter()
        .map(|x| show(kind, x))
        .collect();
    Ok(Json(json!({ key: items })))
}

pub(super) async fn rules(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    list_of(&s, &who, Kind::Rule, "rules").await
}

pub(super) async fn rule(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    let r = s
        .alerts
        .store()
        .get(Kind::Rule, &who.tenant, id)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(show(Kind::Rule, r)))
}

async fn put_rule(
    s: &ApiState,
    who: &Principal,
    id: Option<i64>,
    spec: RuleSpec,
) -> Result<Response, ApiError> {
    s.alerts
        .check(&who.tenant, &spec)
        .await
        .map_err(ApiError::bad_request)?;
    let id = s
        .alerts
        .store()
        .put(
            Kind::Rule,
            &who.tenant,
            id,
            Some(spec.name.clone()),
            json!(spec),
            &who.username,
            (0, None),
        )
        .await
        .map_err(write_error)?;
    s.alerts.changed();
    let r = s
        .alerts
        .store()
        .get(Kind::Rule, &who.tenant, id)
        .await?
        .ok_or_else(missing)?;
    Ok((StatusCode::CREATED, Json(show(Kind::Rule, r))).into_response())
}

pub(super) async fn create_rule(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    put_rule(&s, &who, None, parse(b)?).await
}

pub(super) async fn update_rule(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
    b: Body,
) -> Result<Response, ApiError> {
    put_rule(&s, &who, Some(id), parse(b)?).await
}

async fn delete_of(
    s: &ApiState,
    who: &Principal,
    kind: Kind,
    id: i64,
) -> Result<Response, ApiError> {
    if !s.alerts.store().delete(kind, &who.tenant, id).await? {
        return Err(missing());
    }
    s.alerts.changed();
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(super) async fn delete_rule(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    delete_of(&s, &who, Kind::Rule, id).await
}

/// Creates or replaces rules by name (GitOps: `ophion alerts apply`).
pub(super) async fn apply(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Json<Value>, ApiError> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Bundle {
        #[serde(default)]
        rules: Vec<RuleSpec>,
        /// Also delete the rules not named here.
        #[serde(default)]
        prune: bool,
    }
    let bundle: Bundle = parse(b)?;
    for (i, r) in bundle.rules.iter().enumerate() {
        s.alerts
            .check(&who.tenant, r)
            .await
            .map_err(|e| ApiError::bad_request(format!("rule {} (`{}`): {e}", i + 1, r.name)))?;
    }
    let mut names = std::collections::HashSet::new();
    if let Some(r) = bundle.rules.iter().find(|r| !names.insert(r.name.as_str())) {
        return Err(ApiError::bad_request(format!(
            "rule `{}` is named twice",
            r.name
        )));
    }
    let existing = s.alerts.store().list(Kind::Rule, Some(&who.tenant)).await?;
    let mut deleted = 0;
    if bundle.prune {
        for e in &existing {
            if !bundle.rules.iter().any(|r| e.spec["name"] == json!(r.name)) {
                deleted += usize::from(
                    s.alerts
                        .store()
                        .delete(Kind::Rule, &who.tenant, e.id)
                        .await?,
                );
            }
        }
    }
    let (mut created, mut updated) = (0, 0);
    for r in bundle.rules {
        let id = existing
            .iter()
            .find(|e| e.spec["name"] == json!(r.name))
            .map(|e| e.id);
        if id.is_some() {
            updated += 1
        } else {
            created += 1
        }
        s.alerts
            .store()
            .put(
                Kind::Rule,
                &who.tenant,
                id,
                Some(r.name.clone()),
                json!(r),
                &who.username,
                (0, None),
            )
            .await
            .map_err(write_error)?;
    }
    s.alerts.changed();
    Ok(Json(
        json!({"created": created, "updated": updated, "deleted": deleted}),
    ))
}

pub(super) async fn alerts(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"alerts": s.alerts.store().alerts(&who.tenant).await?}),
    ))
}

pub(super) async fn history(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"history": s.alerts.store().history(&who.tenant, 1000).await?}),
    ))
}

pub(super) async fn channels(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    list_of(&s, &who, Kind::Channel, "channels").await
}

pub(super) async fn create_channel(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    let Json(raw) =
        b.map_err(|e| ApiError::bad_request(format!("the body must be JSON: {}", e.body_text())))?;
    let spec: ChannelSpec = serde_json::from_value(raw.clone())
        .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
    spec.validate().map_err(ApiError::bad_request)?;
    // Stored with its secret (the spec's serialisation leaves it out).
    let id = s
        .alerts
        .store()
        .put(
            Kind::Channel,
            &who.tenant,
            None,
            Some(spec.name.clone()),
            raw,
            &who.username,
            (0, None),
        )
        .await
        .map_err(write_error)?;
    let c = s
        .alerts
        .store()
        .get(Kind::Channel, &who.tenant, id)
        .await?
        .ok_or_else(missing)?;
    Ok((StatusCode::CREATED, Json(show(Kind::Channel, c))).into_response())
}

pub(super) async fn delete_channel(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    delete_of(&s, &who, Kind::Channel, id).await
}

pub(super) async fn test_channel(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    s.alerts
        .store()
        .get(Kind::Channel, &who.tenant, id)
        .await?
        .ok_or_else(missing)?;
    let now = crate::read::ts_text(crate::read::now_ns());
    let msg = json!({
        "status": "firing",
        "groupKey": "test",
        "groupLabels": {},
        "alerts": [{"status": "firing", "labels": {"alertname": "OphionTest", "severity": "info"}, "annotations": {"summary": "A test notification from Ophion"}, "startsAt": now, "endsAt": "0001-01-01T00:00:00Z", "generatorURL": s.alerts.config().external_url, "fingerprint": "0000000000000000", "value": 0}],
        "incident": {"id": null, "title": "Test notification", "priority": 0, "services": [], "link": s.alerts.config().external_url},
    });
    let d = s
        .alerts
        .store()
        .enqueue(
            &who.tenant,
            id,
            format!("test-{}", crate::read::now_ns()),
            "firing",
            msg,
        )
        .await?;
    Ok((StatusCode::ACCEPTED, Json(json!({"delivery_id": d}))).into_response())
}

pub(super) async fn deliveries(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    s.alerts
        .store()
        .get(Kind::Channel, &who.tenant, id)
        .await?
        .ok_or_else(missing)?;
    Ok(Json(
        json!({"deliveries": s.alerts.store().deliveries(&who.tenant, id, 200).await?}),
    ))
}

pub(super) async fn silences(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    list_of(&s, &who, Kind::Silence, "silences").await
}

pub(super) async fn create_silence(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    let mut spec: SilenceSpec = parse(b)?;
    let (start, end, every) = spec.window().map_err(ApiError::bad_request)?;
    // Relative times (`now`, `now+2h`) are fixed when the silence is made.
    let text = |ns| {
        crate::read::ts_text(ns)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    spec.starts_at = text(start);
    spec.ends_at = text(end);
    let id = s
        .alerts
        .store()
        .put(
            Kind::Silence,
            &who.tenant,
            None,
            None,
            json!(spec),
            &who.username,
            (end, every),
        )
        .await
        .map_err(write_error)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"id": id, "silenceID": id.to_string()})),
    )
        .into_response())
}

pub(super) async fn delete_silence(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    delete_of(&s, &who, Kind::Silence, id).await
}

pub(super) async fn inhibitions(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    list_of(&s, &who, Kind::Inhibition, "inhibitions").await
}

pub(super) async fn create_inhibition(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    b: Body,
) -> Result<Response, ApiError> {
    let spec: InhibitSpec = parse(b)?;
    for m in spec.source_matchers.iter().chain(&spec.target_matchers) {
        m.validate().map_err(ApiError::bad_request)?;
    }
    if spec.source_matchers.is_empty() || spec.target_matchers.is_empty() {
        return Err(ApiError::bad_request(
            "an inhibition rule needs source_matchers and target_matchers",
        ));
    }
    let id = s
        .alerts
        .store()
        .put(
            Kind::Inhibition,
            &who.tenant,
            None,
            None,
            json!(spec),
            &who.username,
            (0, None),
        )
        .await
        .map_err(write_error)?;
    Ok((StatusCode::CREATED, Json(json!({"id": id}))).into_response())
}

pub(super) async fn delete_inhibition(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Response, ApiError> {
    delete_of(&s, &who, Kind::Inhibition, id).await
}

pub(super) async fn incidents(
    State(s): State<Arc<ApiState>>,
    who: Principal,
) -> Result<Json<Value>, ApiError> {
    Ok(Json(
        json!({"incidents": s.alerts.incidents(&who.tenant).await?}),
    ))
}

pub(super) async fn incident(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    Path(id): Path<i64>,
) -> Result<Json<Value>, ApiError> {
    s.alerts
        .incident(&who.tenant, id)
        .await?
        .map(Json)
        .ok_or_else(missing)
}
