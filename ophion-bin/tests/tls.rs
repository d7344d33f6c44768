//! TLS on every port: with a certificate and key configured, the API,
//! OTLP/HTTP and OTLP/gRPC speak TLS (rustls) to clients that trust the
//! certificate, and plain connections get nowhere.

mod common;

use std::sync::Arc;

use common::{ADMIN_PASSWORD, Server, now_ns, post_otlp};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_client::TraceServiceClient;
use ophion_core::testing::{Generator, span_count};
use prost::Message as _;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_speaks_tls_when_configured() {
    let dir = tempfile::tempdir().expect("tmp");
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])
        .expect("self-signed certificate");
    let cert_pem = certified.cert.pem();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, &cert_pem).expect("cert");
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).expect("key");
    let s = Server::start(
        &dir.path().join("data"),
        &[
            ("OPHION__TLS__CERT_PATH", cert_path.to_str().expect("path")),
            ("OPHION__TLS__KEY_PATH", key_path.to_str().expect("path")),
        ],
    );
    let https = |url: &str| url.replace("http://127.0.0.1", "https://localhost");
    let (api, otlp) = (https(&s.api), https(&s.otlp_http));

    // A client that trusts only this certificate.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(
            certified.cert.der().to_vec(),
        ))
        .expect("root");
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let port = |u: &str| {
        u.rsplit(':')
            .next()
            .expect("port")
            .parse::<u16>()
            .expect("port")
    };
    let http = reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .resolve("localhost", ([127, 0, 0, 1], port(&api)).into())
        .resolve_to_addrs(
            "localhost",
            &[
                ([127, 0, 0, 1], port(&api)).into(),
                ([127, 0, 0, 1], port(&otlp)).into(),
            ],
        )
        .build()
        .expect("client");

    // API: health, sign-in and a query, over TLS.
    let r = http
        .get(format!("{api}/healthz"))
        .send()
        .await
        .expect("https");
    assert_eq!(r.status(), 200);
    let v: Value = http
        .post(format!("{api}/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": ADMIN_PASSWORD}))
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = v["token"].as_str().expect("token").to_owned();

    // OTLP/HTTP over TLS.
    let t0 = now_ns() - 60_000_000_000;
    let a = Generator::new(31, t0).traces(40);
    let r = post_otlp(&http, &otlp, "/v1/traces", a.encode_to_vec()).await;
    assert_eq!(r.status(), 200);

    // OTLP/gRPC over TLS.
    let b = Generator::new(32, t0).traces(30);
    let channel =
        tonic::transport::Channel::from_shared(format!("https://localhost:{}", s.grpc.port()))
            .expect("uri")
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&cert_pem))
                    .domain_name("localhost"),
            )
            .expect("tls")
            .connect()
            .await
            .expect("grpc over tls");
    TraceServiceClient::new(channel)
        .export(b.clone())
        .await
        .expect("export");

    let v: Value = http
        .post(format!("{api}/api/v1/query"))
        .bearer_auth(&token)
        .json(&json!({"sql": "SELECT count(*) FROM spans"}))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("json");
    assert_eq!(
        v["rows"][0][0].as_u64(),
        Some((span_count(&a) + span_count(&b)) as u64)
    );

    // The CLI over TLS, trusting the certificate it is given.
    let cli = |ca: Option<&std::path::Path>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ophion"));
        cmd.args([
            "query",
            "--format",
            "csv",
            "SELECT count(*) AS n FROM spans",
        ])
        .env("OPHION_SERVER", &api)
        .env("OPHION_TOKEN", &token);
        if let Some(ca) = ca {
            cmd.env("OPHION_CA_CERT", ca);
        }
        cmd.output().expect("ophion")
    };
    let out = cli(Some(&cert_path));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&(span_count(&a) + span_count(&b)).to_string())
    );
    let out = cli(None);
    assert_eq!(
        out.status.code(),
        Some(3),
        "an untrusted certificate is refused"
    );

    // Plain HTTP to a TLS port gets no answer.
    let plain = reqwest::Client::new();
    for url in [
        format!("{}/healthz", s.api),
        format!("{}/v1/traces", s.otlp_http),
    ] {
        let r = plain.get(&url).send().await;
        assert!(
            r.is_err() || !r.expect("answer").status().is_success(),
            "{url}"
        );
    }
}
