//! The `email` channel: a plain-text mail over SMTP with `lettre`.
//! `smtps://host:port` speaks TLS from the start; `smtp://host:port`
//! upgrades with STARTTLS when the channel says `"starttls": true` (and
//! then refuses to send in the clear), else sends in the clear (a local
//! relay). `ca_pem` adds a trusted root (a private mail server);
//! `username` with the channel's secret signs in.

use std::time::Duration;

use lettre::{
    AsyncSmtpTransport, AsyncTransport as _, Message, Tokio1Executor,
    message::header::ContentType,
    transport::smtp::{
        authentication::Credentials,
        client::{Certificate, Tls, TlsParameters},
    },
};
use serde_json::Value;

use super::model::ChannelSpec;

fn text(msg: &Value) -> String {
    let mut out = String::new();
    let inc = &msg["incident"];
    out.push_str(&format!(
        "{}\nPriority: {}\nServices: {}\nIncident: {}\n\n",
        inc["title"].as_str().unwrap_or(""),
        inc["priority"],
        inc["services"],
        inc["link"].as_str().unwrap_or("")
    ));
    for a in msg["alerts"].as_array().into_iter().flatten() {
        out.push_str(&format!(
            "[{}] {} {}\n  labels: {}\n  annotations: {}\n  since {}\n",
            a["status"].as_str().unwrap_or(""),
            a["labels"]["alertname"].as_str().unwrap_or(""),
            a["labels"]["service"].as_str().unwrap_or(""),
            a["labels"],
            a["annotations"],
            a["startsAt"].as_str().unwrap_or("")
        ));
    }
    out
}

/// Sends `msg` as a mail to the channel's `to`.
pub async fn send(ch: &ChannelSpec, msg: &Value) -> Result<(), String> {
    let url = reqwest::Url::parse(&ch.url).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or("localhost").to_owned();
    let wrapper = url.scheme() == "smtps";
    let port = url.port().unwrap_or(if wrapper { 465 } else { 25 });
    let field = |k: &str| ch.extra.get(k).and_then(Value::as_str);
    let starttls = ch
        .extra
        .get("starttls")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let tls = if wrapper || starttls {
        let mut b = TlsParameters::builder(host.clone());
        if let Some(pem) = field("ca_pem") {
            let cert =
                Certificate::from_pem(pem.as_bytes()).map_err(|e| format!("`ca_pem`: {e}"))?;
            b = b.add_root_certificate(cert);
        }
        let p = b.build_rustls().map_err(|e| format!("TLS: {e}"))?;
        if wrapper {
            Tls::Wrapper(p)
        } else {
            Tls::Required(p)
        }
    } else {
        Tls::None
    };
    let mut t = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
        .port(port)
        .tls(tls)
        .timeout(Some(Duration::from_secs(10)));
    if let (Some(user), Some(pass)) = (field("username"), &ch.secret) {
        t = t.credentials(Credentials::new(user.to_owned(), pass.clone()));
    }
    let from = field("from").unwrap_or("ophion@localhost");
    let subject = format!(
        "[{}] {}",
        msg["status"].as_str().unwrap_or("firing").to_uppercase(),
        msg["incident"]["title"].as_str().unwrap_or("alert")
    );
    let mut m = Message::builder()
        .from(from.parse().map_err(|e| format!("`from`: {e}"))?)
        .subject(subject)
        .header(ContentType::TEXT_PLAIN);
    for to in field("to")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        m = m.to(to.parse().map_err(|e| format!("`to` {to}: {e}"))?);
    }
    let mail = m.body(text(msg)).map_err(|e| e.to_string())?;
    t.build()
        .send(mail)
        .await
        .map(|_| ())
        .map_err(|e| format!("SMTP: {e}"))
}
