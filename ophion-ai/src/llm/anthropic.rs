//! Anthropic Messages (`POST {base_url}/v1/messages`).

use serde_json::{Value, json};

use super::{
    Capabilities, ChatRequest, ChatResponse, LlmError, LlmProvider, OnDelta, Role, ToolCall, Usage,
    http::{ProviderConfig, Transport},
};

/// The API version the requests name.
const VERSION: &str = "2023-06-01";

/// The provider.
#[derive(Debug, Clone)]
pub struct Anthropic {
    http: Transport,
}

impl Anthropic {
    /// A provider with `config` (its key read now).
    pub fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        Ok(Self {
            http: Transport::new(config)?,
        })
    }

    fn body(&self, r: &ChatRequest, stream: bool) -> Value {
        let system: Vec<&str> = r
            .messages
            .iter()
            .filter(|m| m.role == Role::System)
            .map(|m| m.content.as_str())
            .collect();
        // Messages alternate user / assistant: tool results are user
        // content blocks, and neighbours of one role are merged.
        let mut messages: Vec<(String, Vec<Value>)> = Vec::new();
        for m in r.messages.iter().filter(|m| m.role != Role::System) {
            let (role, blocks) = match m.role {
                Role::Tool => (
                    "user",
                    vec![
                        json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": m.content}),
                    ],
                ),
                Role::Assistant => {
                    let mut b = Vec::new();
                    if !m.content.is_empty() {
                        b.push(json!({"type": "text", "text": m.content}));
                    }
                    for c in &m.tool_calls {
                        let input: Value =
                            serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                        b.push(
                            json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}),
                        );
                    }
                    ("assistant", b)
                }
                _ => ("user", vec![json!({"type": "text", "text": m.content})]),
            };
            match messages.last_mut() {
                Some((r, b)) if r == role => b.extend(blocks),
                _ => messages.push((role.to_owned(), blocks)),
            }
        }
        let cap = self.http.config.max_tokens_per_request;
        let mut body = json!({
            "model": self.http.config.model,
            "max_tokens": if r.max_tokens == 0 { cap } else { r.max_tokens.min(cap) },
            "messages": messages.into_iter().map(|(role, content)| json!({"role": role, "content": content})).collect::<Vec<_>>(),
            "stream": stream,
        });
        if !system.is_empty() {
            body["system"] = json!(system.join("\n\n"));
        }
        if let Some(t) = r.temperature {
            body["temperature"] = json!(t);
        }
        if !r.tools.is_empty() {
            body["tools"] = r
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.parameters}))
                .collect();
        }
        body
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![("anthropic-version", VERSION.to_owned())];
        if !self.http.key.is_empty() {
            h.push(("x-api-key", self.http.key.expose().to_owned()));
        }
        h
    }
}

#[async_trait::async_trait]
impl LlmProvider for Anthropic {
    fn name(&self) -> &str {
        "anthropic"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tools: true,
            json_schema: false,
            streaming: true,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_delta: Option<OnDelta<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let deadline = self.http.deadline();
        let url = self.http.url("/v1/messages");
        let stream = on_delta.is_some();
        let response = self
            .http
            .post(&url, &self.headers(), &self.body(request, stream), deadline)
            .await?;
        let mut out = ChatResponse {
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            model: String::new(),
        };
        let Some(on_delta) = on_delta else {
            let v: Value = response
                .json()
                .await
                .map_err(|e| LlmError::Protocol(format!("not a Messages answer: {e}")))?;
            let blocks = v["content"]
                .as_array()
                .ok_or_else(|| LlmError::Protocol("the answer has no content".into()))?;
            for b in blocks {
                match b["type"].as_str() {
                    Some("text") => out.content.push_str(b["text"].as_str().unwrap_or("")),
                    Some("tool_use") => out.tool_calls.push(ToolCall {
                        id: b["id"].as_str().unwrap_or("").to_owned(),
                        name: b["name"].as_str().unwrap_or("").to_owned(),
                        arguments: b["input"].to_string(),
                    }),
                    _ => {}
                }
            }
            out.usage = Usage {
                input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
                output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
            };
            out.model = v["model"].as_str().unwrap_or("").to_owned();
            return Ok(out);
        };
        let mut done = false;
        // Tool inputs arrive as pieces of JSON text, per content block.
        let mut block_is_tool: Vec<bool> = Vec::new();
        self.http
            .lines(response, deadline, |line| {
                let Some(data) = line.strip_prefix("data:") else {
                    return Ok(true);
                };
                let v: Value = serde_json::from_str(data.trim())
                    .map_err(|e| LlmError::Protocol(format!("a stream event is not JSON: {e}")))?;
                match v["type"].as_str().unwrap_or("") {
                    "message_start" => {
                        out.model = v["message"]["model"].as_str().unwrap_or("").to_owned();
                        out.usage.input_tokens =
                            v["message"]["usage"]["input_tokens"].as_u64().unwrap_or(0);
                    }
                    "content_block_start" => {
                        let b = &v["content_block"];
                        let tool = b["type"] == "tool_use";
                        block_is_tool.push(tool);
                        if tool {
                            out.tool_calls.push(ToolCall {
                                id: b["id"].as_str().unwrap_or("").to_owned(),
                                name: b["name"].as_str().unwrap_or("").to_owned(),
                                arguments: String::new(),
                            });
                        }
                    }
                    "content_block_delta" => {
                        let d = &v["delta"];
                        match d["type"].as_str() {
                            Some("text_delta") => {
                                let t = d["text"].as_str().unwrap_or("");
                                out.content.push_str(t);
                                on_delta(t);
                            }
                            Some("input_json_delta") => {
                                if let Some(c) = out.tool_calls.last_mut() {
                                    c.arguments
                                        .push_str(d["partial_json"].as_str().unwrap_or(""));
                                }
                            }
                            _ => {}
                        }
                    }
                    "message_delta" => {
                        out.usage.output_tokens = v["usage"]["output_tokens"]
                            .as_u64()
                            .unwrap_or(out.usage.output_tokens);
                    }
                    "message_stop" => {
                        done = true;
                        return Ok(false);
                    }
                    "error" => {
                        return Err(LlmError::Unavailable(format!(
                            "the provider ended the stream with an error: {}",
                            v["error"]["message"].as_str().unwrap_or("")
                        )));
                    }
                    _ => {}
                }
                Ok(true)
            })
            .await?;
        if !done {
            return Err(LlmError::Unavailable(
                "the stream ended without message_stop".into(),
            ));
        }
        // A tool call whose input never arrived has empty arguments: `{}`.
        for c in &mut out.tool_calls {
            if c.arguments.is_empty() {
                c.arguments = "{}".into();
            }
        }
        Ok(out)
    }
}
