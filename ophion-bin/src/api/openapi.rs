//! The OpenAPI document, assembled from the route table
//! ([`super::routes::table`]): each [`Route`](super::routes::Route)
//! carries its [`Doc`], and `document` adds the shared parts (info,
//! security scheme, the `Error` and `QueryResult` schemas) from
//! `openapi-base.json`. Security follows the route's permission: public
//! routes need no token; every operation names its permission in
//! `x-ophion-permission`.

use serde_json::{Map, Value, json};

use crate::auth::Permission;

/// The parts of the document that are not routes.
const BASE: &str = include_str!("openapi-base.json");

const FROM: &str = "Start of the range: RFC 3339, unix nanoseconds, `now` or `now-15m` (default: an hour before `to`).";
const TO: &str = "End of the range, same forms (default: now).";

/// One operation's description: summary, parameters, body and responses.
/// Every operation answers errors as `#/components/schemas/Error`.
#[derive(Debug, Clone)]
pub struct Doc {
    op: Map<String, Value>,
}

fn error_response() -> Value {
    json!({"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

impl Doc {
    /// An operation summed up in one line.
    pub fn new(summary: &str) -> Self {
        let mut op = Map::new();
        op.insert("summary".into(), summary.into());
        op.insert("responses".into(), json!({"default": error_response()}));
        Self { op }
    }

    /// A longer description.
    pub fn description(mut self, text: &str) -> Self {
        self.op.insert("description".into(), text.into());
        self
    }

    fn param(mut self, name: &str, place: &str, required: bool, ty: &str, text: &str) -> Self {
        let mut p =
            json!({"name": name, "in": place, "required": required, "schema": {"type": ty}});
        if !text.is_empty() {
            p["description"] = text.into();
        }
        let params = self
            .op
            .entry("parameters")
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(list) = params {
            list.push(p);
        }
        self
    }

    /// An optional query-string parameter of JSON type `ty`.
    pub fn query(self, name: &str, ty: &str, text: &str) -> Self {
        self.param(name, "query", false, ty, text)
    }

    /// A required query-string parameter.
    pub fn required_query(self, name: &str, ty: &str, text: &str) -> Self {
        self.param(name, "query", true, ty, text)
    }

    /// A path parameter (`{name}` in the route's path).
    pub fn path(self, name: &str, ty: &str, text: &str) -> Self {
        self.param(name, "path", true, ty, text)
    }

    /// The `from` and `to` time range parameters.
    pub fn range(self) -> Self {
        self.query("from", "string", FROM).query("to", "string", TO)
    }

    /// A JSON request body with `schema`.
    pub fn body(mut self, required: bool, schema: Value) -> Self {
        self.op.insert(
            "requestBody".into(),
            json!({"required": required, "content": {"application/json": {"schema": schema}}}),
        );
        self
    }

    fn respond(mut self, code: u16, response: Value) -> Self {
        if let Some(Value::Object(r)) = self.op.get_mut("responses") {
            r.insert(code.to_string(), response);
        }
        self
    }

    /// A JSON object answer.
    pub fn ok(self, code: u16, text: &str) -> Self {
        self.ok_schema(code, text, json!({"type": "object"}))
    }

    /// A JSON answer with `schema`.
    pub fn ok_schema(self, code: u16, text: &str, schema: Value) -> Self {
        self.respond(
            code,
            json!({"description": text, "content": {"application/json": {"schema": schema}}}),
        )
    }

    /// An answer with other `content` (an event stream) or none (`{}`).
    pub fn ok_content(self, code: u16, text: &str, content: Value) -> Self {
        let mut r = json!({"description": text});
        if content.as_object().is_some_and(|c| !c.is_empty()) {
            r["content"] = content;
        }
        self.respond(code, r)
    }

    /// Error statuses worth naming beside `default` (400, 404, 504, ...).
    pub fn errors(self, codes: &[u16]) -> Self {
        codes
            .iter()
            .fold(self, |d, code| d.respond(*code, error_response()))
    }

    /// The operation object, with security and permission from `permission`.
    fn operation(&self, permission: Permission) -> Value {
        let mut op = self.op.clone();
        if permission == Permission::Public {
            op.insert("security".into(), json!([]));
        }
        op.insert(
            "x-ophion-permission".into(),
            format!("{permission:?}").to_lowercase().into(),
        );
        Value::Object(op)
    }
}

/// The whole document for `routes` (method, path, permission, doc).
pub(super) fn document<'a>(
    routes: impl Iterator<Item = (&'a http::Method, &'a str, Permission, &'a Doc)>,
) -> Value {
    let mut doc: Value = serde_json::from_str(BASE).unwrap_or_else(|_| json!({}));
    let mut paths = Map::new();
    for (method, path, permission, d) in routes {
        let entry = paths.entry(path).or_insert_with(|| json!({}));
        entry[method.as_str().to_lowercase()] = d.operation(permission);
    }
    doc["paths"] = Value::Object(paths);
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_base_is_an_openapi_3_document_without_paths() {
        let base: serde_json::Value = serde_json::from_str(super::BASE).expect("valid JSON");
        assert!(
            base["openapi"]
                .as_str()
                .is_some_and(|v| v.starts_with("3."))
        );
        assert!(
            base.get("paths").is_none(),
            "paths come from the route table"
        );
        assert!(base["components"]["schemas"]["Error"].is_object());
    }
}
