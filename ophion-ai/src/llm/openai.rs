//! OpenAI-compatible Chat Completions (`POST {base_url}/chat/completions`):
//! OpenAI, Azure OpenAI (`azure_api_version` set: `api-key` header), vLLM,
//! llama.cpp's server, LM Studio, Ollama's `/v1`.

use serde_json::{Value, json};

use super::{
    Capabilities, ChatRequest, ChatResponse, LlmError, LlmProvider, OnDelta, Role, ToolCall, Usage,
    http::{ProviderConfig, Transport},
};

/// The provider.
#[derive(Debug, Clone)]
pub struct OpenAi {
    http: Transport,
}

impl OpenAi {
    /// A provider with `config` (its key read now).
    pub fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        Ok(Self {
            http: Transport::new(config)?,
        })
    }

    fn body(&self, r: &ChatRequest, stream: bool) -> Value {
        let messages: Vec<Value> = r
            .messages
            .iter()
            .map(|m| match m.role {
                Role::Tool => json!({
                    "role": "tool",
                    "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                    "content": m.content,
                }),
                Role::Assistant if !m.tool_calls.is_empty() => json!({
                    "role": "assistant",
                    "content": if m.content.is_empty() { Value::Null } else { json!(m.content) },
                    "tool_calls": m.tool_calls.iter().map(|c| json!({
                        "id": c.id, "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    })).collect::<Vec<_>>(),
                }),
                role => json!({"role": role_name(role), "content": m.content}),
            })
            .collect();
        let cap = self.http.config.max_tokens_per_request;
        let mut body = json!({
            "model": self.http.config.model,
            "messages": messages,
            "max_tokens": if r.max_tokens == 0 { cap } else { r.max_tokens.min(cap) },
            "stream": stream,
        });
        if let Some(t) = r.temperature {
            body["temperature"] = json!(t);
        }
        if !r.tools.is_empty() {
            body["tools"] = r
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
        }
        if stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if let (Some(schema), true) = (&r.response_schema, self.http.config.json_schema) {
            body["response_format"] = json!({"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": true}});
        }
        body
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        if self.http.key.is_empty() {
            return Vec::new();
        }
        if !self.http.config.azure_api_version.is_empty() {
            vec![("api-key", self.http.key.expose().to_owned())]
        } else {
            vec![(
                "authorization",
                format!("Bearer {}", self.http.key.expose()),
            )]
        }
    }
}

fn role_name(r: Role) -> &'static str {
    match r {
        Role::System => "system",
        Role::User => "user",
        Role::Assistant => "assistant",
        Role::Tool => "tool",
    }
}

fn usage(v: &Value) -> Usage {
    Usage {
        input_tokens: v["prompt_tokens"].as_u64().unwrap_or(0),
        output_tokens: v["completion_tokens"].as_u64().unwrap_or(0),
    }
}

#[async_trait::async_trait]
impl LlmProvider for OpenAi {
    fn name(&self) -> &str {
        "openai"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            tools: true,
            json_schema: self.http.config.json_schema,
            streaming: true,
        }
    }

    async fn chat(
        &self,
        request: &ChatRequest,
        on_delta: Option<OnDelta<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let deadline = self.http.deadline();
        let stream = on_delta.is_some();
        let url = self.http.url("/chat/completions");
        let response = self
            .http
            .post(&url, &self.headers(), &self.body(request, stream), deadline)
            .await?;
        let Some(on_delta) = on_delta else {
            let v: Value = response
                .json()
                .await
                .map_err(|e| LlmError::Protocol(format!("not a chat completion: {e}")))?;
            let m = &v["choices"][0]["message"];
            if m.is_null() {
                return Err(LlmError::Protocol("the answer has no choices".into()));
            }
            let tool_calls = m["tool_calls"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|c| ToolCall {
                            id: c["id"].as_str().unwrap_or("").to_owned(),
                            name: c["function"]["name"].as_str().unwrap_or("").to_owned(),
                            arguments: c["function"]["arguments"].as_str().map_or_else(
                                || c["function"]["arguments"].to_string(),
                                str::to_owned,
                            ),
                        })
                        .collect()
                })
                .unwrap_or_default();
            return Ok(ChatResponse {
                content: m["content"].as_str().unwrap_or("").to_owned(),
                tool_calls,
                usage: usage(&v["usage"]),
                model: v["model"].as_str().unwrap_or("").to_owned(),
            });
        };
        let mut out = ChatResponse {
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            model: String::new(),
        };
        let mut done = false;
        self.http
            .lines(response, deadline, |line| {
                let Some(data) = line.strip_prefix("data:") else {
                    return Ok(true);
                };
                let data = data.trim();
                if data == "[DONE]" {
                    done = true;
                    return Ok(false);
                }
                let v: Value = serde_json::from_str(data)
                    .map_err(|e| LlmError::Protocol(format!("a stream event is not JSON: {e}")))?;
                if let Some(e) = v["error"].as_object() {
                    return Err(LlmError::Unavailable(format!(
                        "the provider ended the stream with an error: {}",
                        e.get("message").and_then(Value::as_str).unwrap_or("")
                    )));
                }
                if let Some(m) = v["model"].as_str() {
                    out.model = m.to_owned();
                }
                if v["usage"].is_object() {
                    out.usage = usage(&v["usage"]);
                }
                let d = &v["choices"][0]["delta"];
                if let Some(t) = d["content"].as_str()
                    && !t.is_empty()
                {
                    out.content.push_str(t);
                    on_delta(t);
                }
                for c in d["tool_calls"].as_array().into_iter().flatten() {
                    let i = c["index"].as_u64().unwrap_or(0) as usize;
                    while out.tool_calls.len() <= i {
                        out.tool_calls.push(ToolCall {
                            id: String::new(),
                            name: String::new(),
                            arguments: String::new(),
                        });
                    }
                    let call = &mut out.tool_calls[i];
                    if let Some(id) = c["id"].as_str() {
                        call.id = id.to_owned();
                    }
                    if let Some(n) = c["function"]["name"].as_str() {
                        call.name.push_str(n);
                    }
                    if let Some(a) = c["function"]["arguments"].as_str() {
                        call.arguments.push_str(a);
                    }
                }
                Ok(true)
            })
            .await?;
        if !done {
            return Err(LlmError::Unavailable(
                "the stream ended without [DONE]".into(),
            ));
        }
        Ok(out)
    }
}
