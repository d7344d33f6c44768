//! What describes this host, as OpenTelemetry resource attributes, for
//! the telemetry the agent makes itself (log files, host metrics):
//! `host.name`, `host.arch`, `os.type`, `container.id` when in a
//! container, the Kubernetes names from the usual downward-API variables,
//! and `OTEL_RESOURCE_ATTRIBUTES`. Requests forwarded from applications
//! keep their own resources, unchanged.

use std::collections::BTreeMap;

use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};

/// The attributes found, by key.
pub fn detect(env: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .or_else(|| env.get("HOSTNAME").cloned());
    if let Some(h) = host {
        out.insert("host.name".into(), h);
    }
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "x86",
        other => other,
    };
    out.insert("host.arch".into(), arch.into());
    out.insert("os.type".into(), std::env::consts::OS.into());
    if let Some(id) = container_id() {
        out.insert("container.id".into(), id);
    }
    for (var, key) in [
        ("K8S_POD_NAME", "k8s.pod.name"),
        ("K8S_POD_UID", "k8s.pod.uid"),
        ("K8S_NAMESPACE_NAME", "k8s.namespace.name"),
        ("K8S_NODE_NAME", "k8s.node.name"),
        ("POD_NAME", "k8s.pod.name"),
        ("POD_NAMESPACE", "k8s.namespace.name"),
        ("NODE_NAME", "k8s.node.name"),
    ] {
        if let Some(v) = env.get(var).filter(|v| !v.is_empty()) {
            out.entry(key.to_owned()).or_insert_with(|| v.clone());
        }
    }
    if let Some(extra) = env.get("OTEL_RESOURCE_ATTRIBUTES") {
        for pair in extra.split(',') {
            if let Some((k, v)) = pair.split_once('=')
                && !k.trim().is_empty()
            {
                out.insert(k.trim().to_owned(), v.trim().to_owned());
            }
        }
    }
    out
}

/// The container's id from `/proc/self/cgroup` or `/proc/self/mountinfo`
/// (64 hex digits in a path), when this process runs in one.
fn container_id() -> Option<String> {
    let find = |text: &str| {
        text.split(['/', '-', '.', ' ', ':'])
            .find(|w| w.len() == 64 && w.bytes().all(|b| b.is_ascii_hexdigit()))
            .map(str::to_owned)
    };
    std::fs::read_to_string("/proc/self/cgroup")
        .ok()
        .and_then(|t| find(&t))
        .or_else(|| {
            std::fs::read_to_string("/proc/self/mountinfo")
                .ok()
                .and_then(|t| {
                    t.lines()
                        .filter(|l| l.contains("/containers/"))
                        .find_map(find)
                })
        })
}

/// As OTLP key-values.
pub fn key_values(attrs: &BTreeMap<String, String>) -> Vec<KeyValue> {
    attrs
        .iter()
        .map(|(k, v)| KeyValue {
            key: k.clone(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(v.clone())),
            }),
            ..Default::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_host_and_kubernetes_variables_are_found() {
        let env: BTreeMap<String, String> = [
            ("K8S_POD_NAME", "shop-7d9"),
            ("K8S_NAMESPACE_NAME", "prod"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment=prod, team=payments",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let r = detect(&env);
        assert_eq!(r["k8s.pod.name"], "shop-7d9");
        assert_eq!(r["k8s.namespace.name"], "prod");
        assert_eq!(r["team"], "payments");
        assert_eq!(r["os.type"], std::env::consts::OS);
        assert!(r.get("host.name").is_some_and(|h| !h.is_empty()), "{r:?}");
    }
}
