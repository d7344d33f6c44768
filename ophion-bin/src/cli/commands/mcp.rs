//! `ophion mcp`: the copilot's read-only tools for an MCP client over
//! stdio. Each call is forwarded to the server
//! (`POST /api/v1/ai/tools/{name}`) with the saved token or
//! `OPHION_TOKEN`, so it runs with that user's tenant and the server's SQL
//! guard; nothing is written to standard output but the protocol.

use std::sync::Arc;

use rmcp::ServiceExt as _;
use serde_json::Value;

use crate::cli::{CliError, client::Client};
use crate::copilot::mcp::{Backend, McpServer};

struct Forward(Client);

#[async_trait::async_trait]
impl Backend for Forward {
    async fn call(
        &self,
        _request: Option<&http::request::Parts>,
        name: &str,
        args: Value,
    ) -> Result<Value, String> {
        let c = &self.0;
        let url = format!("{}/api/v1/ai/tools/{name}", c.base);
        let resp = c
            .send(c.http.post(url).json(&args))
            .await
            .map_err(|e| e.to_string())?;
        resp.json::<Value>().await.map_err(|e| e.to_string())
    }
}

/// Serves MCP on stdin and stdout until the client hangs up.
pub(in crate::cli) async fn serve(c: Client) -> Result<(), CliError> {
    let server = McpServer::new(Arc::new(Forward(c)));
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CliError::Refused(format!("MCP: {e}")))?;
    running
        .waiting()
        .await
        .map_err(|e| CliError::Refused(format!("MCP: {e}")))?;
    Ok(())
}
