//! The built-in engine: answers the common questions without a language
//! model. [`super::question`] reads the question; this module runs the
//! tools it needs and writes the answer from their rows, in the
//! question's language. A question it does not understand is declined
//! with what it can answer; it never guesses.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use ophion_core::TenantId;
use serde_json::{Value, json};

use super::{
    answer::{Answer, Builder, args, cell, fmt, num, pct, quote, rows},
    question::{Intent, Lang, Question, understand},
    tools::{ToolError, ToolOutput, Toolbox},
};
use crate::read::{Params, Reader, now_ns, rollup, time};

/// What the engine can answer, for a decline.
fn capabilities(lang: Lang) -> &'static str {
    match lang {
        Lang::En => {
            "I can answer, for a service (or one of its endpoints) over a time range such as \
             \"the last 30 minutes\": its error rate, throughput, and p50/p95/p99 latency; the \
             slowest endpoints; the top errors; logs containing a text; which services call it \
             and which it calls; what changed in a window compared with the one before; the \
             root cause of a recent problem; what is wrong with it (next steps); and a dashboard \
             for it. Name the service as it appears in the telemetry."
        }
        Lang::Pt => {
            "Posso responder, para um serviço (ou um dos seus endpoints) num intervalo como \
             \"os últimos 30 minutos\": a taxa de erros, a vazão e a latência p50/p95/p99; os \
             endpoints mais lentos; os principais erros; logs contendo um texto; quais serviços \
             o chamam e quais ele chama; o que mudou numa janela em relação à anterior; a causa \
             raiz de um problema recente; o que há de errado com ele (próximos passos); e um \
             painel para ele. Use o nome do serviço como aparece na telemetria."
        }
    }
}

/// How long the names a tenant's questions are read against are kept: a
/// service seen for the first time is recognised within a minute.
const NAMES_TTL: Duration = Duration::from_secs(60);

/// The service and operation names of each tenant, read at most once per
/// [`NAMES_TTL`]: the last day from the span rollups, the rest of the week
/// from spans and logs, which over millions of spans costs more than
/// answering.
#[derive(Debug, Default)]
pub(super) struct Names {
    entries: Mutex<HashMap<NamesKey, (Instant, Vec<String>)>>,
}

/// A tenant, and a service for its operations (`None`: its services).
type NamesKey = (TenantId, Option<String>);

impl Names {
    fn cached(&self, key: &NamesKey) -> Option<Vec<String>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries
            .get(key)
            .filter(|(at, _)| at.elapsed() < NAMES_TTL)
            .map(|(_, v)| v.clone())
    }

    fn keep(&self, key: NamesKey, names: &[String]) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|_, (at, _)| at.elapsed() < NAMES_TTL);
        entries.insert(key, (Instant::now(), names.to_vec()));
    }

    async fn services(
        &self,
        reader: &Reader,
        tenant: &TenantId,
        now: i64,
    ) -> Result<Vec<String>, ToolError> {
        let key = (tenant.clone(), None);
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        let v = known_services(reader, tenant, now).await?;
        self.keep(key, &v);
        Ok(v)
    }

    async fn operations(
        &self,
        reader: &Reader,
        tenant: &TenantId,
        service: &str,
        now: i64,
    ) -> Result<Vec<String>, ToolError> {
        let key = (tenant.clone(), Some(service.to_owned()));
        if let Some(v) = self.cached(&key) {
            return Ok(v);
        }
        let v = known_operations(reader, tenant, service, now).await?;
        self.keep(key, &v);
        Ok(v)
    }
}

/// Answers `message` for `tenant`.
pub(super) async fn answer(
    tools: &Toolbox,
    reader: &Reader,
    names: &Names,
    tenant: &TenantId,
    message: &str,
) -> Result<Answer, ToolError> {
    let now = now_ns();
    let services = names.services(reader, tenant, now).await?;
    // Operations are looked up only for a service the question names.
    let mut ops_cache: Vec<(String, Vec<String>)> = Vec::new();
    let norm = super::question::normalize(message);
    for s in &services {
        if norm.contains(&super::question::normalize(s)) {
            ops_cache.push((s.clone(), names.operations(reader, tenant, s, now).await?));
        }
    }
    let ops = |s: &str| {
        ops_cache
            .iter()
            .find(|(n, _)| n == s)
            .map(|(_, o)| o.clone())
            .unwrap_or_default()
    };
    let q = match understand(message, &services, &ops, now) {
        Ok(q) => q,
        Err((lang, why)) => return Ok(decline(lang, &why)),
    };
    run(tools, tenant, &q).await
}

fn decline(lang: Lang, why: &str) -> Answer {
    let lead = match lang {
        Lang::En => "I did not understand that question, so I will not guess.",
        Lang::Pt => "Não entendi a pergunta, então não vou adivinhar.",
    };
    let why = if why.is_empty() {
        String::new()
    } else {
        format!(" ({why})")
    };
    Answer {
        answer: format!("{lead}{why} {}", capabilities(lang)),
        declined: true,
        ..Answer::default()
    }
}

/// Where names are read from the rollups rather than `spans`: the last
/// 23 hours (inside the rollups' default day, whole minutes).
const RECENT_NS: i64 = 23 * 3600 * 1_000_000_000;

/// The first column of `fast` as sorted names, or of `slow` when the
/// rollups `fast` reads do not cover its range. `p` binds `$from` (a week
/// ago), `$day` (where the rollups take over) and `$to` (now).
async fn names(
    reader: &Reader,
    tenant: &TenantId,
    fast: &str,
    slow: &str,
    p: &Params,
) -> Result<Vec<String>, ToolError> {
    let out = match reader.sql(tenant, fast, p).await {
        Ok(out) => out,
        Err(ophion_core::QueryError::NotCovered(_)) => reader.sql(tenant, slow, p).await?,
        Err(e) => return Err(e.into()),
    };
    let mut names: Vec<String> = crate::read::json::rows(&out.batches)
        .into_iter()
        .filter_map(|r| r.get(0).and_then(Value::as_str).map(str::to_owned))
        .collect();
    names.sort();
    names.dedup();
    Ok(names)
}

/// `$from`, `$day` and `$to` for [`names`], and the week's conditions.
fn week(now: i64) -> Result<(Params, String, String), ToolError> {
    let week = time::resolve_at(Some("now-7d"), Some("now"), now)?;
    let day = (now - RECENT_NS).div_euclid(rollup::MINUTE_NS) * rollup::MINUTE_NS;
    let mut p = week.filter("start_time");
    p.bind("day", crate::read::ts(day));
    let spans = p.conditions();
    let logs = week.filter("timestamp").conditions();
    Ok((p, spans, logs))
}

/// Services seen in the last week (spans, their client spans' peers, logs).
async fn known_services(
    reader: &Reader,
    tenant: &TenantId,
    now: i64,
) -> Result<Vec<String>, ToolError> {
    let (p, c, l) = week(now)?;
    // Databases and untraced services are known by the name their callers'
    // client spans give them.
    let peers = |c: &str| {
        format!(
            "SELECT DISTINCT service_name FROM spans WHERE {c} \
             UNION SELECT DISTINCT server_address FROM spans WHERE {c} AND kind = 'client' \
               AND server_address IS NOT NULL"
        )
    };
    let logs = format!("SELECT DISTINCT service_name FROM logs WHERE {l}");
    let fast = format!(
        "SELECT DISTINCT service_name FROM span_minutes WHERE minute >= $day \
         UNION SELECT DISTINCT callee FROM service_edges WHERE minute >= $day \
         UNION {} UNION {logs}",
        peers("start_time >= $from AND start_time < $day")
    );
    let slow = format!("{} UNION {logs}", peers(&c));
    names(reader, tenant, &fast, &slow, &p).await
}

/// A service's span names and HTTP routes seen in the last week.
async fn known_operations(
    reader: &Reader,
    tenant: &TenantId,
    service: &str,
    now: i64,
) -> Result<Vec<String>, ToolError> {
    let (mut p, c, _) = week(now)?;
    p.bind("service", crate::read::text(service));
    let ops = |table: &str, c: &str| {
        format!(
            "SELECT DISTINCT name FROM {table} WHERE {c} AND service_name = $service UNION \
             SELECT DISTINCT http_route FROM {table} WHERE {c} AND service_name = $service \
               AND http_route IS NOT NULL"
        )
    };
    let fast = format!(
        "{} UNION {}",
        ops("span_minutes", "minute >= $day"),
        ops("spans", "start_time >= $from AND start_time < $day")
    );
    names(reader, tenant, &fast, &ops("spans", &c), &p).await
}

async fn run(tools: &Toolbox, tenant: &TenantId, q: &Question) -> Result<Answer, ToolError> {
    let mut b = Builder::new(q.lang);
    let label = q.when.label.clone();
    match q.intent {
        Intent::ErrorRate | Intent::Latency | Intent::Throughput => {
            for s in &q.services {
                // Percentiles cost a sort of every duration: asked for
                // only when the question is about latency.
                let mut extra = json!({"service": s, "latency": q.intent == Intent::Latency});
                if let Some(op) = &q.operation {
                    extra["operation"] = json!(op);
                }
                let out = b.keep(tools.call(tenant, "service_red", &args(q, extra)).await?);
                let who = match &q.operation {
                    Some(op) => format!("{s} {op}"),
                    None => s.clone(),
                };
                let requests = num(&cell(&out, 0, "requests"));
                if requests == 0.0 {
                    b.say(
                        format!("{who}: no requests in {label}."),
                        format!("{who}: nenhuma requisição em {label}."),
                    );
                    continue;
                }
                let errors = num(&cell(&out, 0, "errors"));
                match q.intent {
                    Intent::ErrorRate => b.say(
                        format!(
                            "{who}: error rate {} ({} errors in {} requests) over {label}.",
                            pct(num(&cell(&out, 0, "error_ratio"))),
                            fmt(errors),
                            fmt(requests)
                        ),
                        format!(
                            "{who}: taxa de erros {} ({} erros em {} requisições) em {label}.",
                            pct(num(&cell(&out, 0, "error_ratio"))),
                            fmt(errors),
                            fmt(requests)
                        ),
                    ),
                    Intent::Latency => {
                        let (p50, p95, p99) = (
                            fmt(num(&cell(&out, 0, "p50_ms"))),
                            fmt(num(&cell(&out, 0, "p95_ms"))),
                            fmt(num(&cell(&out, 0, "p99_ms"))),
                        );
                        // Percentiles from the rollups' latency buckets say so.
                        let (approx_en, approx_pt) = if cell(&out, 0, "percentiles").is_string() {
                            (
                                " Percentiles are from per-minute latency buckets, within 2%.",
                                " Percentis de buckets de latência por minuto, com erro de até 2%.",
                            )
                        } else {
                            ("", "")
                        };
                        b.say(
                            format!("{who}: latency p50 {p50} ms, p95 {p95} ms, p99 {p99} ms over {label} ({} requests).{approx_en}", fmt(requests)),
                            format!("{who}: latência p50 {p50} ms, p95 {p95} ms, p99 {p99} ms em {label} ({} requisições).{approx_pt}", fmt(requests)),
                        );
                    }
                    _ => b.say(
                        format!(
                            "{who}: {} requests per second ({} requests) over {label}.",
                            fmt(num(&cell(&out, 0, "rate_per_sec"))),
                            fmt(requests)
                        ),
                        format!(
                            "{who}: {} requisições por segundo ({} requisições) em {label}.",
                            fmt(num(&cell(&out, 0, "rate_per_sec"))),
                            fmt(requests)
                        ),
                    ),
                }
            }
        }
        Intent::SlowestOperations | Intent::TopErrors => {
            let mut extra = json!({"limit": 5});
            if let Some(s) = q.services.first() {
                extra["service"] = json!(s);
            }
            let tool = if q.intent == Intent::TopErrors {
                "top_errors"
            } else {
                extra["order_by"] = json!("p95");
                "top_operations"
            };
            let out = b.keep(tools.call(tenant, tool, &args(q, extra)).await?);
            let scope = q.services.first().cloned().unwrap_or_else(|| match q.lang {
                Lang::En => "all services".into(),
                Lang::Pt => "todos os serviços".into(),
            });
            if rows(&out) == 0 {
                b.say(
                    format!("Nothing found for {scope} in {label}."),
                    format!("Nada encontrado para {scope} em {label}."),
                );
            } else if q.intent == Intent::TopErrors {
                b.say(
                    format!("Top errors for {scope} over {label}:"),
                    format!("Principais erros de {scope} em {label}:"),
                );
                for i in 0..rows(&out) {
                    let line = format!(
                        "{}. {} {} \"{}\": {}",
                        i + 1,
                        cell(&out, i, "service").as_str().unwrap_or(""),
                        cell(&out, i, "operation").as_str().unwrap_or(""),
                        cell(&out, i, "message").as_str().unwrap_or(""),
                        fmt(num(&cell(&out, i, "errors")))
                    );
                    b.say(line.clone(), line);
                }
            } else {
                b.say(
                    format!("Slowest endpoints (p95) for {scope} over {label}:"),
                    format!("Endpoints mais lentos (p95) de {scope} em {label}:"),
                );
                for i in 0..rows(&out) {
                    let line = format!(
                        "{}. {} {}: p95 {} ms ({} requests)",
                        i + 1,
                        cell(&out, i, "service").as_str().unwrap_or(""),
                        cell(&out, i, "operation").as_str().unwrap_or(""),
                        fmt(num(&cell(&out, i, "p95_ms"))),
                        fmt(num(&cell(&out, i, "requests")))
                    );
                    b.say(line.clone(), line.replace("requests", "requisições"));
                }
            }
        }
        Intent::SearchLogs => {
            let text = q.text.clone().unwrap_or_default();
            let mut extra = json!({"text": text, "limit": 20});
            if let Some(s) = q.services.first() {
                extra["service"] = json!(s);
            }
            let out = b.keep(tools.call(tenant, "search_logs", &args(q, extra)).await?);
            b.say(
                format!(
                    "{} log records containing \"{text}\" over {label} (newest first, at most 20).",
                    rows(&out)
                ),
                format!(
                    "{} registros de log contendo \"{text}\" em {label} (mais recentes primeiro, no máximo 20).",
                    rows(&out)
                ),
            );
            for i in 0..rows(&out).min(5) {
                let line = format!(
                    "- [{}] {}",
                    cell(&out, i, "service").as_str().unwrap_or(""),
                    quote(cell(&out, i, "body").as_str().unwrap_or(""))
                );
                b.say(line.clone(), line);
            }
        }
        Intent::Callers | Intent::Callees => {
            let s = &q.services[0];
            let dir = if q.intent == Intent::Callers {
                "callers"
            } else {
                "callees"
            };
            let out = b.keep(
                tools
                    .call(
                        tenant,
                        "service_calls",
                        &args(q, json!({"service": s, "direction": dir})),
                    )
                    .await?,
            );
            let list: Vec<String> = (0..rows(&out))
                .map(|i| {
                    format!(
                        "{} ({})",
                        cell(&out, i, "service").as_str().unwrap_or(""),
                        fmt(num(&cell(&out, i, "calls")))
                    )
                })
                .collect();
            let joined = if list.is_empty() {
                "-".to_owned()
            } else {
                list.join(", ")
            };
            if q.intent == Intent::Callers {
                b.say(
                    format!("Services calling {s} over {label} (calls): {joined}."),
                    format!("Serviços que chamam {s} em {label} (chamadas): {joined}."),
                );
            } else {
                b.say(
                    format!("Services {s} calls over {label} (calls): {joined}."),
                    format!("Serviços que {s} chama em {label} (chamadas): {joined}."),
                );
            }
        }
        Intent::ListServices => {
            let out = b.keep(
                tools
                    .call(tenant, "list_services", &args(q, json!({})))
                    .await?,
            );
            b.say(
                format!("{} services over {label}:", rows(&out)),
                format!("{} serviços em {label}:", rows(&out)),
            );
            for i in 0..rows(&out) {
                let line = format!(
                    "- {}: {} requests, error rate {}, p95 {} ms",
                    cell(&out, i, "service").as_str().unwrap_or(""),
                    fmt(num(&cell(&out, i, "requests"))),
                    pct(num(&cell(&out, i, "error_ratio"))),
                    fmt(num(&cell(&out, i, "p95_ms")))
                );
                b.say(
                    line.clone(),
                    line.replace("requests, error rate", "requisições, taxa de erros"),
                );
            }
        }
        Intent::Changes => changes(tools, tenant, q, &mut b).await?,
        Intent::RootCause | Intent::Troubleshoot | Intent::Dashboard => {
            super::guide::answer(tools, tenant, q, &mut b).await?;
        }
    }
    Ok(b.finish())
}

/// What changed: each service's RED in the window against the window of
/// the same length before it.
async fn changes(
    tools: &Toolbox,
    tenant: &TenantId,
    q: &Question,
    b: &mut Builder,
) -> Result<(), ToolError> {
    let span = q.when.span_ns.unwrap_or(3_600_000_000_000);
    let secs = span / 1_000_000_000;
    let now = args(q, json!({}));
    let before = json!({"from": format!("now-{}s", 2 * secs), "to": format!("now-{secs}s")});
    let cur = b.keep(tools.call(tenant, "list_services", &now).await?);
    let old = b.keep(tools.call(tenant, "list_services", &before).await?);
    let label = q.when.label.clone();
    b.say(
        format!("Changes over {label} against the {secs} s before (requests, error rate, p95):"),
        format!(
            "Mudanças em {label} em relação aos {secs} s anteriores (requisições, taxa de erros, p95):"
        ),
    );
    let find = |out: &ToolOutput, name: &str| {
        (0..rows(out)).find(|&i| cell(out, i, "service").as_str() == Some(name))
    };
    let mut names: Vec<String> = Vec::new();
    for out in [&cur, &old] {
        for i in 0..rows(out) {
            if let Some(n) = cell(out, i, "service").as_str()
                && !names.iter().any(|x| x == n)
            {
                names.push(n.to_owned());
            }
        }
    }
    names.sort();
    if !q.services.is_empty() {
        names.retain(|n| q.services.contains(n));
    }
    for n in names {
        let show = |out: &ToolOutput| match find(out, &n) {
            Some(i) => format!(
                "{} / {} / {} ms",
                fmt(num(&cell(out, i, "requests"))),
                pct(num(&cell(out, i, "error_ratio"))),
                fmt(num(&cell(out, i, "p95_ms")))
            ),
            None => "-".into(),
        };
        let line = format!("- {n}: {} -> {}", show(&old), show(&cur));
        b.say(line.clone(), line);
    }
    Ok(())
}
