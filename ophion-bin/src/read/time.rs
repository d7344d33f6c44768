//! Times as users and tools write them: RFC 3339 text
//! (`2026-11-28T10:00:00Z`), unix nanoseconds, `now`, or `now-<duration>`
//! with `ms`, `s`, `m`, `h`, `d` units (`now-15m`); ranges default to the
//! last hour. The API's query strings and the copilot's tools share them.

use super::{Range, ReadError, now_ns};

/// An hour in nanoseconds.
pub const HOUR_NS: i64 = 3_600_000_000_000;

/// Latest time accepted: 2100-01-01T00:00:00Z. With the earliest, 1970,
/// every range, its length and small multiples of it fit an `i64` of
/// nanoseconds, so nothing downstream can overflow.
pub const MAX_NS: i64 = 4_102_444_800_000_000_000;

/// A duration such as `15m`, `1h`, `7d`, `30s`, in nanoseconds.
pub fn duration_ns(text: &str) -> Option<i64> {
    let text = text.trim();
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = text.split_at(split);
    let n: i64 = n.parse().ok()?;
    let unit_ns: i64 = match unit {
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60_000_000_000,
        "h" => HOUR_NS,
        "d" => 24 * HOUR_NS,
        _ => return None,
    };
    n.checked_mul(unit_ns)
}

/// One instant, relative to `now`.
pub fn instant(text: &str, now: i64) -> Result<i64, ReadError> {
    let t = text.trim();
    if t == "now" {
        return Ok(now);
    }
    if let Some(rest) = t.strip_prefix("now-") {
        return duration_ns(rest)
            .and_then(|d| now.checked_sub(d))
            .ok_or_else(|| {
                ReadError::BadRequest(format!("`{t}`: use now-<n><s|m|h|d>, e.g. now-15m"))
            });
    }
    if let Some(rest) = t.strip_prefix("now+") {
        return duration_ns(rest)
            .and_then(|d| now.checked_add(d))
            .ok_or_else(|| {
                ReadError::BadRequest(format!("`{t}`: use now+<n><s|m|h|d>, e.g. now+2h"))
            });
    }
    if let Ok(ns) = t.parse::<i64>() {
        return Ok(ns);
    }
    arrow_cast::parse::string_to_timestamp_nanos(t).map_err(|_| {
        ReadError::BadRequest(format!(
            "`{t}` is not a time: use RFC 3339 (2026-11-28T10:00:00Z), unix nanoseconds, now, now-15m or now+2h"
        ))
    })
}

/// `from` and `to` as sent, resolved: the hour before `to` when `from` is
/// missing, `to` now when missing; both between 1970 and 2100, `from`
/// first.
pub fn resolve(from: Option<&str>, to: Option<&str>) -> Result<Range, ReadError> {
    resolve_at(from, to, now_ns())
}

/// [`resolve`] with `now` given.
pub fn resolve_at(from: Option<&str>, to: Option<&str>, now: i64) -> Result<Range, ReadError> {
    let to = match to {
        Some(t) => instant(t, now)?,
        None => now,
    };
    let from = match from {
        Some(f) => instant(f, now)?,
        None => to.saturating_sub(HOUR_NS).max(0),
    };
    for t in [from, to] {
        if !(0..=MAX_NS).contains(&t) {
            return Err(ReadError::BadRequest(format!(
                "time {t} ns is out of range: times are between 1970 and 2100"
            )));
        }
    }
    if from >= to {
        return Err(ReadError::BadRequest("`from` must be before `to`".into()));
    }
    Ok(Range { from, to })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_every_documented_form() {
        let now = 1_800_000_000_000_000_000;
        assert_eq!(instant("now", now).expect("now"), now);
        assert_eq!(instant("now-15m", now).expect("rel"), now - 900_000_000_000);
        assert_eq!(instant("now+2h", now).expect("ahead"), now + 2 * HOUR_NS);
        assert_eq!(instant("12345", now).expect("ns"), 12345);
        assert_eq!(
            instant("2023-11-14T22:13:20Z", now).expect("rfc3339"),
            1_700_000_000_000_000_000
        );
        assert!(instant("yesterday", now).is_err());
        assert!(instant("now-5y", now).is_err());
        assert!(
            instant(&format!("now-{}d", i64::MAX), now).is_err(),
            "no overflow"
        );
        for (f, t) in [
            (i64::MIN.to_string(), "now".to_owned()),
            ("0".to_owned(), i64::MAX.to_string()),
            ("-1".to_owned(), "5".to_owned()),
            ("now-106751d".to_owned(), "now".to_owned()),
        ] {
            assert!(resolve(Some(&f), Some(&t)).is_err(), "{f}..{t}");
        }
        assert!(resolve(None, Some("1")).is_ok(), "defaults clamp at 1970");
        assert_eq!(duration_ns("7d"), Some(7 * 24 * HOUR_NS));
        let r = resolve(Some("now-2h"), None).expect("range");
        assert_eq!(r.to - r.from, 2 * HOUR_NS);
        assert!(resolve(Some("now"), Some("now-1h")).is_err());
    }
}
