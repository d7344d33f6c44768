//! The language model providers against a local HTTP server that speaks
//! each wire format with scripted replies: normal and streamed answers,
//! tool calls (well-formed and malformed), 429 with `Retry-After`, 500,
//! timeouts, a refused key, and a stream that never ends. Every case ends
//! in the right result or a clear error, and the key never shows in an
//! error.

use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use axum::{
    Router,
    body::Body,
    extract::State,
    http::{HeaderMap, StatusCode},
    response::Response,
    routing::post,
};
use ophion_ai::llm::{
    ChatRequest, LlmError, Message, ProviderConfig, ProviderKind, Role, Tool, provider,
};
use serde_json::{Value, json};

const KEY: &str = "sk-test-0123456789abcdef";

/// One scripted reply.
#[derive(Clone)]
enum Reply {
    /// Status, extra headers, body.
    Json(u16, Vec<(&'static str, &'static str)>, Value),
    /// 200 with these lines, one every 10 ms, then the end.
    Stream(Vec<String>),
    /// 200 with these lines, then nothing, never ending.
    Hang(Vec<String>),
    /// Waits this long before a 200 JSON body.
    Slow(Duration, Value),
}

#[derive(Default)]
struct Script {
    replies: Mutex<VecDeque<Reply>>,
    seen: Mutex<Vec<(HeaderMap, Value)>>,
}

async fn answer(State(s): State<Arc<Script>>, headers: HeaderMap, body: String) -> Response {
    let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    s.seen.lock().expect("lock").push((headers, body));
    let reply = s.replies.lock().expect("lock").pop_front();
    let json = |status: u16, extra: &[(&str, &str)], v: &Value| {
        let mut r = Response::builder()
            .status(StatusCode::from_u16(status).expect("status"))
            .header("content-type", "application/json");
        for (k, val) in extra {
            r = r.header(*k, *val);
        }
        r.body(Body::from(v.to_string())).expect("response")
    };
    match reply {
        None => json(500, &[], &json!({"error": {"message": "script ran out"}})),
        Some(Reply::Json(status, extra, v)) => json(status, &extra, &v),
        Some(Reply::Slow(d, v)) => {
            tokio::time::sleep(d).await;
            json(200, &[], &v)
        }
        Some(r @ (Reply::Stream(_) | Reply::Hang(_))) => {
            let (lines, hang) = match r {
                Reply::Stream(l) => (l, false),
                Reply::Hang(l) => (l, true),
                _ => unreachable!(),
            };
            let head = futures::stream::unfold(lines.into_iter(), |mut it| async move {
                let line = it.next()?;
                tokio::time::sleep(Duration::from_millis(10)).await;
                Some((Ok::<_, Infallible>(format!("{line}\n")), it))
            });
            let body = if hang {
                Body::from_stream(futures::StreamExt::chain(head, futures::stream::pending()))
            } else {
                Body::from_stream(head)
            };
            Response::builder()
                .status(200)
                .header("content-type", "text/event-stream")
                .body(body)
                .expect("response")
        }
    }
}

/// A server with `replies` on every path; its base URL and script.
async fn server(replies: Vec<Reply>) -> (String, Arc<Script>) {
    let script = Arc::new(Script {
        replies: Mutex::new(replies.into()),
        seen: Mutex::default(),
    });
    let app = Router::new()
        .route("/v1/chat/completions", post(answer))
        .route("/v1/messages", post(answer))
        .route("/api/chat", post(answer))
        .with_state(Arc::clone(&script));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), script)
}

fn config(kind: ProviderKind, base: &str) -> ProviderConfig {
    // The key comes from a file (setting an environment variable is unsafe
    // in Rust 2024, and the workspace denies unsafe code).
    let dir = std::env::temp_dir().join(format!("ophion-llm-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("key");
    std::fs::write(&file, format!("{KEY}\n")).expect("key file");
    ProviderConfig {
        provider: kind,
        base_url: match kind {
            ProviderKind::Openai => format!("{base}/v1"),
            _ => base.to_owned(),
        },
        model: "test-model".into(),
        api_key_file: file.display().to_string(),
        timeout_secs: 5,
        stall_secs: 1,
        max_retries: 2,
        ..ProviderConfig::default()
    }
}

fn request(tools: bool) -> ChatRequest {
    ChatRequest {
        messages: vec![
            Message {
                role: Role::System,
                content: "be brief".into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
            Message {
                role: Role::User,
                content: "error rate of checkout?".into(),
                tool_calls: Vec::new(),
                tool_call_id: None,
            },
        ],
        tools: if tools {
            vec![Tool {
                name: "service_red".into(),
                description: "RED of a service".into(),
                parameters: json!({"type": "object", "properties": {"service": {"type": "string"}}}),
            }]
        } else {
            Vec::new()
        },
        max_tokens: 100,
        ..ChatRequest::default()
    }
}

const KINDS: [ProviderKind; 3] = [
    ProviderKind::Openai,
    ProviderKind::Anthropic,
    ProviderKind::Ollama,
];

/// A plain answer "Hello there" in each wire format.
fn text_reply(kind: ProviderKind) -> Value {
    match kind {
        ProviderKind::Openai => {
            json!({"model": "test-model", "choices": [{"message": {"role": "assistant", "content": "Hello there"}}], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})
        }
        ProviderKind::Anthropic => {
            json!({"model": "test-model", "content": [{"type": "text", "text": "Hello there"}], "usage": {"input_tokens": 12, "output_tokens": 3}})
        }
        _ => {
            json!({"model": "test-model", "message": {"role": "assistant", "content": "Hello there"}, "done": true, "prompt_eval_count": 12, "eval_count": 3})
        }
    }
}

/// "Hello there" streamed in three pieces, in each wire format.
fn text_stream(kind: ProviderKind) -> Vec<String> {
    let pieces = ["Hel", "lo th", "ere"];
    match kind {
        ProviderKind::Openai => pieces
            .iter()
            .map(|p| format!("data: {}", json!({"model": "test-model", "choices": [{"delta": {"content": p}}]})))
            .chain([
                format!("data: {}", json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}})),
                "data: [DONE]".into(),
            ])
            .collect(),
        ProviderKind::Anthropic => [
            "event: message_start".to_owned(),
            format!("data: {}", json!({"type": "message_start", "message": {"model": "test-model", "usage": {"input_tokens": 12}}})),
            format!("data: {}", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
        ]
        .into_iter()
        .chain(pieces.iter().map(|p| {
            format!("data: {}", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": p}}))
        }))
        .chain([
            format!("data: {}", json!({"type": "content_block_stop", "index": 0})),
            format!("data: {}", json!({"type": "message_delta", "usage": {"output_tokens": 3}})),
            format!("data: {}", json!({"type": "message_stop"})),
        ])
        .collect(),
        _ => pieces
            .iter()
            .map(|p| json!({"model": "test-model", "message": {"role": "assistant", "content": p}, "done": false}).to_string())
            .chain([json!({"model": "test-model", "message": {"role": "assistant", "content": ""}, "done": true, "prompt_eval_count": 12, "eval_count": 3}).to_string()])
            .collect(),
    }
}

/// A call of `service_red` with `args` (JSON text, maybe malformed).
fn tool_reply(kind: ProviderKind, args: &str) -> Reply {
    match kind {
        ProviderKind::Openai => Reply::Json(
            200,
            vec![],
            json!({"model": "test-model", "choices": [{"message": {"role": "assistant", "content": null, "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "service_red", "arguments": args}}]}}]}),
        ),
        // Anthropic streams a tool's input as pieces of JSON text: the
        // malformed case is a stream whose pieces do not make JSON.
        ProviderKind::Anthropic => Reply::Stream(vec![
            format!(
                "data: {}",
                json!({"type": "message_start", "message": {"model": "test-model", "usage": {"input_tokens": 5}}})
            ),
            format!(
                "data: {}",
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "service_red", "input": {}}})
            ),
            format!(
                "data: {}",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": &args[..args.len() / 2]}})
            ),
            format!(
                "data: {}",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "input_json_delta", "partial_json": &args[args.len() / 2..]}})
            ),
            format!("data: {}", json!({"type": "message_stop"})),
        ]),
        _ => {
            let a: Value = serde_json::from_str(args).unwrap_or_else(|_| json!(args));
            Reply::Json(
                200,
                vec![],
                json!({"model": "test-model", "message": {"role": "assistant", "content": "", "tool_calls": [{"function": {"name": "service_red", "arguments": a}}]}, "done": true}),
            )
        }
    }
}

fn no_key(e: &LlmError) {
    assert!(!e.to_string().contains(KEY), "{e}");
    assert!(!format!("{e:?}").contains(KEY), "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn normal_and_streamed_answers_in_every_wire_format() {
    for kind in KINDS {
        let (base, script) = server(vec![
            Reply::Json(200, vec![], text_reply(kind)),
            Reply::Stream(text_stream(kind)),
        ])
        .await;
        let p = provider(&config(kind, &base))
            .expect("config")
            .expect("a provider");
        assert!(!format!("{p:?}").contains(KEY), "Debug shows no key");
        let a = p.chat(&request(false), None).await.expect("answer");
        assert_eq!(a.content, "Hello there", "{kind:?}");
        assert_eq!(a.usage.input_tokens, 12, "{kind:?}");
        assert_eq!(a.usage.output_tokens, 3, "{kind:?}");
        let mut pieces = Vec::new();
        let mut sink = |d: &str| pieces.push(d.to_owned());
        let s = p
            .chat(&request(false), Some(&mut sink))
            .await
            .expect("stream");
        assert_eq!(s.content, "Hello there", "{kind:?}");
        assert_eq!(pieces.concat(), "Hello there", "{kind:?}");
        assert!(pieces.len() >= 3, "{kind:?}: streamed in pieces");
        assert_eq!(s.usage.output_tokens, 3, "{kind:?}");
        // The key went in the provider's header, and the request in its format.
        let seen = script.seen.lock().expect("lock");
        let (h, body) = &seen[0];
        let key_header = match kind {
            ProviderKind::Openai => h
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("").to_owned()),
            ProviderKind::Anthropic => h
                .get("x-api-key")
                .map(|v| v.to_str().unwrap_or("").to_owned()),
            _ => h
                .get("authorization")
                .map(|v| v.to_str().unwrap_or("").to_owned()),
        };
        assert!(key_header.is_some_and(|v| v.ends_with(KEY)), "{kind:?}");
        assert_eq!(body["model"], "test-model");
        match kind {
            ProviderKind::Anthropic => {
                assert_eq!(body["system"], "be brief");
                assert_eq!(body["messages"][0]["role"], "user");
            }
            _ => assert_eq!(body["messages"][0]["role"], "system"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tool_calls_well_formed_and_malformed() {
    for kind in KINDS {
        let good = r#"{"service":"checkout"}"#;
        let bad = r#"{"service": "checkout""#;
        let (base, script) = server(vec![tool_reply(kind, good), tool_reply(kind, bad)]).await;
        let p = provider(&config(kind, &base))
            .expect("config")
            .expect("provider");
        let mut sink = |_: &str| {};
        let streamed = kind == ProviderKind::Anthropic;
        let a = if streamed {
            p.chat(&request(true), Some(&mut sink)).await
        } else {
            p.chat(&request(true), None).await
        }
        .expect("tool call");
        assert_eq!(a.tool_calls.len(), 1, "{kind:?}");
        assert_eq!(a.tool_calls[0].name, "service_red");
        let args: Value = serde_json::from_str(&a.tool_calls[0].arguments).expect("arguments");
        assert_eq!(args["service"], "checkout", "{kind:?}");
        assert!(!a.tool_calls[0].id.is_empty());
        // Malformed arguments come back as the model wrote them, for the
        // caller to refuse: never executed, never a panic.
        let b = if streamed {
            p.chat(&request(true), Some(&mut sink)).await
        } else {
            p.chat(&request(true), None).await
        }
        .expect("a malformed call is still an answer");
        let args = &b.tool_calls[0].arguments;
        assert!(
            serde_json::from_str::<Value>(args).is_err(),
            "{kind:?}: {args}"
        );
        // The tools were offered in the provider's format.
        let seen = script.seen.lock().expect("lock");
        let tools = &seen[0].1["tools"][0];
        match kind {
            ProviderKind::Anthropic => assert_eq!(tools["name"], "service_red"),
            _ => assert_eq!(tools["function"]["name"], "service_red"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_server_errors_timeouts_bad_keys_and_endless_streams() {
    for kind in KINDS {
        // 429 with Retry-After: 1, then an answer: waited, then answered.
        let (base, _) = server(vec![
            Reply::Json(
                429,
                vec![("retry-after", "1")],
                json!({"error": {"message": "slow down"}}),
            ),
            Reply::Json(200, vec![], text_reply(kind)),
        ])
        .await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        let t = Instant::now();
        let a = p.chat(&request(false), None).await.expect("after the wait");
        assert_eq!(a.content, "Hello there");
        assert!(
            t.elapsed() >= Duration::from_millis(950),
            "{kind:?}: honoured Retry-After"
        );

        // 429 every time: a rate-limit error carrying the delay.
        let (base, _) = server(vec![
            Reply::Json(429, vec![("retry-after", "1")], json!({})),
            Reply::Json(429, vec![("retry-after", "1")], json!({})),
            Reply::Json(429, vec![("retry-after", "1")], json!({})),
        ])
        .await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        match p.chat(&request(false), None).await {
            Err(e @ LlmError::RateLimited { retry_after }) => {
                assert_eq!(retry_after, Duration::from_secs(1));
                assert!(e.is_retryable());
                no_key(&e);
            }
            other => panic!("{kind:?}: {other:?}"),
        }

        // 500 then an answer; 500 every time: unavailable, retryable.
        let (base, _) = server(vec![
            Reply::Json(500, vec![], json!({"error": {"message": "boom"}})),
            Reply::Json(200, vec![], text_reply(kind)),
        ])
        .await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        assert_eq!(
            p.chat(&request(false), None)
                .await
                .expect("retried")
                .content,
            "Hello there"
        );
        let (base, _) = server(vec![Reply::Json(500, vec![], json!({"error": "boom"})); 3]).await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        match p.chat(&request(false), None).await {
            Err(e @ LlmError::Unavailable(_)) => {
                assert!(e.to_string().contains("500"), "{e}");
                no_key(&e);
            }
            other => panic!("{kind:?}: {other:?}"),
        }

        // No answer within the timeout (2 s here): unavailable, in time.
        let (base, _) = server(vec![Reply::Slow(Duration::from_secs(30), text_reply(kind))]).await;
        let mut c = config(kind, &base);
        c.timeout_secs = 2;
        let p = provider(&c).expect("c").expect("p");
        let t = Instant::now();
        let e = p.chat(&request(false), None).await.expect_err("timeout");
        assert!(matches!(e, LlmError::Unavailable(_)), "{kind:?}: {e:?}");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "{kind:?}: {:?}",
            t.elapsed()
        );

        // A refused key: unauthorized, not retried, the key not shown.
        let (base, script) = server(vec![Reply::Json(
            401,
            vec![],
            json!({"error": {"message": format!("Incorrect API key provided: {KEY}")}}),
        )])
        .await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        let e = p.chat(&request(false), None).await.expect_err("401");
        assert!(matches!(e, LlmError::Unauthorized), "{kind:?}: {e:?}");
        assert!(!e.is_retryable());
        no_key(&e);
        assert_eq!(script.seen.lock().expect("lock").len(), 1, "not retried");

        // A stream that starts and never ends: stalled, within a few seconds.
        let mut first = text_stream(kind);
        first.truncate(2);
        let (base, _) = server(vec![Reply::Hang(first)]).await;
        let p = provider(&config(kind, &base)).expect("c").expect("p");
        let t = Instant::now();
        let mut sink = |_: &str| {};
        let e = p
            .chat(&request(false), Some(&mut sink))
            .await
            .expect_err("stall");
        assert!(matches!(e, LlmError::Unavailable(_)), "{kind:?}: {e:?}");
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{kind:?}: {:?}",
            t.elapsed()
        );
    }
}

#[tokio::test]
async fn misconfigured_or_unreachable_providers_say_so() {
    let missing_key = ProviderConfig {
        provider: ProviderKind::Openai,
        base_url: "http://127.0.0.1:9/v1".into(),
        model: "m".into(),
        api_key_env: "OPHION_TEST_KEY_THAT_IS_NOT_SET".into(),
        ..ProviderConfig::default()
    };
    let e = provider(&missing_key).expect_err("no key");
    assert!(
        e.to_string().contains("OPHION_TEST_KEY_THAT_IS_NOT_SET"),
        "{e}"
    );
    let no_url = ProviderConfig {
        provider: ProviderKind::Anthropic,
        model: "m".into(),
        ..ProviderConfig::default()
    };
    assert!(matches!(provider(&no_url), Err(LlmError::Config(_))));
    let no_model = ProviderConfig {
        provider: ProviderKind::Ollama,
        base_url: "http://127.0.0.1:9".into(),
        ..ProviderConfig::default()
    };
    assert!(matches!(provider(&no_model), Err(LlmError::Config(_))));
    assert!(
        provider(&ProviderConfig::default())
            .expect("none")
            .is_none()
    );
    // Nothing listens on port 9: unreachable, retried, then a clear error.
    let unreachable = ProviderConfig {
        provider: ProviderKind::Ollama,
        base_url: "http://127.0.0.1:9".into(),
        model: "m".into(),
        max_retries: 1,
        timeout_secs: 5,
        ..ProviderConfig::default()
    };
    let p = provider(&unreachable).expect("c").expect("p");
    let e = p
        .chat(&request(false), None)
        .await
        .expect_err("unreachable");
    assert!(
        matches!(e, LlmError::Unavailable(ref m) if m.contains("cannot reach")),
        "{e:?}"
    );
}
