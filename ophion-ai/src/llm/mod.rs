//! The seam for language models: [`LlmProvider`]. The copilot talks to any
//! model through it (OpenAI-compatible Chat Completions, Anthropic
//! Messages, Ollama, or none at all: the copilot's built-in engine answers
//! without a model). This module holds the contract and the types every
//! provider shares; the providers, each over `reqwest`, are
//! [`openai::OpenAi`], [`anthropic::Anthropic`] and [`ollama::Ollama`],
//! built from a [`ProviderConfig`] by [`provider`]. They are the only code
//! of this crate that does I/O.
//!
//! Telemetry is data, never instructions: whatever a caller puts in a
//! [`Message`] from logs or spans goes in as quoted content, and nothing a
//! model returns is executed except through the caller's own read-only
//! tools ([`ToolCall`] is a request the caller may refuse).

pub mod anthropic;
mod http;
pub mod ollama;
pub mod openai;

use std::{fmt::Debug, sync::Arc, time::Duration};

pub use http::{ProviderConfig, ProviderKind, Secret};
use serde::{Deserialize, Serialize};

/// The provider `config` names, or `None` for [`ProviderKind::None`];
/// a clear [`LlmError::Config`] when its settings cannot work (no URL, no
/// model, a key variable or file that is missing).
pub fn provider(config: &ProviderConfig) -> Result<Option<Arc<dyn LlmProvider>>, LlmError> {
    Ok(match config.provider {
        ProviderKind::None => None,
        ProviderKind::Openai => Some(Arc::new(openai::OpenAi::new(config.clone())?)),
        ProviderKind::Anthropic => Some(Arc::new(anthropic::Anthropic::new(config.clone())?)),
        ProviderKind::Ollama => Some(Arc::new(ollama::Ollama::new(config.clone())?)),
    })
}

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
    /// The result of a tool call the model asked for.
    Tool,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// Who said it.
    pub role: Role,
    /// The text (for [`Role::Tool`], the tool's result as JSON text).
    pub content: String,
    /// Tool calls the assistant asked for in this message.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For [`Role::Tool`]: the [`ToolCall::id`] this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
}

/// A tool the model may call: a name, what it does, and a JSON Schema of
/// its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tool {
    /// Name, `[a-z_]+`.
    pub name: String,
    /// What it does, for the model.
    pub description: String,
    /// JSON Schema of the arguments object.
    pub parameters: serde_json::Value,
}

/// A tool call the model asked for. `arguments` is the model's JSON text,
/// unparsed: it may be malformed, and the caller validates it against the
/// tool's schema before running anything.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    /// The provider's id for the call.
    pub id: String,
    /// Which tool.
    pub name: String,
    /// Arguments as JSON text.
    pub arguments: String,
}

/// One request to a model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatRequest {
    /// The conversation so far, oldest first.
    pub messages: Vec<Message>,
    /// Tools the model may call.
    pub tools: Vec<Tool>,
    /// A JSON Schema the answer must follow, for providers whose
    /// [`Capabilities::json_schema`] is true (others ignore it; the caller
    /// validates).
    pub response_schema: Option<serde_json::Value>,
    /// Most tokens to generate.
    pub max_tokens: u32,
    /// Sampling temperature; `None` for the provider's default.
    pub temperature: Option<f32>,
}

/// Tokens a request used, for per-tenant budgets.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    /// Tokens sent.
    pub input_tokens: u64,
    /// Tokens generated.
    pub output_tokens: u64,
}

/// A model's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatResponse {
    /// The answer's text (may be empty when the model only calls tools).
    pub content: String,
    /// Tools the model wants called before it answers.
    pub tool_calls: Vec<ToolCall>,
    /// What the request cost.
    pub usage: Usage,
    /// The model that answered, as the provider names it.
    pub model: String,
}

/// What a provider's model can do.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// It can call tools.
    pub tools: bool,
    /// It can be held to a JSON Schema ([`ChatRequest::response_schema`]).
    pub json_schema: bool,
    /// It streams tokens as they are generated.
    pub streaming: bool,
}

/// Why a model could not answer. Messages never contain the API key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LlmError {
    /// Missing or invalid settings (URL, model, key); not retryable.
    #[error("language model misconfigured: {0}")]
    Config(String),
    /// The provider refused the key.
    #[error("the language model provider refused the credentials")]
    Unauthorized,
    /// Rate-limited (HTTP 429), with the delay the provider asked for.
    #[error("the language model provider is rate-limiting; retry in {retry_after:?}")]
    RateLimited {
        /// From `Retry-After`, or the provider's default.
        retry_after: Duration,
    },
    /// Unreachable, 5xx, or a stream that broke or never ended.
    #[error("the language model provider is unavailable: {0}")]
    Unavailable(String),
    /// The request or the tenant's token budget would be exceeded.
    #[error("token budget exceeded: {0}")]
    Budget(String),
    /// The provider answered something that is not its wire format.
    #[error("unexpected answer from the language model provider: {0}")]
    Protocol(String),
}

impl LlmError {
    /// Whether the same request can succeed later.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            LlmError::RateLimited { .. } | LlmError::Unavailable(_)
        )
    }
}

/// Receives the answer's text as it is generated.
pub type OnDelta<'a> = &'a mut (dyn FnMut(&str) + Send);

/// A language model behind a wire format.
///
/// # Contract
///
/// - **One call, one answer**: [`LlmProvider::chat`] returns the whole
///   answer; when `on_delta` is given and the provider streams, each piece
///   of text is passed to it as it arrives, and the pieces joined equal
///   [`ChatResponse::content`].
/// - **Retries and time**: implementations retry 429 and 5xx answers with
///   backoff (honouring `Retry-After`) within their configured timeout;
///   a stream that stops making progress ends with
///   [`LlmError::Unavailable`], never hangs.
/// - **Secrets**: the key is read from the environment or a file, and never
///   appears in an error, a log line or a response.
/// - **Concurrency and cancellation**: calls may run concurrently; dropping
///   the future abandons the HTTP request.
/// - **Nothing runs**: a provider only returns [`ToolCall`]s; executing
///   them (through read-only, tenant-scoped tools) is the caller's job.
#[async_trait::async_trait]
pub trait LlmProvider: Debug + Send + Sync {
    /// The provider's name as answers report it (`openai`, `anthropic`,
    /// `ollama`).
    fn name(&self) -> &str;

    /// What the configured model can do.
    fn capabilities(&self) -> Capabilities;

    /// Sends `request`; see the trait's contract.
    async fn chat(
        &self,
        request: &ChatRequest,
        on_delta: Option<OnDelta<'_>>,
    ) -> Result<ChatResponse, LlmError>;
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Echoes the last user message, streaming it word by word.
    #[derive(Debug)]
    struct Echo;

    #[async_trait::async_trait]
    impl LlmProvider for Echo {
        fn name(&self) -> &str {
            "echo"
        }

        fn capabilities(&self) -> Capabilities {
            Capabilities {
                streaming: true,
                ..Capabilities::default()
            }
        }

        async fn chat(
            &self,
            request: &ChatRequest,
            mut on_delta: Option<OnDelta<'_>>,
        ) -> Result<ChatResponse, LlmError> {
            let text = request
                .messages
                .iter()
                .rev()
                .find(|m| m.role == Role::User)
                .map(|m| m.content.clone())
                .ok_or_else(|| LlmError::Protocol("no user message".into()))?;
            if let Some(f) = on_delta.as_mut() {
                for (i, w) in text.split(' ').enumerate() {
                    f(&if i == 0 {
                        w.to_owned()
                    } else {
                        format!(" {w}")
                    });
                }
            }
            Ok(ChatResponse {
                content: text,
                tool_calls: Vec::new(),
                usage: Usage::default(),
                model: "echo-1".into(),
            })
        }
    }

    #[tokio::test]
    async fn a_provider_is_usable_as_a_shared_trait_object_and_streams_its_answer() {
        let p: Arc<dyn LlmProvider> = Arc::new(Echo);
        let request = ChatRequest {
            messages: vec![Message {
                role: Role::User,
                content: "error rate of checkout".into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            }],
            ..ChatRequest::default()
        };
        let mut streamed = String::new();
        let mut sink = |d: &str| streamed.push_str(d);
        let answer = p.chat(&request, Some(&mut sink)).await.expect("answer");
        assert_eq!(streamed, answer.content);
        let refused = p.chat(&ChatRequest::default(), None).await;
        assert!(matches!(refused, Err(LlmError::Protocol(_))));
        assert!(!LlmError::Unauthorized.is_retryable());
        assert!(
            LlmError::RateLimited {
                retry_after: Duration::from_secs(1)
            }
            .is_retryable()
        );
    }
}
