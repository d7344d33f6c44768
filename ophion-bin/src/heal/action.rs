//! Steps made concrete and run. [`prepare`] renders an action's templates
//! from the triggering alert into exactly what will run (a program and its
//! argument vector, a request, a message), refusing substituted values
//! that are not plain names wherever they could change what runs;
//! [`Prepared::input`] is what a dry run shows and a run records; and
//! [`Prepared::execute`] runs it: programs without a shell, with a cleared
//! environment, a working directory, a timeout (then killed) and their
//! output captured up to a limit.

use std::{collections::BTreeMap, process::Stdio, sync::Arc, time::Duration};

use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

use super::model::{Action, plain};
use crate::{
    alerts::{
        Alerts,
        model::{ChannelSpec, Labels, secs},
        notify,
        store::Kind,
    },
    config::HealConfig,
};
use ophion_core::TenantId;

/// What templates may refer to.
#[derive(Debug, Clone)]
pub struct Context {
    /// The triggering alert's labels (or those given by hand).
    pub labels: Labels,
    /// Its value.
    pub value: f64,
    /// The run.
    pub run: i64,
    /// This server's external URL (links in messages).
    pub external: String,
}

/// An action ready to run; serialised, exactly what runs (what a run
/// records and a dry run shows).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(untagged)]
pub enum Prepared {
    /// An HTTP request.
    Http {
        method: String,
        url: String,
        headers: BTreeMap<String, String>,
        body: Option<Value>,
        timeout_secs: u64,
    },
    /// A program and its argument vector (no shell).
    Exec {
        program: String,
        argv: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: String,
        timeout_secs: u64,
    },
    /// A message to channels.
    Notify {
        channels: Vec<String>,
        message: String,
    },
    /// A pause.
    Wait { secs: u64 },
}

/// The result of one step.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Whether it did what it should.
    pub ok: bool,
    /// What it printed or answered (size-limited).
    pub output: String,
    /// Why it failed.
    pub error: Option<String>,
}

/// Renders `text`. With `strict`, every substituted label must be a plain
/// name ([`plain`]) and links are refused: the text becomes an argument, a
/// URL, a resource name or an environment value.
pub fn render(text: &str, ctx: &Context, strict: bool, what: &str) -> Result<String, String> {
    if strict {
        let mut rest = text;
        while let Some(i) = rest.find("{{") {
            let after = &rest[i + 2..];
            let j = after.find("}}").unwrap_or(after.len());
            let expr = after[..j].trim();
            if let Some(name) = expr
                .strip_prefix("$labels.")
                .or_else(|| expr.strip_prefix(".Labels."))
            {
                let v = ctx.labels.get(name).map_or("", String::as_str);
                if !plain(v) {
                    return Err(format!(
                        "label `{name}` = `{v}` is not a plain name (letters, digits, `._:@+=-`, not starting with `-` or `.`): refused in {what}"
                    ));
                }
            } else if expr.starts_with("$links") {
                return Err(format!("links cannot be substituted into {what}"));
            }
            rest = &after[j.min(after.len())..];
        }
    }
    crate::alerts::template::render(
        text,
        &crate::alerts::template::TemplateData {
            value: ctx.value,
            labels: &ctx.labels,
            traces: format!("{}/traces", ctx.external),
            logs: format!("{}/logs", ctx.external),
        },
    )
}

/// Renders the strings inside a JSON value (not strict: JSON escapes them).
fn render_json(v: &Value, ctx: &Context) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(render(s, ctx, false, "a body")?),
        Value::Array(a) => Value::Array(
            a.iter()
                .map(|x| render_json(x, ctx))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(o) => Value::Object(
            o.iter()
                .map(|(k, x)| Ok((k.clone(), render_json(x, ctx)?)))
                .collect::<Result<_, String>>()?,
        ),
        other => other.clone(),
    })
}

fn duration(t: &Option<String>, default: u64) -> u64 {
    t.as_deref()
        .and_then(|t| secs(t, "timeout").ok())
        .unwrap_or(default)
}

/// `action` made concrete for `ctx`; refused when a substituted value
/// could change what runs.
pub fn prepare(
    action: &Action,
    ctx: &Context,
    cfg: &HealConfig,
    data_dir: &str,
) -> Result<Prepared, String> {
    Ok(match action {
        Action::Http {
            method,
            url,
            headers,
            body,
            timeout,
        } => Prepared::Http {
            method: method.clone().unwrap_or_else(|| "POST".into()),
            url: render(url, ctx, true, "a URL")?,
            headers: headers
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v, ctx, false, "a header")?)))
                .collect::<Result<_, String>>()?,
            body: body.as_ref().map(|b| render_json(b, ctx)).transpose()?,
            timeout_secs: duration(timeout, 30),
        },
        Action::Command {
            program,
            args,
            env,
            cwd,
            timeout,
        } => Prepared::Exec {
            program: program.clone(),
            argv: args
                .iter()
                .map(|a| render(a, ctx, true, "a command argument"))
                .collect::<Result<_, _>>()?,
            env: env
                .iter()
                .map(|(k, v)| Ok((k.clone(), render(v, ctx, true, "an environment variable")?)))
                .collect::<Result<_, String>>()?,
            cwd: cwd.clone().unwrap_or_else(|| data_dir.to_owned()),
            timeout_secs: duration(timeout, 60),
        },
        Action::Kubectl {
            op,
            resource,
            namespace,
            replicas,
            timeout,
        } => {
            let resource = render(resource, ctx, false, "a resource")?;
            let (kind, name) = resource
                .split_once('/')
                .ok_or_else(|| format!("resource `{resource}`: write kind/name"))?;
            if !["deployment", "statefulset", "daemonset"].contains(&kind) || !plain(name) {
                return Err(format!(
                    "resource `{resource}`: a deployment, statefulset or daemonset with a plain name"
                ));
            }
            let mut argv: Vec<String> = match op.as_str() {
                "rollout-restart" => vec!["rollout".into(), "restart".into(), resource.clone()],
                "rollout-undo" => vec!["rollout".into(), "undo".into(), resource.clone()],
                _ => vec![
                    "scale".into(),
                    resource.clone(),
                    format!("--replicas={}", replicas.unwrap_or(1)),
                ],
            };
            if let Some(ns) = namespace {
                argv.push(format!(
                    "--namespace={}",
                    render(ns, ctx, true, "a namespace")?
                ));
            }
            Prepared::Exec {
                program: cfg.kubectl.clone(),
                argv,
                env: BTreeMap::new(),
                cwd: data_dir.to_owned(),
                timeout_secs: duration(timeout, 120),
            }
        }
        Action::Notify { channels, message } => Prepared::Notify {
            channels: channels.clone(),
            message: render(message, ctx, false, "a message")?,
        },
        Action::Wait { duration: d } => Prepared::Wait {
            secs: secs(d, "duration")?,
        },
    })
}

impl Prepared {
    /// Exactly what runs, as recorded and as a dry run shows it.
    pub fn input(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }

    /// Runs it.
    pub async fn execute(&self, env: &Executor<'_>) -> Outcome {
        match self {
            Prepared::Http {
                method,
                url,
                headers,
                body,
                timeout_secs,
            } => {
                let timeout = Duration::from_secs(*timeout_secs);
                http(env, method, url, headers, body.as_ref(), timeout).await
            }
            Prepared::Exec {
                program,
                argv,
                env: vars,
                cwd,
                timeout_secs,
            } => {
                let timeout = Duration::from_secs(*timeout_secs);
                exec(
                    program,
                    argv,
                    vars,
                    cwd,
                    timeout,
                    env.cfg.output_limit_bytes,
                )
                .await
            }
            Prepared::Notify { channels, message } => {
                let failed = env.notify(channels, "HealNotice", message).await;
                Outcome {
                    ok: failed.is_empty(),
                    output: format!("sent to {}", channels.join(", ")),
                    error: (!failed.is_empty()).then(|| failed.join("; ")),
                }
            }
            Prepared::Wait { secs } => {
                tokio::time::sleep(Duration::from_secs(*secs)).await;
                Outcome {
                    ok: true,
                    output: format!("waited {secs} s"),
                    error: None,
                }
            }
        }
    }
}

/// What executing needs.
#[derive(Debug)]
pub struct Executor<'a> {
    /// Channels and notification formats.
    pub alerts: &'a Arc<Alerts>,
    /// The tenant whose channels are used.
    pub tenant: &'a TenantId,
    /// The run.
    pub ctx: &'a Context,
    /// The server's `[heal]`.
    pub cfg: &'a HealConfig,
    /// HTTP client.
    pub http: &'a reqwest::Client,
}

impl Executor<'_> {
    /// Sends `text` to each channel named (alerting's formats: the message
    /// is one alert named `alertname`, labelled with the run's target);
    /// the failures, one per channel.
    pub async fn notify(&self, channels: &[String], alertname: &str, text: &str) -> Vec<String> {
        let known = match self
            .alerts
            .store()
            .list(Kind::Channel, Some(self.tenant))
            .await
        {
            Ok(k) => k,
            Err(e) => return vec![format!("channels: {e}")],
        };
        let now = crate::read::ts_text(crate::read::now_ns());
        let mut labels = self.ctx.labels.clone();
        labels.insert("alertname".into(), alertname.into());
        labels.insert("heal_run".into(), self.ctx.run.to_string());
        let msg = json!({
            "status": "firing",
            "groupKey": format!("heal-run-{}", self.ctx.run),
            "groupLabels": {"heal_run": self.ctx.run.to_string()},
            "alerts": [{
                "status": "firing", "labels": labels,
                "annotations": {"summary": text, "description": text},
                "startsAt": now, "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": format!("{}/heal/runs/{}", self.ctx.external, self.ctx.run),
                "fingerprint": format!("heal-run-{}-{alertname}", self.ctx.run),
            }],
            "incident": {"title": text, "priority": 1.0, "link": format!("{}/heal/runs/{}", self.ctx.external, self.ctx.run)},
        });
        let mut failed = Vec::new();
        for name in channels {
            let Some(ch) = known.iter().find_map(|s| {
                serde_json::from_value::<ChannelSpec>(s.spec.clone())
                    .ok()
                    .filter(|c| &c.name == name)
            }) else {
                failed.push(format!("{name}: no such channel"));
                continue;
            };
            // Three tries, a second apart: a run's notice is not queued.
            let mut last = Ok(());
            for attempt in 0..3 {
                last = notify::send(self.http, &ch, &msg, self.ctx.run, &self.ctx.external).await;
                if last.is_ok() {
                    break;
                }
                if attempt < 2 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
            if let Err(e) = last {
                failed.push(format!("{name}: {e}"));
            }
        }
        failed
    }
}

/// Keeps at most `limit` bytes of a stream (reading it all, so the writer
/// never blocks), as lossy UTF-8 with a note of what was cut.
async fn capture(mut r: impl tokio::io::AsyncRead + Unpin, limit: usize) -> String {
    let mut kept = Vec::new();
    let mut cut = 0usize;
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = limit.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut += n.saturating_sub(room);
            }
        }
    }
    let mut s = String::from_utf8_lossy(&kept).into_owned();
    if cut > 0 {
        s.push_str(&format!("\n[{cut} more bytes not kept]"));
    }
    s
}

pub(super) async fn exec(
    program: &str,
    argv: &[String],
    vars: &BTreeMap<String, String>,
    cwd: &str,
    timeout: Duration,
    limit: usize,
) -> Outcome {
    let fail = |e: String| Outcome {
        ok: false,
        output: String::new(),
        error: Some(e),
    };
    let mut child = match tokio::process::Command::new(program)
        .args(argv)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .envs(vars)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => return fail(format!("could not start {program}: {e}")),
    };
    let out = tokio::spawn(capture(child.stdout.take().expect("piped"), limit));
    let err = tokio::spawn(capture(child.stderr.take().expect("piped"), limit));
    let status = match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => Err(format!("waiting for {program}: {e}")),
        Err(_) => {
            let _ = child.kill().await;
            Err(format!("timed out after {} s; killed", timeout.as_secs()))
        }
    };
    // A program may leave a child holding its output open (a service it
    // started): what was written by its exit is kept, the rest not waited for.
    let grab = |h: tokio::task::JoinHandle<String>| async move {
        match tokio::time::timeout(Duration::from_millis(500), h).await {
            Ok(Ok(s)) => s,
            _ => "[output still open after the program ended: not waited for]".into(),
        }
    };
    let (stdout, stderr) = (grab(out).await, grab(err).await);
    let output = if stderr.is_empty() {
        stdout
    } else {
        format!("{stdout}\n[stderr]\n{stderr}")
    };
    match status {
        Ok(s) if s.success() => Outcome {
            ok: true,
            output,
            error: None,
        },
        Ok(s) => Outcome {
            ok: false,
            output,
            error: Some(format!("{program} exited with {s}")),
        },
        Err(e) => Outcome {
            ok: false,
            output,
            error: Some(e),
        },
    }
}

async fn http(
    env: &Executor<'_>,
    method: &str,
    url: &str,
    headers: &BTreeMap<String, String>,
    body: Option<&Value>,
    timeout: Duration,
) -> Outcome {
    let m = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
    let mut req = env.http.request(m, url).timeout(timeout);
    for (k, v) in headers {
        req = req.header(k, v);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    match req.send().await {
        Ok(r) => {
            let status = r.status();
            let text = r.text().await.unwrap_or_default();
            let limit = env.cfg.output_limit_bytes;
            let shown = if text.len() > limit {
                let mut end = limit;
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                format!(
                    "{}\n[{} more bytes not kept]",
                    &text[..end],
                    text.len() - end
                )
            } else {
                text
            };
            Outcome {
                ok: status.is_success(),
                output: format!("HTTP {status}\n{shown}"),
                error: (!status.is_success()).then(|| format!("{url} answered {status}")),
            }
        }
        Err(e) => Outcome {
            ok: false,
            output: String::new(),
            error: Some(if e.is_timeout() {
                format!("timed out after {} s", timeout.as_secs())
            } else {
                format!("could not reach {url}: {}", e.without_url())
            }),
        },
    }
}
