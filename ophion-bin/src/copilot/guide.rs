//! The built-in engine's longer answers: the root cause of a recent
//! problem, what is wrong with a service (ordered next steps, each with its
//! evidence), and a dashboard for a service.

use ophion_core::TenantId;
use serde_json::{Value, json};

use super::{
    answer::{Builder, args, cell, fmt, num, pct, quote, rows},
    question::{Intent, Lang, Question},
    tools::{ToolError, Toolbox, service_link},
};
use ophion_core::query::sql_literal as literal;

/// Answers a root-cause, troubleshooting or dashboard question.
pub(super) async fn answer(
    tools: &Toolbox,
    tenant: &TenantId,
    q: &Question,
    b: &mut Builder,
) -> Result<(), ToolError> {
    match q.intent {
        Intent::Dashboard => {
            dashboard(q, b);
            Ok(())
        }
        Intent::Troubleshoot => troubleshoot(tools, tenant, q, b).await,
        _ => root_cause(tools, tenant, q, b).await,
    }
}

/// The analysis' candidates, as `(service, operation, kind, score)`.
fn candidates(analysis: &Value) -> Vec<(String, String, String, f64)> {
    analysis["root_causes"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    (
                        c["service"].as_str().unwrap_or("").to_owned(),
                        c["operation"].as_str().unwrap_or("").to_owned(),
                        c["kind"]
                            .as_str()
                            .map_or_else(|| c["kind"].to_string(), str::to_owned),
                        c["score"].as_f64().unwrap_or(0.0),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn root_cause(
    tools: &Toolbox,
    tenant: &TenantId,
    q: &Question,
    b: &mut Builder,
) -> Result<(), ToolError> {
    let mut extra = json!({});
    if let Some(s) = q.services.first() {
        extra["service"] = json!(s);
    }
    let out = b.keep(tools.call(tenant, "analyze", &args(q, extra)).await?);
    let found = candidates(&out.result);
    let label = q.when.label.clone();
    b.answer.analysis = Some(out.result);
    match found.first() {
        None => b.say(
            format!("No problem stands out over {label}: no service's requests degraded against the baseline."),
            format!("Nenhum problema se destaca em {label}: nenhum serviço degradou em relação à linha de base."),
        ),
        Some((service, op, kind, score)) => {
            b.say(
                format!("Most likely root cause over {label}: {service} ({op}), {kind}, score {}.", fmt(*score)),
                format!("Causa raiz mais provável em {label}: {service} ({op}), {kind}, pontuação {}.", fmt(*score)),
            );
            for (s, o, k, sc) in found.iter().skip(1).take(2) {
                let line = format!("- {s} ({o}), {k}, {}", fmt(*sc));
                b.say(line.clone(), line);
            }
        }
    }
    Ok(())
}

async fn troubleshoot(
    tools: &Toolbox,
    tenant: &TenantId,
    q: &Question,
    b: &mut Builder,
) -> Result<(), ToolError> {
    let service = q.services[0].clone();
    let label = q.when.label.clone();
    let secs = q.when.span_ns.unwrap_or(3_600_000_000_000) / 1_000_000_000;
    // The six reads are independent: run together, kept in this order.
    let a = [
        args(q, json!({"service": service})),
        json!({"service": service, "from": format!("now-{}s", 2 * secs), "to": format!("now-{secs}s")}),
        args(q, json!({"service": service, "limit": 3})),
        args(q, json!({"service": service, "text": "error", "limit": 20})),
        args(q, json!({"service": service, "direction": "callees"})),
    ];
    let (now, before, errors, logs, calls, analysis) = futures::try_join!(
        tools.call(tenant, "service_red", &a[0]),
        tools.call(tenant, "service_red", &a[1]),
        tools.call(tenant, "top_errors", &a[2]),
        tools.call(tenant, "search_logs", &a[3]),
        tools.call(tenant, "service_calls", &a[4]),
        tools.call(tenant, "analyze", &a[0]),
    )?;
    let (now, before, errors, logs, calls, analysis) = (
        b.keep(now),
        b.keep(before),
        b.keep(errors),
        b.keep(logs),
        b.keep(calls),
        b.keep(analysis),
    );
    let pt = q.lang == Lang::Pt;
    let mut steps: Vec<(String, Value)> = Vec::new();
    let (r_now, r_old) = (
        num(&cell(&now, 0, "requests")),
        num(&cell(&before, 0, "requests")),
    );
    let (e_now, e_old) = (
        num(&cell(&now, 0, "error_ratio")),
        num(&cell(&before, 0, "error_ratio")),
    );
    let (l_now, l_old) = (
        num(&cell(&now, 0, "p95_ms")),
        num(&cell(&before, 0, "p95_ms")),
    );
    steps.push((
        if pt {
            format!("Compare {service} com a janela anterior: requisições {} -> {}, taxa de erros {} -> {}, p95 {} -> {} ms.", fmt(r_old), fmt(r_now), pct(e_old), pct(e_now), fmt(l_old), fmt(l_now))
        } else {
            format!("Compare {service} with the window before: requests {} -> {}, error rate {} -> {}, p95 {} -> {} ms.", fmt(r_old), fmt(r_now), pct(e_old), pct(e_now), fmt(l_old), fmt(l_now))
        },
        json!([{"kind": "service", "link": service_link(&service)}]),
    ));
    if let Some((s, op, kind, score)) = candidates(&analysis.result).first() {
        steps.push((
            if pt {
                format!("Investigue {s} ({op}): a análise o aponta como causa raiz ({kind}, pontuação {}).", fmt(*score))
            } else {
                format!("Look into {s} ({op}): the analysis ranks it as the root cause ({kind}, score {}).", fmt(*score))
            },
            json!([{"kind": "service", "link": service_link(s)}]),
        ));
    }
    if rows(&errors) > 0 {
        let top = format!(
            "{} {}: {}",
            cell(&errors, 0, "operation").as_str().unwrap_or(""),
            quote(cell(&errors, 0, "message").as_str().unwrap_or("")),
            fmt(num(&cell(&errors, 0, "errors")))
        );
        steps.push((
            if pt {
                format!("Veja o erro mais frequente: {top}.")
            } else {
                format!("Read the most frequent error: {top}.")
            },
            json!(errors.evidence),
        ));
    }
    if rows(&logs) > 0 {
        steps.push((
            if pt {
                format!(
                    "Leia os {} registros de log com \"error\" de {service}.",
                    rows(&logs)
                )
            } else {
                format!(
                    "Read the {} log records of {service} mentioning \"error\".",
                    rows(&logs)
                )
            },
            json!(logs.evidence),
        ));
    }
    if rows(&calls) > 0 {
        let deps: Vec<String> = (0..rows(&calls))
            .filter_map(|i| cell(&calls, i, "service").as_str().map(str::to_owned))
            .collect();
        steps.push((
            if pt {
                format!(
                    "Verifique as dependências de {service}: {}.",
                    deps.join(", ")
                )
            } else {
                format!("Check what {service} depends on: {}.", deps.join(", "))
            },
            json!(calls.evidence),
        ));
    }
    b.say(
        format!("What to look at for {service} over {label}, in order:"),
        format!("O que verificar em {service} em {label}, em ordem:"),
    );
    for (i, (text, evidence)) in steps.into_iter().enumerate() {
        let line = format!("{}. {text}", i + 1);
        b.say(line.clone(), line);
        b.answer
            .steps
            .push(json!({"step": i + 1, "action": text, "evidence": evidence}));
    }
    b.answer.analysis = Some(analysis.result);
    Ok(())
}

/// A dashboard spec for a service: panels of SQL over `$from`/`$to`,
/// which the dashboard fills in when it renders.
fn dashboard(q: &Question, b: &mut Builder) {
    let service = &q.services[0];
    let s = literal(service);
    let range = "start_time >= $from AND start_time < $to";
    let entry = crate::read::ENTRY_SPANS;
    let panel =
        |title: &str, chart: &str, sql: String| json!({"title": title, "chart": chart, "sql": sql});
    let panels = vec![
        panel(
            "Requests per minute",
            "timeseries",
            format!(
                "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, count(*) AS requests \
             FROM spans WHERE service_name = {s} AND {entry} AND {range} GROUP BY 1 ORDER BY 1"
            ),
        ),
        panel(
            "Error rate",
            "timeseries",
            format!(
                "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, \
             avg(CASE WHEN status_code = 'error' THEN 1.0 ELSE 0.0 END) AS error_rate \
             FROM spans WHERE service_name = {s} AND {entry} AND {range} GROUP BY 1 ORDER BY 1"
            ),
        ),
        panel(
            "Latency p50 / p95 / p99 (ms)",
            "timeseries",
            format!(
                "SELECT date_bin(INTERVAL '1 minute', start_time) AS minute, \
             percentile_cont(duration_ns, 0.5) / 1e6 AS p50_ms, \
             percentile_cont(duration_ns, 0.95) / 1e6 AS p95_ms, \
             percentile_cont(duration_ns, 0.99) / 1e6 AS p99_ms \
             FROM spans WHERE service_name = {s} AND {entry} AND {range} GROUP BY 1 ORDER BY 1"
            ),
        ),
        panel(
            "Slowest operations",
            "table",
            format!(
                "SELECT name AS operation, count(*) AS requests, percentile_cont(duration_ns, 0.95) / 1e6 AS p95_ms \
             FROM spans WHERE service_name = {s} AND {entry} AND {range} GROUP BY 1 ORDER BY p95_ms DESC LIMIT 10"
            ),
        ),
        panel(
            "Top errors",
            "table",
            format!(
                "SELECT name AS operation, coalesce(status_message, '') AS message, count(*) AS errors \
             FROM spans WHERE service_name = {s} AND status_code = 'error' AND {range} \
             GROUP BY 1, 2 ORDER BY errors DESC LIMIT 10"
            ),
        ),
        panel(
            "Error logs",
            "logs",
            format!(
                "SELECT timestamp, severity_text, body FROM logs WHERE service_name = {s} \
             AND severity_number >= 17 AND timestamp >= $from AND timestamp < $to \
             ORDER BY timestamp DESC LIMIT 100"
            ),
        ),
    ];
    let title = service.to_string();
    b.say(
        format!("A dashboard for {service} with {} panels: requests, error rate, latency percentiles, slowest operations, top errors and error logs. Save it with POST /api/v1/dashboards.", panels.len()),
        format!("Um painel para {service} com {} painéis: requisições, taxa de erros, percentis de latência, operações mais lentas, principais erros e logs de erro. Salve-o com POST /api/v1/dashboards.", panels.len()),
    );
    b.answer.dashboard = Some(json!({"title": title, "service": service, "panels": panels}));
}
