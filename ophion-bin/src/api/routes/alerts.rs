//! Alerting's routes: rules, alerts, channels, silences, inhibition rules
//! and incidents; part of the one route table ([`super::table`]).

use axum::http::Method;
use serde_json::json;

use super::Route;
use crate::{
    api::{Doc, alerts as a},
    auth::Permission,
};

/// The routes of this part.
pub(super) fn table() -> Vec<Route> {
    let id = |d: Doc| d.path("id", "integer", "");
    vec![
        Route::new(Method::GET, "/api/v1/alerts/rules", Permission::Read, a::rules,
            Doc::new("Alert rules of the caller's tenant (viewer), with their health and last evaluation").ok(200, "{rules: [...]}")),
        Route::new(Method::POST, "/api/v1/alerts/rules", Permission::Edit, a::create_rule,
            Doc::new("Create an alert rule (editor)")
            .description("`kind` sql: `sql` is one read-only query returning one row per group, a numeric `value` column (or exactly one numeric column) and label columns; `$from`/`$to` are the last `range`. `anomaly`: `service` and `signal` (errors, latency, rate), or a `metric` (its per-minute mean, of `service` if given), scored by the insights detector. `absence`: no spans from `service`, or no points of `metric`, for `range`. The query is run once at creation: one that does not parse, is not a single read-only query or has no numeric value column is refused.")
            .body(true, json!({"type": "object", "required": ["name", "kind"], "properties": {"name": {"type": "string"}, "kind": {"type": "string", "enum": ["sql", "anomaly", "absence"]}, "sql": {"type": "string"}, "service": {"type": "string"}, "signal": {"type": "string"}, "metric": {"type": "string"}, "condition": {"type": "object", "properties": {"op": {"type": "string"}, "threshold": {"type": "number"}}}, "for": {"type": "string"}, "interval": {"type": "string"}, "range": {"type": "string"}, "severity": {"type": "string"}, "labels": {"type": "object"}, "annotations": {"type": "object"}, "channels": {"type": "array", "items": {"type": "string"}}}}))
            .ok(201, "The rule").errors(&[400, 409])),
        Route::new(Method::GET, "/api/v1/alerts/rules/{id}", Permission::Read, a::rule,
            id(Doc::new("One alert rule (viewer)")).ok(200, "The rule").errors(&[404])),
        Route::new(Method::PUT, "/api/v1/alerts/rules/{id}", Permission::Edit, a::update_rule,
            id(Doc::new("Replace an alert rule (editor)")).body(true, json!({"type": "object"})).ok(201, "The rule").errors(&[400, 404, 409])),
        Route::new(Method::DELETE, "/api/v1/alerts/rules/{id}", Permission::Edit, a::delete_rule,
            id(Doc::new("Delete an alert rule (editor); its firing alerts resolve")).ok_content(204, "Deleted", json!({})).errors(&[404])),
        Route::new(Method::POST, "/api/v1/alerts/apply", Permission::Edit, a::apply,
            Doc::new("Create or replace rules by name, and with `prune` delete the others (editor): what `ophion alerts apply FILE` sends; all are checked before any is written").body(true, json!({"type": "object", "properties": {"rules": {"type": "array"}, "prune": {"type": "boolean"}}})).ok(200, "{created, updated, deleted}").errors(&[400])),
        Route::new(Method::GET, "/api/v1/alerts", Permission::Read, a::alerts,
            Doc::new("Current alerts with their state: pending, firing, or resolved within an open incident (viewer)").ok(200, "{alerts: [{fingerprint, rule_id, labels, annotations, value, state, active_since, fired_at, resolved_at, incident_id}]}")),
        Route::new(Method::GET, "/api/v1/alerts/history", Permission::Read, a::history,
            Doc::new("State changes of alerts, newest first (viewer)").ok(200, "{history: [{rule_id, fingerprint, labels, from, to, value, at}]}")),
        Route::new(Method::GET, "/api/v1/alerts/inhibitions", Permission::Read, a::inhibitions,
            Doc::new("Inhibition rules (viewer)").ok(200, "{inhibitions: [...]}")),
        Route::new(Method::POST, "/api/v1/alerts/inhibitions", Permission::Edit, a::create_inhibition,
            Doc::new("Add an inhibition rule (editor), as Alertmanager's: source_matchers, target_matchers, equal").body(true, json!({"type": "object"})).ok(201, "{id}").errors(&[400])),
        Route::new(Method::DELETE, "/api/v1/alerts/inhibitions/{id}", Permission::Edit, a::delete_inhibition,
            id(Doc::new("Delete an inhibition rule (editor)")).ok_content(204, "Deleted", json!({})).errors(&[404])),
        Route::new(Method::GET, "/api/v1/channels", Permission::Admin, a::channels,
            Doc::new("Notification channels (admin); secrets are never returned (`has_secret` says whether one is set)").ok(200, "{channels: [...]}")),
        Route::new(Method::POST, "/api/v1/channels", Permission::Admin, a::create_channel,
            Doc::new("Add a notification channel (admin)")
            .description("`kind` webhook (Alertmanager's webhook payload, HMAC-SHA256 signed with `secret` in X-Ophion-Signature), slack, pagerduty (`secret`: routing key; `url` the Events API v2 endpoint), teams, email (`url` smtp:// or smtps://, `to`, `from`, `starttls`, `username`, `secret`, `ca_pem`), alertmanager (posts to `url`/api/v2/alerts). Routing: `matchers`; grouping: `group_by`, `group_wait`, `group_interval`, `repeat_interval`; `rate_per_minute`; `digest` (e.g. `30m`): incidents with no critical alert told together, at most that often.")
            .body(true, json!({"type": "object", "required": ["name", "kind", "url"]})).ok(201, "The channel, without its secret").errors(&[400, 409])),
        Route::new(Method::DELETE, "/api/v1/channels/{id}", Permission::Admin, a::delete_channel,
            id(Doc::new("Delete a channel (admin)")).ok_content(204, "Deleted", json!({})).errors(&[404])),
        Route::new(Method::POST, "/api/v1/channels/{id}/test", Permission::Admin, a::test_channel,
            id(Doc::new("Send a test notification through a channel (admin)")).ok(202, "{delivery_id}").errors(&[404])),
        Route::new(Method::GET, "/api/v1/channels/{id}/deliveries", Permission::Admin, a::deliveries,
            id(Doc::new("A channel's delivery history (admin)")).ok(200, "{deliveries: [{id, group_key, status, state, attempts, last_error, created_at, done_at}]}").errors(&[404])),
        Route::new(Method::GET, "/api/v1/silences", Permission::Read, a::silences,
            Doc::new("Silences and maintenance windows (viewer)").ok(200, "{silences: [...]}")),
        Route::new(Method::POST, "/api/v1/silences", Permission::Edit, a::create_silence,
            Doc::new("Silence alerts matching label matchers (editor), as Alertmanager's v2 silences; `every` makes it a recurring maintenance window")
            .body(true, json!({"type": "object", "required": ["matchers", "startsAt", "endsAt"], "properties": {"matchers": {"type": "array"}, "startsAt": {"type": "string"}, "endsAt": {"type": "string"}, "comment": {"type": "string"}, "every": {"type": "string"}}}))
            .ok(201, "{id, silenceID}").errors(&[400])),
        Route::new(Method::DELETE, "/api/v1/silences/{id}", Permission::Edit, a::delete_silence,
            id(Doc::new("Expire a silence (editor)")).ok_content(204, "Deleted", json!({})).errors(&[404])),
        Route::new(Method::GET, "/api/v1/incidents", Permission::Read, a::incidents,
            Doc::new("Incidents (viewer): related alerts grouped, the probable root-cause alert first, priority and services").ok(200, "{incidents: [{id, status, opened_at, resolved_at, priority, root_cause, services, alerts}]}")),
        Route::new(Method::GET, "/api/v1/incidents/{id}", Permission::Read, a::incident,
            id(Doc::new("One incident with its impact read from traces (viewer): requests and errors of the affected services and endpoints, distinct users where entry spans carry a user id attribute (enduser.id and the like)")).ok(200, "{id, status, ..., impact: {services, from, to, requests, errors, endpoints: [{service, endpoint, requests, errors}], users, users_with_errors}}").errors(&[404])),
    ]
}
