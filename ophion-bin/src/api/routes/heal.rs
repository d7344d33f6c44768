//! Auto-healing's routes: playbooks and runs; part of the one route table
//! ([`super::table`]).

use axum::http::Method;
use serde_json::json;

use super::Route;
use crate::{
    api::{Doc, heal as h},
    auth::Permission,
};

/// The routes of this part.
pub(super) fn table() -> Vec<Route> {
    let name = |d: Doc| d.path("name", "string", "");
    let id = |d: Doc| d.path("id", "integer", "");
    let playbook = json!({"type": "object", "required": ["name", "steps"], "properties": {
        "name": {"type": "string"}, "description": {"type": "string"}, "enabled": {"type": "boolean"},
        "match": {"type": "array", "description": "Label matchers of the alerts it answers (Alertmanager's: name, value, isRegex, isEqual)"},
        "mode": {"type": "string", "enum": ["dry-run", "approval", "auto"]},
        "steps": {"type": "array", "description": "Actions: {type: http|command|kubectl|notify|wait, ...}"},
        "verify": {"type": "object", "description": "{sql, condition: {op, threshold}, hold, within, every, window}; $from, $to, $target bound"},
        "rollback": {"type": "array"}, "notify": {"type": "array", "items": {"type": "string"}},
        "cooldown": {"type": "string"}, "max_runs_per_hour": {"type": "integer"},
        "blast_radius": {"type": "object", "properties": {"target_label": {"type": "string"}, "max_targets": {"type": "integer"}, "max_firing": {"type": "integer"}}}}});
    vec![
        Route::new(Method::GET, "/api/v1/playbooks", Permission::Read, h::list,
            Doc::new("Auto-healing playbooks of the caller's tenant (viewer), each at its latest version").ok(200, "{playbooks: [...]}")),
        Route::new(Method::POST, "/api/v1/playbooks", Permission::Edit, h::create,
            Doc::new("Create or replace a playbook by name (editor); each save is a new version")
            .description("Checked against the server's allowlist (`[heal] commands`, `[heal] kubectl`); the verification must be one read-only query. Refusals are audited.")
            .body(true, playbook.clone()).ok(201, "{name, version}").errors(&[400])),
        Route::new(Method::GET, "/api/v1/playbooks/{name}", Permission::Read, h::get,
            name(Doc::new("One playbook (viewer)")).ok(200, "The playbook").errors(&[404])),
        Route::new(Method::PUT, "/api/v1/playbooks/{name}", Permission::Edit, h::replace,
            name(Doc::new("Replace a playbook (editor): a new version")).body(true, playbook).ok(200, "{name, version}").errors(&[400])),
        Route::new(Method::DELETE, "/api/v1/playbooks/{name}", Permission::Edit, h::delete,
            name(Doc::new("Delete a playbook (editor); its runs stay")).ok_content(204, "Deleted", json!({})).errors(&[404])),
        Route::new(Method::GET, "/api/v1/heal/runs", Permission::Read, h::runs,
            Doc::new("Healing runs, newest first (viewer)")
            .query("state", "string", "awaiting_approval, queued, running, verifying, rolling_back, succeeded, rolled_back, failed, rejected, dry_run, refused or interrupted.")
            .query("limit", "integer", "At most 1000 (default 100).")
            .ok(200, "{runs: [{id, playbook, version, trigger, target, mode, state, reason, created_at, updated_at, decided_by}]}")),
        Route::new(Method::POST, "/api/v1/heal/runs", Permission::Edit, h::start,
            Doc::new("Run a playbook by hand (editor); `dry_run` only shows what would run")
            .body(true, json!({"type": "object", "required": ["playbook"], "properties": {"playbook": {"type": "string"}, "labels": {"type": "object"}, "value": {"type": "number"}, "dry_run": {"type": "boolean"}}}))
            .ok(201, "The run (a refusal is a run in state `refused` with its reason)").errors(&[400, 404])),
        Route::new(Method::GET, "/api/v1/heal/runs/{id}", Permission::Read, h::run,
            id(Doc::new("One run with every step: phase, input (exactly what ran), state, timing, output, error (viewer)")).ok(200, "The run").errors(&[404])),
        Route::new(Method::POST, "/api/v1/heal/runs/{id}/approve", Permission::Edit, h::approve,
            id(Doc::new("Approve a run awaiting approval (editor): it runs")).ok(200, "The run").errors(&[404, 409])),
        Route::new(Method::POST, "/api/v1/heal/runs/{id}/reject", Permission::Edit, h::reject,
            id(Doc::new("Reject a run awaiting approval (editor): nothing runs")).ok(200, "The run").errors(&[404, 409])),
    ]
}
