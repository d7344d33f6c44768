//! One file per command group.

pub(super) mod admin;
pub(super) mod ai;
pub(super) mod alerts;
pub(super) mod heal;
pub(super) mod mcp;
pub(super) mod session;
pub(super) mod telemetry;

use serde_json::Value;

use super::{CliError, client::Client, render};

/// GETs `path` and prints its `key` list as a table with `head`, one row
/// per item by `row`; with `json`, the API's JSON instead.
pub(super) async fn listing(
    c: &Client,
    (path, query): (&str, &[(&str, Option<String>)]),
    key: &str,
    json: bool,
    head: &[&str],
    row: impl Fn(&Value) -> Vec<String>,
    out: &mut String,
) -> Result<(), CliError> {
    let v = c.get_json(path, query).await?;
    if json {
        out.push_str(&render::pretty(&v));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = v[key].as_array().into_iter().flatten().map(row).collect();
    let head: Vec<String> = head.iter().map(|h| (*h).to_owned()).collect();
    render::table(out, &head, &rows);
    Ok(())
}
