//! One log record's text as an OTLP log record: JSON lines, logfmt
//! (`level=info msg="..."`), and plain text with a leading timestamp and
//! a level word. Whatever is not recognised stays in the body.

use opentelemetry_proto::tonic::{
    common::v1::{AnyValue, KeyValue, any_value::Value},
    logs::v1::LogRecord,
};

/// OTLP severity numbers of a level word (case-insensitive).
pub fn severity(word: &str) -> Option<(i32, &'static str)> {
    let w = word
        .trim_matches(|c: char| !c.is_ascii_alphabetic())
        .to_ascii_lowercase();
    Some(match w.as_str() {
        "trace" | "trc" | "finest" => (1, "TRACE"),
        "debug" | "dbg" | "fine" => (5, "DEBUG"),
        "info" | "inf" | "information" | "notice" => (9, "INFO"),
        "warn" | "warning" | "wrn" => (13, "WARN"),
        "error" | "err" | "eror" | "severe" => (17, "ERROR"),
        "fatal" | "crit" | "critical" | "panic" | "emerg" | "alert" => (21, "FATAL"),
        _ => return None,
    })
}

fn text(v: impl Into<String>) -> Option<AnyValue> {
    Some(AnyValue {
        value: Some(Value::StringValue(v.into())),
    })
}

fn kv(key: &str, value: Option<AnyValue>) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value,
        ..Default::default()
    }
}

fn json_value(v: &serde_json::Value) -> Option<AnyValue> {
    use serde_json::Value as J;
    let value = match v {
        J::Null => return None,
        J::Bool(b) => Value::BoolValue(*b),
        J::Number(n) => match n.as_i64() {
            Some(i) => Value::IntValue(i),
            None => Value::DoubleValue(n.as_f64().unwrap_or(0.0)),
        },
        J::String(s) => Value::StringValue(s.clone()),
        other => Value::StringValue(other.to_string()),
    };
    Some(AnyValue { value: Some(value) })
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Nanoseconds since the epoch of an ISO 8601 / RFC 3339 timestamp at the
/// start of `s` (`2024-05-01T12:00:00.123Z`, `2024-05-01 12:00:00,123`,
/// with or without an offset; none is UTC), and how many bytes it took.
pub fn timestamp(s: &str) -> Option<(u64, usize)> {
    let b = s.as_bytes();
    let num = |from: usize, n: usize| -> Option<i64> {
        let part = s.get(from..from + n)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let (y, mo, d) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    if b.get(4) != Some(&b'-') || b.get(7) != Some(&b'-') || !matches!(b.get(10), Some(b'T' | b' '))
    {
        return None;
    }
    let (h, mi, sec) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if b.get(13) != Some(&b':')
        || b.get(16) != Some(&b':')
        || mo > 12
        || d > 31
        || h > 23
        || mi > 59
        || sec > 60
    {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0i64;
    if matches!(b.get(i), Some(b'.' | b',')) {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        let frac = &s[start..i];
        let digits: String = frac.chars().chain("000000000".chars()).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    let mut offset = 0i64;
    match b.get(i) {
        Some(b'Z' | b'z') => i += 1,
        Some(sign @ (b'+' | b'-')) => {
            let oh = num(i + 1, 2)?;
            let om = if b.get(i + 3) == Some(&b':') {
                num(i + 4, 2)?
            } else {
                num(i + 3, 2)?
            };
            let len = if b.get(i + 3) == Some(&b':') { 6 } else { 5 };
            offset = (oh * 60 + om) * 60 * if *sign == b'+' { 1 } else { -1 };
            i += len;
        }
        _ => {}
    }
    let secs = days(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec - offset;
    u64::try_from(secs * 1_000_000_000 + nanos)
        .ok()
        .map(|t| (t, i))
}

/// Splits logfmt `key=value key2="quoted value"` pairs; `None` unless
/// the whole text is pairs.
fn logfmt(s: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let eq = rest.find('=')?;
        let key = &rest[..eq];
        if key.is_empty() || key.contains(char::is_whitespace) || key.contains('"') {
            return None;
        }
        rest = &rest[eq + 1..];
        let value;
        if let Some(r) = rest.strip_prefix('"') {
            let mut end = None;
            let mut escaped = false;
            for (i, c) in r.char_indices() {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        end = Some(i);
                        break;
                    }
                    _ => escaped = false,
                }
            }
            let end = end?;
            value = r[..end].replace("\\\"", "\"");
            rest = &r[end + 1..];
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            value = rest[..end].to_owned();
            rest = &rest[end..];
        }
        out.push((key.to_owned(), value));
        rest = rest.trim_start();
    }
    (out.len() >= 2).then_some(out)
}

const MESSAGE_KEYS: [&str; 5] = ["msg", "message", "log", "body", "text"];
const LEVEL_KEYS: [&str; 5] = ["level", "severity", "lvl", "loglevel", "log.level"];
const TIME_KEYS: [&str; 5] = ["time", "timestamp", "ts", "@timestamp", "datetime"];

/// `text` as a log record observed at `observed_ns`.
pub fn record(line: &str, observed_ns: u64) -> LogRecord {
    let mut r = LogRecord {
        observed_time_unix_nano: observed_ns,
        ..Default::default()
    };
    let trimmed = line.trim_end_matches(['\n', '\r']);
    // JSON lines.
    if trimmed.starts_with('{')
        && let Ok(serde_json::Value::Object(map)) =
            serde_json::from_str::<serde_json::Value>(trimmed)
    {
        for (k, v) in &map {
            let key = k.as_str();
            if MESSAGE_KEYS.contains(&key) && r.body.is_none() {
                r.body = json_value(v);
            } else if LEVEL_KEYS.contains(&key) && r.severity_text.is_empty() {
                let word = v
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| v.to_string());
                if let Some((n, _)) = severity(&word) {
                    r.severity_number = n;
                }
                r.severity_text = word;
            } else if TIME_KEYS.contains(&key) && r.time_unix_nano == 0 {
                r.time_unix_nano = match v {
                    serde_json::Value::String(s) => timestamp(s).map_or(0, |t| t.0),
                    // Epoch seconds, milliseconds, microseconds or nanoseconds.
                    serde_json::Value::Number(n) => {
                        let f = n.as_f64().unwrap_or(0.0);
                        let scale = if f > 1e17 {
                            1.0
                        } else if f > 1e14 {
                            1e3
                        } else if f > 1e11 {
                            1e6
                        } else {
                            1e9
                        };
                        (f * scale) as u64
                    }
                    _ => 0,
                };
                if r.time_unix_nano == 0 {
                    r.attributes.push(kv(key, json_value(v)));
                }
            } else {
                r.attributes.push(kv(key, json_value(v)));
            }
        }
        if r.body.is_none() {
            r.body = text(trimmed);
        }
        return r;
    }
    // logfmt.
    if let Some(pairs) = logfmt(trimmed) {
        for (k, v) in pairs {
            let key = k.as_str();
            if MESSAGE_KEYS.contains(&key) && r.body.is_none() {
                r.body = text(v);
            } else if LEVEL_KEYS.contains(&key) && r.severity_text.is_empty() {
                if let Some((n, _)) = severity(&v) {
                    r.severity_number = n;
                }
                r.severity_text = v;
            } else if TIME_KEYS.contains(&key) && r.time_unix_nano == 0 && timestamp(&v).is_some() {
                r.time_unix_nano = timestamp(&v).map_or(0, |t| t.0);
            } else {
                r.attributes.push(kv(key, text(v)));
            }
        }
        if r.body.is_none() {
            r.body = text(trimmed);
        }
        return r;
    }
    // Plain text: a leading timestamp (possibly in brackets), then the
    // first level word among the next few words.
    let unbracketed = trimmed.trim_start_matches('[');
    if let Some((t, _)) = timestamp(unbracketed) {
        r.time_unix_nano = t;
    }
    for word in trimmed.split_whitespace().take(6) {
        if let Some((n, name)) = severity(word) {
            // Only a word that looks like a level: upper case, or in
            // brackets (`[info]`), or followed by a colon.
            let bare = word.trim_matches(|c: char| !c.is_ascii_alphabetic());
            if bare.chars().all(|c| c.is_ascii_uppercase())
                || word.starts_with('[')
                || word.ends_with(':')
            {
                r.severity_number = n;
                r.severity_text = name.to_owned();
                break;
            }
        }
    }
    r.body = text(trimmed);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(r: &LogRecord) -> String {
        match r.body.as_ref().and_then(|b| b.value.as_ref()) {
            Some(Value::StringValue(s)) => s.clone(),
            other => format!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_in_the_usual_shapes() {
        let base = 1_714_564_800_000_000_000u64; // 2024-05-01T12:00:00Z
        assert_eq!(timestamp("2024-05-01T12:00:00Z").map(|t| t.0), Some(base));
        assert_eq!(
            timestamp("2024-05-01 12:00:00,250 INFO x").map(|t| t.0),
            Some(base + 250_000_000)
        );
        assert_eq!(
            timestamp("2024-05-01T14:00:00.000001+02:00").map(|t| t.0),
            Some(base + 1_000)
        );
        assert_eq!(
            timestamp("2024-05-01T07:00:00-0500").map(|t| t.0),
            Some(base)
        );
        assert_eq!(timestamp("not a time"), None);
        assert_eq!(timestamp("2024-13-01T00:00:00Z"), None);
    }

    #[test]
    fn json_logfmt_and_plain_lines_give_body_level_time_and_attributes() {
        let r = record(
            r#"{"time":"2024-05-01T12:00:00Z","level":"warn","msg":"disk slow","disk":"sda","ms":31}"#,
            7,
        );
        assert_eq!(body(&r), "disk slow");
        assert_eq!((r.severity_number, r.severity_text.as_str()), (13, "warn"));
        assert_eq!(r.time_unix_nano, 1_714_564_800_000_000_000);
        assert_eq!(r.attributes.len(), 2);
        let r = record(
            r#"{"ts":1714564800.5,"severity":"ERROR","message":"boom"}"#,
            7,
        );
        assert_eq!(r.time_unix_nano, 1_714_564_800_500_000_000);
        assert_eq!(r.severity_number, 17);
        let r = record(
            r#"time=2024-05-01T12:00:00Z level=error msg="payment \"42\" failed" order=42"#,
            7,
        );
        assert_eq!(body(&r), r#"payment "42" failed"#);
        assert_eq!(r.severity_number, 17);
        assert_eq!(r.attributes[0].key, "order");
        let r = record(
            "2024-05-01 12:00:00,000 [main] ERROR com.shop.Cart - checkout failed",
            7,
        );
        assert_eq!(r.severity_number, 17);
        assert_eq!(r.time_unix_nano, 1_714_564_800_000_000_000);
        let r = record("[2024-05-01T12:00:00Z] [info] started", 7);
        assert_eq!(r.severity_number, 9);
        // "error" in prose is not a level.
        let r = record("user typed an error message", 7);
        assert_eq!(r.severity_number, 0);
        assert_eq!(r.observed_time_unix_nano, 7);
    }
}
