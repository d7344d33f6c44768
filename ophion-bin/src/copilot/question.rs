//! Reading a question in English or Portuguese: what is asked
//! ([`Intent`]), about which services and operation, over which time
//! range. Pure text work, no I/O: the services and operations the tenant
//! has are given, so a name is only recognised if it exists, and nothing
//! is guessed.

pub use super::intents::{Intent, Lang};
use super::intents::{any, has, intent, language};

/// A time range as the question gives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct When {
    /// `from`, in the forms of [`crate::read::time`].
    pub from: String,
    /// `to`.
    pub to: String,
    /// The window's length in nanoseconds when relative to now (for
    /// "what changed": the window before has the same length).
    pub span_ns: Option<i64>,
    /// How an answer names it ("the last 30 minutes").
    pub label: String,
}

/// A question, understood.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// What is asked.
    pub intent: Intent,
    /// Services named, in the order they appear.
    pub services: Vec<String>,
    /// An operation (span name or route) named, if any.
    pub operation: Option<String>,
    /// The text to look for (logs).
    pub text: Option<String>,
    /// The time range.
    pub when: When,
    /// The language.
    pub lang: Lang,
}

/// Lowercase, accents removed, punctuation (but `/`, `-`, `_`, `.`, `%`)
/// turned into spaces, single-spaced.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars().flat_map(char::to_lowercase) {
        let c = match c {
            'á' | 'à' | 'â' | 'ã' | 'ä' => 'a',
            'é' | 'ê' | 'è' | 'ë' => 'e',
            'í' | 'î' | 'ì' | 'ï' => 'i',
            'ó' | 'ô' | 'õ' | 'ò' | 'ö' => 'o',
            'ú' | 'û' | 'ù' | 'ü' => 'u',
            'ç' => 'c',
            c if c.is_alphanumeric() || "/-_.%".contains(c) => c,
            _ => ' ',
        };
        out.push(c);
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

const MINUTE_NS: i64 = 60_000_000_000;
const HOUR_NS: i64 = 60 * MINUTE_NS;
const DAY_NS: i64 = 24 * HOUR_NS;

fn unit_ns(word: &str) -> Option<(i64, &'static str, &'static str)> {
    Some(match word {
        "second" | "seconds" | "sec" | "secs" | "s" | "segundo" | "segundos" => {
            (1_000_000_000, "second", "segundo")
        }
        "minute" | "minutes" | "min" | "mins" | "m" | "minuto" | "minutos" => {
            (MINUTE_NS, "minute", "minuto")
        }
        "hour" | "hours" | "h" | "hr" | "hrs" | "hora" | "horas" => (HOUR_NS, "hour", "hora"),
        "day" | "days" | "d" | "dia" | "dias" => (DAY_NS, "day", "dia"),
        _ => return None,
    })
}

fn relative(n: i64, unit: (i64, &str, &str), lang: Lang) -> When {
    let (ns, en, pt) = unit;
    let span = n.saturating_mul(ns);
    let label = match (lang, n) {
        (Lang::En, 1) => format!("the last {en}"),
        (Lang::En, _) => format!("the last {n} {en}s"),
        (Lang::Pt, 1) if pt == "hora" => "a última hora".into(),
        (Lang::Pt, 1) => format!("o último {pt}"),
        (Lang::Pt, _) if pt == "hora" => format!("as últimas {n} horas"),
        (Lang::Pt, _) => format!("os últimos {n} {pt}s"),
    };
    When {
        from: format!("now-{}s", span / 1_000_000_000),
        to: "now".into(),
        span_ns: Some(span),
        label,
    }
}

/// The time range of a normalised question (default: the last hour).
fn when(n: &str, lang: Lang, now_ns: i64) -> Result<When, String> {
    let words: Vec<&str> = n.split(' ').collect();
    for (i, w) in words.iter().enumerate() {
        let lead = [
            "last", "past", "previous", "ultimos", "ultimas", "ultimo", "ultima", "nos", "nas",
        ];
        // "last 30 minutes", "últimos 30 minutos", "30m", "2h"
        if let Ok(k) = w.parse::<i64>()
            && let Some(unit) = words.get(i + 1).and_then(|u| unit_ns(u))
        {
            if !(1..=3650).contains(&k) {
                return Err(format!("{k} is not a time range I can use"));
            }
            return Ok(relative(k, unit, lang));
        }
        if let Some(split) = w.find(|c: char| !c.is_ascii_digit())
            && split > 0
            && let (Ok(k), Some(unit)) = (w[..split].parse::<i64>(), unit_ns(&w[split..]))
        {
            if !(1..=3650).contains(&k) {
                return Err(format!("{k} is not a time range I can use"));
            }
            return Ok(relative(k, unit, lang));
        }
        // "last hour", "última hora", "past day"
        if lead.contains(w)
            && let Some(unit) = words.get(i + 1).and_then(|u| unit_ns(u))
        {
            return Ok(relative(1, unit, lang));
        }
    }
    let day_start = now_ns - now_ns.rem_euclid(DAY_NS);
    if any(n, &["today", "hoje"]) {
        return Ok(When {
            from: day_start.to_string(),
            to: "now".into(),
            span_ns: None,
            label: if lang == Lang::Pt { "hoje" } else { "today" }.into(),
        });
    }
    if any(n, &["yesterday", "ontem"]) {
        return Ok(When {
            from: (day_start - DAY_NS).to_string(),
            to: day_start.to_string(),
            span_ns: None,
            label: if lang == Lang::Pt {
                "ontem"
            } else {
                "yesterday"
            }
            .into(),
        });
    }
    Ok(relative(1, (HOUR_NS, "hour", "hora"), lang))
}

/// Text in quotes (`"..."`, `'...'`, `“...”`), if any.
fn quoted(raw: &str) -> Option<String> {
    for (open, close) in [('"', '"'), ('\'', '\''), ('“', '”'), ('`', '`')] {
        if let Some(a) = raw.find(open) {
            let rest = &raw[a + open.len_utf8()..];
            if let Some(b) = rest.find(close) {
                let t = rest[..b].trim();
                if !t.is_empty() {
                    return Some(t.to_owned());
                }
            }
        }
    }
    None
}

/// The text a log search looks for: quoted, or the words after
/// "containing", "with", "matching", "mentioning", "contendo", "com".
fn search_text(raw: &str, norm: &str, services: &[String]) -> Option<String> {
    if let Some(q) = quoted(raw) {
        return Some(q);
    }
    for key in [
        "containing",
        "contain",
        "matching",
        "mentioning",
        "with",
        "that say",
        "saying",
        "contendo",
        "que contem",
        "com o texto",
        "com",
        "mencionando",
    ] {
        let padded = format!(" {norm} ");
        if let Some(at) = padded.find(&format!(" {key} ")) {
            let rest = padded[at + key.len() + 2..].trim();
            // Up to a service or time phrase.
            let stop = [
                " for ", " from ", " of ", " in ", " over ", " during ", " last ", " past ",
                " de ", " do ", " da ", " no ", " na ", " nos ", " nas ", " ultim",
            ];
            let mut end = rest.len();
            for s in stop {
                if let Some(k) = format!(" {rest}").find(s) {
                    end = end.min(k.saturating_sub(0));
                }
            }
            let t = rest[..end.min(rest.len())].trim();
            let t = t
                .trim_start_matches("the text ")
                .trim_start_matches("text ")
                .trim();
            if !t.is_empty() && !services.iter().any(|s| normalize(s) == t) {
                return Some(t.to_owned());
            }
        }
    }
    None
}

/// Services named in the question (whole words, longest names first, so
/// `checkout-api` wins over `checkout`), in order of appearance.
fn services_named(norm: &str, known: &[String]) -> Vec<String> {
    let mut by_len: Vec<&String> = known.iter().collect();
    by_len.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut taken = vec![false; norm.len() + 2];
    let padded = format!(" {norm} ");
    let mut found: Vec<(usize, String)> = Vec::new();
    for s in by_len {
        let forms = [normalize(s), normalize(&s.replace(['-', '_', '.'], " "))];
        for f in forms.iter().filter(|f| !f.is_empty()) {
            let needle = format!(" {f} ");
            let mut from = 0;
            while let Some(k) = padded[from..].find(&needle) {
                let at = from + k;
                let span = at + 1..at + 1 + f.len();
                if !span.clone().any(|i| taken[i]) {
                    span.clone().for_each(|i| taken[i] = true);
                    if !found.iter().any(|(_, n)| n == s) {
                        found.push((at, s.clone()));
                    }
                }
                from = at + 1;
            }
        }
    }
    found.sort();
    found.into_iter().map(|(_, s)| s).collect()
}

/// An operation named: quoted text, a `/path`, or a known operation's
/// name appearing in the question.
fn operation_named(raw: &str, norm: &str, operations: &[String]) -> Option<String> {
    let mut by_len: Vec<&String> = operations.iter().collect();
    by_len.sort_by_key(|s| std::cmp::Reverse(s.len()));
    for op in by_len {
        let n = normalize(op);
        if !n.is_empty() && has(norm, &n) {
            return Some(op.clone());
        }
    }
    if let Some(q) = quoted(raw) {
        return Some(q);
    }
    raw.split_whitespace()
        .find(|w| w.starts_with('/') && w.len() > 1)
        .map(|w| w.trim_end_matches(['?', ',', '.', '!']).to_owned())
}

/// Reads `raw` knowing the tenant's services and the operations of the
/// services it might name (`operations(service)`). `Err` says, in the
/// question's language, why it cannot be answered.
pub fn understand(
    raw: &str,
    known_services: &[String],
    operations: &dyn Fn(&str) -> Vec<String>,
    now_ns: i64,
) -> Result<Question, (Lang, String)> {
    let norm = normalize(raw);
    let lang = language(&norm);
    let Some(intent) = intent(&norm) else {
        return Err((lang, String::new()));
    };
    let when = when(&norm, lang, now_ns).map_err(|e| (lang, e))?;
    let services = services_named(&norm, known_services);
    let mut q = Question {
        intent,
        services,
        operation: None,
        text: None,
        when,
        lang,
    };
    // "calls" without a service, or "errors" asked of the whole system.
    match q.intent {
        Intent::Callees | Intent::Callers if q.services.len() != 1 => {
            if q.services.is_empty() && has(&norm, "services") {
                q.intent = Intent::ListServices;
            } else {
                return Err((lang, String::new()));
            }
        }
        Intent::SearchLogs => {
            q.text = search_text(raw, &norm, known_services);
            if q.text.is_none() {
                return Err((lang, String::new()));
            }
        }
        Intent::ErrorRate | Intent::Latency | Intent::Throughput => {
            if q.services.is_empty() {
                return Err((lang, String::new()));
            }
            if q.services.len() == 1 {
                q.operation = operation_named(raw, &norm, &operations(&q.services[0]));
            }
        }
        Intent::Dashboard | Intent::Troubleshoot if q.services.len() != 1 => {
            return Err((lang, String::new()));
        }
        _ => {}
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> Vec<String> {
        ["checkout", "checkout-api", "payments", "cart", "frontend"]
            .map(String::from)
            .to_vec()
    }

    fn ops(s: &str) -> Vec<String> {
        if s == "checkout" {
            vec!["POST /checkout".into(), "GET /orders".into()]
        } else {
            Vec::new()
        }
    }

    fn ask(q: &str) -> Result<Question, (Lang, String)> {
        understand(q, &known(), &ops, 1_800_000_000_000_000_000)
    }

    #[test]
    fn questions_in_both_languages() {
        let q = ask("What is the error rate of checkout in the last 30 minutes?").expect("en");
        assert_eq!(q.intent, Intent::ErrorRate);
        assert_eq!(q.services, ["checkout"]);
        assert_eq!(q.when.from, "now-1800s");
        assert_eq!(q.lang, Lang::En);
        let q = ask("Qual a taxa de erros do checkout-api nas últimas 2 horas?").expect("pt");
        assert_eq!(q.intent, Intent::ErrorRate);
        assert_eq!(q.services, ["checkout-api"]);
        assert_eq!(q.when.from, "now-7200s");
        assert_eq!(q.lang, Lang::Pt);
        let q = ask("p95 latency of GET /orders on checkout").expect("op");
        assert_eq!(q.intent, Intent::Latency);
        assert_eq!(q.operation.as_deref(), Some("GET /orders"));
        let q = ask("quem chama o payments?").expect("callers");
        assert_eq!(q.intent, Intent::Callers);
        let q = ask("which services does checkout call?").expect("callees");
        assert_eq!(q.intent, Intent::Callees);
        let q = ask("show logs containing \"connection refused\" for payments").expect("logs");
        assert_eq!(q.intent, Intent::SearchLogs);
        assert_eq!(q.text.as_deref(), Some("connection refused"));
        assert_eq!(q.services, ["payments"]);
    }

    #[test]
    fn what_is_not_understood_is_declined() {
        for q in [
            "tell me a joke",
            "what is the error rate?",
            "latency of billing",
            "who calls?",
            "",
        ] {
            assert!(ask(q).is_err(), "{q} was answered: {:?}", ask(q));
        }
    }
}
