//! Channel formats and delivery: one group message ([`super::engine`])
//! becomes the body each receiver expects.
//!
//! - `webhook`: Alertmanager's webhook payload (`version` "4"), so a
//!   receiver written for Alertmanager works unchanged; signed with
//!   `X-Ophion-Signature: sha256=<hex HMAC-SHA256 of the body>` when the
//!   channel has a secret;
//! - `slack`: an incoming-webhook message with blocks;
//! - `pagerduty`: an Events API v2 event (`trigger`/`resolve`, one
//!   `dedup_key` per group);
//! - `teams`: a message with an Adaptive Card (Teams workflows);
//! - `alertmanager`: the alerts posted to `/api/v2/alerts` of an
//!   Alertmanager, as Prometheus does;
//! - `email`: a plain-text mail over SMTP (STARTTLS or TLS when asked).
//!
//! Every request carries `X-Ophion-Delivery` (stable across retries).

use std::time::Duration;

use hmac::{Hmac, Mac as _};
use serde_json::{Value, json};
use sha2::Sha256;

use super::model::ChannelSpec;

/// The signature header of webhook channels.
pub const SIGNATURE_HEADER: &str = "X-Ophion-Signature";
/// The delivery id header.
pub const DELIVERY_HEADER: &str = "X-Ophion-Delivery";

/// `sha256=<hex>` of `body` under `key`.
pub fn sign(key: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key.as_bytes()).unwrap_or_else(|_| {
        // HMAC takes keys of any length; unreachable.
        <Hmac<Sha256>>::new_from_slice(b"").unwrap_or_else(|_| unreachable!())
    });
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn common(alerts: &[Value], field: &str) -> Value {
    let mut first: Option<serde_json::Map<String, Value>> = None;
    for a in alerts {
        let m = a[field].as_object().cloned().unwrap_or_default();
        first = Some(match first {
            None => m,
            Some(f) => f.into_iter().filter(|(k, v)| m.get(k) == Some(v)).collect(),
        });
    }
    Value::Object(first.unwrap_or_default())
}

fn summary(msg: &Value) -> String {
    let status = msg["status"].as_str().unwrap_or("firing");
    let title = msg["incident"]["title"].as_str().unwrap_or("alert");
    format!("[{}] {title}", status.to_uppercase())
}

fn lines(msg: &Value) -> Vec<String> {
    msg["alerts"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            let name = a["labels"]["alertname"].as_str().unwrap_or("alert");
            let svc = a["labels"]["service"]
                .as_str()
                .map(|s| format!(" ({s})"))
                .unwrap_or_default();
            let text = a["annotations"]["summary"]
                .as_str()
                .or(a["annotations"]["description"].as_str())
                .unwrap_or("");
            format!(
                "{} {name}{svc} {text}",
                if a["status"] == "firing" {
                    "🔥"
                } else {
                    "✅"
                }
            )
        })
        .collect()
}

/// The body `ch` receives for `msg`.
pub fn body(ch: &ChannelSpec, msg: &Value, external: &str) -> Value {
    let alerts = msg["alerts"].as_array().cloned().unwrap_or_default();
    let status = msg["status"].as_str().unwrap_or("firing");
    match ch.kind.as_str() {
        "slack" => {
            let text = summary(msg);
            json!({
                "text": text,
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": text}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": lines(msg).join("\n")}},
                    {"type": "context", "elements": [{"type": "mrkdwn", "text": format!("priority {} · <{}|incident>", msg["incident"]["priority"], msg["incident"]["link"].as_str().unwrap_or(external))}]},
                ],
            })
        }
        "pagerduty" => {
            let root = alerts.first().cloned().unwrap_or(Value::Null);
            let sev = match root["labels"]["severity"].as_str() {
                Some("critical") => "critical",
                Some("warning") => "warning",
                _ => "info",
            };
            json!({
                "routing_key": ch.secret.clone().unwrap_or_default(),
                "event_action": if status == "resolved" { "resolve" } else { "trigger" },
                "dedup_key": format!("ophion-{}", msg["groupKey"].as_str().unwrap_or("")),
                "payload": {
                    "summary": summary(msg),
                    "source": root["labels"]["service"].as_str().unwrap_or("ophion"),
                    "severity": sev,
                    "custom_details": {"alerts": alerts, "incident": msg["incident"]},
                },
                "links": [{"href": msg["incident"]["link"], "text": "Ophion incident"}],
            })
        }
        "teams" => json!({
            "type": "message",
            "attachments": [{
                "contentType": "application/vnd.microsoft.card.adaptive",
                "content": {
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "body": [
                        {"type": "TextBlock", "size": "Medium", "weight": "Bolder", "text": summary(msg)},
                        {"type": "TextBlock", "wrap": true, "text": lines(msg).join("\n\n")},
                    ],
                    "actions": [{"type": "Action.OpenUrl", "title": "Open incident", "url": msg["incident"]["link"]}],
                },
            }],
        }),
        "alertmanager" => {
            // Firing alerts say how long they hold unless refreshed, as
            // Prometheus does (four repeat intervals; a day when the
            // channel never repeats).
            let until = ch.policy().map_or(240, |p| match p.repeat_interval_secs {
                0 => 24 * 3600,
                r => r.max(60) * 4,
            });
            let ends = crate::read::ts_text(crate::read::now_ns() + until as i64 * 1_000_000_000);
            Value::Array(
                alerts
                    .iter()
                    .map(|a| {
                        let ends = if a["status"] == "firing" { ends.clone() } else { a["endsAt"].clone() };
                        json!({"labels": a["labels"], "annotations": a["annotations"], "startsAt": a["startsAt"], "endsAt": ends, "generatorURL": a["generatorURL"]})
                    })
                    .collect(),
            )
        }
        _ => {
            json!({
                "version": "4",
                "groupKey": msg["groupKey"],
                "truncatedAlerts": 0,
                "status": status,
                "receiver": ch.name,
                "groupLabels": msg["groupLabels"],
                "commonLabels": common(&alerts, "labels"),
                "commonAnnotations": common(&alerts, "annotations"),
                "externalURL": external,
                "alerts": alerts.iter().map(|a| json!({
                    "status": a["status"], "labels": a["labels"], "annotations": a["annotations"],
                    "startsAt": a["startsAt"], "endsAt": a["endsAt"], "generatorURL": a["generatorURL"], "fingerprint": a["fingerprint"],
                })).collect::<Vec<_>>(),
                "ophion": {"incident": msg["incident"]},
            })
        }
    }
}

/// Sends `msg` to `ch`; `Err` says why it should be retried.
pub async fn send(
    http: &reqwest::Client,
    ch: &ChannelSpec,
    msg: &Value,
    delivery: i64,
    external: &str,
) -> Result<(), String> {
    if ch.kind == "email" {
        // lettre's own timeout does not cover every wait of a session (a
        // server that stops answering mid-way); this bounds the whole of it.
        return tokio::time::timeout(Duration::from_secs(30), super::email::send(ch, msg))
            .await
            .unwrap_or_else(|_| Err("SMTP: timed out after 30 s".into()));
    }
    let payload = body(ch, msg, external);
    let bytes = serde_json::to_vec(&payload).map_err(|e| e.to_string())?;
    let url = if ch.kind == "alertmanager" {
        format!("{}/api/v2/alerts", ch.url.trim_end_matches('/'))
    } else {
        ch.url.clone()
    };
    let mut req = http
        .post(url)
        .timeout(Duration::from_secs(10))
        .header("content-type", "application/json")
        .header(DELIVERY_HEADER, delivery.to_string());
    if ch.kind == "webhook"
        && let Some(key) = &ch.secret
    {
        req = req.header(SIGNATURE_HEADER, sign(key, &bytes));
    }
    let r = req.body(bytes).send().await.map_err(|e| {
        if e.is_timeout() {
            "timed out after 10 s".to_owned()
        } else {
            format!("could not reach the receiver: {}", e.without_url())
        }
    })?;
    if r.status().is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {}", r.status()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_hex() {
        // RFC 4231 test case 2.
        assert_eq!(
            sign("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
