//! The copilot's tools for MCP clients, with the official SDK (`rmcp`):
//! the same list ([`super::tools::SPECS`]), the same guard, the caller's
//! tenant only.
//!
//! Two ways in:
//! - streamable HTTP at `/api/v1/mcp` inside the server ([`HttpService`]):
//!   every request passes the API's access layer (bearer token, viewer or
//!   more), and each tool call runs for the principal of its own request;
//! - `ophion mcp` over stdio (in the CLI), which forwards each call to the
//!   server's `POST /api/v1/ai/tools/{name}` with `OPHION_TOKEN`
//!   ([`Backend`] is what differs).

use std::sync::Arc;

use rmcp::{
    ErrorData, ServerHandler,
    model::{
        CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock as Content,
        Implementation, ListToolsResult, PaginatedRequestParams, ServerCapabilities, ServerConfig,
        Tool, ToolAnnotations,
    },
    service::{RequestContext, RoleServer},
};
use serde_json::Value;

use super::tools::SPECS;

/// Where tool calls go.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs tool `name` with `args` for the caller of `request` (the HTTP
    /// request's parts, when there is one); the result as JSON, or a
    /// message for the client.
    async fn call(
        &self,
        request: Option<&http::request::Parts>,
        name: &str,
        args: Value,
    ) -> Result<Value, String>;
}

/// An MCP server over a [`Backend`].
#[derive(Clone)]
pub struct McpServer {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for McpServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("McpServer")
    }
}

impl McpServer {
    /// A server whose tool calls go to `backend`.
    pub fn new(backend: Arc<dyn Backend>) -> Self {
        Self { backend }
    }
}

/// The tools as MCP describes them: all read-only.
pub fn tools() -> Vec<Tool> {
    SPECS
        .iter()
        .map(|s| {
            let schema = match (s.parameters)() {
                Value::Object(o) => o,
                _ => serde_json::Map::new(),
            };
            let mut t = Tool::new(s.name, s.description, Arc::new(schema));
            t.annotations = Some(ToolAnnotations::from_raw(
                None,
                Some(true),
                Some(false),
                Some(true),
                Some(false),
            ));
            t
        })
        .collect()
}

impl ServerHandler for McpServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("ophion", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Read-only tools over one tenant's telemetry (spans, logs, metrics). \
                 run_sql takes one SELECT over the tables spans, logs and metrics.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(tools()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if !SPECS.iter().any(|s| s.name == request.name) {
            return Err(ErrorData::invalid_params(
                format!("there is no tool `{}`", request.name),
                None,
            ));
        }
        let parts = context.extensions.get::<http::request::Parts>();
        let args = Value::Object(request.arguments.unwrap_or_default());
        let result = match self.backend.call(parts, &request.name, args).await {
            Ok(v) => {
                let mut r = CallToolResult::success(vec![Content::text(v.to_string())]);
                r.structured_content = Some(v);
                r
            }
            Err(message) => CallToolResult::error(vec![Content::text(message)]),
        };
        Ok(result.into())
    }
}

/// The tools inside the server: the tenant is the one the API's access
/// layer put in the request's extensions (never taken from the client's
/// arguments).
#[derive(Debug, Clone)]
pub struct LocalBackend {
    tools: super::tools::Toolbox,
}

impl LocalBackend {
    /// Tool calls through `tools`.
    pub fn new(tools: super::tools::Toolbox) -> Self {
        Self { tools }
    }
}

/// A tool's output as MCP clients and `POST /api/v1/ai/tools/{name}` get
/// it.
pub fn output_json(o: &super::tools::ToolOutput) -> Value {
    serde_json::json!({"result": o.result, "queries": o.queries, "evidence": o.evidence})
}

#[async_trait::async_trait]
impl Backend for LocalBackend {
    async fn call(
        &self,
        request: Option<&http::request::Parts>,
        name: &str,
        args: Value,
    ) -> Result<Value, String> {
        let tenant = request
            .and_then(|p| p.extensions.get::<ophion_core::TenantId>())
            .ok_or("no tenant: the request did not pass the access layer")?;
        self.tools
            .call(tenant, name, &args)
            .await
            .map(|o| output_json(&o))
            .map_err(|e| e.to_string())
    }
}

/// The streamable HTTP service for `/api/v1/mcp`.
#[derive(Clone)]
pub struct HttpService(
    rmcp::transport::StreamableHttpService<
        McpServer,
        rmcp::transport::streamable_http_server::session::local::LocalSessionManager,
    >,
);

impl std::fmt::Debug for HttpService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HttpService")
    }
}

impl HttpService {
    /// The service over `tools`. Host checks are off: every request
    /// carries a bearer token (no ambient credentials a rebinding page
    /// could use), checked by the API's access layer.
    pub fn new(tools: super::tools::Toolbox) -> Self {
        let backend: Arc<dyn Backend> = Arc::new(LocalBackend::new(tools));
        Self(rmcp::transport::StreamableHttpService::new(
            move || Ok(McpServer::new(Arc::clone(&backend))),
            Arc::default(),
            rmcp::transport::StreamableHttpServerConfig::default().disable_allowed_hosts(),
        ))
    }

    /// Answers one HTTP request.
    pub async fn handle(&self, request: axum::extract::Request) -> axum::response::Response {
        axum::response::IntoResponse::into_response(
            self.0.handle(request).await.map(axum::body::Body::new),
        )
    }
}
