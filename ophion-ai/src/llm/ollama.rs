//! Ollama's native chat API (`POST {base_url}/api/chat`): newline-delimited
//! JSON when streaming, tool calls with arguments as objects.

use serde_json::{Value, json};

use super::{
    Capabilities, ChatRequest, ChatResponse, LlmError, LlmProvider, OnDelta, Role, ToolCall, Usage,
    http::{ProviderConfig, Transport},
};

/// The provider.
#[derive(Debug, Clone)]
pub struct Ollama {
    http: Transport,
}

impl Ollama {
    /// A provider with `config`.
    pub fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        Ok(Self {
            http: Transport::new(config)?,
        })
    }

    fn body(&self, r: &ChatRequest, stream: bool) -> Value {
        let messages: Vec<Value> = r
            .messages
            .iter()
            .map(|m| {
                let role = match m.role {
                    Role::System => "system",
                    Role::User => "user",
                    Role::Assistant => "assistant",
                    Role::Tool => "tool",
                };
                let mut v = json!({"role": role, "content": m.content});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            let args: Value =
                                serde_json::from_str(&c.arguments).unwrap_or_else(|_| json!({}));
                            json!({"function": {"name": c.name, "arguments": args}})
                        })
                        .collect();
                }
                v
            })
            .collect();
        let cap = self.http.config.max_tokens_per_request;
        let mut options =
            json!({"num_predict": if r.max_tokens == 0 { cap } else { r.max_tokens.min(cap) }});
        if let Some(t) = r.temperature {
            options["temperature"] = json!(t);
        }
        let mut body = json!({
            "model": self.http.config.model,
            "messages": messages,
            "stream": stream,
            "options": options,
        });
        if !r.tools.is_empty() {
            body["tools"] = r
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}))
                .collect();
        }
        if let (Some(schema), true) = (&r.response_schema, self.http.config.json_schema) {
            body["format"] = schema.clone();
        }
        body
    }
}

/// Adds one answer object's message, calls and counts to `out`.
fn take(
    v: &Value,
    out: &mut ChatResponse,
    on_delta: &mut Option<OnDelta<'_>>,
) -> Result<(), LlmError> {
    if let Some(e) = v["error"].as_str() {
        return Err(LlmError::Unavailable(format!(
            "the provider reported an error: {e}"
        )));
    }
    let m = &v["message"];
    if let Some(t) = m["content"].as_str()
        && !t.is_empty()
    {
        out.content.push_str(t);
        if let Some(f) = on_delta.as_mut() {
            f(t);
        }
    }
    for c in m["tool_calls"].as_array().into_iter().flatten() {
        let n = out.tool_calls.len();
        let args = &c["function"]["arguments"];
        out.tool_calls.push(ToolCall {
            id: c["id"]
                .as_str()
                .map_or_else(|| format!("call_{n}"), str::to_owned),
            name: c["function"]["name"].as_str().unwrap_or("").to_owned(),
            arguments: args
                .as_str()
                .map_or_else(|| args.to_string(), str::to_owned),
        });
    }
    if let Some(model) = v["model"].as_str() {
        out.model = model.to_owned();
    }
    if v["done"] == true {
        out.usage = Usage {
            input_tokens: v["prompt_eval_count"].as_u64().unwrap_or(0),
            output_tokens: v["eval_count"].as_u64().unwrap_or(0),
        };
    }
    Ok(())
}

#[async_trait::async_trait]
impl LlmProvider for Ollama {
    fn name(&self) -> &str {
        "ollama"
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
        mut on_delta: Option<OnDelta<'_>>,
    ) -> Result<ChatResponse, LlmError> {
        let deadline = self.http.deadline();
        let url = self.http.url("/api/chat");
        let stream = on_delta.is_some();
        let headers: Vec<(&str, String)> = if self.http.key.is_empty() {
            Vec::new()
        } else {
            vec![(
                "authorization",
                format!("Bearer {}", self.http.key.expose()),
            )]
        };
        let response = self
            .http
            .post(&url, &headers, &self.body(request, stream), deadline)
            .await?;
        let mut out = ChatResponse {
            content: String::new(),
            tool_calls: Vec::new(),
            usage: Usage::default(),
            model: String::new(),
        };
        if !stream {
            let v: Value = response
                .json()
                .await
                .map_err(|e| LlmError::Protocol(format!("not an Ollama chat answer: {e}")))?;
            if v["message"].is_null() && v["error"].is_null() {
                return Err(LlmError::Protocol("the answer has no message".into()));
            }
            take(&v, &mut out, &mut on_delta)?;
            return Ok(out);
        }
        let mut done = false;
        self.http
            .lines(response, deadline, |line| {
                if line.trim().is_empty() {
                    return Ok(true);
                }
                let v: Value = serde_json::from_str(line)
                    .map_err(|e| LlmError::Protocol(format!("a stream line is not JSON: {e}")))?;
                take(&v, &mut out, &mut on_delta)?;
                done = v["done"] == true;
                Ok(!done)
            })
            .await?;
        if !done {
            return Err(LlmError::Unavailable("the stream ended before done".into()));
        }
        Ok(out)
    }
}
