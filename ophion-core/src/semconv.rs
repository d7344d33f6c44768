//! Semantic-convention attributes that Ophion promotes to typed columns.
//!
//! A promoted attribute is moved out of the attribute map into its own column
//! when its value has the column's type; otherwise it stays in the map, so no
//! value is ever lost. Legacy names of the same attribute (for example
//! `http.method` for `http.request.method`) fill the same column, so
//! dashboards work for old and new SDKs alike; the first key found wins and a
//! second one stays in the map.

use std::{collections::HashMap, sync::LazyLock};

/// Where a promoted attribute is looked up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Resource attributes: columns on every signal.
    Resource,
    /// Span attributes: columns on spans only.
    Span,
}

/// Column type of a promoted attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PromotedType {
    /// `Utf8`, filled from string values.
    Str,
    /// `Int64`, filled from integer values.
    Int,
}

/// One promoted attribute.
#[derive(Debug, Clone, Copy)]
pub struct Promoted {
    /// Column name (the current semantic-convention key, dots as underscores).
    pub column: &'static str,
    /// Attribute keys that fill the column, current name first.
    pub keys: &'static [&'static str],
    /// Column type.
    pub ty: PromotedType,
    /// Resource or span attribute.
    pub level: Level,
}

const fn p(
    column: &'static str,
    keys: &'static [&'static str],
    ty: PromotedType,
    level: Level,
) -> Promoted {
    Promoted {
        column,
        keys,
        ty,
        level,
    }
}

use Level::{Resource, Span};
use PromotedType::{Int, Str};

/// The promoted attributes, in column order.
pub const PROMOTED: &[Promoted] = &[
    p("service_name", &["service.name"], Str, Resource),
    p("service_namespace", &["service.namespace"], Str, Resource),
    p("service_version", &["service.version"], Str, Resource),
    p(
        "service_instance_id",
        &["service.instance.id"],
        Str,
        Resource,
    ),
    p(
        "deployment_environment",
        &["deployment.environment.name", "deployment.environment"],
        Str,
        Resource,
    ),
    p("host_name", &["host.name"], Str, Resource),
    p("k8s_namespace_name", &["k8s.namespace.name"], Str, Resource),
    p("k8s_pod_name", &["k8s.pod.name"], Str, Resource),
    p(
        "k8s_deployment_name",
        &["k8s.deployment.name"],
        Str,
        Resource,
    ),
    p("k8s_node_name", &["k8s.node.name"], Str, Resource),
    p(
        "http_request_method",
        &["http.request.method", "http.method"],
        Str,
        Span,
    ),
    p("http_route", &["http.route"], Str, Span),
    p(
        "http_response_status_code",
        &["http.response.status_code", "http.status_code"],
        Int,
        Span,
    ),
    p("url_full", &["url.full", "http.url"], Str, Span),
    p("url_path", &["url.path", "http.target"], Str, Span),
    p(
        "server_address",
        &["server.address", "net.peer.name"],
        Str,
        Span,
    ),
    p("db_system", &["db.system.name", "db.system"], Str, Span),
    p(
        "db_operation_name",
        &["db.operation.name", "db.operation"],
        Str,
        Span,
    ),
    p("rpc_system", &["rpc.system"], Str, Span),
    p("rpc_service", &["rpc.service"], Str, Span),
    p("rpc_method", &["rpc.method"], Str, Span),
];

/// Value of `service_name` when the resource has no `service.name`, as the
/// OpenTelemetry resource specification prescribes.
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// The promoted attributes of one level, in column order.
pub fn promoted(level: Level) -> impl Iterator<Item = &'static Promoted> {
    PROMOTED.iter().filter(move |p| p.level == level)
}

/// Attribute key -> (level, index within the level's columns, type), with
/// a fixed-seed hash: the table never changes after start-up, so clients
/// cannot flood it, and SipHash cost ~4% of ingest CPU here.
type Index = HashMap<&'static str, (Level, usize, PromotedType), foldhash::fast::FixedState>;

struct KeyTable {
    index: Index,
    /// Bit `n` set when some key is `n` bytes long (keys under 128 bytes):
    /// most attributes are ruled out by their length without hashing.
    lengths: u128,
}

static INDEX: LazyLock<KeyTable> = LazyLock::new(|| {
    let mut index = Index::with_hasher(foldhash::fast::FixedState::with_seed(0));
    let mut lengths = 0u128;
    for level in [Level::Resource, Level::Span] {
        for (i, p) in promoted(level).enumerate() {
            for k in p.keys {
                index.insert(*k, (level, i, p.ty));
                assert!(k.len() < 128, "promoted keys are short");
                lengths |= 1 << k.len();
            }
        }
    }
    KeyTable { index, lengths }
});

/// The index (within [`promoted`]`(level)`) and the type of the column an
/// attribute key fills, if any. This runs for every attribute received.
pub fn promoted_index(level: Level, key: &str) -> Option<(usize, PromotedType)> {
    let t = &*INDEX;
    if key.len() >= 128 || t.lengths & (1 << key.len()) == 0 {
        return None;
    }
    match t.index.get(key) {
        Some((l, i, ty)) if *l == level => Some((*i, *ty)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_and_current_keys_share_a_column() {
        let new = promoted_index(Level::Span, "http.request.method");
        assert!(new.is_some());
        assert_eq!(promoted_index(Level::Span, "http.method"), new);
        assert_eq!(
            promoted_index(Level::Resource, "http.method"),
            None,
            "span keys are not resource keys"
        );
        assert_eq!(
            promoted_index(Level::Span, "http.response.status_code").map(|p| p.1),
            Some(PromotedType::Int)
        );
        assert_eq!(promoted_index(Level::Resource, "app.custom"), None);
        assert_eq!(promoted_index(Level::Span, &"x".repeat(300)), None);
        assert_eq!(promoted_index(Level::Span, ""), None);
        for p in PROMOTED {
            for k in p.keys {
                assert!(promoted_index(p.level, k).is_some(), "{k}");
            }
        }
    }
}
