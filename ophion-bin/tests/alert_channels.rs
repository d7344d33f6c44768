//! Alerting against real receivers and real rule kinds, on the real
//! `ophion-server`:
//! - email to a real SMTP server (`aiosmtpd`), in the clear and with
//!   STARTTLS and a password; Teams' message format;
//! - the `alertmanager` channel posting to the real `prometheus-alertmanager`
//!   from Debian, which delivers to a webhook receiver that also reads
//!   Ophion's own webhook with the same parser;
//! - silences, recurring maintenance windows and inhibition suppress exactly
//!   what they match, while a channel that answers 500 is retried with
//!   backoff and one that hangs blocks neither other channels nor the
//!   evaluator; a rate-limited channel holds back what is over its limit;
//! - anomaly and absence rules fire on ingested data.

mod common;

use std::{
    collections::BTreeSet,
    io::{BufRead as _, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use common::inbox::{AmWebhook, Shared, hanging_receiver, receiver, until};
use common::{Server, call, client, free_port, post_otlp};
use ophion_core::testing::{Generator, now_ns};
use prost::Message as _;
use serde_json::{Value, json};

const ENV: &[(&str, &str)] = &[
    ("OPHION__ALERTS__TICK_MS", "200"),
    ("OPHION__ALERTS__EXTERNAL_URL", "http://ophion.test"),
    ("OPHION__ALERTS__CORRELATE__QUIET_SECS", "1"),
    ("OPHION__AI__WATCH", "false"),
];

async fn post(http: &reqwest::Client, s: &Server, path: &str, body: Value) -> Value {
    let (st, v) = call(http, s, "POST", path, Some(&s.token), Some(body)).await;
    assert!(st == 201 || st == 200 || st == 202, "POST {path}: {st} {v}");
    v
}

async fn get(http: &reqwest::Client, s: &Server, path: &str) -> Value {
    let (st, v) = call(http, s, "GET", path, Some(&s.token), None).await;
    assert_eq!(st, 200, "GET {path}: {v}");
    v
}

/// A channel with fast grouping, so tests do not wait Alertmanager's
/// defaults.
fn channel(name: &str, kind: &str, url: &str, extra: Value) -> Value {
    let mut ch = json!({"name": name, "kind": kind, "url": url,
        "group_wait": "1s", "group_interval": "2s", "repeat_interval": "0s"});
    ch.as_object_mut()
        .expect("object")
        .extend(extra.as_object().cloned().unwrap_or_default());
    ch
}

/// A rule counting each service's spans over the last `range`.
fn busy_rule(
    name: &str,
    severity: &str,
    extra_where: &str,
    channels: &[&str],
    for_: &str,
    range: &str,
) -> Value {
    json!({
        "name": name, "kind": "sql",
        "sql": format!("SELECT service_name AS service, CAST(count(*) AS DOUBLE) AS value FROM spans WHERE start_time >= $from AND start_time < $to {extra_where} GROUP BY service_name"),
        "condition": {"op": ">", "threshold": 0},
        "for": for_, "interval": "1s", "range": range, "severity": severity,
        "annotations": {"summary": "{{ $labels.service }} is busy"},
        "channels": channels,
    })
}

async fn send_spans(http: &reqwest::Client, s: &Server, seed: u64, start_ns: u64, n: usize) {
    let traces = Generator::new(seed, start_ns).traces(n);
    let r = post_otlp(http, &s.otlp_http, "/v1/traces", traces.encode_to_vec()).await;
    assert!(r.status().is_success(), "{}", r.status());
}

/// `(alertname, service)` of every alert with `status` in the webhook
/// messages on `path`.
fn with_status(inbox: &Shared, path: &str, status: &str) -> BTreeSet<(String, String)> {
    let i = inbox.lock().expect("inbox");
    i.on(path)
        .iter()
        .flat_map(|g| g.json["alerts"].as_array().cloned().unwrap_or_default())
        .filter(|a| a["status"] == status)
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["labels"]["service"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

fn pairs(p: &[(&str, &str)]) -> BTreeSet<(String, String)> {
    p.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

/// A child process killed when dropped.
struct Kill(Child);

impl Drop for Kill {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn same_port(mail: &Value, port: &str) -> bool {
    mail["port"].as_u64().is_some_and(|p| p.to_string() == port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_reaches_a_real_smtp_server_in_the_clear_and_over_starttls() {
    let dir = tempfile::tempdir().expect("tmp");
    // A private CA-less certificate the channel is told to trust.
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).expect("cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("key");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/python/smtp_sink.py");
    let mut child = Command::new(ophion_tests::python())
        .arg(script)
        .arg(&cert)
        .arg(&key)
        .args(["oncall-bot", "mail-password-1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("aiosmtpd (tests/python/requirements.txt)");
    let stdin = child.stdin.take();
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let _smtp = Kill(child);
    let mails: Arc<Mutex<Vec<Value>>> = Arc::default();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    {
        let mails = Arc::clone(&mails);
        std::thread::spawn(move || {
            for line in out.lines().map_while(Result::ok) {
                if let Some(ports) = line.strip_prefix("READY ") {
                    let _ = ready_tx.send(ports.to_owned());
                } else if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    mails.lock().expect("mails").push(v);
                }
            }
        });
    }
    let ports = ready_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the SMTP server starts");
    let (plain, secure) = ports.split_once(' ').expect("two ports");

    let (url, inbox) = receiver().await;
    let http = client();
    let s = Server::start(&dir.path().join("data"), ENV);
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel(
            "mail",
            "email",
            &format!("smtp://localhost:{plain}"),
            json!({"to": "oncall@example.com, lead@example.com", "from": "ophion@example.com"}),
        ),
    )
    .await;
    post(&http, &s, "/api/v1/channels", channel("mail-tls", "email", &format!("smtp://localhost:{secure}"),
        json!({"to": "oncall@example.com", "from": "ophion@example.com", "starttls": true,
               "ca_pem": certified.cert.pem(), "username": "oncall-bot", "secret": "mail-password-1"}))).await;
    // The same server refuses a wrong password: the delivery records why.
    let bad = post(
        &http,
        &s,
        "/api/v1/channels",
        channel(
            "mail-badpw",
            "email",
            &format!("smtp://localhost:{secure}"),
            json!({"to": "oncall@example.com", "starttls": true, "ca_pem": certified.cert.pem(),
               "username": "oncall-bot", "secret": "wrong"}),
        ),
    )
    .await;
    // STARTTLS asked of a server that trusts no one we know: refused, never in the clear.
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel(
            "mail-untrusted",
            "email",
            &format!("smtp://localhost:{secure}"),
            json!({"to": "oncall@example.com", "starttls": true}),
        ),
    )
    .await;
    let teams = post(
        &http,
        &s,
        "/api/v1/channels",
        channel("chat", "teams", &format!("{url}/teams"), json!({})),
    )
    .await;
    let chans = get(&http, &s, "/api/v1/channels").await;
    assert!(!chans.to_string().contains("mail-password-1"), "{chans}");

    post(
        &http,
        &s,
        "/api/v1/alerts/rules",
        busy_rule(
            "CheckoutBusy",
            "critical",
            "AND service_name = 'checkout'",
            &["mail", "mail-tls", "mail-badpw", "mail-untrusted", "chat"],
            "0s",
            "8s",
        ),
    )
    .await;
    send_spans(&http, &s, 5, now_ns(), 300).await;

    until(
        "a mail on each SMTP server",
        Duration::from_secs(60),
        || {
            let m = mails.lock().expect("mails");
            [plain, secure]
                .iter()
                .all(|p| m.iter().any(|v| same_port(v, p)))
        },
    )
    .await;
    {
        let m = mails.lock().expect("mails");
        let on = |p: &str| -> Vec<&Value> { m.iter().filter(|v| same_port(v, p)).collect() };
        let clear = on(plain)[0];
        assert_eq!(clear["tls"], false);
        assert_eq!(clear["from"], "ophion@example.com");
        assert_eq!(
            clear["to"],
            json!(["oncall@example.com", "lead@example.com"])
        );
        let text = clear["data"].as_str().unwrap_or("");
        assert!(text.contains("Subject: [FIRING]"), "{text}");
        assert!(
            text.contains("CheckoutBusy") && text.contains("checkout is busy"),
            "{text}"
        );
        let tls = on(secure);
        assert_eq!(tls.len(), 1, "only the right password got in: {tls:?}");
        assert_eq!(tls[0]["tls"], true, "sent after STARTTLS");
        assert_eq!(tls[0]["login"], "oncall-bot");
        assert!(
            tls[0]["data"]
                .as_str()
                .unwrap_or("")
                .contains("CheckoutBusy")
        );
    }
    // Teams gets an Adaptive Card message.
    until("a Teams message", Duration::from_secs(20), || {
        !inbox.lock().expect("inbox").on("/teams").is_empty()
    })
    .await;
    {
        let i = inbox.lock().expect("inbox");
        let t = &i.on("/teams")[0].json;
        assert_eq!(t["type"], "message");
        let card = &t["attachments"][0];
        assert_eq!(
            card["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        assert_eq!(card["content"]["type"], "AdaptiveCard");
        assert!(
            card["content"]["body"].to_string().contains("CheckoutBusy"),
            "{t}"
        );
    }
    // The failures are recorded on their deliveries, with the reason.
    let bad_id = bad["id"].as_i64().expect("id");
    let start = Instant::now();
    loop {
        let d = get(&http, &s, &format!("/api/v1/channels/{bad_id}/deliveries")).await;
        let untrusted = get(&http, &s, "/api/v1/channels").await["channels"]
            .as_array()
            .expect("channels")
            .iter()
            .find(|c| c["name"] == "mail-untrusted")
            .and_then(|c| c["id"].as_i64())
            .expect("untrusted id");
        let u = get(
            &http,
            &s,
            &format!("/api/v1/channels/{untrusted}/deliveries"),
        )
        .await;
        let reasons = format!("{d} {u}");
        let err = |v: &Value| {
            v["deliveries"][0]["last_error"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        };
        if !err(&d).is_empty() && !err(&u).is_empty() {
            assert!(err(&d).contains("SMTP"), "{d}");
            assert!(err(&u).contains("SMTP") || err(&u).contains("TLS"), "{u}");
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{reasons}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A test-send reaches the channel on demand.
    let tid = teams["id"].as_i64().expect("id");
    post(
        &http,
        &s,
        &format!("/api/v1/channels/{tid}/test"),
        json!({}),
    )
    .await;
    until("the test notification", Duration::from_secs(20), || {
        inbox
            .lock()
            .expect("inbox")
            .on("/teams")
            .iter()
            .any(|g| g.json.to_string().contains("Test notification"))
    })
    .await;
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_alertmanager_channel_hands_alerts_to_the_real_alertmanager() {
    let dir = tempfile::tempdir().expect("tmp");
    let (url, inbox) = receiver().await;
    let port = free_port();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        format!(
            "route:\n  receiver: hook\n  group_by: ['alertname', 'service']\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: hook\n    webhook_configs:\n      - url: {url}/from-alertmanager\n        send_resolved: true\n"
        ),
    )
    .expect("config");
    let am = Command::new("prometheus-alertmanager")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.path={}",
            dir.path().join("am").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("prometheus-alertmanager (Debian package, installed by .ci/run)");
    let _am = Kill(am);
    let am_url = format!("http://127.0.0.1:{port}");
    let http = client();
    let start = Instant::now();
    while !http
        .get(format!("{am_url}/-/ready"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "Alertmanager never got ready"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let s = Server::start(&dir.path().join("data"), ENV);
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel("am", "alertmanager", &am_url, json!({})),
    )
    .await;
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel(
            "hook",
            "webhook",
            &format!("{url}/from-ophion"),
            json!({"secret": "k"}),
        ),
    )
    .await;
    post(
        &http,
        &s,
        "/api/v1/alerts/rules",
        busy_rule(
            "CartBusy",
            "warning",
            "AND service_name = 'cart'",
            &["am", "hook"],
            "0s",
            "8s",
        ),
    )
    .await;
    send_spans(&http, &s, 9, now_ns(), 300).await;

    until(
        "Alertmanager's and Ophion's webhooks",
        Duration::from_secs(60),
        || {
            let i = inbox.lock().expect("inbox");
            !i.on("/from-alertmanager").is_empty() && !i.on("/from-ophion").is_empty()
        },
    )
    .await;
    let (am_fp, ours_fp) = {
        let i = inbox.lock().expect("inbox");
        // One parser, written for Alertmanager's payload, reads both.
        let from_am =
            AmWebhook::parse(&i.on("/from-alertmanager")[0].raw).expect("Alertmanager's payload");
        let ours = AmWebhook::parse(&i.on("/from-ophion")[0].raw).expect("Ophion's payload");
        assert_eq!(from_am.status, "firing");
        assert_eq!(ours.status, "firing");
        let a = &from_am.alerts[0];
        assert_eq!(a.labels["alertname"], "CartBusy");
        assert_eq!(a.labels["service"], "cart");
        assert_eq!(a.labels["severity"], "warning");
        assert_eq!(a.annotations["summary"], "cart is busy");
        assert!(
            a.generator_url.starts_with("http://ophion.test/"),
            "{}",
            a.generator_url
        );
        let o = &ours.alerts[0];
        assert_eq!(a.labels, o.labels, "the same alert");
        assert_eq!(a.starts_at[..19], o.starts_at[..19], "the same start");
        (a.fingerprint.clone(), o.fingerprint.clone())
    };
    assert_eq!(am_fp, ours_fp, "Ophion's fingerprints are Alertmanager's");
    // Alertmanager lists it as active.
    let listed: Value = http
        .get(format!("{am_url}/api/v2/alerts"))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(listed[0]["fingerprint"], am_fp.as_str(), "{listed}");
    assert_eq!(listed[0]["status"]["state"], "active", "{listed}");

    // When the spans leave the rule's range, Ophion resolves it at
    // Alertmanager, which tells its receivers.
    until("Alertmanager's resolution", Duration::from_secs(90), || {
        let i = inbox.lock().expect("inbox");
        i.on("/from-alertmanager").iter().any(|g| {
            AmWebhook::parse(&g.raw)
                .is_ok_and(|w| w.status == "resolved" && w.alerts[0].fingerprint == am_fp)
        })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silences_maintenance_and_inhibition_suppress_exactly_what_they_match() {
    let dir = tempfile::tempdir().expect("tmp");
    let (url, inbox) = receiver().await;
    inbox.lock().expect("inbox").failing.push("/fail".into());
    let hang = hanging_receiver().await;
    let http = client();
    let s = Server::start(&dir.path().join("data"), ENV);
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel("hook", "webhook", &format!("{url}/hook"), json!({})),
    )
    .await;
    let fail = post(
        &http,
        &s,
        "/api/v1/channels",
        channel("fail", "webhook", &format!("{url}/fail"), json!({})),
    )
    .await;
    let hung = post(
        &http,
        &s,
        "/api/v1/channels",
        channel("hang", "webhook", &hang, json!({})),
    )
    .await;
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel(
            "limited",
            "webhook",
            &format!("{url}/limited"),
            json!({"group_by": ["alertname", "service"], "rate_per_minute": 1}),
        ),
    )
    .await;
    let all = ["hook", "fail", "hang", "limited"];
    // Critical for every service but payment; warning for every service,
    // firing a little later and resolving well before (inhibition holds
    // only while its source fires, as in Alertmanager: a target that
    // outlives its source is told).
    post(
        &http,
        &s,
        "/api/v1/alerts/rules",
        busy_rule(
            "HighLoad",
            "critical",
            "AND service_name <> 'payment'",
            &all,
            "0s",
            "30s",
        ),
    )
    .await;
    post(
        &http,
        &s,
        "/api/v1/alerts/rules",
        busy_rule("SlowLoad", "warning", "", &all, "3s", "20s"),
    )
    .await;
    let m = |n: &str, v: &str| json!({"name": n, "value": v, "isRegex": false, "isEqual": true});
    // A silence on one alert.
    post(
        &http,
        &s,
        "/api/v1/silences",
        json!({"matchers": [m("alertname", "HighLoad"), m("service", "checkout")],
        "startsAt": "now-1m", "endsAt": "now+1h", "comment": "deploying"}),
    )
    .await;
    // A daily maintenance window that began a day ago: in force now by recurrence.
    post(
        &http,
        &s,
        "/api/v1/silences",
        json!({"matchers": [m("alertname", "HighLoad"), m("service", "cart")],
        "startsAt": "now-1441m", "endsAt": "now-1380m", "every": "24h", "comment": "nightly"}),
    )
    .await;
    // A daily window not in force now, and an expired silence: they must not hold anything back.
    post(
        &http,
        &s,
        "/api/v1/silences",
        json!({"matchers": [m("service", "frontend")],
        "startsAt": "now-12h", "endsAt": "now-11h", "every": "24h"}),
    )
    .await;
    post(
        &http,
        &s,
        "/api/v1/silences",
        json!({"matchers": [m("service", "product-catalog")],
        "startsAt": "now-2h", "endsAt": "now-1h"}),
    )
    .await;
    // A regex silence that matches nothing.
    post(
        &http,
        &s,
        "/api/v1/silences",
        json!({"matchers": [{"name": "service", "value": "pay.*x", "isRegex": true}],
        "startsAt": "now-1m", "endsAt": "now+1h"}),
    )
    .await;
    // Critical inhibits warning on the same service.
    post(
        &http,
        &s,
        "/api/v1/alerts/inhibitions",
        json!({"source_matchers": [m("severity", "critical")],
        "target_matchers": [m("severity", "warning")], "equal": ["service"]}),
    )
    .await;
    let (st, v) = call(
        &http,
        &s,
        "POST",
        "/api/v1/silences",
        Some(&s.token),
        Some(json!({"matchers": [], "startsAt": "now", "endsAt": "now+1h"})),
    )
    .await;
    assert_eq!(st, 400, "a silence without matchers is refused: {v}");

    let sent_at = Instant::now();
    send_spans(&http, &s, 11, now_ns(), 600).await;
    let expected = pairs(&[
        ("HighLoad", "frontend"),
        ("HighLoad", "product-catalog"),
        ("SlowLoad", "payment"),
    ]);
    until("the unsuppressed alerts", Duration::from_secs(40), || {
        with_status(&inbox, "/hook", "firing") == expected
    })
    .await;
    let on_time = sent_at.elapsed();
    // Nothing else arrives while they fire.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        with_status(&inbox, "/hook", "firing"),
        expected,
        "exactly what nothing matched"
    );
    let (_, alerts) = call(&http, &s, "GET", "/api/v1/alerts", Some(&s.token), None).await;
    let states: BTreeSet<(String, String)> = alerts["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["state"] == "firing")
        .map(|a| {
            (
                a["labels"]["alertname"].as_str().unwrap_or("").to_owned(),
                a["labels"]["service"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states.len(),
        9,
        "suppressed alerts still fire, they are only not sent: {alerts}"
    );

    // The channel answering 500 is retried with growing gaps; the hanging
    // one did not hold up the others (above: on time) and is retried too.
    assert!(on_time < Duration::from_secs(30), "{on_time:?}");
    until(
        "three attempts at the failing channel",
        Duration::from_secs(40),
        || {
            let i = inbox.lock().expect("inbox");
            let first = i
                .failed
                .first()
                .and_then(|g| g.headers.get("x-ophion-delivery").cloned());
            i.failed
                .iter()
                .filter(|g| g.headers.get("x-ophion-delivery") == first.as_ref())
                .count()
                >= 3
        },
    )
    .await;
    {
        let i = inbox.lock().expect("inbox");
        let first = i.failed[0].headers.get("x-ophion-delivery").cloned();
        let times: Vec<Instant> = i
            .failed
            .iter()
            .filter(|g| g.headers.get("x-ophion-delivery") == first.as_ref())
            .map(|g| g.at)
            .collect();
        let (g1, g2) = (times[1] - times[0], times[2] - times[1]);
        assert!(g1 >= Duration::from_millis(1500), "backoff: {g1:?}");
        assert!(g2 > g1, "the gaps grow: {g1:?} then {g2:?}");
    }
    for (ch, says) in [(&fail, "500"), (&hung, "timed out")] {
        let id = ch["id"].as_i64().expect("id");
        let start = Instant::now();
        loop {
            let d = get(&http, &s, &format!("/api/v1/channels/{id}/deliveries")).await;
            let hit = d["deliveries"].as_array().into_iter().flatten().any(|x| {
                x["state"] == "pending"
                    && x["last_error"].as_str().is_some_and(|e| e.contains(says))
            });
            if hit {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(40), "{says}: {d}");
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // The rate-limited channel sent one message this minute; the others wait.
    {
        let i = inbox.lock().expect("inbox");
        assert_eq!(i.on("/limited").len(), 1, "one per minute");
    }
    // The evaluator goes on: the alerts resolve and the hook hears it.
    let start = Instant::now();
    while with_status(&inbox, "/hook", "resolved") != expected {
        if start.elapsed() > Duration::from_secs(90) {
            let i = inbox.lock().expect("inbox");
            let got: Vec<&Value> = i.on("/hook").iter().map(|g| &g.json["alerts"]).collect();
            panic!("no resolution of each: {got:?}; log {}", s.log());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anomaly_and_absence_rules_fire_on_ingested_data() {
    let dir = tempfile::tempdir().expect("tmp");
    let (url, inbox) = receiver().await;
    let http = client();
    let s = Server::start(&dir.path().join("data"), ENV);
    // Two hours of steady traffic, one batch per minute, then ten times
    // as much in the last whole minute.
    const MIN: u64 = 60_000_000_000;
    let this_minute = now_ns() / MIN * MIN;
    for k in (2..=120).rev() {
        send_spans(&http, &s, k, this_minute - k * MIN + 1_000_000_000, 80).await;
    }
    send_spans(&http, &s, 1, this_minute - MIN + 1_000_000_000, 1200).await;
    // A gauge of a worker, OTLP/JSON written by hand: steady around 10 for
    // two hours, then 100 in the last whole minute.
    let points: Vec<Value> = (1..=120u64)
        .rev()
        .map(|k| {
            let v = if k == 1 { 100.0 } else { 10.0 + (k % 3) as f64 * 0.5 };
            json!({"timeUnixNano": (this_minute - k * MIN + 2_000_000_000).to_string(), "asDouble": v})
        })
        .collect();
    let r = http
        .post(format!("{}/v1/metrics", s.otlp_http))
        .json(&json!({"resourceMetrics": [{
            "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]},
            "scopeMetrics": [{"metrics": [{"name": "queue_depth", "gauge": {"dataPoints": points}}]}],
        }]}))
        .send()
        .await
        .expect("metrics");
    assert!(r.status().is_success(), "{}", r.status());
    post(
        &http,
        &s,
        "/api/v1/channels",
        channel("hook", "webhook", &format!("{url}/hook"), json!({})),
    )
    .await;
    for rule in [
        // A gauge's per-minute mean jumps; it keeps reporting; one never came.
        json!({"name": "QueueSpike", "kind": "anomaly", "metric": "queue_depth", "service": "worker"}),
        json!({"name": "QueueGone", "kind": "absence", "metric": "queue_depth", "range": "10m"}),
        json!({"name": "HeartbeatGone", "kind": "absence", "metric": "heartbeat", "range": "10m"}),
        // The spike in frontend's rate; its error ratio stays steady.
        json!({"name": "TrafficSpike", "kind": "anomaly", "service": "frontend", "signal": "rate"}),
        json!({"name": "ErrorSpike", "kind": "anomaly", "service": "frontend", "signal": "errors"}),
        // A service that never sent anything, and one that did.
        json!({"name": "GhostSilent", "kind": "absence", "service": "ghost", "range": "10m"}),
        json!({"name": "CartSilent", "kind": "absence", "service": "cart", "range": "10m"}),
    ] {
        let mut rule = rule;
        rule["interval"] = json!("1s");
        rule["channels"] = json!(["hook"]);
        post(&http, &s, "/api/v1/alerts/rules", rule).await;
    }
    let expected = pairs(&[
        ("GhostSilent", "ghost"),
        ("TrafficSpike", "frontend"),
        ("QueueSpike", "worker"),
        ("HeartbeatGone", ""),
    ]);
    until(
        "the anomaly and the absence",
        Duration::from_secs(40),
        || with_status(&inbox, "/hook", "firing") == expected,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(with_status(&inbox, "/hook", "firing"), expected);
    let (_, a) = call(&http, &s, "GET", "/api/v1/alerts", Some(&s.token), None).await;
    let spike = a["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .find(|x| x["labels"]["alertname"] == "TrafficSpike")
        .cloned()
        .expect("spike alert");
    assert!(spike["value"].as_f64().is_some_and(|v| v > 0.8), "{spike}");

    // The same from the command line: list, silence, incidents, and rules
    // from a TOML file (GitOps), pruning what the file does not name.
    let ophion = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
            .args(args)
            .env("OPHION_SERVER", &s.api)
            .env("OPHION_TOKEN", &s.token)
            .output()
            .expect("ophion");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, list, err) = ophion(&["alerts", "list"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        list.contains("firing") && list.contains("GhostSilent") && list.contains("service=ghost"),
        "{list}"
    );
    let (code, inc, err) = ophion(&["incidents", "--open"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        inc.contains("root cause?") && inc.contains("TrafficSpike"),
        "{inc}"
    );
    let (code, out, err) = ophion(&[
        "alerts",
        "silence",
        "service=ghost",
        "alertname=~Ghost.*",
        "--duration",
        "1h",
        "--comment",
        "known",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.starts_with("silence "), "{out}");
    let (_, silences, _) = ophion(&["alerts", "silence"]);
    assert!(
        silences.contains("service=ghost,alertname=~Ghost.*") && silences.contains("known"),
        "{silences}"
    );
    let (code, _, err) = ophion(&["alerts", "silence", "service"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not a matcher"), "{err}");
    let file = dir.path().join("rules.toml");
    std::fs::write(&file, r#"
[[rules]]
name = "CartSilent"
kind = "absence"
service = "cart"
range = "15m"
interval = "1m"

[[rules]]
name = "SlowCheckout"
kind = "sql"
sql = "SELECT service_name AS service, max(duration_ns) / 1e6 AS value FROM spans WHERE start_time >= $from AND start_time < $to AND service_name = 'checkout' GROUP BY 1"
for = "5m"
severity = "warning"
labels = { team = "payments" }
channels = ["hook"]
[rules.condition]
op = ">"
threshold = 2000
"#).expect("rules file");
    let (code, out, err) = ophion(&["alerts", "apply", file.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "1 rules created, 1 updated, 0 deleted");
    let (code, out, err) = ophion(&["alerts", "apply", "--prune", file.to_str().expect("path")]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.trim(), "0 rules created, 2 updated, 6 deleted");
    let (_, rules, _) = ophion(&["alerts", "rules"]);
    assert!(
        rules.contains("SlowCheckout")
            && rules.contains("CartSilent")
            && !rules.contains("GhostSilent"),
        "{rules}"
    );
    // A bad rule in the file: nothing applied, the reason named.
    std::fs::write(&file, "[[rules]]\nname = \"Broken\"\nkind = \"sql\"\nsql = \"SELEC x\"\ncondition = { op = \">\", threshold = 1 }\n").expect("file");
    let (code, _, err) = ophion(&["alerts", "apply", "--prune", file.to_str().expect("path")]);
    assert_ne!(code, Some(0));
    assert!(
        err.contains("Broken") && err.contains("not valid SQL"),
        "{err}"
    );
    let (_, rules, _) = ophion(&["alerts", "rules"]);
    assert!(
        rules.contains("SlowCheckout"),
        "a refused file changes nothing: {rules}"
    );
}

/// OTLP/JSON server spans, written here by hand (not by the seeded
/// generator): `(service, route, user, error)` each one request, 30 s ago.
fn json_spans(requests: &[(&str, &str, Option<&str>, bool)]) -> Value {
    let start = now_ns() - 30_000_000_000;
    let mut by_service: std::collections::BTreeMap<&str, Vec<Value>> = Default::default();
    for (i, (svc, route, user, error)) in requests.iter().enumerate() {
        let mut attrs = vec![json!({"key": "http.route", "value": {"stringValue": route}})];
        if let Some(u) = user {
            attrs.push(json!({"key": "enduser.id", "value": {"stringValue": u}}));
        }
        let t = start + i as u64 * 1_000_000;
        by_service.entry(svc).or_default().push(json!({
            "traceId": format!("{:032x}", 0xabc0_0000 + i), "spanId": format!("{:016x}", 0x10_0000 + i),
            "name": format!("POST {route}"), "kind": 2,
            "startTimeUnixNano": t.to_string(), "endTimeUnixNano": (t + 5_000_000).to_string(),
            "attributes": attrs,
            "status": {"code": if *error { 2 } else { 1 }},
        }));
    }
    json!({"resourceSpans": by_service.into_iter().map(|(svc, spans)| json!({
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
        "scopeSpans": [{"scope": {"name": "hand-written"}, "spans": spans}],
    })).collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incident_reports_its_impact_from_traces() {
    let dir = tempfile::tempdir().expect("tmp");
    let http = client();
    let s = Server::start(&dir.path().join("data"), ENV);
    // checkout: 30 good requests from users u1..u8, 10 failing from u1..u3,
    // on one route; 5 good ones on another. search fails too but is not
    // part of the incident.
    let mut reqs: Vec<(&str, &str, Option<&str>, bool)> = Vec::new();
    let users = ["u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8"];
    for i in 0..30 {
        reqs.push(("checkout", "/api/checkout", Some(users[i % 8]), false));
    }
    for i in 0..10 {
        reqs.push(("checkout", "/api/checkout", Some(users[i % 3]), true));
    }
    for _ in 0..5 {
        reqs.push(("checkout", "/api/cart", None, false));
    }
    for _ in 0..7 {
        reqs.push(("search", "/api/search", Some("u9"), true));
    }
    let r = http
        .post(format!("{}/v1/traces", s.otlp_http))
        .json(&json_spans(&reqs))
        .send()
        .await
        .expect("otlp");
    assert!(r.status().is_success(), "{}", r.status());
    post(&http, &s, "/api/v1/alerts/rules", json!({
        "name": "CheckoutErrors", "kind": "sql", "interval": "1s", "range": "5m", "severity": "critical",
        "sql": "SELECT service_name AS service, CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) AS value FROM spans WHERE start_time >= $from AND start_time < $to AND service_name = 'checkout' GROUP BY 1",
        "condition": {"op": ">", "threshold": 0},
    }))
    .await;
    let start = Instant::now();
    let id = loop {
        let v = get(&http, &s, "/api/v1/incidents").await;
        if let Some(id) = v["incidents"][0]["id"].as_i64() {
            break id;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no incident: {v}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let inc = get(&http, &s, &format!("/api/v1/incidents/{id}")).await;
    let imp = &inc["impact"];
    assert_eq!(imp["services"], json!(["checkout"]), "{inc}");
    assert_eq!(imp["requests"], 45, "{imp}");
    assert_eq!(imp["errors"], 10, "{imp}");
    assert_eq!(imp["users"], 8, "{imp}");
    assert_eq!(imp["users_with_errors"], 3, "{imp}");
    assert_eq!(
        imp["endpoints"],
        json!([
            {"service": "checkout", "endpoint": "/api/checkout", "requests": 40, "errors": 10},
            {"service": "checkout", "endpoint": "/api/cart", "requests": 5, "errors": 0},
        ]),
        "{imp}"
    );
    let (st, _) = call(
        &http,
        &s,
        "GET",
        "/api/v1/incidents/999",
        Some(&s.token),
        None,
    )
    .await;
    assert_eq!(st, 404);
}
