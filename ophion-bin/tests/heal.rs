//! Auto-healing end to end on the real server.
//!
//! - A real scenario: a small HTTP service (`tests/python/heal_service.py`,
//!   the Python OpenTelemetry SDK) sends its spans to `ophion-server`; it is
//!   made to fail; the failure fires an alert; the matching playbook in
//!   `auto` mode restarts it through an allowlisted command
//!   (`tests/heal/restart-service`); the verification query passes; the
//!   run, the CLI and the audit log show each step.
//! - A restart that does not fix the service: the rollback steps run and the
//!   escalation reaches the on-call channel.
//! - Dry-run changes nothing and shows exactly what would run; `approval`
//!   waits and runs only once approved; a rejected run runs nothing; a
//!   viewer cannot approve.
//! - Safety: a program off the allowlist, labels that try to inject shell
//!   syntax or a path, the hourly limit and the blast radius: each refused
//!   and audited.
//! - A run in flight when the server is killed is `interrupted` after the
//!   restart, and its remaining steps never run.
//! - An insight of the continuous watch triggers the playbook it matches.

mod common;

use std::{
    path::{Path, PathBuf},
    process::{Child, Command},
    time::Duration,
};

use common::{PASSWORD, Server, call, client, create_user, inbox, token};
use serde_json::{Value, json};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/heal");
const SERVICE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/python/heal_service.py"
);

fn script(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// The test service `name`, started the way the restart script starts it.
struct Service {
    dir: PathBuf,
    first: Child,
}

impl Service {
    fn start(state: &Path, name: &str, otlp: &str) -> Self {
        let dir = state.join(name);
        std::fs::create_dir_all(&dir).expect("state dir");
        let first = Command::new(ophion_tests::python())
            .args([SERVICE, "--service", name, "--otlp", otlp, "--state-dir"])
            .arg(&dir)
            .spawn()
            .expect("python service");
        let s = Self { dir, first };
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while s.pid().is_none() || s.port().is_none() {
            assert!(std::time::Instant::now() < deadline, "{name} did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        s
    }

    fn read(&self, f: &str) -> Option<String> {
        std::fs::read_to_string(self.dir.join(f))
            .ok()
            .filter(|s| !s.is_empty())
    }

    fn pid(&self) -> Option<u32> {
        self.read("pid")?.trim().parse().ok()
    }

    fn port(&self) -> Option<u16> {
        self.read("port")?.trim().parse().ok()
    }

    async fn breaks(&self, http: &reqwest::Client) {
        let r = http
            .post(format!(
                "http://127.0.0.1:{}/break",
                self.port().expect("port")
            ))
            .send()
            .await
            .expect("break");
        assert_eq!(r.status(), 204);
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill").arg(pid.to_string()).status();
        }
        let _ = self.first.kill();
        let _ = self.first.wait();
    }
}

async fn send(
    http: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    call(http, s, method, path, Some(token), body).await
}

async fn ok(
    http: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Value {
    let (st, v) = send(http, s, method, path, &s.token, body).await;
    assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
    v
}

/// Waits until run `id` is in one of `states`; the run.
async fn run_until(
    http: &reqwest::Client,
    s: &Server,
    id: i64,
    states: &[&str],
    limit: Duration,
) -> Value {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let r = ok(http, s, "GET", &format!("/api/v1/heal/runs/{id}"), None).await;
        if states.iter().any(|st| r["state"] == *st) {
            return r;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "run {id} never reached {states:?}: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The error ratio of the service's spans over the last `window`.
fn ratio_sql(service: &str) -> String {
    format!(
        "SELECT service_name AS service, CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS value \
         FROM spans WHERE start_time >= $from AND start_time < $to AND service_name = '{service}' GROUP BY service_name"
    )
}

/// The playbook restarting `service`'s failures: `ShopFailing` alerts,
/// auto mode, verification that errors stay under 10% for 3 s, a rollback
/// that tells the deploy system (the inbox), an escalation to `oncall`.
fn restart_playbook(
    name: &str,
    service: &str,
    env: &Value,
    inbox_url: &str,
    within: &str,
) -> Value {
    json!({
        "name": name, "mode": "auto",
        "match": [{"name": "alertname", "value": "ShopFailing"}, {"name": "service", "value": service}],
        "steps": [{"type": "command", "program": script("restart-service"), "args": ["{{ $labels.service }}"], "env": env, "timeout": "30s"}],
        "verify": {"sql": "SELECT CAST(sum(CASE WHEN status_code = 'error' THEN 1 ELSE 0 END) AS DOUBLE) / count(*) AS value FROM spans WHERE start_time >= $from AND start_time < $to AND service_name = $target",
                   "condition": {"op": "<", "threshold": 0.1}, "hold": "3s", "within": within, "every": "1s", "window": "2s"},
        "rollback": [{"type": "http", "method": "POST", "url": format!("{inbox_url}/rollback/{{{{ $labels.service }}}}"), "body": {"service": "{{ $labels.service }}", "reason": "restart did not help"}}],
        "notify": ["oncall"],
        "cooldown": "0s", "max_runs_per_hour": 5,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playbooks_heal_verify_roll_back_and_stay_safe() {
    let dir = tempfile::tempdir().expect("tmp");
    let state = dir.path().join("services");
    let record = dir.path().join("record.txt");
    let commands = format!(
        r#"["{}", "{}"]"#,
        script("restart-service"),
        script("record")
    );
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__HEAL__COMMANDS", commands.as_str()),
            ("OPHION__HEAL__TICK_MS", "200"),
        ],
    );
    let http = client();
    let (inbox_url, inbox) = inbox::receiver().await;
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/channels",
        Some(
            json!({"name": "oncall", "kind": "webhook", "url": format!("{inbox_url}/oncall"),
        "group_wait": "0s", "group_interval": "1s", "repeat_interval": "0s"}),
        ),
    )
    .await;
    let env = json!({"STATE_DIR": state.display().to_string(), "PYTHON": ophion_tests::python(),
        "SERVICE_PY": SERVICE, "OTLP": s.otlp_http});
    let shop = Service::start(&state, "shop", &s.otlp_http);
    let cart = Service::start(&state, "cart", &s.otlp_http);
    std::fs::write(cart.dir.join("stay-broken"), "").expect("stay-broken");

    // The alert: more than half of a service's requests failing.
    ok(&http, &s, "POST", "/api/v1/alerts/rules", Some(json!({
        "name": "ShopFailing", "kind": "sql", "sql": format!("{} UNION ALL {}", ratio_sql("shop"), ratio_sql("cart")),
        "condition": {"op": ">", "threshold": 0.5}, "for": "0s", "interval": "1s", "range": "3s", "severity": "critical"}))).await;
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/playbooks",
        Some(restart_playbook(
            "restart-shop",
            "shop",
            &env,
            &inbox_url,
            "40s",
        )),
    )
    .await;
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/playbooks",
        Some(restart_playbook(
            "restart-cart",
            "cart",
            &env,
            &inbox_url,
            "12s",
        )),
    )
    .await;

    // 1. The real scenario: shop fails, the alert fires, the playbook
    // restarts it, the verification holds.
    let before = shop.pid().expect("pid");
    shop.breaks(&http).await;
    let runs = loop_runs(&http, &s, "restart-shop", 1).await;
    let id = runs[0]["id"].as_i64().expect("id");
    let run = run_until(
        &http,
        &s,
        id,
        &["succeeded", "failed", "rolled_back"],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(run["state"], "succeeded", "{run:#}");
    assert_eq!(run["trigger"]["source"], "alert");
    assert_eq!(run["trigger"]["labels"]["service"], "shop");
    let after = shop.pid().expect("pid after restart");
    assert_ne!(before, after, "the service was restarted");
    let steps = run["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["phase"], "step");
    assert_eq!(steps[0]["state"], "succeeded");
    assert_eq!(steps[0]["input"]["argv"], json!(["shop"]), "{:#}", steps[0]);
    assert!(
        steps[0]["output"]
            .as_str()
            .is_some_and(|o| o.contains(&format!("pid {before} -> {after}"))),
        "{:#}",
        steps[0]
    );
    assert!(steps[0]["duration_ms"].as_f64().is_some());
    let verify = steps
        .iter()
        .find(|st| st["phase"] == "verify")
        .expect("verify step");
    assert_eq!(verify["state"], "succeeded", "{verify:#}");
    assert!(
        verify["output"]
            .as_str()
            .is_some_and(|o| o.contains("holds")),
        "{verify:#}"
    );
    assert!(
        steps.iter().all(|st| st["phase"] != "rollback"),
        "no rollback after a fix that worked"
    );

    // The CLI shows the same run.
    let ophion = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
            .args(args)
            .env("OPHION_SERVER", &s.api)
            .env("OPHION_TOKEN", &s.token)
            .output()
            .expect("ophion");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let listed = ophion(&["heal", "runs"]);
    assert!(
        listed.contains("restart-shop") && listed.contains("succeeded"),
        "{listed}"
    );
    let shown = ophion(&["heal", "show", &id.to_string()]);
    assert!(
        shown.contains("step 1 command: succeeded")
            && shown.contains("verify 1 query: succeeded")
            && shown.contains(&format!("pid {before} -> {after}"))
            && shown.contains(" ms)"),
        "{shown}"
    );

    // 2. A fix that does not work: cart starts broken again after the
    // restart, so the verification fails, the rollback runs and on-call
    // hears of it.
    cart.breaks(&http).await;
    let runs = loop_runs(&http, &s, "restart-cart", 1).await;
    let cid = runs[0]["id"].as_i64().expect("id");
    let run = run_until(
        &http,
        &s,
        cid,
        &["succeeded", "failed", "rolled_back"],
        Duration::from_secs(90),
    )
    .await;
    assert_eq!(run["state"], "rolled_back", "{run:#}");
    let phases: Vec<(&str, &str)> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|st| {
            (
                st["phase"].as_str().unwrap_or(""),
                st["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        phases,
        vec![
            ("step", "succeeded"),
            ("verify", "failed"),
            ("rollback", "succeeded"),
            ("escalate", "succeeded")
        ],
        "{run:#}"
    );
    inbox::until(
        "the rollback request and the escalation",
        Duration::from_secs(20),
        || {
            let i = inbox.lock().expect("inbox");
            !i.on("/rollback/cart").is_empty()
                && i.on("/oncall")
                    .iter()
                    .any(|g| g.json["alerts"][0]["labels"]["alertname"] == "HealEscalation")
        },
    )
    .await;
    {
        let i = inbox.lock().expect("inbox");
        assert_eq!(
            i.on("/rollback/cart")[0].json,
            json!({"service": "cart", "reason": "restart did not help"})
        );
        let esc = i
            .on("/oncall")
            .into_iter()
            .find(|g| g.json["alerts"][0]["labels"]["alertname"] == "HealEscalation")
            .expect("escalation");
        let text = esc.json["alerts"][0]["annotations"]["summary"]
            .as_str()
            .unwrap_or("");
        assert!(
            text.contains("restart-cart") && text.contains("rolled back"),
            "{text}"
        );
        assert!(
            i.on("/rollback/shop").is_empty(),
            "shop's fix worked: no rollback for it"
        );
    }

    let shown = ophion(&["heal", "show", &cid.to_string()]);
    assert!(
        shown.contains("verify 1 query: failed")
            && shown.contains("rollback 1 http: succeeded")
            && shown.contains("escalate 1 notify: succeeded")
            && shown.contains("HTTP 200"),
        "{shown}"
    );

    // Playbooks from a TOML file, as `ophion heal playbooks --apply` sends them.
    let file = dir.path().join("playbooks.toml");
    std::fs::write(&file, format!(
        "[[playbooks]]\nname = \"from-file\"\nmode = \"approval\"\n\n[[playbooks.steps]]\ntype = \"command\"\nprogram = \"{}\"\nargs = [\"from-file\"]\n",
        script("record"))).expect("toml");
    let applied = ophion(&["heal", "playbooks", "--apply", &file.display().to_string()]);
    assert!(
        applied.contains("playbook from-file version 1"),
        "{applied}"
    );
    let listed = ophion(&["heal", "playbooks"]);
    assert!(
        listed.contains("from-file") && listed.contains("approval"),
        "{listed}"
    );

    // 3. Dry run: exactly what would run, and nothing runs.
    let pid = shop.pid();
    let dry = ok(
        &http,
        &s,
        "POST",
        "/api/v1/heal/runs",
        Some(json!({"playbook": "restart-shop", "labels": {"service": "shop"}, "dry_run": true})),
    )
    .await;
    assert_eq!(dry["state"], "dry_run", "{dry:#}");
    let would: Vec<&Value> = dry["steps"].as_array().expect("steps").iter().collect();
    assert!(would.iter().all(|st| st["state"] == "would_run"), "{dry:#}");
    assert_eq!(would[0]["input"]["program"], script("restart-service"));
    assert_eq!(would[0]["input"]["argv"], json!(["shop"]));
    assert_eq!(
        would[0]["input"]["env"]["STATE_DIR"],
        state.display().to_string()
    );
    assert!(
        would.iter().any(|st| st["phase"] == "rollback"
            && st["input"]["url"] == format!("{inbox_url}/rollback/shop")),
        "{dry:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(shop.pid(), pid, "a dry run restarted nothing");
    assert!(
        inbox.lock().expect("inbox").on("/rollback/shop").is_empty(),
        "a dry run called nothing"
    );

    // 4. Approval: waits, runs once approved; a rejected run runs nothing;
    // a viewer may not approve.
    ok(&http, &s, "POST", "/api/v1/playbooks", Some(json!({
        "name": "record-it", "mode": "approval", "cooldown": "0s", "max_runs_per_hour": 2,
        "blast_radius": {"max_targets": 1},
        "steps": [{"type": "command", "program": script("record"), "args": ["fixed", "{{ $labels.service }}"], "env": {"RECORD": record.display().to_string()}}],
        "notify": ["oncall"]}))).await;
    let start = |labels: Value| {
        ok(
            &http,
            &s,
            "POST",
            "/api/v1/heal/runs",
            Some(json!({"playbook": "record-it", "labels": labels})),
        )
    };
    let a = start(json!({"service": "api"})).await;
    assert_eq!(a["state"], "awaiting_approval", "{a:#}");
    let aid = a["id"].as_i64().expect("id");
    inbox::until("the approval request", Duration::from_secs(20), || {
        inbox
            .lock()
            .expect("inbox")
            .on("/oncall")
            .iter()
            .any(|g| g.json["alerts"][0]["labels"]["alertname"] == "HealApproval")
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!record.exists(), "nothing runs before approval");
    create_user(&http, &s, &s.token, "vic", "viewer").await;
    let viewer = token(&http, &s, "vic", PASSWORD).await;
    let (st, v) = send(
        &http,
        &s,
        "POST",
        &format!("/api/v1/heal/runs/{aid}/approve"),
        &viewer,
        None,
    )
    .await;
    assert_eq!(st, 403, "{v}");
    create_user(&http, &s, &s.token, "ed", "editor").await;
    let editor = token(&http, &s, "ed", PASSWORD).await;
    let (st, v) = send(
        &http,
        &s,
        "POST",
        &format!("/api/v1/heal/runs/{aid}/approve"),
        &editor,
        None,
    )
    .await;
    assert_eq!(st, 200, "{v}");
    let done = run_until(
        &http,
        &s,
        aid,
        &["succeeded", "failed"],
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(done["state"], "succeeded", "{done:#}");
    assert_eq!(done["decided_by"], "ed");
    assert_eq!(
        std::fs::read_to_string(&record).expect("record"),
        "fixed api\n"
    );
    let b = start(json!({"service": "api"})).await;
    let bid = b["id"].as_i64().expect("id");
    let (st, _) = send(
        &http,
        &s,
        "POST",
        &format!("/api/v1/heal/runs/{bid}/reject"),
        &editor,
        None,
    )
    .await;
    assert_eq!(st, 200);
    let (st, v) = send(
        &http,
        &s,
        "POST",
        &format!("/api/v1/heal/runs/{bid}/approve"),
        &editor,
        None,
    )
    .await;
    assert_eq!(st, 409, "a rejected run cannot be approved: {v}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        std::fs::read_to_string(&record).expect("record"),
        "fixed api\n",
        "a rejected run ran"
    );

    // 5. Safety, each refused and audited.
    let (st, v) = send(&http, &s, "POST", "/api/v1/playbooks", &s.token, Some(json!({
        "name": "sneaky", "steps": [{"type": "command", "program": "/bin/sh", "args": ["-c", "id"]}]}))).await;
    assert_eq!(st, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not in the server's allowlist")),
        "{v}"
    );
    for (bad, why) in [
        ("api; rm -rf /", "not a plain name"),
        ("../../etc/passwd", "not a plain name"),
        ("--help", "not a plain name"),
    ] {
        let r = start(json!({"service": bad})).await;
        assert_eq!(r["state"], "refused", "{bad}: {r:#}");
        assert!(
            r["reason"].as_str().is_some_and(|m| m.contains(why)),
            "{r:#}"
        );
    }
    // The hourly limit: two runs started an hour (the approved one and
    // this one), so a third is refused.
    let c = start(json!({"service": "api"})).await;
    assert_eq!(c["state"], "awaiting_approval", "{c:#}");
    let d = start(json!({"service": "api"})).await;
    assert_eq!(d["state"], "refused", "{d:#}");
    assert!(
        d["reason"]
            .as_str()
            .is_some_and(|m| m.starts_with("hourly limit")),
        "{d:#}"
    );
    // The blast radius: one target an hour.
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/playbooks",
        Some(json!({
        "name": "one-target", "mode": "auto", "cooldown": "0s", "blast_radius": {"max_targets": 1},
        "steps": [{"type": "wait", "duration": "0s"}]})),
    )
    .await;
    let one = |svc: &str| {
        ok(
            &http,
            &s,
            "POST",
            "/api/v1/heal/runs",
            Some(json!({"playbook": "one-target", "labels": {"service": svc}})),
        )
    };
    assert_ne!(one("a").await["state"], "refused");
    let second = one("b").await;
    assert_eq!(second["state"], "refused", "{second:#}");
    assert!(
        second["reason"]
            .as_str()
            .is_some_and(|m| m.starts_with("blast radius")),
        "{second:#}"
    );
    // The cooldown: the same target again within it.
    ok(&http, &s, "POST", "/api/v1/playbooks", Some(json!({
        "name": "cool", "mode": "auto", "cooldown": "1h", "steps": [{"type": "wait", "duration": "0s"}]}))).await;
    let cool = || {
        ok(
            &http,
            &s,
            "POST",
            "/api/v1/heal/runs",
            Some(json!({"playbook": "cool", "labels": {"service": "api"}})),
        )
    };
    assert_ne!(cool().await["state"], "refused");
    let again = cool().await;
    assert!(
        again["reason"]
            .as_str()
            .is_some_and(|m| m.starts_with("cooldown")),
        "{again:#}"
    );
    // Too much unhealthy already: cart's alert still fires (its restart did
    // not fix it), and this playbook allows none.
    ok(&http, &s, "POST", "/api/v1/playbooks", Some(json!({
        "name": "calm-only", "mode": "auto", "blast_radius": {"max_firing": 0}, "steps": [{"type": "wait", "duration": "0s"}]}))).await;
    let calm = ok(
        &http,
        &s,
        "POST",
        "/api/v1/heal/runs",
        Some(json!({"playbook": "calm-only", "labels": {"service": "api"}})),
    )
    .await;
    assert!(
        calm["reason"]
            .as_str()
            .is_some_and(|m| m.contains("alerts fire in this tenant")),
        "{calm:#}"
    );
    // Nothing refused ran.
    assert_eq!(
        std::fs::read_to_string(&record).expect("record"),
        "fixed api\n"
    );

    // The audit log holds every run, step, decision and refusal.
    let audit = ok(&http, &s, "GET", "/api/v1/audit?limit=1000", None).await;
    let records = audit["records"].as_array().expect("records");
    let has = |action: &str, outcome: &str, needle: &str| {
        records.iter().any(|r| {
            r["action"] == action
                && r["outcome"] == outcome
                && (r["target"].as_str().unwrap_or("").contains(needle)
                    || r["detail"].as_str().unwrap_or("").contains(needle))
        })
    };
    for (action, outcome, needle) in [
        ("heal_run", "ok", &format!("run {id}")[..]),
        ("heal_step", "ok", &format!("run {id} step 1")[..]),
        ("heal_verify", "ok", &format!("run {id}")[..]),
        ("heal_verify", "failed", &format!("run {cid}")[..]),
        ("heal_rollback", "ok", &format!("run {cid}")[..]),
        ("heal_approve", "ok", &format!("run {aid}")[..]),
        ("heal_reject", "ok", &format!("run {bid}")[..]),
        ("playbook_put", "denied", "allowlist"),
        ("heal_run", "denied", "not a plain name"),
        ("heal_run", "denied", "hourly limit"),
        ("heal_run", "denied", "blast radius"),
        ("heal_run", "denied", "cooldown"),
        ("heal_run", "denied", "alerts fire"),
        // The access layer names the route, not the run.
        (
            "permission_denied",
            "denied",
            "POST /api/v1/heal/runs/{id}/approve",
        ),
    ] {
        assert!(
            has(action, outcome, needle),
            "no audit record {action} {outcome} {needle}: {audit:#}"
        );
    }
    drop((shop, cart));
}

/// Waits until `playbook` has at least `n` runs; them, newest first.
async fn loop_runs(http: &reqwest::Client, s: &Server, playbook: &str, n: usize) -> Vec<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let v = ok(http, s, "GET", "/api/v1/heal/runs", None).await;
        let runs: Vec<Value> = v["runs"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["playbook"] == playbook)
            .cloned()
            .collect();
        if runs.len() >= n {
            return runs;
        }
        if std::time::Instant::now() >= deadline {
            let alerts = ok(http, s, "GET", "/api/v1/alerts", None).await;
            let rules = ok(http, s, "GET", "/api/v1/alerts/rules", None).await;
            let spans = common::sql(
                http,
                s,
                "SELECT service_name, status_code, count(*) AS n FROM spans GROUP BY 1, 2",
            )
            .await;
            panic!(
                "no run of {playbook}: {v:#}\nalerts: {alerts:#}\nrules: {rules:#}\nspans: {spans:?}\nserver: {}",
                s.log()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A run in flight when the server is killed is marked interrupted at the
/// next start; the steps it had not reached never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_a_crash_is_interrupted_never_repeated() {
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let record = dir.path().join("record.txt");
    let commands = format!(r#"["{}"]"#, script("record"));
    let env = [
        ("OPHION__HEAL__COMMANDS", commands.as_str()),
        ("OPHION__HEAL__TICK_MS", "200"),
    ];
    let s = Server::start(&data, &env);
    let http = client();
    let rec = |word: &str| json!({"type": "command", "program": script("record"), "args": [word], "env": {"RECORD": record.display().to_string()}});
    ok(&http, &s, "POST", "/api/v1/playbooks", Some(json!({
        "name": "slow", "mode": "auto", "steps": [rec("first"), {"type": "wait", "duration": "60s"}, rec("second")]}))).await;
    let r = ok(
        &http,
        &s,
        "POST",
        "/api/v1/heal/runs",
        Some(json!({"playbook": "slow", "labels": {"service": "x"}})),
    )
    .await;
    let id = r["id"].as_i64().expect("id");
    inbox::until("the first step", Duration::from_secs(20), || {
        std::fs::read_to_string(&record).is_ok_and(|t| t == "first\n")
    })
    .await;
    // The first step writes the file before its end is stored; the crash
    // must come once the wait is under way (with PostgreSQL metadata, the
    // store took long enough for a kill to land in between).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let r = ok(&http, &s, "GET", &format!("/api/v1/heal/runs/{id}"), None).await;
        let steps = r["steps"].as_array().cloned().unwrap_or_default();
        if steps.len() == 2 && steps[1]["state"] == "running" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the wait never started: {r:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(s); // SIGKILL during the wait
    let s = Server::start(&data, &env);
    let run = run_until(&http, &s, id, &["interrupted"], Duration::from_secs(20)).await;
    assert!(
        run["reason"]
            .as_str()
            .is_some_and(|m| m.contains("not resumed")),
        "{run:#}"
    );
    let states: Vec<&str> = run["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|st| st["state"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(states, vec!["succeeded", "interrupted"], "{run:#}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        std::fs::read_to_string(&record).expect("record"),
        "first\n",
        "nothing ran twice or after the crash"
    );
    let audit = ok(
        &http,
        &s,
        "GET",
        "/api/v1/audit?action=heal_interrupted",
        None,
    )
    .await;
    assert!(
        audit["records"].as_array().is_some_and(|r| !r.is_empty()),
        "{audit:#}"
    );
}

/// An insight of the continuous watch triggers the playbook that matches
/// it (kind, metric, service), like an alert; one that does not match
/// triggers nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insights_trigger_the_playbooks_they_match() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__HEAL__TICK_MS", "200"),
            ("OPHION__AI__INTERVAL_SECS", "1"),
            ("OPHION__AI__WATCH_METRICS", r#"["queue.depth"]"#),
        ],
    );
    let http = client();
    let playbook = |name: &str, metric: &str| {
        json!({
        "name": name, "mode": "dry-run",
        "match": [{"name": "alertname", "value": "Insight"}, {"name": "kind", "value": "anomaly"}, {"name": "metric", "value": metric}],
        "steps": [{"type": "http", "url": "http://127.0.0.1:9/drain/{{ $labels.service }}"}]})
    };
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/playbooks",
        Some(playbook("drain-queue", "queue.depth")),
    )
    .await;
    ok(
        &http,
        &s,
        "POST",
        "/api/v1/playbooks",
        Some(playbook("other-metric", "disk.used")),
    )
    .await;
    // A queue that holds about 50 for 100 minutes, then jumps to 400.
    let min = 60_000_000_000u64;
    let now = common::now_ns() / min;
    let points: Vec<Value> = (now - 100..now - 1)
        .map(|m| {
            json!({"timeUnixNano": (m * min + 30_000_000_000).to_string(),
            "asDouble": if m == now - 8 { 400.0 } else { 50.0 + (m * 7 % 5) as f64 }})
        })
        .collect();
    let r = http.post(format!("{}/v1/metrics", s.otlp_http))
        .json(&json!({"resourceMetrics": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "worker"}}]},
            "scopeMetrics": [{"metrics": [{"name": "queue.depth", "gauge": {"dataPoints": points}}]}]}]}))
        .send().await.expect("otlp");
    assert!(r.status().is_success());
    let runs = loop_runs(&http, &s, "drain-queue", 1).await;
    let run = &runs[0];
    assert_eq!(run["trigger"]["source"], "insight", "{run:#}");
    assert_eq!(run["state"], "dry_run", "{run:#}");
    let labels = &run["trigger"]["labels"];
    assert_eq!(
        (
            labels["kind"].as_str(),
            labels["metric"].as_str(),
            labels["service"].as_str()
        ),
        (Some("anomaly"), Some("queue.depth"), Some("worker")),
        "{run:#}"
    );
    let full = ok(
        &http,
        &s,
        "GET",
        &format!("/api/v1/heal/runs/{}", run["id"]),
        None,
    )
    .await;
    assert_eq!(
        full["steps"][0]["input"]["url"], "http://127.0.0.1:9/drain/worker",
        "{full:#}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let all = ok(&http, &s, "GET", "/api/v1/heal/runs", None).await;
    assert!(
        all["runs"]
            .as_array()
            .expect("runs")
            .iter()
            .all(|r| r["playbook"] != "other-metric"),
        "{all:#}"
    );
}
