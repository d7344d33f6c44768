//! The HTTP client of the API: server address, TLS roots, the saved
//! token, and how answers become [`CliError`]s.

use std::time::Duration;

use serde_json::Value;

use super::CliError;

pub(super) struct Client {
    pub(super) base: String,
    pub(super) http: reqwest::Client,
}

/// Where `ophion login` keeps the token: `$XDG_CONFIG_HOME/ophion/token`,
/// else `$HOME/.config/ophion/token`.
pub fn token_path() -> Option<std::path::PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".config")))?;
    Some(base.join("ophion").join("token"))
}

pub(super) fn saved_token() -> Option<String> {
    let t = std::fs::read_to_string(token_path()?).ok()?;
    Some(t.trim().to_owned()).filter(|t| !t.is_empty())
}

pub(super) fn save_token(token: &str) -> Result<std::path::PathBuf, CliError> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path =
        token_path().ok_or_else(|| CliError::Refused("no HOME to save the token in".into()))?;
    let fail =
        |e: std::io::Error| CliError::Refused(format!("cannot save {}: {e}", path.display()));
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(fail)?;
    f.write_all(token.as_bytes()).map_err(fail)?;
    Ok(path)
}

pub(super) fn read_secret(from_stdin: bool, env: &str, what: &str) -> Result<String, CliError> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| CliError::Refused(format!("cannot read the {what}: {e}")))?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var(env).map_err(|_| {
        CliError::Refused(format!(
            "give the {what} on standard input (--password-stdin) or in {env}"
        ))
    })
}

impl Client {
    pub(super) fn new(
        server: &str,
        token: Option<&str>,
        ca_cert: Option<&std::path::Path>,
    ) -> Result<Self, CliError> {
        let mut headers = reqwest::header::HeaderMap::new();
        if let Some(t) = token
            && let Ok(v) = reqwest::header::HeaderValue::from_str(&format!("Bearer {t}"))
        {
            headers.insert(reqwest::header::AUTHORIZATION, v);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .default_headers(headers);
        if let Some(path) = ca_cert {
            let pem = std::fs::read(path)
                .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| CliError::Refused(format!("{}: {e}", path.display())))?;
            builder = builder.add_root_certificate(cert);
        }
        let http = builder
            .build()
            .map_err(|e| CliError::Unreachable(e.to_string()))?;
        Ok(Self {
            base: server.trim_end_matches('/').to_owned(),
            http,
        })
    }

    pub(super) async fn send(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, CliError> {
        let resp = req.send().await.map_err(|e| {
            CliError::Unreachable(format!(
                "cannot reach the Ophion server at {}: {e}",
                self.base
            ))
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        let mut message = body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("the server answered {status}"), str::to_owned);
        if status == reqwest::StatusCode::UNAUTHORIZED {
            message.push_str(" (sign in with `ophion login`)");
        }
        Err(CliError::Refused(message))
    }

    /// POSTs `body` as JSON; the answer's JSON.
    pub(super) async fn post_json(&self, path: &str, body: &Value) -> Result<Value, CliError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await?
            .json()
            .await
            .map_err(|e| CliError::Unreachable(format!("unreadable answer: {e}")))
    }

    pub(super) async fn get_json(
        &self,
        path: &str,
        query: &[(&str, Option<String>)],
    ) -> Result<Value, CliError> {
        let query: Vec<(&str, String)> = query
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (*k, v)))
            .collect();
        let resp = self
            .send(self.http.get(format!("{}{path}", self.base)).query(&query))
            .await?;
        resp.json()
            .await
            .map_err(|e| CliError::Unreachable(format!("unreadable answer: {e}")))
    }
}
