//! The copilot: questions about the system answered from its telemetry,
//! with the queries and rows behind every number.
//!
//! - [`guard`]: the SQL guard every query of the copilot and of MCP
//!   clients passes.
//! - [`tools`]: the read-only tools, one list ([`tools::SPECS`]) for the
//!   built-in engine, a language model and MCP clients.
//! - [`question`] (with its vocabulary, `intents`) and `builtin`/`guide`:
//!   the built-in engine, which needs
//!   no model: it reads English and Portuguese questions, runs the tools
//!   and writes the answer from their rows, or declines.
//! - `llm_loop`: with a model configured ([`ophion_ai::llm::LlmProvider`]),
//!   the model calls the same tools; telemetry reaches it as quoted data,
//!   and nothing it says is run except through the tools.
//! - [`conversations`]: stored per tenant and user.
//! - [`mcp`]: the same tools for MCP clients (`rmcp`), over streamable
//!   HTTP in the server and over stdio in `ophion mcp`.
//!
//! [`Copilot::chat`] is what `POST /api/v1/ai/chat` and `ophion ask` call.

mod answer;
mod builtin;
pub mod conversations;
pub mod guard;
mod guide;
mod intents;
mod llm_loop;
pub mod mcp;
pub mod question;
pub mod tools;

use std::sync::Arc;

pub use answer::Answer;
use ophion_ai::llm::LlmProvider;
use ophion_core::TenantId;

use crate::{ai::AiService, read::Reader};

/// Why the copilot could not answer.
#[derive(Debug, thiserror::Error)]
pub enum CopilotError {
    /// No conversation with that id belongs to the caller.
    #[error("no conversation `{0}` of yours")]
    UnknownConversation(String),
    /// A tool failed (bad arguments, a refused or failed query).
    #[error(transparent)]
    Tool(#[from] tools::ToolError),
    /// The language model failed.
    #[error(transparent)]
    Llm(#[from] ophion_ai::llm::LlmError),
    /// Storing the conversation failed.
    #[error("conversation store: {0}")]
    Store(#[from] ophion_store::Error),
    /// An empty or oversized question.
    #[error("{0}")]
    BadQuestion(String),
}

/// Longest question accepted, in bytes.
pub const MAX_QUESTION: usize = 4096;

/// The copilot as the server runs it.
#[derive(Debug)]
pub struct Copilot {
    tools: tools::Toolbox,
    reader: Reader,
    llm: Option<Arc<dyn LlmProvider>>,
    daily_tokens: u64,
    conversations: conversations::Conversations,
    names: builtin::Names,
}

impl Copilot {
    /// The copilot over `reader` and `ai`, keeping conversations in
    /// `metadata`, asking `llm` when there is one (else the built-in
    /// engine answers), each tenant spending at most `daily_tokens` a day
    /// with it (0: no cap).
    pub async fn open(
        reader: Reader,
        ai: Arc<AiService>,
        metadata: ophion_store::metadata::Metadata,
        llm: Option<Arc<dyn LlmProvider>>,
        daily_tokens: u64,
    ) -> Result<Arc<Self>, ophion_store::Error> {
        Ok(Arc::new(Self {
            tools: tools::Toolbox::new(reader.clone(), ai),
            reader,
            llm,
            daily_tokens,
            conversations: conversations::Conversations::open(metadata).await?,
            names: builtin::Names::default(),
        }))
    }

    /// The tools, for MCP clients.
    pub fn tools(&self) -> &tools::Toolbox {
        &self.tools
    }

    /// The engine answers name: the provider's, or `builtin`.
    pub fn engine(&self) -> &str {
        self.llm.as_ref().map_or("builtin", |l| l.name())
    }

    /// Answers `message` from `user_id` of `tenant`, in conversation
    /// `conversation_id` (a new one when `None`).
    pub async fn chat(
        &self,
        tenant: &TenantId,
        user_id: i64,
        message: &str,
        conversation_id: Option<&str>,
        on_delta: Option<ophion_ai::llm::OnDelta<'_>>,
    ) -> Result<Answer, CopilotError> {
        let message = message.trim();
        if message.is_empty() || message.len() > MAX_QUESTION {
            return Err(CopilotError::BadQuestion(format!(
                "the message must hold 1 to {MAX_QUESTION} bytes"
            )));
        }
        let id = self
            .conversations
            .open_or_start(tenant, user_id, conversation_id)
            .await?
            .ok_or_else(|| {
                CopilotError::UnknownConversation(conversation_id.unwrap_or("").to_owned())
            })?;
        let history = self.conversations.messages(&id).await?;
        self.conversations.append(&id, "user", message).await?;
        let mut answer = match &self.llm {
            Some(llm) => {
                let budget = llm_loop::Budget {
                    store: &self.conversations,
                    daily: self.daily_tokens,
                };
                llm_loop::answer(
                    llm.as_ref(),
                    &self.tools,
                    &budget,
                    tenant,
                    &history,
                    message,
                    on_delta,
                )
                .await?
            }
            None => {
                let a = builtin::answer(&self.tools, &self.reader, &self.names, tenant, message)
                    .await?;
                if let Some(f) = on_delta {
                    f(&a.answer);
                }
                a
            }
        };
        answer.conversation_id = id.clone();
        answer.engine = self.engine().to_owned();
        self.conversations
            .append(&id, "assistant", &answer.answer)
            .await?;
        Ok(answer)
    }
}
