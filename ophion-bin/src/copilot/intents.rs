//! The words of questions: what each intent is asked with, in English and
//! Portuguese, and which language a question is in. The one vocabulary
//! [`super::question`] reads questions with.

/// What a question asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Error ratio of services or an operation.
    ErrorRate,
    /// Requests per second.
    Throughput,
    /// Latency percentiles (p50, p95, p99).
    Latency,
    /// The slowest operations.
    SlowestOperations,
    /// The most frequent errors.
    TopErrors,
    /// Log records containing a text.
    SearchLogs,
    /// Which services call a service.
    Callers,
    /// Which services a service calls.
    Callees,
    /// What changed between the range and the one before it.
    Changes,
    /// The root cause of a recent problem.
    RootCause,
    /// A dashboard for a service.
    Dashboard,
    /// What is wrong with a service: ordered next steps.
    Troubleshoot,
    /// The services and their health.
    ListServices,
}

/// The language a question is written in (answers use it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// English.
    En,
    /// Portuguese.
    Pt,
}

/// Whether `phrase` occurs in `text` as whole words (both normalised).
pub(super) fn has(text: &str, phrase: &str) -> bool {
    let padded = format!(" {text} ");
    padded.contains(&format!(" {phrase} "))
}

pub(super) fn any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| has(text, p))
}

const PT_WORDS: &[&str] = &[
    "qual",
    "quais",
    "quem",
    "taxa",
    "erros",
    "latencia",
    "ultima",
    "ultimos",
    "ultimas",
    "hoje",
    "ontem",
    "servico",
    "servicos",
    "chama",
    "chamam",
    "mudou",
    "causa",
    "painel",
    "para",
    "com",
    "contendo",
    "de",
    "do",
    "da",
    "na",
    "no",
    "os",
    "as",
    "que",
    "esta",
    "errado",
    "lentos",
    "lentas",
    "requisicoes",
    "vazao",
    "tempo",
    "resposta",
    "por",
    "mostre",
    "mostrar",
];

pub(super) fn language(norm: &str) -> Lang {
    let pt = norm.split(' ').filter(|w| PT_WORDS.contains(w)).count();
    let en = norm
        .split(' ')
        .filter(|w| {
            [
                "what", "which", "who", "the", "of", "is", "rate", "last", "calls", "show", "for",
                "with", "errors", "slowest", "latency", "logs", "how", "many",
            ]
            .contains(w)
        })
        .count();
    if pt > en { Lang::Pt } else { Lang::En }
}

/// The intent of a normalised question, the most specific first.
pub(super) fn intent(n: &str) -> Option<Intent> {
    use Intent::*;
    let rules: &[(Intent, &[&str])] = &[
        (Dashboard, &["dashboard", "painel"]),
        (
            Troubleshoot,
            &[
                "what s wrong",
                "whats wrong",
                "what is wrong",
                "what's wrong",
                "troubleshoot",
                "o que ha de errado",
                "o que esta errado",
                "qual o problema",
                "qual e o problema",
                "o que tem de errado",
            ],
        ),
        (
            RootCause,
            &[
                "root cause",
                "causa raiz",
                "why is",
                "why are",
                "por que",
                "porque",
            ],
        ),
        (
            Changes,
            &[
                "what changed",
                "o que mudou",
                "what has changed",
                "changes",
                "mudancas",
                "mudou",
            ],
        ),
        (
            Callers,
            &[
                "who calls",
                "which services call",
                "what calls",
                "callers",
                "callers of",
                "quem chama",
                "quais servicos chamam",
                "que servicos chamam",
                "chamadores",
                "depends on",
                "dependem de",
            ],
        ),
        (
            Callees,
            &[
                "call",
                "calls",
                "callees",
                "dependencies",
                "depend on",
                "chama",
                "dependencias",
                "downstream",
            ],
        ),
        (
            SearchLogs,
            &["logs", "log lines", "log records", "registros de log"],
        ),
        (
            SlowestOperations,
            &[
                "slowest",
                "slow endpoints",
                "slow operations",
                "mais lentos",
                "mais lentas",
                "endpoints lentos",
                "operacoes lentas",
                "rotas lentas",
            ],
        ),
        (
            TopErrors,
            &[
                "top errors",
                "most common errors",
                "most frequent errors",
                "which errors",
                "what errors",
                "main errors",
                "principais erros",
                "erros mais comuns",
                "erros mais frequentes",
                "quais erros",
                "que erros",
            ],
        ),
        (
            ErrorRate,
            &[
                "error rate",
                "error ratio",
                "failure rate",
                "errors",
                "error",
                "failing",
                "failed",
                "failures",
                "fail",
                "exceptions",
                "5xx",
                "falharam",
                "falhou",
                "excecoes",
                "taxa de erro",
                "taxa de erros",
                "erros",
                "erro",
                "falhas",
                "taxa de falha",
            ],
        ),
        (
            Latency,
            &[
                "latency",
                "p50",
                "p90",
                "p95",
                "p99",
                "median",
                "response time",
                "how slow",
                "duration",
                "latencia",
                "tempo de resposta",
                "mediana",
                "lento",
                "lenta",
                "slow",
                "how long",
                "demora",
                "duracao",
            ],
        ),
        (
            Throughput,
            &[
                "throughput",
                "requests per second",
                "rps",
                "request rate",
                "how many requests",
                "traffic",
                "load",
                "vazao",
                "requisicoes por segundo",
                "quantas requisicoes",
                "trafego",
                "carga",
                "qps",
                "how many calls",
                "calls per second",
                "volume",
            ],
        ),
        (
            ListServices,
            &[
                "services",
                "list services",
                "which services",
                "quais servicos",
                "servicos",
                "service health",
                "saude dos servicos",
            ],
        ),
    ];
    rules
        .iter()
        .find(|(_, phrases)| any(n, phrases))
        .map(|(i, _)| *i)
}
