//! `ophion users`, `audit`, `admin` and `status`: administration.

use std::fmt::Write as _;

use serde_json::Value;

use crate::cli::{CliError, client::Client, render::*};
use crate::cli::{
    args::{AdminCommand, AuditCommand, UsersCommand},
    client::read_secret,
};

/// `ophion users ...`.
pub(in crate::cli) async fn users(
    c: &Client,
    cmd: UsersCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        UsersCommand::List => {
            let v = c.get_json("/api/v1/users", &[]).await?;
            let rows: Vec<Vec<String>> = v["users"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|u| {
                    vec![
                        cell(&u["id"]),
                        cell(&u["username"]),
                        cell(&u["role"]),
                        if u["disabled"].as_bool() == Some(true) {
                            "disabled"
                        } else {
                            ""
                        }
                        .to_owned(),
                    ]
                })
                .collect();
            table(
                out,
                &["id", "username", "role", "state"].map(String::from),
                &rows,
            );
        }
        UsersCommand::Add { username, role } => {
            let password = read_secret(true, "OPHION_PASSWORD", "new user's password")?;
            let v: Value = c
                .send(c.http.post(format!("{}/api/v1/users", c.base)).json(
                    &serde_json::json!({"username": username, "password": password, "role": role}),
                ))
                .await?
                .json()
                .await
                .map_err(|e| CliError::Unreachable(e.to_string()))?;
            let _ = writeln!(out, "created user {} (id {})", username, cell(&v["id"]));
        }
        UsersCommand::Set {
            id,
            role,
            disable,
            enable,
        } => {
            let mut patch = serde_json::Map::new();
            if let Some(r) = role {
                patch.insert("role".into(), Value::String(r));
            }
            if disable || enable {
                patch.insert("disabled".into(), Value::Bool(disable));
            }
            c.send(
                c.http
                    .patch(format!("{}/api/v1/users/{id}", c.base))
                    .json(&Value::Object(patch)),
            )
            .await?;
            let _ = writeln!(out, "updated user {id}");
        }
    }
    Ok(())
}

/// `ophion audit ...`.
pub(in crate::cli) async fn audit(
    c: &Client,
    cmd: AuditCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        AuditCommand::List { action, limit } => {
            let v = c
                .get_json(
                    "/api/v1/audit",
                    &[("action", action), ("limit", limit.map(|l| l.to_string()))],
                )
                .await?;
            let rows: Vec<Vec<String>> = v["records"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| {
                    [
                        "id", "at_ms", "actor", "action", "target", "source", "outcome", "detail",
                    ]
                    .iter()
                    .map(|k| cell(&r[*k]))
                    .collect()
                })
                .collect();
            table(
                out,
                &[
                    "id", "at_ms", "actor", "action", "target", "source", "outcome", "detail",
                ]
                .map(String::from),
                &rows,
            );
        }
        AuditCommand::Verify => {
            let v = c.get_json("/api/v1/audit/verify", &[]).await?;
            let n = v["records"].as_u64().unwrap_or(0);
            if v["ok"].as_bool() == Some(true) {
                let _ = writeln!(out, "audit log intact: {n} records verified");
            } else {
                return Err(CliError::Refused(format!(
                    "audit log broken at record {}: {}",
                    cell(&v["broken_at"]),
                    v["reason"].as_str().unwrap_or("")
                )));
            }
        }
    }
    Ok(())
}

/// `ophion admin ...`.
pub(in crate::cli) async fn admin(
    c: &Client,
    cmd: AdminCommand,
    out: &mut String,
) -> Result<(), CliError> {
    match cmd {
        AdminCommand::RotateSigningKey => {
            c.send(
                c.http
                    .post(format!("{}/api/v1/admin/signing-key/rotate", c.base)),
            )
            .await?;
            let _ = writeln!(
                out,
                "signing key rotated: every session ended; sign in again with `ophion login`"
            );
        }
    }
    Ok(())
}

/// `ophion status`.
pub(in crate::cli) async fn status(c: &Client, out: &mut String) -> Result<(), CliError> {
    let v = c.get_json("/api/v1/status", &[]).await?;
    let memory = match v["memory"]["resident_bytes"].as_u64() {
        Some(b) => format!(", {} MiB resident", b >> 20),
        None => format!(" (tenant {})", cell(&v["tenant"])),
    };
    let _ = writeln!(
        out,
        "ophion {} at {}, up {} s{memory}{}",
        cell(&v["version"]),
        c.base,
        v["uptime_secs"],
        if v["memory"]["over_soft_limit"].as_bool() == Some(true) {
            " (over the soft limit: refusing writes)"
        } else {
            ""
        }
    );
    let rows: Vec<Vec<String>> = ["traces", "logs", "metrics"]
        .iter()
        .map(|s| {
            let x = &v[*s];
            vec![
                (*s).to_owned(),
                cell(&x["received_items"]),
                cell(&x["rejected_items"]),
                cell(&x["stored_rows"]),
                cell(&x["files"]),
                format!(
                    "{:.1} MiB",
                    x["stored_bytes"].as_f64().unwrap_or(0.0) / 1048576.0
                ),
            ]
        })
        .collect();
    table(
        out,
        &[
            "signal", "received", "rejected", "in files", "files", "on disk",
        ]
        .map(String::from),
        &rows,
    );
    Ok(())
}
