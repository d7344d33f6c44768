//! What the providers share: settings, the API key (never shown), and one
//! HTTP exchange with retries, a deadline and a stall timeout for streams.

use std::{
    fmt,
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::LlmError;

/// An API key. Its `Debug` and `Display` never show it; the only way out
/// is [`Secret::expose`], for the request header.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a key.
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key, for the request that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether there is no key.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `text` with every occurrence of the key replaced, for error
    /// messages built from what a provider sent back.
    pub fn redact(&self, text: &str) -> String {
        if self.0.len() < 4 {
            return text.to_owned();
        }
        text.replace(&self.0, "[redacted]")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_empty() {
            "Secret(none)"
        } else {
            "Secret(***)"
        })
    }
}

/// Which wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// No model: the copilot's built-in engine answers.
    #[default]
    None,
    /// OpenAI-compatible Chat Completions (OpenAI, Azure OpenAI, vLLM,
    /// llama.cpp, LM Studio, Ollama's `/v1`).
    Openai,
    /// Anthropic Messages.
    Anthropic,
    /// Ollama's native `/api/chat`.
    Ollama,
}

/// A provider's settings (`[ai.llm]` in the server's configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// The wire format.
    pub provider: ProviderKind,
    /// Base URL: `https://api.openai.com/v1`, `https://api.anthropic.com`,
    /// `http://localhost:11434`, an Azure deployment's URL...
    pub base_url: String,
    /// The model's name.
    pub model: String,
    /// Environment variable holding the API key (empty: none).
    pub api_key_env: String,
    /// File holding the API key, its first line (empty: none).
    pub api_key_file: String,
    /// For Azure OpenAI: this `api-version` query parameter, and the key in
    /// the `api-key` header instead of `Authorization: Bearer` (empty: not
    /// Azure).
    pub azure_api_version: String,
    /// Whole time for one answer, retries included, in seconds.
    pub timeout_secs: u64,
    /// A stream that sends nothing for this long has stalled (seconds).
    pub stall_secs: u64,
    /// Retries of 429, 5xx and unreachable answers.
    pub max_retries: u32,
    /// Most tokens one request may generate.
    pub max_tokens_per_request: u32,
    /// Most tokens (sent and generated) per tenant per day; 0 for no cap.
    pub max_tokens_per_tenant_per_day: u64,
    /// Whether the model supports JSON-schema constrained output.
    pub json_schema: bool,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            provider: ProviderKind::None,
            base_url: String::new(),
            model: String::new(),
            api_key_env: String::new(),
            api_key_file: String::new(),
            azure_api_version: String::new(),
            timeout_secs: 60,
            stall_secs: 20,
            max_retries: 3,
            max_tokens_per_request: 2048,
            max_tokens_per_tenant_per_day: 200_000,
            json_schema: false,
        }
    }
}

impl ProviderConfig {
    /// The API key, from the environment or the file; empty when neither
    /// is set (local servers need none).
    pub fn key(&self) -> Result<Secret, LlmError> {
        if !self.api_key_env.is_empty() {
            let var = &self.api_key_env;
            return std::env::var(var)
                .map(Secret::new)
                .map_err(|_| LlmError::Config(format!("the API key variable {var} is not set")));
        }
        if !self.api_key_file.is_empty() {
            let path = &self.api_key_file;
            let text = std::fs::read_to_string(path).map_err(|e| {
                LlmError::Config(format!("cannot read the API key file {path}: {e}"))
            })?;
            let key = text.lines().next().unwrap_or("").trim();
            if key.is_empty() {
                return Err(LlmError::Config(format!(
                    "the API key file {path} is empty"
                )));
            }
            return Ok(Secret::new(key));
        }
        Ok(Secret::default())
    }
}

/// The HTTP side of a provider.
#[derive(Debug, Clone)]
pub(crate) struct Transport {
    client: reqwest::Client,
    pub(crate) config: ProviderConfig,
    pub(crate) key: Secret,
}

/// A `Retry-After` value: seconds, or an HTTP date.
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = v.parse::<f64>() {
        return (secs.is_finite() && secs >= 0.0).then(|| Duration::from_secs_f64(secs));
    }
    let when = httpdate(v)?;
    Some(
        when.saturating_sub(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .ok()?,
        ),
    )
}

/// An IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) as time since the epoch.
fn httpdate(v: &str) -> Option<Duration> {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let months = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let m = months.iter().position(|x| x == month)? as i64 + 1;
    let (d, y): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    let hms: Vec<i64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
    let [h, mi, s] = hms.as_slice() else {
        return None;
    };
    // Days from the civil date (proleptic Gregorian).
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    u64::try_from(secs).ok().map(Duration::from_secs)
}

impl Transport {
    pub(crate) fn new(config: ProviderConfig) -> Result<Self, LlmError> {
        if config.base_url.trim().is_empty() {
            return Err(LlmError::Config("base_url is not set".into()));
        }
        if reqwest::Url::parse(&config.base_url).is_err() {
            return Err(LlmError::Config(format!(
                "base_url {:?} is not a URL",
                config.base_url
            )));
        }
        if config.model.trim().is_empty() {
            return Err(LlmError::Config("model is not set".into()));
        }
        let key = config.key()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| LlmError::Config(format!("HTTP client: {e}")))?;
        Ok(Self {
            client,
            config,
            key,
        })
    }

    /// The whole-answer deadline from now.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + Duration::from_secs(self.config.timeout_secs.max(1))
    }

    /// A URL under the base URL.
    pub(crate) fn url(&self, path: &str) -> String {
        let base = self.config.base_url.trim_end_matches('/');
        match self.config.azure_api_version.as_str() {
            "" => format!("{base}{path}"),
            v => format!("{base}{path}?api-version={v}"),
        }
    }

    /// POSTs `body` with `headers`, retrying 429 (after `Retry-After`),
    /// 5xx and unreachable answers with backoff until `deadline`. A 2xx
    /// response is returned to be read; anything else is an error whose
    /// message never holds the key.
    pub(crate) async fn post(
        &self,
        url: &str,
        headers: &[(&str, String)],
        body: &Value,
        deadline: Instant,
    ) -> Result<reqwest::Response, LlmError> {
        let mut attempt = 0u32;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LlmError::Unavailable("no answer within the timeout".into()));
            }
            let mut req = self.client.post(url).json(body).timeout(left);
            for (k, v) in headers {
                req = req.header(*k, v);
            }
            let (err, wait) = match req.send().await {
                Ok(r) if r.status().is_success() => return Ok(r),
                Ok(r) => {
                    let status = r.status();
                    let after = retry_after(r.headers());
                    let text = r.text().await.unwrap_or_default();
                    let detail = self.key.redact(&provider_message(&text));
                    match status.as_u16() {
                        401 | 403 => return Err(LlmError::Unauthorized),
                        429 => {
                            let wait = after.unwrap_or(Duration::from_secs(1));
                            (LlmError::RateLimited { retry_after: wait }, wait)
                        }
                        500..=599 => (
                            LlmError::Unavailable(format!("HTTP {status}: {detail}")),
                            backoff(attempt),
                        ),
                        404 => {
                            return Err(LlmError::Config(format!(
                                "HTTP 404 from {url}: check base_url and model ({detail})"
                            )));
                        }
                        _ => return Err(LlmError::Protocol(format!("HTTP {status}: {detail}"))),
                    }
                }
                Err(e) if e.is_timeout() => {
                    return Err(LlmError::Unavailable("no answer within the timeout".into()));
                }
                Err(e) => (
                    LlmError::Unavailable(format!(
                        "cannot reach {url}: {}",
                        self.key.redact(&e.to_string())
                    )),
                    backoff(attempt),
                ),
            };
            attempt += 1;
            if attempt > self.config.max_retries || Instant::now() + wait >= deadline {
                return Err(err);
            }
            tracing::warn!(attempt, wait_ms = wait.as_millis() as u64, error = %err, "language model: retrying");
            tokio::time::sleep(wait).await;
        }
    }

    /// Reads a streamed body line by line, calling `line` for each; fails
    /// when nothing arrives for `stall_secs` or the deadline passes.
    pub(crate) async fn lines(
        &self,
        response: reqwest::Response,
        deadline: Instant,
        mut line: impl FnMut(&str) -> Result<bool, LlmError>,
    ) -> Result<(), LlmError> {
        let stall = Duration::from_secs(self.config.stall_secs.max(1));
        let mut stream = response.bytes_stream();
        let mut buf: Vec<u8> = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let wait = stall.min(left);
            let next = tokio::time::timeout(wait, stream.next()).await;
            let chunk = match next {
                Err(_) if left <= stall => {
                    return Err(LlmError::Unavailable(
                        "the answer did not end within the timeout".into(),
                    ));
                }
                Err(_) => {
                    return Err(LlmError::Unavailable(format!(
                        "the stream stalled: nothing for {} s",
                        stall.as_secs()
                    )));
                }
                Ok(None) => break,
                Ok(Some(Err(e))) => {
                    return Err(LlmError::Unavailable(format!("the stream broke: {e}")));
                }
                Ok(Some(Ok(c))) => c,
            };
            buf.extend_from_slice(&chunk);
            while let Some(at) = buf.iter().position(|b| *b == b'\n') {
                let raw: Vec<u8> = buf.drain(..=at).collect();
                let text = String::from_utf8_lossy(&raw);
                if !line(text.trim_end_matches(['\n', '\r']))? {
                    return Ok(());
                }
            }
        }
        if !buf.is_empty() {
            let text = String::from_utf8_lossy(&buf).into_owned();
            line(text.trim_end_matches(['\n', '\r']))?;
        }
        Ok(())
    }
}

/// Exponential backoff: 0.5 s, 1 s, 2 s... at most 8 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis(500u64.saturating_mul(1 << attempt.min(4)))
}

/// The message in a provider's error body, if it has the usual shapes.
fn provider_message(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let m = v["error"]["message"]
        .as_str()
        .or_else(|| v["error"].as_str())
        .or_else(|| v["message"].as_str())
        .unwrap_or(body);
    m.chars().take(300).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_shown() {
        let s = Secret::new("sk-very-secret-1234");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(
            s.redact("bad key sk-very-secret-1234 given"),
            "bad key [redacted] given"
        );
    }

    #[test]
    fn retry_after_in_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert(reqwest::header::RETRY_AFTER, "2".parse().expect("v"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        assert_eq!(
            httpdate("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::from_secs(784_111_777))
        );
        assert_eq!(httpdate("yesterday"), None);
    }
}
