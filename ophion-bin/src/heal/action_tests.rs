//! Tests of `action.rs`: templates, kubectl argument vectors, the
//! allowlist, and running programs.

use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use super::action::*;
use super::model::Action;
use super::model::PlaybookSpec;
use crate::config::HealConfig;

fn ctx(service: &str) -> Context {
    Context {
        labels: [
            ("service".to_owned(), service.to_owned()),
            ("alertname".into(), "Down".into()),
        ]
        .into_iter()
        .collect(),
        value: 0.75,
        run: 7,
        external: "http://ophion".into(),
    }
}

fn cfg() -> HealConfig {
    HealConfig {
        commands: vec!["/usr/bin/systemctl".into()],
        kubectl: "/usr/bin/kubectl".into(),
        ..HealConfig::default()
    }
}

fn action(v: serde_json::Value) -> Action {
    serde_json::from_value(v).expect("action")
}

#[test]
fn templates_become_exactly_what_runs_and_never_inject() {
    let restart = action(
        json!({"type": "command", "program": "/usr/bin/systemctl", "args": ["restart", "{{ $labels.service }}.service"]}),
    );
    let p = prepare(&restart, &ctx("cart"), &cfg(), "/data").expect("prepared");
    assert_eq!(p.input()["argv"], json!(["restart", "cart.service"]));
    assert_eq!(p.input()["program"], "/usr/bin/systemctl");
    assert_eq!(p.input()["cwd"], "/data");
    for evil in [
        "cart; reboot",
        "$(id)",
        "`id`",
        "a b",
        "../etc",
        "/etc/passwd",
        "-rf",
        ".hidden",
        "x|y",
        "x\ny",
        "",
    ] {
        let e = prepare(&restart, &ctx(evil), &cfg(), "/data").expect_err(evil);
        assert!(e.contains("not a plain name"), "{evil}: {e}");
    }
    // A URL gets the same rule; a JSON body escapes instead.
    let hook = action(
        json!({"type": "http", "url": "http://deploy/rollback/{{ $labels.service }}", "body": {"why": "{{ $labels.service }} at {{ $value }}"}}),
    );
    assert!(prepare(&hook, &ctx("a/b"), &cfg(), "/").is_err());
    let p = prepare(&hook, &ctx("cart"), &cfg(), "/").expect("http");
    assert_eq!(p.input()["url"], "http://deploy/rollback/cart");
    assert_eq!(p.input()["body"]["why"], "cart at 0.7500");
    let quoted = action(
        json!({"type": "http", "url": "http://deploy/x", "body": {"why": "{{ $labels.service }}"}}),
    );
    let p = prepare(&quoted, &ctx("a \"b\"; c"), &cfg(), "/").expect("a body takes any text");
    assert_eq!(p.input()["body"]["why"], "a \"b\"; c");
    // Unknown labels are an error, not an empty string.
    let typo = action(
        json!({"type": "command", "program": "/usr/bin/systemctl", "args": ["{{ $labels.servce }}"]}),
    );
    assert!(prepare(&typo, &ctx("cart"), &cfg(), "/").is_err());
}

#[test]
fn kubectl_steps_are_fixed_argument_vectors() {
    let restart = action(
        json!({"type": "kubectl", "op": "rollout-restart", "resource": "deployment/{{ $labels.service }}", "namespace": "shop"}),
    );
    let p = prepare(&restart, &ctx("cart"), &cfg(), "/").expect("kubectl");
    assert_eq!(p.input()["program"], "/usr/bin/kubectl");
    assert_eq!(
        p.input()["argv"],
        json!(["rollout", "restart", "deployment/cart", "--namespace=shop"])
    );
    let scale = action(
        json!({"type": "kubectl", "op": "scale", "resource": "statefulset/db", "replicas": 3}),
    );
    assert_eq!(
        prepare(&scale, &ctx("x"), &cfg(), "/")
            .expect("scale")
            .input()["argv"],
        json!(["scale", "statefulset/db", "--replicas=3"])
    );
    assert!(prepare(&restart, &ctx("cart --all"), &cfg(), "/").is_err());
    let pod = action(json!({"type": "kubectl", "op": "rollout-undo", "resource": "pod/x"}));
    assert!(prepare(&pod, &ctx("x"), &cfg(), "/").is_err());
}

#[test]
fn playbooks_are_checked_against_the_allowlist() {
    let spec = |steps: serde_json::Value| -> PlaybookSpec {
        serde_json::from_value(json!({"name": "p", "steps": steps})).expect("spec")
    };
    assert!(
        spec(
            json!([{"type": "command", "program": "/usr/bin/systemctl", "args": ["restart", "x"]}])
        )
        .validate(&cfg())
        .is_ok()
    );
    let off = spec(json!([{"type": "command", "program": "/bin/sh", "args": ["-c", "id"]}]))
        .validate(&cfg())
        .expect_err("off the list");
    assert!(off.contains("not in the server's allowlist"), "{off}");
    let templated = spec(json!([{"type": "command", "program": "/usr/bin/{{ $labels.tool }}"}]))
        .validate(&cfg())
        .expect_err("templated program");
    assert!(templated.contains("never templated"), "{templated}");
    let none = HealConfig::default();
    assert!(
        spec(
            json!([{"type": "kubectl", "op": "scale", "resource": "deployment/x", "replicas": 1}])
        )
        .validate(&none)
        .is_err()
    );
    assert!(
        spec(json!([{"type": "http", "url": "file:///etc/passwd"}]))
            .validate(&cfg())
            .is_err()
    );
    assert!(spec(json!([])).validate(&cfg()).is_err());
    let mode: PlaybookSpec =
        serde_json::from_value(json!({"name": "p", "steps": [{"type": "wait", "duration": "1s"}]}))
            .expect("spec");
    assert_eq!(
        mode.mode,
        crate::heal::model::Mode::DryRun,
        "dry-run is the default"
    );
}

#[tokio::test]
async fn programs_run_without_a_shell_with_a_timeout_and_limited_output() {
    let out = exec(
        "/bin/echo",
        &["a;b".into(), "$(id)".into()],
        &BTreeMap::new(),
        "/",
        Duration::from_secs(5),
        1024,
    )
    .await;
    assert!(out.ok);
    assert_eq!(
        out.output.trim(),
        "a;b $(id)",
        "arguments reach the program as they are"
    );
    let env = [("ONLY".to_owned(), "this".to_owned())]
        .into_iter()
        .collect();
    let out = exec("/usr/bin/env", &[], &env, "/", Duration::from_secs(5), 1024).await;
    let mut vars: Vec<&str> = out.output.lines().collect();
    vars.sort_unstable();
    assert_eq!(
        vars,
        vec!["ONLY=this", "PATH=/usr/local/bin:/usr/bin:/bin"],
        "a cleared environment"
    );
    let t = std::time::Instant::now();
    let out = exec(
        "/bin/sleep",
        &["30".into()],
        &BTreeMap::new(),
        "/",
        Duration::from_millis(300),
        1024,
    )
    .await;
    assert!(
        !out.ok
            && out
                .error
                .as_deref()
                .is_some_and(|e| e.contains("timed out")),
        "{out:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5));
    let out = exec(
        "/usr/bin/head",
        &["-c".into(), "100000".into(), "/dev/zero".into()],
        &BTreeMap::new(),
        "/",
        Duration::from_secs(5),
        1000,
    )
    .await;
    assert!(out.ok);
    assert!(
        out.output.contains("[99000 more bytes not kept]"),
        "{}",
        &out.output[out.output.len() - 40..]
    );
    let out = exec(
        "/bin/false",
        &[],
        &BTreeMap::new(),
        "/",
        Duration::from_secs(5),
        10,
    )
    .await;
    assert!(!out.ok && out.error.as_deref().is_some_and(|e| e.contains("exited")));
}
