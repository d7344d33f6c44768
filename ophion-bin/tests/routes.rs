//! The route table is the one list: a route added in one place (here, by
//! an embedder through `Server::mount`) is served by the router, guarded by
//! its permission, and described in `/api/v1/openapi.json`; a route listed
//! twice stops the server at start. (A route without a permission does not
//! compile: see the `compile_fail` example in `api::routes`.)

use std::net::SocketAddr;

use axum::http::Method;
use ophion_bin::{
    api::{Doc, routes::Route},
    auth::Permission,
    config::ServerConfig,
    server::Server,
};

fn config(dir: &std::path::Path) -> ServerConfig {
    let mut c = ServerConfig::default();
    let any = SocketAddr::from(([127, 0, 0, 1], 0));
    c.api_addr = any;
    c.receiver.grpc_addr = any;
    c.receiver.http_addr = any;
    c.store.data_dir = dir.to_path_buf();
    c.ai.watch = false;
    c
}

async fn hello() -> &'static str {
    "hello from an embedder"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_added_once_is_routed_guarded_and_documented() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::bind(config(dir.path()))
        .await
        .expect("bind")
        .mount(vec![
            Route::new(
                Method::GET,
                "/api/v1/x-hello",
                Permission::Public,
                hello,
                Doc::new("Say hello").ok(200, "A greeting"),
            ),
            Route::new(
                Method::POST,
                "/api/v1/x-hello",
                Permission::Edit,
                hello,
                Doc::new("Say hello, as an editor").ok(200, "A greeting"),
            ),
        ]);
    let api = format!("http://{}", server.addresses().api);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.serve(async {
        let _ = stopped.await;
    });
    // The server's future runs on this task beside the client's.
    let (served, ()) = tokio::join!(serving, async move {
        check(&api).await;
        let _ = stop.send(());
    });
    served.expect("clean shutdown");
}

async fn check(api: &str) {
    let http = reqwest::Client::new();
    // Routed, and public as its table entry says.
    let r = http
        .get(format!("{api}/api/v1/x-hello"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.expect("body"), "hello from an embedder");
    // The other method needs a signed-in editor.
    let r = http
        .post(format!("{api}/api/v1/x-hello"))
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401, "Edit needs a token");
    // A method the table does not list on a listed path is 405.
    let r = http
        .delete(format!("{api}/api/v1/x-hello"))
        .send()
        .await
        .expect("delete");
    assert_eq!(r.status(), 405);
    // Described, with its permission, beside the built-in routes.
    let doc: serde_json::Value = http
        .get(format!("{api}/api/v1/openapi.json"))
        .send()
        .await
        .expect("openapi")
        .json()
        .await
        .expect("json");
    let hello = &doc["paths"]["/api/v1/x-hello"];
    assert_eq!(hello["get"]["summary"], "Say hello");
    assert_eq!(hello["get"]["security"], serde_json::json!([]));
    assert_eq!(hello["post"]["x-ophion-permission"], "edit");
    assert!(hello["post"].get("security").is_none(), "a token is needed");
    assert_eq!(
        doc["paths"]["/api/v1/query"]["post"]["x-ophion-permission"],
        "read"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_listed_twice_stops_the_server_at_start() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::bind(config(dir.path()))
        .await
        .expect("bind")
        .mount(vec![Route::new(
            Method::GET,
            "/api/v1/status",
            Permission::Public,
            hello,
            Doc::new("A second status"),
        )]);
    let err = server
        .serve(async {})
        .await
        .expect_err("a duplicate route is refused");
    assert!(
        err.to_string()
            .contains("GET /api/v1/status is listed twice"),
        "{err}"
    );
}

#[test]
fn every_built_in_route_is_documented_and_listed_once() {
    let table = ophion_bin::api::routes::table();
    let mut seen = std::collections::HashSet::new();
    for r in &table {
        assert!(
            seen.insert((r.method().clone(), r.path())),
            "{} {} twice",
            r.method(),
            r.path()
        );
        assert!(r.path().starts_with('/'));
    }
    assert!(table.len() >= 32);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_needs_what_get_needs() {
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::bind(config(dir.path())).await.expect("bind");
    let api = format!("http://{}", server.addresses().api);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.serve(async {
        let _ = stopped.await;
    });
    let (served, ()) = tokio::join!(serving, async move {
        let http = reqwest::Client::new();
        for (path, want) in [
            ("/api/v1/status", 401),
            ("/api/v1/services", 401),
            ("/healthz", 200),
        ] {
            let r = http
                .head(format!("{api}{path}"))
                .send()
                .await
                .expect("head");
            assert_eq!(r.status(), want, "HEAD {path}");
        }
        let _ = stop.send(());
    });
    served.expect("clean shutdown");
}

/// A writer the test's log goes to, kept for reading.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn boom() -> &'static str {
    panic!("a handler bug: index out of bounds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_panics_answers_500_and_is_logged() {
    let log = Captured::default();
    let writer = log.clone();
    let _ = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .try_init();
    let dir = tempfile::tempdir().expect("tmp");
    let server = Server::bind(config(dir.path()))
        .await
        .expect("bind")
        .mount(vec![Route::new(
            Method::GET,
            "/api/v1/x-boom",
            Permission::Public,
            boom,
            Doc::new("Panics"),
        )]);
    let api = format!("http://{}", server.addresses().api);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = server.serve(async {
        let _ = stopped.await;
    });
    let (served, ()) = tokio::join!(serving, async move {
        let http = reqwest::Client::new();
        for _ in 0..3 {
            let r = http
                .get(format!("{api}/api/v1/x-boom"))
                .send()
                .await
                .expect("answered, not dropped");
            assert_eq!(r.status(), 500);
            let v: serde_json::Value = r.json().await.expect("json");
            assert_eq!(v["error"]["code"], "internal");
            assert!(
                !v.to_string().contains("index out of bounds"),
                "the panic is not shown to the client: {v}"
            );
        }
        // The server carries on, and counted the answers as server errors.
        let metrics = http
            .get(format!("{api}/metrics"))
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(
            metrics.contains("ophion_api_errors_total{class=\"5xx\"} 3"),
            "{metrics}"
        );
        let _ = stop.send(());
    });
    served.expect("clean shutdown");
    let text = String::from_utf8_lossy(&log.0.lock().expect("log")).into_owned();
    assert!(
        text.contains("ERROR") && text.contains("a handler bug: index out of bounds"),
        "{text}"
    );
}
