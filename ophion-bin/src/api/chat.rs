//! `POST /api/v1/ai/chat`: the copilot ([`crate::copilot::Copilot`]).
//! One JSON answer, or with `Accept: text/event-stream` server-sent
//! events: `delta` events with text as it is written, then one `answer`
//! event holding the whole JSON answer (or an `error` event).

use std::{convert::Infallible, sync::Arc};

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use serde::Deserialize;
use serde_json::json;

use super::{ApiError, ApiState};
use crate::{auth::Principal, copilot::CopilotError};

impl From<CopilotError> for ApiError {
    fn from(e: CopilotError) -> Self {
        match e {
            CopilotError::UnknownConversation(_) => {
                ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string())
            }
            CopilotError::BadQuestion(m) => ApiError::bad_request(m),
            CopilotError::Tool(t) => match t {
                crate::copilot::tools::ToolError::Read(r) => r.into(),
                other => ApiError::new(StatusCode::BAD_REQUEST, "refused", other.to_string()),
            },
            CopilotError::Llm(l @ ophion_ai::llm::LlmError::Budget(_)) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "token_budget", l.to_string())
            }
            CopilotError::Llm(l) if l.is_retryable() => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "llm_unavailable",
                l.to_string(),
            ),
            CopilotError::Llm(l) => {
                ApiError::new(StatusCode::BAD_GATEWAY, "llm_failed", l.to_string())
            }
            CopilotError::Store(s) => s.into(),
        }
    }
}

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ChatRequest {
    message: String,
    conversation_id: Option<String>,
}

pub(super) async fn chat(
    State(s): State<Arc<ApiState>>,
    who: Principal,
    headers: HeaderMap,
    body: Result<Json<ChatRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let Json(req) = body.map_err(|e| {
        ApiError::bad_request(format!(
            "the body must be JSON {{\"message\": \"...\", \"conversation_id\": optional}}: {}",
            e.body_text()
        ))
    })?;
    let stream = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/event-stream"));
    if !stream {
        let a = s
            .copilot
            .chat(
                &who.tenant,
                who.user_id,
                &req.message,
                req.conversation_id.as_deref(),
                None,
            )
            .await?;
        return Ok(Json(a).into_response());
    }
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    tokio::spawn(async move {
        let deltas = tx.clone();
        let mut on_delta = move |t: &str| {
            let _ = deltas.send(Event::default().event("delta").data(t));
        };
        let out = s
            .copilot
            .chat(
                &who.tenant,
                who.user_id,
                &req.message,
                req.conversation_id.as_deref(),
                Some(&mut on_delta),
            )
            .await;
        let last = match out {
            Ok(a) => Event::default()
                .event("answer")
                .data(serde_json::to_string(&a).unwrap_or_default()),
            Err(e) => Event::default()
                .event("error")
                .data(json!({"error": {"message": e.to_string()}}).to_string()),
        };
        let _ = tx.send(last);
    });
    let events = futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|e| (Ok::<_, Infallible>(e), rx))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
