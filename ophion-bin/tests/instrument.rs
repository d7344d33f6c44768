//! `ophion instrument` on real applications: a Flask app and an Express
//! app are instrumented with `--apply` (the real OpenTelemetry packages
//! from PyPI and npm), run through the wrapper it writes, and their
//! requests show up as traces in a real `ophion-server`, which `--verify`
//! reports.

mod common;

use std::{
    net::TcpStream,
    path::Path,
    process::{Child, Command},
    time::{Duration, Instant},
};

use common::{Server, free_port};

fn ophion(s: &Server, args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ophion"))
        .args(["--server", &s.api, "--token", &s.token])
        .args(args)
        .output()
        .expect("run ophion");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn run(dir: &Path, argv: &[&str]) {
    let out = Command::new(argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("{argv:?}: {e}"));
    assert!(
        out.status.success(),
        "{argv:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `ophion instrument --verify` finds the app's telemetry, with the route
/// of the request made to it.
fn verify(s: &Server, app: &Path, service: &str, route: &str) {
    let (ok, verified) = ophion(
        s,
        &[
            "instrument",
            app.to_str().expect("path"),
            "--verify",
            "--timeout",
            "90",
        ],
    );
    assert!(
        ok,
        "{verified}\napp log: {}",
        std::fs::read_to_string(app.join("app.log")).unwrap_or_default()
    );
    assert!(
        verified.contains(&format!(
            "verified: the server has telemetry from {service}"
        )),
        "{verified}"
    );
    assert!(verified.contains(route), "the request's route: {verified}");
    println!("{verified}");
}

struct App(Child);

impl Drop for App {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the app through `otel-run.sh`, waits for its port, sends
/// `n` requests to `path`.
fn serve_and_call(
    dir: &Path,
    argv: &[&str],
    env: &[(&str, String)],
    port: u16,
    path: &str,
    n: usize,
) -> App {
    let log = std::fs::File::create(dir.join("app.log")).expect("log");
    let mut cmd = Command::new(dir.join("otel-run.sh"));
    cmd.args(argv)
        .current_dir(dir)
        .env("PORT", port.to_string())
        // Export at once, not after the SDKs' default 5 s batches.
        .env("OTEL_BSP_SCHEDULE_DELAY", "200")
        .stdout(log.try_clone().expect("log"))
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let app = App(cmd.spawn().expect("start the app"));
    let t = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "the app did not listen: {}",
            std::fs::read_to_string(dir.join("app.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    for _ in 0..n {
        let answer = get(port, path);
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    app
}

/// A plain HTTP/1.1 GET; the whole answer.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let mut c = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut answer = String::new();
    c.read_to_string(&mut answer).expect("answer");
    answer
}

#[test]
fn a_flask_app_is_instrumented_and_verified() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("server"), &[]);
    let app = dir.path().join("flask-shop");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(app.join("requirements.txt"), "flask\n").expect("requirements");
    std::fs::write(
        app.join("app.py"),
        "import os\nfrom flask import Flask\napp = Flask(__name__)\n\n@app.route('/items/<int:n>')\ndef item(n):\n    return {'item': n}\n\n\
         if __name__ == '__main__':\n    app.run(host='127.0.0.1', port=int(os.environ['PORT']))\n",
    )
    .expect("app");
    // Without --apply nothing changes, and the plan is shown as diffs.
    let (ok, plan) = ophion(
        &s,
        &[
            "instrument",
            app.to_str().expect("path"),
            "--endpoint",
            &s.otlp_http,
        ],
    );
    assert!(ok, "{plan}");
    assert!(plan.contains("# Python (Flask)"), "{plan}");
    assert!(
        plan.contains("+opentelemetry-instrumentation-flask"),
        "{plan}"
    );
    assert!(plan.contains("+++ b/otel-run.sh"), "{plan}");
    assert_eq!(
        std::fs::read_to_string(app.join("requirements.txt")).expect("read"),
        "flask\n"
    );
    assert!(!app.join("otel-run.sh").exists());
    let (ok, applied) = ophion(
        &s,
        &[
            "instrument",
            app.to_str().expect("path"),
            "--apply",
            "--endpoint",
            &s.otlp_http,
        ],
    );
    assert!(ok, "{applied}");
    assert!(applied.contains("wrote"), "{applied}");
    // The application's own environment, from PyPI.
    let python = std::env::var("OPHION_PYTHON").unwrap_or_else(|_| "python3".into());
    run(&app, &[&python, "-m", "venv", "venv"]);
    run(
        &app,
        &[
            "venv/bin/pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            "requirements.txt",
        ],
    );
    let path = format!(
        "{}/venv/bin:{}",
        app.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    let _app = serve_and_call(
        &app,
        &["venv/bin/python", "app.py"],
        &[("PATH", path)],
        port,
        "/items/7",
        5,
    );
    verify(&s, &app, "flask-shop", "/items/");
}

#[test]
fn an_express_app_is_instrumented_and_verified() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start(&dir.path().join("server"), &[]);
    let app = dir.path().join("express-shop");
    std::fs::create_dir_all(&app).expect("app dir");
    std::fs::write(
        app.join("package.json"),
        r#"{"name": "express-shop", "version": "1.0.0", "private": true, "dependencies": {"express": "^5.1.0"}}"#,
    )
    .expect("package.json");
    std::fs::write(
        app.join("app.js"),
        "const express = require('express');\nconst app = express();\napp.get('/cart/:id', (req, res) => res.json({ cart: req.params.id }));\n\
         app.listen(Number(process.env.PORT), '127.0.0.1');\n",
    )
    .expect("app");
    run(
        &app,
        &["npm", "install", "--no-audit", "--no-fund", "--quiet"],
    );
    let (ok, plan) = ophion(
        &s,
        &[
            "instrument",
            app.to_str().expect("path"),
            "--endpoint",
            &s.otlp_http,
        ],
    );
    assert!(ok, "{plan}");
    assert!(plan.contains("# Node.js (Express)"), "{plan}");
    assert!(plan.contains("run: npm install --save"), "{plan}");
    let (ok, applied) = ophion(
        &s,
        &[
            "instrument",
            app.to_str().expect("path"),
            "--apply",
            "--endpoint",
            &s.otlp_http,
        ],
    );
    assert!(ok, "{applied}");
    let manifest = std::fs::read_to_string(app.join("package.json")).expect("package.json");
    assert!(
        manifest.contains("@opentelemetry/auto-instrumentations-node"),
        "{manifest}"
    );
    let port = free_port();
    let _app = serve_and_call(&app, &["node", "app.js"], &[], port, "/cart/42", 5);
    verify(&s, &app, "express-shop", "/cart/");
}
