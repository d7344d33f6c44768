//! A cluster on one machine, each node its own `ophion-server` process:
//! Debian's PostgreSQL for the catalog, moto's S3 server for the bucket,
//! two ingest nodes, two query nodes and a compact node. The Python
//! OpenTelemetry SDK sends to both ingest nodes; every span it saw
//! acknowledged is found through either query node, before any is in
//! Parquet and after; the answers to a set of queries equal a single-node
//! server's on the same spans; `kill -9` of an ingest node loses nothing
//! once it restarts, and of a query node fails nothing on the other.
//! The nodes share one metadata database (in the catalog's PostgreSQL):
//! users, tokens, tenants, ingest keys, rules, dashboards and one audit
//! chain written on any node hold on every node, and one node at a time
//! evaluates the alert rules.

mod common;

use std::{
    collections::BTreeSet,
    net::SocketAddr,
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use common::{PASSWORD, Server, call, client, sql};
use ophion_core::testing::postgres;
use prost::Message as _;
use serde_json::{Value, json};

const BUCKET: &str = "ophion-cluster";
const SECRET: &str = "cluster-test-secret";
const SIGNING_KEY: &str = "5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";
/// Traces the SDK sends (1 to 6 children each: 1,350 spans).
const TRACES: usize = 300;

/// The environment every cluster node shares: the bucket, the catalog,
/// the secret; rows stay in memory until a node stops (or an hour).
fn cluster_env(moto: &str, pg: &str) -> Vec<(String, String)> {
    [
        ("OPHION__STORE__OBJECT_STORE__KIND", "s3"),
        ("OPHION__STORE__OBJECT_STORE__BUCKET", BUCKET),
        ("OPHION__STORE__OBJECT_STORE__ENDPOINT", moto),
        ("OPHION__STORE__OBJECT_STORE__REGION", "us-east-1"),
        ("OPHION__STORE__OBJECT_STORE__ACCESS_KEY_ID", "test"),
        ("OPHION__STORE__OBJECT_STORE__SECRET_ACCESS_KEY", "test"),
        ("OPHION__STORE__OBJECT_STORE__ALLOW_HTTP", "true"),
        ("OPHION__STORE__CATALOG__POSTGRES_URL", pg),
        ("OPHION__STORE__CLUSTER__SECRET", SECRET),
        ("OPHION__STORE__BUFFER__FLUSH_INTERVAL_SECS", "3600"),
        // One token signing key for all: a token from one node is good
        // on every node.
        ("OPHION_SIGNING_KEY", SIGNING_KEY),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Starts a node of `role` on `dir` (its WAL, metadata and node name).
/// Ingest nodes serve their unflushed rows and query nodes parts of each
/// other's scans on a Flight port; every scan of a file is "large", so
/// query nodes split them whenever there is another query node.
fn node(dir: &Path, env: &[(String, String)], role: &str, grpc: &str) -> Server {
    let mut env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    if role == "ingest" || role == "query" {
        env.push(("OPHION__STORE__CLUSTER__FLIGHT_ADDR", "127.0.0.1:0"));
    }
    env.push(("OPHION__STORE__CLUSTER__HEARTBEAT_SECS", "1"));
    env.push((
        "OPHION__STORE__CLUSTER__DISTRIBUTE_BYTES_PER_PARTITION",
        "1",
    ));
    Server::start_with(dir, &env, grpc, &["--role", role])
}

/// Runs the SDK script (spans starting at `base_ns`, traces to `targets`
/// in turn): the spans it saw acknowledged, as (trace, span) hex pairs.
fn send(base_ns: u64, targets: &[SocketAddr]) -> BTreeSet<(String, String)> {
    let python = std::env::var("OPHION_PYTHON").expect("OPHION_PYTHON (scripts/test sets it)");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/python/cluster_send.py");
    let targets: Vec<String> = targets.iter().map(ToString::to_string).collect();
    let out = Command::new(python)
        .arg(script)
        .args([
            "7",
            &TRACES.to_string(),
            &targets.join(","),
            &base_ns.to_string(),
        ])
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "cluster_send.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["failed"], 0, "every export acknowledged");
    v["acked"]
        .as_array()
        .expect("acked")
        .iter()
        .map(|p| {
            (
                p[0].as_str().expect("trace").to_owned(),
                p[1].as_str().expect("span").to_owned(),
            )
        })
        .collect()
}

/// Every span's ids, through `s`'s API.
async fn ids(http: &reqwest::Client, s: &Server) -> BTreeSet<(String, String)> {
    let rows = sql(http, s, "SELECT trace_id, span_id FROM spans").await;
    rows.iter()
        .map(|r| {
            (
                r[0].as_str().expect("trace_id").to_owned(),
                r[1].as_str().expect("span_id").to_owned(),
            )
        })
        .collect()
}

/// Questions whose answers must not depend on where the spans went.
const QUESTIONS: &[&str] = &[
    "SELECT count(*), count(DISTINCT trace_id), sum(duration_ns), min(start_time), max(start_time) FROM spans",
    "SELECT service_name, name, count(*), sum(duration_ns), max(duration_ns) FROM spans GROUP BY 1, 2 ORDER BY 1, 2",
    "SELECT service_name, count(*) FILTER (WHERE status_code = 'error') AS errors, count(*) FROM spans GROUP BY 1 ORDER BY 1",
    "SELECT service_name, approx_percentile_cont(duration_ns, 0.5), approx_percentile_cont(duration_ns, 0.99) FROM spans GROUP BY 1 ORDER BY 1",
    "SELECT name, kind, duration_ns FROM spans WHERE service_name = 'payments' ORDER BY start_time DESC, span_id LIMIT 20",
    "SELECT attributes['app.shard'] AS shard, count(*) FROM spans WHERE parent_span_id IS NULL GROUP BY 1 ORDER BY 1",
];

async fn answers(http: &reqwest::Client, s: &Server) -> Vec<Vec<Value>> {
    let mut out = Vec::new();
    for q in QUESTIONS {
        out.push(sql(http, s, q).await);
    }
    out
}

/// Waits until `check` holds, for at most 30 s.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check().await {
        assert!(Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ingest_two_query_one_compact_node_answer_like_one_server() {
    let pg = postgres::start(&["ophion"]);
    let (_moto, moto) = ophion_tests::moto::start(BUCKET).await;
    let env = cluster_env(&moto, &pg.url("ophion"));
    let root = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| root.path().join(n);
    let i1 = node(&dir("i1"), &env, "ingest", "127.0.0.1:0");
    let i2 = node(&dir("i2"), &env, "ingest", "127.0.0.1:0");
    let q1 = node(&dir("q1"), &env, "query", "127.0.0.1:0");
    let q2 = node(&dir("q2"), &env, "query", "127.0.0.1:0");
    let compact = node(&dir("c"), &env, "compact", "127.0.0.1:0");
    assert!(i1.flight.is_some() && i2.flight.is_some());
    assert!(q1.otlp_http.is_empty(), "a query node takes no OTLP");
    let single = Server::start(&dir("single"), &[]);
    let http = client();

    // Two hours ago, whole seconds: the same spans every run.
    let base = (common::now_ns() / 1_000_000_000 - 7200) * 1_000_000_000;
    let targets = [i1.grpc, i2.grpc];
    let acked = tokio::task::spawn_blocking(move || send(base, &targets))
        .await
        .expect("send");
    assert!(
        acked.len() >= TRACES * 2,
        "{} spans acknowledged",
        acked.len()
    );
    let targets = [single.grpc];
    let reference = tokio::task::spawn_blocking(move || send(base, &targets))
        .await
        .expect("send");
    assert_eq!(reference, acked, "the same spans both times");

    // Nothing is in Parquet yet: the query nodes read the ingest nodes'
    // memory.
    assert_eq!(common::parquet_objects(&http, &moto, BUCKET, "").await, 0);
    for q in [&q1, &q2] {
        assert_eq!(ids(&http, q).await, acked, "every acknowledged span");
    }
    let expected = answers(&http, &single).await;
    assert_eq!(expected[0][0][0].as_u64(), Some(acked.len() as u64));
    assert_eq!(answers(&http, &q1).await, expected);
    assert_eq!(answers(&http, &q2).await, expected);

    // kill -9 of an ingest node: once restarted (it replays its log), no
    // acknowledged span is missing, and none is there twice.
    let i1_grpc = i1.grpc.to_string();
    drop(i1);
    let i1 = node(&dir("i1"), &env, "ingest", &i1_grpc);
    eventually("q1 sees i1's replayed rows", || async {
        ids(&http, &q1).await == acked
    })
    .await;
    assert_eq!(answers(&http, &q1).await, expected);

    // Stopped gracefully, ingest nodes write their rows to the bucket;
    // the answers stay the same.
    for s in [i1, i2] {
        let (status, _) = s.stop(Duration::from_secs(60));
        assert!(status.success(), "ingest node stopped cleanly");
    }
    assert!(common::parquet_objects(&http, &moto, BUCKET, "").await > 0);
    for q in [&q1, &q2] {
        assert_eq!(ids(&http, q).await, acked);
        assert_eq!(answers(&http, q).await, expected);
    }
    // Those answers came from scans split across both query nodes
    // (datafusion-distributed), each running parts of the other's.
    for q in [&q1, &q2] {
        let text = common::metrics(&q.api).await;
        let sample = |name: &str| common::prometheus_sample(&text, name);
        assert!(
            sample("ophion_distributed_queries_total") >= QUESTIONS.len() as f64,
            "{text}"
        );
        assert!(sample("ophion_worker_tasks_total") > 0.0, "{text}");
        assert_eq!(sample("ophion_distributed_fallbacks_total"), 0.0);
    }

    // kill -9 of a query node fails nothing on the other: a split that
    // gives it a part before its heartbeats are missed runs again where
    // it was asked.
    drop(q1);
    assert_eq!(answers(&http, &q2).await, expected);
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(answers(&http, &q2).await, expected);
    let (status, _) = compact.stop(Duration::from_secs(60));
    assert!(status.success());
}

/// Rows, and distinct (trace, span) ids.
async fn counts(http: &reqwest::Client, q: &Server) -> (u64, u64) {
    let one = |sql: &'static str| async move {
        let (status, v) = common::query(http, q, sql).await;
        assert_eq!(status, 200, "{sql}: {v}");
        v["rows"][0][0].as_u64().expect("a count")
    };
    (
        one("SELECT count(*) FROM spans").await,
        one("SELECT count(*) FROM (SELECT trace_id, span_id FROM spans GROUP BY 1, 2)").await,
    )
}

/// Files the query node lists after a query brought its catalog up to
/// date (`GET /api/v1/status`).
async fn listed_files(http: &reqwest::Client, q: &Server) -> u64 {
    sql(http, q, "SELECT count(*) FROM spans").await;
    let (status, v) = common::get(http, q, "/api/v1/status", &[]).await;
    assert_eq!(status, 200);
    v["traces"]["files"].as_u64().expect("files")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compact_node_killed_mid_compaction_over_failing_s3_loses_and_leaves_nothing() {
    let pg = postgres::start(&["ophion"]);
    let (_moto, moto) = ophion_tests::moto::start(BUCKET).await;
    // Every node reaches the bucket through a proxy failing 30% of all
    // requests (reads, writes, lists, deletes).
    let (proxy_addr, proxy) = ophion_tests::s3proxy::start(
        moto.clone(),
        &[
            http::Method::GET,
            http::Method::PUT,
            http::Method::POST,
            http::Method::DELETE,
            http::Method::HEAD,
        ],
    )
    .await;
    let mut env = cluster_env(&format!("http://{proxy_addr}"), &pg.url("ophion"));
    // Snapshots every second (many small files to merge), compaction
    // passes every second, retired files deleted 6 s after.
    for (k, v) in [
        ("OPHION__STORE__BUFFER__FLUSH_INTERVAL_SECS", "1"),
        ("OPHION__STORE__QUERY__TIMEOUT_SECS", "1"),
    ] {
        env.retain(|(key, _)| key != k);
        env.push((k.to_owned(), v.to_owned()));
    }
    let root = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| root.path().join(n);
    let ingest = node(&dir("i"), &env, "ingest", "127.0.0.1:0");
    let q = node(&dir("q"), &env, "query", "127.0.0.1:0");
    let http = client();

    // Rounds of 3,000 spans two hours ago (a closed hour: merged at
    // once), each snapshotted on its own.
    let start = common::now_ns() - 2 * 3_600_000_000_000;
    let mut sent = 0u64;
    let mut seed = 4000;
    let mut snapshot_rounds = |rounds: u64| {
        let (http, ingest, q) = (&http, &ingest, &q);
        let first = seed;
        seed += rounds;
        async move {
            let mut spans = 0;
            for s in first..first + rounds {
                let mut g = ophion_core::testing::Generator::new(s, start + s * 1_000_000);
                let req = g.traces(3000);
                spans += ophion_core::testing::span_count(&req) as u64;
                common::export(http, ingest, "/v1/traces", &req).await;
                let before = listed_files(http, q).await;
                eventually("the round is snapshotted", || async {
                    listed_files(http, q).await > before
                })
                .await;
            }
            spans
        }
    };
    sent += snapshot_rounds(8).await;
    let snapshots = listed_files(&http, &q).await;
    assert!(snapshots >= 8, "{snapshots} snapshot files");

    // The compact node reaches the bucket through a proxy of its own,
    // which can leave a chosen request unanswered: the node is killed
    // exactly there.
    let (c_addr, c_proxy) = ophion_tests::s3proxy::start(moto.clone(), &[]).await;
    let mut c_env = env.clone();
    c_env.retain(|(k, _)| k != "OPHION__STORE__OBJECT_STORE__ENDPOINT");
    c_env.push((
        "OPHION__STORE__OBJECT_STORE__ENDPOINT".into(),
        format!("http://{c_addr}"),
    ));
    let objects = || common::parquet_objects(&http, &moto, BUCKET, "");
    let kill_at = |method: http::Method, forward: bool, what: &'static str| {
        let (c_proxy, c_env, dir, http, q) = (&c_proxy, &c_env, dir("c"), &http, &q);
        async move {
            let held = c_proxy.held.load(std::sync::atomic::Ordering::SeqCst);
            c_proxy.hold(Some((method, forward)));
            let c = node(&dir, c_env, "compact", "127.0.0.1:0");
            let deadline = Instant::now() + Duration::from_secs(30);
            while c_proxy.held.load(std::sync::atomic::Ordering::SeqCst) == held {
                if Instant::now() > deadline {
                    panic!(
                        "never: {what}; {} files listed; the compact node's log:\n{}",
                        listed_files(http, q).await,
                        c.log()
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            drop(c);
            c_proxy.hold(None);
        }
    };

    // 1. Killed while uploading its merged file: nothing reaches the
    //    bucket, nothing changes.
    kill_at(http::Method::PUT, false, "the merged file's upload").await;
    assert_eq!(counts(&http, &q).await, (sent, sent), "after kill 1");
    assert_eq!(listed_files(&http, &q).await, snapshots);
    assert_eq!(objects().await as u64, snapshots);

    // 2. Killed after publishing the merged file, before deleting the
    //    files it replaced (held until the queries' grace is over; S3
    //    deletes are batch POSTs).
    kill_at(http::Method::POST, false, "deleting the merged-away files").await;
    assert_eq!(counts(&http, &q).await, (sent, sent), "after kill 2");
    let live = listed_files(&http, &q).await;
    assert!(live < snapshots, "the merge was published");
    assert!(
        objects().await as u64 > live,
        "the replaced files are still there"
    );

    // 3. More snapshots; killed once its merged file is in the bucket but
    //    before it is published: an unpublished file of its own.
    sent += snapshot_rounds(5).await;
    kill_at(http::Method::PUT, true, "the merged file's upload answer").await;
    assert_eq!(counts(&http, &q).await, (sent, sent), "after kill 3");

    // Started once more, it cleans up: its own unpublished file at once,
    // the files retired by its crashed self after the grace, and merges
    // what is left. The bucket then holds the live files, nothing else.
    let before = listed_files(&http, &q).await;
    let c = node(&dir("c"), &c_env, "compact", "127.0.0.1:0");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let live = listed_files(&http, &q).await;
        let in_bucket = objects().await as u64;
        if live < before && in_bucket == live {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{in_bucket} objects in the bucket for {live} live files"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(counts(&http, &q).await, (sent, sent));
    let metrics = common::metrics(&c.api).await;
    assert!(
        common::prometheus_sample(&metrics, "ophion_parquet_orphans_deleted_total") >= 1.0,
        "the compact node deleted its own unpublished file at start"
    );
    let failed = proxy.failed.load(std::sync::atomic::Ordering::SeqCst);
    let seen = proxy.seen.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        failed * 10 >= seen * 3 - 10 && failed > 20,
        "{failed} of {seen} requests failed"
    );
    drop((c, ingest, q));
}

/// Which of `nodes` logged that it took the duty `duty`.
fn runs_duty(nodes: &[&Server], duty: &str) -> Vec<usize> {
    let line = format!("this node runs the duty duty=\"{duty}\"");
    (0..nodes.len())
        .filter(|&i| nodes[i].log().contains(&line))
        .collect()
}

/// Posts `n` spans to an ingest node with ingest key `key`: the status.
async fn post_with_key(http: &reqwest::Client, node: &Server, key: &str, seed: u64) -> u16 {
    let traces =
        ophion_core::testing::Generator::new(seed, common::now_ns() - 600_000_000_000).traces(20);
    http.post(format!("{}/v1/traces", node.otlp_http))
        .header("content-type", "application/x-protobuf")
        .header("x-ophion-api-key", key)
        .body(traces.encode_to_vec())
        .send()
        .await
        .expect("the ingest node answers")
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_share_users_tenants_keys_rules_dashboards_and_one_audit_chain() {
    let pg = postgres::start(&["ophion"]);
    let (_moto, moto) = ophion_tests::moto::start(BUCKET).await;
    let env = cluster_env(&moto, &pg.url("ophion"));
    let root = tempfile::tempdir().expect("tmp");
    let dir = |n: &str| root.path().join(n);
    // Started together: they migrate the shared tables once and make
    // the first admin once between them.
    let (ingest, q1, q2) = std::thread::scope(|scope| {
        let start = |n: &'static str, role: &'static str| {
            let (dir, env) = (dir(n), &env);
            scope.spawn(move || node(&dir, env, role, "127.0.0.1:0"))
        };
        let (i, a, b) = (
            start("i1", "ingest"),
            start("q1", "query"),
            start("q2", "query"),
        );
        let join = |h: std::thread::ScopedJoinHandle<'_, Server>| h.join().expect("node");
        (join(i), join(a), join(b))
    });
    let http = client();

    // A tenant made on one query node; its admin signs in on the other,
    // and that node's token is good on the first.
    let (status, v) = call(
        &http,
        &q1,
        "POST",
        "/api/v1/tenants",
        Some(&q1.token),
        Some(json!({"id": "acme", "name": "Acme", "admin_username": "acme-admin", "admin_password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let acme = common::token(&http, &q2, "acme-admin", PASSWORD).await;
    let (status, me) = call(&http, &q1, "GET", "/api/v1/auth/me", Some(&acme), None).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["tenant"], "acme", "{me}");

    // An ingest key made on q1 lets data in at the ingest node, into
    // acme, within its key refresh; revoked on q2, it stops working there.
    let (status, key) = call(
        &http,
        &q1,
        "POST",
        "/api/v1/keys",
        Some(&acme),
        Some(json!({"name": "collector"})),
    )
    .await;
    assert_eq!(status, 201, "{key}");
    let secret = key["key"].as_str().expect("the key, once").to_owned();
    let mut accepted = 0;
    let mut seed = 0;
    eventually("the ingest node takes the new key", || {
        seed += 1;
        let (http, ingest, secret) = (&http, &ingest, &secret);
        let s = seed;
        async move {
            let status = post_with_key(http, ingest, secret, s).await;
            assert!(status == 200 || status == 401, "{status}");
            status == 200
        }
    })
    .await;
    accepted += 1;
    let acme_spans = async |q: &Server| -> u64 {
        let (status, v) = call(
            &http,
            q,
            "POST",
            "/api/v1/query",
            Some(&acme),
            Some(json!({"sql": "SELECT count(*) FROM spans"})),
        )
        .await;
        assert_eq!(status, 200, "{v}");
        v["rows"][0][0].as_u64().expect("count")
    };
    let sent = acme_spans(&q2).await;
    assert!(sent >= 20 * accepted, "{sent} spans in acme");
    assert_eq!(acme_spans(&q1).await, sent);
    let default_spans = sql(&http, &q1, "SELECT count(*) FROM spans").await;
    assert_eq!(default_spans[0][0], 0, "acme's spans are acme's only");
    let key_id = key["id"].as_i64().expect("id");
    let (status, _) = call(
        &http,
        &q2,
        "DELETE",
        &format!("/api/v1/keys/{key_id}"),
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 204);
    eventually("the ingest node drops the revoked key", || {
        seed += 1;
        let (http, ingest, secret) = (&http, &ingest, &secret);
        let s = seed;
        async move { post_with_key(http, ingest, secret, s).await == 401 }
    })
    .await;

    // A rule and a dashboard saved on one node are read on the other.
    let rule = json!({
        "name": "AcmeBusy", "kind": "sql",
        "sql": "SELECT CAST(count(*) AS DOUBLE) AS value FROM spans WHERE start_time >= $from AND start_time < $to",
        "condition": {"op": ">", "threshold": 1e9}, "interval": "1s", "range": "5m",
    });
    let (status, saved) = call(
        &http,
        &q2,
        "POST",
        "/api/v1/alerts/rules",
        Some(&acme),
        Some(rule),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let (status, rules) = call(&http, &q1, "GET", "/api/v1/alerts/rules", Some(&acme), None).await;
    assert_eq!(status, 200);
    assert!(rules.to_string().contains("AcmeBusy"), "{rules}");
    let board = json!({"title": "Shared", "panels": [{"title": "Spans", "chart": "stat", "sql": "SELECT count(*) AS n FROM spans"}]});
    let (status, saved) = call(
        &http,
        &q1,
        "POST",
        "/api/v1/dashboards",
        Some(&acme),
        Some(board),
    )
    .await;
    assert_eq!(status, 201, "{saved}");
    let path = format!("/api/v1/dashboards/{}", saved["id"]);
    let (status, back) = call(&http, &q2, "GET", &path, Some(&acme), None).await;
    assert_eq!(status, 200, "{back}");
    assert_eq!(back["title"], "Shared");

    // One audit chain: what either node did, intact.
    let (status, audit) = call(
        &http,
        &q1,
        "GET",
        "/api/v1/audit?limit=100",
        Some(&acme),
        None,
    )
    .await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> = audit["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["action"].as_str())
        .collect();
    for done in ["key_create", "key_revoke", "login"] {
        assert!(actions.contains(&done), "{done} in {actions:?}");
    }
    for q in [&q1, &q2] {
        let (status, v) = call(&http, q, "GET", "/api/v1/audit/verify", Some(&acme), None).await;
        assert_eq!(status, 200, "{v}");
        assert_eq!(v["ok"], true, "{v}");
        assert_eq!(v["records"].as_u64(), Some(actions.len() as u64), "{v}");
    }

    // One query node evaluates the rules; when it dies, the other takes
    // over within the lease's lifetime.
    let nodes = [&q1, &q2];
    eventually("a node runs the alerts", || async {
        runs_duty(&nodes, "alerts").len() == 1
    })
    .await;
    let holder = runs_duty(&nodes, "alerts")[0];
    let (q1, q2) = (Some(q1), Some(q2));
    let (dead, alive) = if holder == 0 { (q1, q2) } else { (q2, q1) };
    let alive = alive.expect("the other node");
    assert!(runs_duty(&[&alive], "alerts").is_empty());
    drop(dead);
    eventually("the other node takes the alerts over", || async {
        runs_duty(&[&alive], "alerts").len() == 1
    })
    .await;
}
