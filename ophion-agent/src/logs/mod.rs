//! Log files: tailed by glob patterns, lines joined into records,
//! parsed, and queued with the offsets they came from.
//!
//! Exactly once: the offsets of every file after a batch of records are
//! written into the same queue record as the batch ([`crate::queue`]'s
//! collector state), so after a restart or a `kill -9` reading resumes
//! where the queued records end: no line is lost or read twice. Files are
//! followed across rotation and truncation ([`files`]).
//!
//! Records: a line that starts a record (`multiline_start`, a regular
//! expression; without one, a line starting with a timestamp in files
//! whose lines do, else a line not indented) begins one; the lines after
//! it up to the next start join it (stack traces). The last record of a
//! file waits `flush_ms` for more lines before it is sent. Each record is
//! parsed ([`parse`]): JSON lines, logfmt, or text with a timestamp and a
//! level word.

pub mod files;
pub mod parse;

use std::{collections::BTreeMap, collections::HashMap, path::PathBuf, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::logs::v1::ExportLogsServiceRequest,
    common::v1::{AnyValue, KeyValue, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use ophion_core::Signal;
use prost::Message as _;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::{forward::QueueSink, queue::Record};
use files::{Files, Saved, Tracked};

/// `[logs]`: the files to read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogsConfig {
    /// How often files are looked at, ms.
    pub poll_ms: u64,
    /// How long the last record of a file waits for more lines, ms.
    pub flush_ms: u64,
    /// Longest record, bytes (a longer one is cut into several).
    pub max_record_bytes: usize,
    /// Files present at the agent's first start are read from the
    /// `beginning` or only from their `end`. Files appearing later are
    /// always read whole.
    pub start_at: StartAt,
    /// The sources.
    pub sources: Vec<LogSource>,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            poll_ms: 250,
            flush_ms: 1000,
            max_record_bytes: 256 << 10,
            start_at: StartAt::Beginning,
            sources: Vec::new(),
        }
    }
}

/// Where files present at the first start are read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartAt {
    /// Their first line.
    Beginning,
    /// Their end: only lines written after the first start.
    End,
}

/// `[[logs.sources]]`: one set of files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSource {
    /// Glob patterns of the files (`/var/log/app/*.log`). Include the
    /// rotated names (`app.log*`) to read lines written just before a
    /// copy-truncate rotation, or while the agent was down.
    pub include: Vec<String>,
    /// Patterns to leave out (of the path or the file name).
    pub exclude: Vec<String>,
    /// `service.name` of the records (default: the file's name up to
    /// its first dot).
    pub service: Option<String>,
    /// A regular expression matching the first line of a record; other
    /// lines join the record before them.
    pub multiline_start: Option<String>,
    /// Attributes added to every record.
    pub attributes: BTreeMap<String, String>,
}

impl Default for LogSource {
    fn default() -> Self {
        Self {
            include: Vec::new(),
            exclude: ["*.gz", "*.zip", "*.bz2", "*.xz", "*.zst"]
                .map(str::to_owned)
                .to_vec(),
            service: None,
            multiline_start: None,
            attributes: BTreeMap::new(),
        }
    }
}

impl LogsConfig {
    /// Checks the patterns.
    pub fn validate(&self) -> Result<(), String> {
        for (i, s) in self.sources.iter().enumerate() {
            if s.include.is_empty() {
                return Err(format!("logs.sources[{i}].include is empty"));
            }
            for p in s.include.iter().chain(&s.exclude) {
                glob::Pattern::new(p)
                    .map_err(|e| format!("logs.sources[{i}]: pattern `{p}`: {e}"))?;
            }
            if let Some(re) = &s.multiline_start {
                regex::Regex::new(re)
                    .map_err(|e| format!("logs.sources[{i}].multiline_start: {e}"))?;
            }
        }
        if self.poll_ms == 0 || self.max_record_bytes == 0 {
            return Err("logs.poll_ms and logs.max_record_bytes must be above 0".into());
        }
        Ok(())
    }
}

/// Whether `line` starts a record under the default rule.
fn starts_record(line: &str, timestamped: bool) -> bool {
    let stamped = parse::timestamp(line.trim_start_matches('[')).is_some();
    if timestamped {
        stamped || line.starts_with('{')
    } else {
        !line.starts_with([' ', '\t']) && !line.starts_with("Caused by:") && !line.trim().is_empty()
    }
}

/// Records of one file read: (text, offset after it).
type Texts = Vec<(String, u64)>;

/// Cuts the bytes read from `t` (from its offset) into records: only whole
/// lines, and the last record only once the file has been idle for
/// `flush` (or is no longer listed).
fn records(
    t: &Tracked,
    bytes: &[u8],
    start: Option<&regex::Regex>,
    flush: Duration,
    max: usize,
) -> Texts {
    let idle = t.last_growth.elapsed() >= flush || !t.listed;
    let mut lines: Vec<(&[u8], u64)> = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        match bytes[at..].iter().position(|b| *b == b'\n') {
            Some(i) => {
                lines.push((&bytes[at..at + i], (at + i + 1) as u64));
                at += i + 1;
            }
            None => {
                // An unterminated last line: only once the file is idle.
                if idle {
                    lines.push((&bytes[at..], bytes.len() as u64));
                }
                break;
            }
        }
    }
    let timestamped = lines.iter().take(20).any(|(l, _)| {
        parse::timestamp(String::from_utf8_lossy(l).trim_start_matches('[')).is_some()
    });
    let mut out: Texts = Vec::new();
    let mut current: Option<(String, u64)> = None;
    for (raw, end) in lines {
        let line = String::from_utf8_lossy(raw);
        let line = line.trim_end_matches('\r');
        let begins = match start {
            Some(re) => re.is_match(line),
            None => starts_record(line, timestamped),
        };
        match current.as_mut() {
            Some((text, e)) if !begins && text.len() + line.len() < max => {
                text.push('\n');
                text.push_str(line);
                *e = end;
            }
            _ => {
                if let Some(c) = current.take() {
                    out.push(c);
                }
                current = Some((line.chars().take(max).collect(), end));
            }
        }
    }
    if let Some(c) = current
        && idle
    {
        out.push(c);
    }
    out
}

fn text(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn kv(k: &str, v: impl Into<String>) -> KeyValue {
    KeyValue {
        key: k.to_owned(),
        value: text(v),
        ..Default::default()
    }
}

/// Reads the configured files and queues their records.
#[derive(Debug)]
pub struct Collector {
    config: LogsConfig,
    starts: Vec<Option<regex::Regex>>,
    files: Files,
    sink: Arc<QueueSink>,
    resource: Vec<KeyValue>,
    first_start: bool,
    runtime: tokio::runtime::Handle,
}

/// Bytes read from one file in one look.
const READ_BYTES: usize = 1 << 20;

impl Collector {
    /// A collector resuming from the state the queue holds; `resource`
    /// describes this host. Call within the agent's runtime.
    pub fn new(config: LogsConfig, sink: Arc<QueueSink>, resource: Vec<KeyValue>) -> Self {
        let state = sink.queue.state();
        let first_start = state.is_none();
        let saved: Vec<Saved> = state
            .and_then(|s| serde_json::from_slice(&s).ok())
            .unwrap_or_default();
        let starts = config
            .sources
            .iter()
            .map(|s| {
                s.multiline_start
                    .as_deref()
                    .and_then(|r| regex::Regex::new(r).ok())
            })
            .collect();
        Self {
            config,
            starts,
            files: Files::from_saved(saved),
            sink,
            resource,
            first_start,
            runtime: tokio::runtime::Handle::current(),
        }
    }

    /// One look at every file: queues what is new. Returns the records
    /// queued.
    pub fn look(&mut self, first_look: bool) -> Result<usize, ophion_core::SinkError> {
        let listed: Vec<(PathBuf, usize)> = self
            .config
            .sources
            .iter()
            .enumerate()
            .flat_map(|(i, s)| {
                files::list(&s.include, &s.exclude)
                    .into_iter()
                    .map(move |p| (p, i))
            })
            .collect();
        let from_end = self.config.start_at == StartAt::End && self.first_start;
        self.files.refresh(&listed, first_look, from_end);
        let flush = Duration::from_millis(self.config.flush_ms);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let mut moved: HashMap<(u64, u64), u64> = HashMap::new();
        let mut resource_logs = Vec::new();
        let mut count = 0;
        let mut budget = 4 << 20;
        for t in self.files.tracked.values_mut() {
            if t.copy_of.is_some() || t.offset >= t.size || budget == 0 {
                continue;
            }
            let Ok(bytes) = files::read_new(t, READ_BYTES.min(budget)) else {
                continue;
            };
            budget = budget.saturating_sub(bytes.len());
            let start = self.starts.get(t.source).and_then(Option::as_ref);
            let texts = records(t, &bytes, start, flush, self.config.max_record_bytes);
            let Some(&(_, end)) = texts.last() else {
                continue;
            };
            let source = &self.config.sources[t.source];
            let name = t
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let service = source
                .service
                .clone()
                .unwrap_or_else(|| name.split('.').next().unwrap_or("unknown").to_owned());
            let mut attributes = vec![
                kv("log.file.name", name.clone()),
                kv("log.file.path", t.path.display().to_string()),
            ];
            attributes.extend(source.attributes.iter().map(|(k, v)| kv(k, v.clone())));
            let log_records: Vec<LogRecord> = texts
                .iter()
                .filter(|(line, _)| !line.trim().is_empty())
                .map(|(line, _)| {
                    let mut r = parse::record(line, now);
                    r.attributes.extend(attributes.iter().cloned());
                    r
                })
                .collect();
            count += log_records.len();
            let mut res = self.resource.clone();
            res.push(kv("service.name", service));
            resource_logs.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: res,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records,
                    ..Default::default()
                }],
                ..Default::default()
            });
            moved.insert(t.id, t.offset + end);
        }
        if moved.is_empty() {
            self.files.forget_finished(flush * 2);
            return Ok(0);
        }
        let mut saved = Vec::new();
        for t in self.files.tracked.values() {
            saved.push(Saved {
                path: t.path.clone(),
                fp: t.fp,
                offset: moved.get(&t.id).copied().unwrap_or(t.offset),
            });
        }
        saved.extend(self.files.unmatched.iter().cloned());
        let state = serde_json::to_vec(&saved).unwrap_or_default();
        let request = ExportLogsServiceRequest { resource_logs };
        let record = Record {
            signal: Signal::Logs,
            items: count as u32,
            protobuf: request.encode_to_vec(),
            state: Some(state),
        };
        self.runtime.block_on(self.sink.append(record))?;
        for t in self.files.tracked.values_mut() {
            if let Some(o) = moved.get(&t.id) {
                t.offset = *o;
            }
        }
        self.files.forget_finished(flush * 2);
        Ok(count)
    }

    /// Looks every `poll_ms` until `stop`; runs on its own thread (file
    /// reads block), never on the runtime's workers.
    pub fn spawn(mut self, stop: watch::Receiver<bool>) -> std::thread::JoinHandle<()> {
        std::thread::spawn(move || {
            let poll = Duration::from_millis(self.config.poll_ms);
            let mut first = true;
            while !*stop.borrow() {
                match self.look(first) {
                    Ok(_) => first = false,
                    Err(e) => {
                        tracing::warn!(error = %e, "log records not queued yet; retrying");
                    }
                }
                std::thread::sleep(poll);
            }
        })
    }
}
