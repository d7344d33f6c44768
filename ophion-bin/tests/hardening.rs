//! The review's findings, each against the real server binary: every
//! method of every route through the access layer, extreme parameters
//! answered 4xx (never 5xx, never a dropped connection), the signing key
//! on disk and its rotation, tenant boundaries of status, users and the
//! live tail.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::{PASSWORD, Server, call, client, create_user, login, metrics, token};
use futures::StreamExt as _;
use ophion_bin::{api::routes, auth::Permission};
use serde_json::{Value, json};

/// Every method a client can send, including ones no route uses and one
/// that is not a standard method at all.
const METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "BREW",
];

/// A concrete URL for a route path.
fn url(path: &str) -> String {
    path.replace("{trace_id}", "0123456789abcdef0123456789abcdef")
        .replace("{name}", "checkout")
        .replace("{id}", "1")
}

async fn send(
    http: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> u16 {
    let mut req = http.request(
        reqwest::Method::from_bytes(method.as_bytes()).expect("method"),
        format!("{}{path}", s.api),
    );
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let r = req
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: connection dropped: {e}"));
    r.status().as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_method_on_every_route_goes_through_the_access_layer() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    let (status, v) = call(
        &http,
        &s,
        "POST",
        "/api/v1/tenants",
        Some(&s.token),
        Some(json!({"id": "acme", "name": "Acme", "admin_username": "acme-admin", "admin_password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let acme_admin = token(&http, &s, "acme-admin", PASSWORD).await;
    create_user(&http, &s, &acme_admin, "acme-viewer", "viewer").await;
    let other_viewer = token(&http, &s, "acme-viewer", PASSWORD).await;
    // A token signed out before the run: refused everywhere.
    let revoked = token(&http, &s, "admin", common::ADMIN_PASSWORD).await;
    let (status, _) = call(
        &http,
        &s,
        "POST",
        "/api/v1/auth/logout",
        Some(&revoked),
        None,
    )
    .await;
    assert_eq!(status, 204);

    // (path) -> method -> permission, from the one route table.
    let mut by_path: BTreeMap<&str, BTreeMap<String, Permission>> = BTreeMap::new();
    for r in routes::table() {
        by_path
            .entry(r.path())
            .or_default()
            .insert(r.method().as_str().to_owned(), r.permission());
    }
    let mut checked = 0;
    for (path, methods) in &by_path {
        if path.ends_with("/tail") || path.ends_with("/logout") {
            continue; // a stream that stays open; ends the session: below
        }
        let u = url(path);
        for method in METHODS {
            // The router answers HEAD with GET's handler: it needs GET's permission.
            let routed = if method == "HEAD" { "GET" } else { method };
            let perm = methods.get(routed).copied();
            for (who, tok) in [
                ("anonymous", None),
                ("revoked token", Some(revoked.as_str())),
                ("other tenant's viewer", Some(other_viewer.as_str())),
            ] {
                let got = send(&http, &s, method, &u, tok).await;
                checked += 1;
                let ctx = format!("{who}: {method} {u}");
                match perm {
                    // Not routed: 405 whoever asks (the path is public
                    // knowledge: the OpenAPI document lists it).
                    None => assert_eq!(got, 405, "{ctx}"),
                    Some(Permission::Public) => assert!(got < 500, "{ctx}: {got}"),
                    Some(_) if who != "other tenant's viewer" => assert_eq!(got, 401, "{ctx}"),
                    Some(Permission::Read | Permission::SignedIn) => {
                        assert!(
                            got < 500 && got != 401 && got != 403,
                            "{ctx}: a viewer may: {got}"
                        )
                    }
                    Some(_) => assert_eq!(got, 403, "{ctx}"),
                }
            }
        }
    }
    assert_eq!(checked, (by_path.len() - 2) * METHODS.len() * 3);
    // The sign-out route and the tail stream too: no token, 401.
    for (m, p) in [
        ("POST", "/api/v1/auth/logout"),
        ("GET", "/api/v1/logs/tail"),
    ] {
        assert_eq!(send(&http, &s, m, p, None).await, 401, "{m} {p}");
        assert_eq!(send(&http, &s, m, p, Some(&revoked)).await, 401, "{m} {p}");
    }
}

/// Values no parameter should ever be hurt by.
fn extremes() -> Vec<String> {
    let mut v: Vec<String> = [
        i64::MIN.to_string(),
        i64::MAX.to_string(),
        u64::MAX.to_string(),
        "-1".into(),
        "0".into(),
        "1".into(),
        "99999999999999999999999999".into(),
        format!("now-{}d", i64::MAX),
        "now-106751d".into(),
        "now-9223372036854775807ns".into(),
        "9223372036854ms".into(),
        "1ms".into(),
        "-5m".into(),
        "2262-04-12T00:00:00Z".into(),
        "1677-09-21T00:12:44Z".into(),
        "NaN".into(),
        "1e308".into(),
        String::new(),
        " ".into(),
        "\u{0}".into(),
        "%".into(),
        "a=".into(),
        "=b".into(),
        "'; DROP TABLE spans; --".into(),
        "x".repeat(4_000),
    ]
    .into();
    v.push("ü\u{202e}".into());
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extreme_parameters_are_answered_4xx_never_5xx() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    // The parameters of every operation, from the OpenAPI document the
    // route table makes: a parameter added later is covered too.
    let doc: Value = http
        .get(format!("{}/api/v1/openapi.json", s.api))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let mut sent = 0;
    for (path, ops) in doc["paths"].as_object().expect("paths") {
        if path.ends_with("/tail") {
            continue; // a stream: its parameters are checked below
        }
        for (method, op) in ops.as_object().expect("ops") {
            if method != "get" {
                continue;
            }
            let params: Vec<&str> = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "query")
                .filter_map(|p| p["name"].as_str())
                .collect();
            for name in &params {
                for value in extremes() {
                    // One parameter at a time, and all of them at once.
                    for query in [
                        vec![(name.to_string(), value.clone())],
                        params
                            .iter()
                            .map(|n| (n.to_string(), value.clone()))
                            .collect(),
                    ] {
                        let r = http
                            .get(format!("{}{}", s.api, url(path)))
                            .bearer_auth(&s.token)
                            .query(&query)
                            .send()
                            .await
                            .unwrap_or_else(|e| {
                                panic!("GET {path} {name}: dropped: {:.200}", e.to_string())
                            });
                        let status = r.status().as_u16();
                        let body = r.text().await.unwrap_or_default();
                        assert!(
                            (200..500).contains(&status),
                            "GET {path} {name}={:.60}: {status} {body:.300}",
                            value
                        );
                        sent += 1;
                    }
                }
            }
        }
    }
    assert!(sent > 500, "{sent} requests");
    // Bytes that are not UTF-8, raw in the query string.
    for path in ["/api/v1/logs", "/api/v1/traces", "/api/v1/metrics/query"] {
        let r = http
            .get(format!("{}{path}?q=%FF%FE&from=%C3%28&name=%80", s.api))
            .bearer_auth(&s.token)
            .send()
            .await
            .expect("answered");
        assert!(r.status().is_client_error(), "{path}: {}", r.status());
    }
    // JSON bodies with extreme times and sizes.
    for (start, end) in [
        (json!(i64::MIN.to_string()), json!("now")),
        (json!("0"), json!(i64::MAX.to_string())),
        (json!("now-106751d"), json!("now")),
        (json!(format!("now-{}ms", i64::MAX)), json!("now")),
        (json!("1"), json!("2")),
        (json!("now"), json!("now-1h")),
        (json!(""), json!("")),
        (json!(12), json!(null)),
    ] {
        let (status, v) = call(
            &http,
            &s,
            "POST",
            "/api/v1/ai/analyze",
            Some(&s.token),
            Some(json!({"start": start, "end": end})),
        )
        .await;
        assert!(
            (200..500).contains(&status),
            "analyze {start}..{end}: {status} {v}"
        );
    }
    for body in [&b"\xff\xfe{"[..], b"{\"sql\": \"\xff\"}", b"", b"[]"] {
        let r = http
            .post(format!("{}/api/v1/query", s.api))
            .bearer_auth(&s.token)
            .header("content-type", "application/json")
            .body(body.to_vec())
            .send()
            .await
            .expect("answered");
        assert!(r.status().is_client_error(), "{body:?}: {}", r.status());
    }
    // The server is still there, and nothing counted as a server error.
    let text = metrics(&s.api).await;
    assert!(
        text.contains("ophion_api_errors_total{class=\"5xx\"} 0"),
        "server errors: {text}"
    );
    assert!(!s.log().contains("panicked"), "{}", s.log());
}

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(p).expect("exists").permissions().mode() & 0o777
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_signing_key_is_private_kept_out_of_the_database_and_rotates() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let data = dir.path().join("data");
    let s = Server::start(&data, &[]);
    let http = client();
    assert_eq!(mode(&data), 0o700, "data directory");
    let key_file = data.join("signing.key");
    assert_eq!(mode(&key_file), 0o600, "key file");
    let key = std::fs::read_to_string(&key_file).expect("key");
    assert_eq!(key.len(), 64, "32 bytes as hex");
    let db = std::fs::read(data.join("metadata.db")).expect("db");
    let wal = std::fs::read(data.join("metadata.db-wal")).unwrap_or_default();
    for bytes in [&db, &wal] {
        assert!(
            !bytes.windows(key.len()).any(|w| w == key.as_bytes()),
            "the key is not in the database"
        );
    }

    // Rotation: a viewer's and the admin's tokens stop working, and so do
    // refresh tokens; signing in again works.
    create_user(&http, &s, &s.token, "vera", "viewer").await;
    let (_, viewer) = login(&http, &s, "vera", PASSWORD).await;
    let viewer_token = viewer["token"].as_str().expect("token").to_owned();
    let (status, _) = call(
        &http,
        &s,
        "GET",
        "/api/v1/auth/me",
        Some(&viewer_token),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = call(
        &http,
        &s,
        "POST",
        "/api/v1/admin/signing-key/rotate",
        Some(&viewer_token),
        None,
    )
    .await;
    assert_eq!(status, 403, "viewers may not rotate");
    // Through the CLI, as an operator would.
    let cfg = dir.path().join("cli");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args(["--server", &s.api, "admin", "rotate-signing-key"])
        .env("OPHION_TOKEN", &s.token)
        .env("XDG_CONFIG_HOME", &cfg)
        .output()
        .expect("cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("signing key rotated"));
    assert_ne!(std::fs::read_to_string(&key_file).expect("key"), key);
    assert_eq!(mode(&key_file), 0o600);
    for t in [&viewer_token, &s.token] {
        let (status, _) = call(&http, &s, "GET", "/api/v1/auth/me", Some(t), None).await;
        assert_eq!(status, 401, "old tokens no longer verify");
    }
    let (status, _) = call(
        &http,
        &s,
        "POST",
        "/api/v1/auth/refresh",
        None,
        Some(json!({"refresh_token": viewer["refresh_token"]})),
    )
    .await;
    assert_eq!(status, 401, "refresh tokens ended with the key");
    let fresh = token(&http, &s, "vera", PASSWORD).await;
    let (status, _) = call(&http, &s, "GET", "/api/v1/auth/me", Some(&fresh), None).await;
    assert_eq!(status, 200);
    let rotated = std::fs::read_to_string(&key_file).expect("key");
    s.stop(Duration::from_secs(30));

    // The rotated key survives a restart; a key file others can read stops
    // the server with a clear error.
    let s = Server::start(&data, &[]);
    let (status, _) = call(&http, &s, "GET", "/api/v1/auth/me", Some(&fresh), None).await;
    assert_eq!(
        status, 200,
        "tokens signed with the rotated key still verify"
    );
    assert_eq!(std::fs::read_to_string(&key_file).expect("key"), rotated);
    s.stop(Duration::from_secs(30));
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = common::refused_start(&data, &[]);
    assert!(
        err.contains("signing.key has mode 644") && err.contains("chmod 600"),
        "{err}"
    );

    // A key from the environment: no file needed, used as given, and
    // rotation is refused with a pointer to where the key lives.
    let env_data = dir.path().join("env-data");
    let hex_key = "5a".repeat(32);
    let s = Server::start(&env_data, &[("OPHION_SIGNING_KEY", hex_key.as_str())]);
    assert!(!env_data.join("signing.key").exists());
    let (status, v) = call(
        &http,
        &s,
        "POST",
        "/api/v1/admin/signing-key/rotate",
        Some(&s.token),
        None,
    )
    .await;
    assert_eq!(status, 409, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("OPHION_SIGNING_KEY")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_see_their_own_status_and_users_and_names_repeat_across_tenants() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    for (id, admin) in [("acme", "boss"), ("beta", "boss")] {
        let (status, v) = call(
            &http,
            &s,
            "POST",
            "/api/v1/tenants",
            Some(&s.token),
            Some(
                json!({"id": id, "name": id, "admin_username": admin, "admin_password": PASSWORD}),
            ),
        )
        .await;
        assert_eq!(status, 201, "the same admin name in a second tenant: {v}");
    }
    // Without the tenant, a name in two tenants (neither the default) is
    // refused like a wrong password; with it, each signs in to their own.
    let (status, v) = login(&http, &s, "boss", PASSWORD).await;
    assert_eq!(status, 401, "{v}");
    let sign_in = |tenant: &'static str| {
        let http = http.clone();
        let api = s.api.clone();
        async move {
            let r: Value = http
                .post(format!("{api}/api/v1/auth/login"))
                .json(&json!({"username": "boss", "password": PASSWORD, "tenant": tenant}))
                .send()
                .await
                .expect("login")
                .json()
                .await
                .expect("json");
            r["token"].as_str().expect("token").to_owned()
        }
    };
    let acme = sign_in("acme").await;
    let beta = sign_in("beta").await;
    let me = |t: String| {
        let http = http.clone();
        let s = &s;
        async move {
            call(&http, s, "GET", "/api/v1/auth/me", Some(&t), None)
                .await
                .1
        }
    };
    assert_eq!(me(acme.clone()).await["tenant"], "acme");
    assert_eq!(me(beta.clone()).await["tenant"], "beta");
    // A name the default tenant has is free in another tenant: creating it
    // tells nothing of the default tenant's users.
    let (status, v) = call(
        &http,
        &s,
        "POST",
        "/api/v1/users",
        Some(&acme),
        Some(json!({"username": "admin", "password": PASSWORD, "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    // Within a tenant, names stay unique.
    let (status, _) = call(
        &http,
        &s,
        "POST",
        "/api/v1/users",
        Some(&acme),
        Some(json!({"username": "admin", "password": PASSWORD, "role": "viewer"})),
    )
    .await;
    assert_eq!(status, 409);
    // `admin` without a tenant is still the default tenant's admin.
    let (status, v) = login(&http, &s, "admin", common::ADMIN_PASSWORD).await;
    assert_eq!(status, 200, "{v}");
    let (_, users) = call(&http, &s, "GET", "/api/v1/users", Some(&acme), None).await;
    let names: Vec<&str> = users["users"]
        .as_array()
        .expect("users")
        .iter()
        .filter_map(|u| u["username"].as_str())
        .collect();
    assert_eq!(names, ["boss", "admin"], "acme's users only");

    // Status: a tenant's figures for a tenant, the server's for operators.
    let now = common::now_ns();
    let body = json!({"resourceLogs": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "svc"}}]},
        "scopeLogs": [{"logRecords": [{"timeUnixNano": now.to_string(), "body": {"stringValue": "hello"}}]}]}]});
    let r = http
        .post(format!("{}/v1/logs", s.otlp_http))
        .json(&body)
        .send()
        .await
        .expect("otlp");
    assert_eq!(r.status(), 200);
    let (_, op) = call(&http, &s, "GET", "/api/v1/status", Some(&s.token), None).await;
    assert_eq!(op["scope"], "server", "{op}");
    assert!(op["memory"]["resident_bytes"].as_u64().is_some());
    assert_eq!(op["logs"]["received_items"], 1);
    let (status, st) = call(&http, &s, "GET", "/api/v1/status", Some(&acme), None).await;
    assert_eq!(status, 200);
    assert_eq!(st["scope"], "tenant", "{st}");
    assert_eq!(st["tenant"], "acme");
    assert!(
        st.get("memory").is_none() && st["logs"].get("received_items").is_none(),
        "{st}"
    );
    assert_eq!(
        st["logs"]["stored_rows"], 0,
        "nothing of the default tenant's: {st}"
    );
}

/// Reads a tail stream until it ends; the events' names, or `None` if it
/// did not end within `limit`.
async fn events_until_end(resp: reqwest::Response, limit: Duration) -> Option<Vec<String>> {
    let mut names = Vec::new();
    let mut stream = resp.bytes_stream();
    let read = async {
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { break };
            for line in String::from_utf8_lossy(&chunk).lines() {
                if let Some(n) = line.strip_prefix("event:") {
                    names.push(n.trim().to_owned());
                }
            }
        }
    };
    tokio::time::timeout(limit, read).await.ok()?;
    Some(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tail_stream_ends_when_its_token_is_signed_out_or_revoked() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("data"), &[]);
    let http = client();
    let id = create_user(&http, &s, &s.token, "tess", "viewer").await;
    // Logout of the very token the stream was opened with.
    let t1 = token(&http, &s, "tess", PASSWORD).await;
    // Disabling the user (revokes all their tokens).
    let t2 = token(&http, &s, "tess", PASSWORD).await;
    for (how, t) in [("logout", t1), ("disable", t2)] {
        let resp = http
            .get(format!("{}/api/v1/logs/tail", s.api))
            .bearer_auth(&t)
            .send()
            .await
            .expect("tail");
        assert_eq!(resp.status(), 200);
        let ended = tokio::spawn(events_until_end(resp, Duration::from_secs(10)));
        tokio::time::sleep(Duration::from_millis(500)).await;
        let started = std::time::Instant::now();
        let (status, _) = if how == "logout" {
            call(&http, &s, "POST", "/api/v1/auth/logout", Some(&t), None).await
        } else {
            call(
                &http,
                &s,
                "PATCH",
                &format!("/api/v1/users/{id}"),
                Some(&s.token),
                Some(json!({"disabled": true})),
            )
            .await
        };
        assert!(status < 300, "{how}: {status}");
        let names = ended
            .await
            .expect("reader")
            .unwrap_or_else(|| panic!("{how}: the stream outlived its token"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{how}: {:?}",
            started.elapsed()
        );
        assert_eq!(
            names.last().map(String::as_str),
            Some("end"),
            "{how}: {names:?}"
        );
    }
}
