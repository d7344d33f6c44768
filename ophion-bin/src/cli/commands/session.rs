//! `ophion login`, `passwd` and `logout`: the saved session.

use std::fmt::Write as _;

use serde_json::Value;

use crate::cli::client::{read_secret, save_token, token_path};
use crate::cli::{CliError, client::Client};

/// `ophion login`: signs in and saves the token.
pub(in crate::cli) async fn login(
    c: &Client,
    username: String,
    tenant: Option<String>,
    password_stdin: bool,
    out: &mut String,
) -> Result<(), CliError> {
    let password = read_secret(password_stdin, "OPHION_PASSWORD", "password")?;
    let mut body = serde_json::json!({"username": username, "password": password});
    if let Some(t) = tenant {
        body["tenant"] = t.into();
    }
    let v: Value = c
        .send(
            c.http
                .post(format!("{}/api/v1/auth/login", c.base))
                .json(&body),
        )
        .await?
        .json()
        .await
        .map_err(|e| CliError::Unreachable(e.to_string()))?;
    let token = v["token"]
        .as_str()
        .ok_or_else(|| CliError::Unreachable("no token in the answer".into()))?;
    let path = save_token(token)?;
    let _ = writeln!(
        out,
        "signed in as {username}; token saved in {}",
        path.display()
    );
    Ok(())
}

/// `ophion passwd`: changes the signed-in user's password.
pub(in crate::cli) async fn passwd(c: &Client, out: &mut String) -> Result<(), CliError> {
    let current = read_secret(true, "OPHION_PASSWORD", "current password")?;
    let new = read_secret(true, "OPHION_NEW_PASSWORD", "new password")?;
    c.send(
        c.http
            .post(format!("{}/api/v1/auth/password", c.base))
            .json(&serde_json::json!({"current_password": current, "new_password": new})),
    )
    .await?;
    if let Some(p) = token_path() {
        let _ = std::fs::remove_file(p);
    }
    let _ = writeln!(out, "password changed; sign in again with `ophion login`");
    Ok(())
}

/// `ophion logout`: revokes the token and forgets it.
pub(in crate::cli) async fn logout(c: &Client, out: &mut String) -> Result<(), CliError> {
    c.send(c.http.post(format!("{}/api/v1/auth/logout", c.base)))
        .await?;
    if let Some(p) = token_path() {
        let _ = std::fs::remove_file(p);
    }
    let _ = writeln!(out, "signed out");
    Ok(())
}
