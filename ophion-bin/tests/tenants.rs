//! Ingest keys and tenant isolation against the real server, with
//! `require_ingest_key` on: keys are checked before a body is read, data
//! goes to the key's tenant, and a tenant's users see none of another
//! tenant's rows, whatever headers, ids or SQL they send.

mod common;

use common::{Server, client, now_ns};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, trace_service_client::TraceServiceClient,
};
use ophion_core::testing::{Generator, span_count};
use prost::Message as _;
use serde_json::{Value, json};

const PASSWORD: &str = "a-long-enough-password";

async fn api(
    http: &reqwest::Client,
    s: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Option<Value>,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut req = http
        .request(method.parse().expect("method"), format!("{}{path}", s.api))
        .bearer_auth(token);
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.expect("request");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn post_traces(
    http: &reqwest::Client,
    s: &Server,
    header: Option<(&str, String)>,
    body: Vec<u8>,
    gzip: bool,
) -> u16 {
    let mut req = http
        .post(format!("{}/v1/traces", s.otlp_http))
        .header("content-type", "application/x-protobuf")
        .body(body);
    if gzip {
        req = req.header("content-encoding", "gzip");
    }
    if let Some((k, v)) = header {
        req = req.header(k, v);
    }
    req.send().await.expect("export").status().as_u16()
}

async fn grpc_export(
    s: &Server,
    header: Option<(&'static str, String)>,
    msg: &ExportTraceServiceRequest,
) -> Result<(), tonic::Code> {
    let mut client = TraceServiceClient::connect(format!("http://{}", s.grpc))
        .await
        .expect("connect");
    let mut req = tonic::Request::new(msg.clone());
    if let Some((k, v)) = header {
        req.metadata_mut().insert(k, v.parse().expect("metadata"));
    }
    client.export(req).await.map(|_| ()).map_err(|e| e.code())
}

fn trace_ids(req: &ExportTraceServiceRequest) -> Vec<String> {
    let mut ids: Vec<String> = req
        .resource_spans
        .iter()
        .flat_map(|r| &r.scope_spans)
        .flat_map(|s| &s.spans)
        .map(|s| hex::encode(&s.trace_id))
        .collect();
    ids.sort();
    ids.dedup();
    ids
}

async fn count(
    http: &reqwest::Client,
    s: &Server,
    token: &str,
    sql: &str,
    extra: &[(&str, &str)],
) -> (u16, u64) {
    let (status, v) = api(
        http,
        s,
        "POST",
        "/api/v1/query",
        token,
        Some(json!({"sql": sql})),
        extra,
    )
    .await;
    (status, v["rows"][0][0].as_u64().unwrap_or(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_keys_route_data_to_their_tenant_and_tenants_see_only_their_own() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(
        &dir.path().join("data"),
        &[("OPHION__AUTH__REQUIRE_INGEST_KEY", "true")],
    );
    let http = client();
    let admin = s.token.clone();
    let (status, v) = api(
        &http,
        &s,
        "POST",
        "/api/v1/tenants",
        &admin,
        Some(json!({
            "id": "acme", "name": "Acme", "admin_username": "acme-admin", "admin_password": PASSWORD
        })),
        &[],
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let acme = common::login_blocking(&s.api, "acme-admin", PASSWORD);
    let key = |token: String| {
        let (http, s) = (&http, &s);
        async move {
            let (status, v) = api(
                http,
                s,
                "POST",
                "/api/v1/keys",
                &token,
                Some(json!({"name": "k"})),
                &[],
            )
            .await;
            assert_eq!(status, 201, "{v}");
            assert!(
                v["key"]
                    .as_str()
                    .is_some_and(|k| k.starts_with("oph_") && k.len() == 68)
            );
            (
                v["key"].as_str().expect("key").to_owned(),
                v["id"].as_i64().expect("id"),
            )
        }
    };
    let (default_key, _) = key(admin.clone()).await;
    let (acme_key, acme_key_id) = key(acme.clone()).await;
    // The list shows prefixes, never the secrets.
    let (_, listed) = api(&http, &s, "GET", "/api/v1/keys", &acme, None, &[]).await;
    assert!(!listed.to_string().contains(&acme_key[4..]), "{listed}");

    let t0 = now_ns() - 10 * 60 * 1_000_000_000;
    let mine = Generator::new(21, t0).traces(300);
    let theirs = Generator::new(22, t0).traces(200);
    let theirs_grpc = Generator::new(23, t0).traces(100);
    let bearer = |k: &str| Some(("authorization", format!("Bearer {k}")));

    // Missing and wrong keys are refused before the body is looked at: a
    // body that is not even gzip still gets 401, not 400.
    assert_eq!(
        post_traces(&http, &s, None, mine.encode_to_vec(), false).await,
        401
    );
    assert_eq!(
        post_traces(&http, &s, bearer("oph_wrong"), mine.encode_to_vec(), false).await,
        401
    );
    assert_eq!(
        post_traces(
            &http,
            &s,
            bearer("oph_wrong"),
            b"not gzip at all".to_vec(),
            true
        )
        .await,
        401
    );
    assert_eq!(
        post_traces(&http, &s, None, b"not gzip at all".to_vec(), true).await,
        401
    );
    assert_eq!(
        grpc_export(&s, None, &mine).await,
        Err(tonic::Code::Unauthenticated)
    );
    assert_eq!(
        grpc_export(&s, Some(("x-ophion-api-key", "oph_wrong".into())), &mine).await,
        Err(tonic::Code::Unauthenticated)
    );
    // A user's access token is not an ingest key.
    assert_eq!(
        post_traces(&http, &s, bearer(&admin), mine.encode_to_vec(), false).await,
        401
    );

    // Good keys, both headers, both transports.
    assert_eq!(
        post_traces(
            &http,
            &s,
            Some(("x-ophion-api-key", default_key.clone())),
            mine.encode_to_vec(),
            false
        )
        .await,
        200
    );
    assert_eq!(
        post_traces(&http, &s, bearer(&acme_key), theirs.encode_to_vec(), false).await,
        200
    );
    assert_eq!(
        grpc_export(
            &s,
            Some(("authorization", format!("Bearer {acme_key}"))),
            &theirs_grpc
        )
        .await,
        Ok(())
    );

    // Revoked: refused at once on both transports.
    let (status, _) = api(
        &http,
        &s,
        "DELETE",
        &format!("/api/v1/keys/{acme_key_id}"),
        &acme,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 204);
    assert_eq!(
        post_traces(&http, &s, bearer(&acme_key), theirs.encode_to_vec(), false).await,
        401
    );
    assert_eq!(
        grpc_export(
            &s,
            Some(("x-ophion-api-key", acme_key.clone())),
            &theirs_grpc
        )
        .await,
        Err(tonic::Code::Unauthenticated)
    );
    // An ingest key cannot read.
    let (status, _) = count(&http, &s, &acme_key, "SELECT count(*) FROM spans", &[]).await;
    assert_eq!(status, 401);

    // Each tenant sees exactly its own spans.
    let n_mine = span_count(&mine) as u64;
    let n_theirs = (span_count(&theirs) + span_count(&theirs_grpc)) as u64;
    assert_eq!(
        count(&http, &s, &admin, "SELECT count(*) FROM spans", &[]).await,
        (200, n_mine)
    );
    assert_eq!(
        count(&http, &s, &acme, "SELECT count(*) FROM spans", &[]).await,
        (200, n_theirs)
    );

    // Tenant A (default) asking for tenant B's rows, every way we know.
    let their_ids = trace_ids(&theirs);
    let b = &their_ids[0];
    let (status, _) = api(
        &http,
        &s,
        "GET",
        &format!("/api/v1/traces/{b}"),
        &admin,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 404, "another tenant's trace id");
    let (status, v) = api(
        &http,
        &s,
        "GET",
        &format!("/api/v1/traces/{b}"),
        &acme,
        None,
        &[],
    )
    .await;
    assert_eq!(status, 200, "its own tenant finds it: {v}");
    let headers: [&[(&str, &str)]; 4] = [
        &[],
        &[("x-ophion-tenant", "acme")],
        &[("x-scope-orgid", "acme")],
        &[("x-tenant-id", "acme"), ("x-forwarded-for", "10.0.0.1")],
    ];
    let in_list = their_ids
        .iter()
        .map(|i| format!("'{i}'"))
        .collect::<Vec<_>>()
        .join(",");
    let queries = [
        format!("SELECT count(*) FROM spans WHERE trace_id = '{b}'"),
        format!("SELECT count(*) FROM spans WHERE trace_id IN ({in_list})"),
        format!("SELECT count(*) FROM (SELECT trace_id FROM spans UNION ALL SELECT trace_id FROM spans UNION SELECT trace_id FROM logs) u WHERE trace_id = '{b}'"),
        format!("SELECT count(*) FROM spans WHERE trace_id IN (SELECT trace_id FROM spans WHERE trace_id = '{b}')"),
        format!("WITH x AS (SELECT * FROM spans) SELECT count(*) FROM x WHERE trace_id = '{b}'"),
        format!("SELECT count(*) FROM spans s JOIN spans t ON s.trace_id = t.trace_id WHERE s.trace_id = '{b}'"),
        "SELECT count(*) FROM spans WHERE service_name IS NOT NULL AND trace_id NOT IN (SELECT trace_id FROM spans)".to_owned(),
    ];
    for h in headers {
        for q in &queries {
            let (status, n) = count(&http, &s, &admin, q, h).await;
            assert_eq!((status, n), (200, 0), "{q} with {h:?}");
        }
        // Everything tenant A can count is its own.
        let (status, n) = count(&http, &s, &admin, "SELECT count(*) FROM spans", h).await;
        assert_eq!((status, n), (200, n_mine), "{h:?}");
    }
    // Other ways to name tables or make new ones are refused, not widened.
    for q in [
        "CREATE VIEW v AS SELECT * FROM spans",
        "SELECT count(*) FROM acme.spans",
        "SELECT count(*) FROM datafusion.acme.spans",
        "CREATE EXTERNAL TABLE x STORED AS PARQUET LOCATION '/'",
    ] {
        let (status, n) = count(&http, &s, &admin, q, &[]).await;
        assert!(status == 400 || n == 0, "{q}: {status} {n}");
        assert_ne!(status, 200, "{q} is refused");
    }
}
