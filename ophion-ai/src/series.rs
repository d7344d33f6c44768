//! Reading time series from text: timestamps as Unix seconds (integer or
//! fractional, or milliseconds/nanoseconds when that large) or as ISO 8601
//! dates (`2014-07-01 00:30:00`, `2014-07-01T00:30:00.000Z`), always read
//! as UTC.

/// Days since 1970-01-01 of a proleptic Gregorian date.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the Unix epoch for a timestamp in one of the accepted
/// forms; `None` when it is none of them.
pub fn parse_timestamp(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        // Milliseconds, microseconds or nanoseconds by magnitude.
        return Some(match n.unsigned_abs() {
            0..100_000_000_000 => n,
            100_000_000_000..100_000_000_000_000 => n / 1_000,
            100_000_000_000_000..100_000_000_000_000_000 => n / 1_000_000,
            _ => n / 1_000_000_000,
        });
    }
    if let Ok(f) = s.parse::<f64>() {
        return f.is_finite().then_some(f.floor() as i64);
    }
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> { s.get(r)?.parse().ok() };
    if b.len() < 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let (y, mo, d) = (i64::from(num(0..4)?), num(5..7)?, num(8..10)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
        return None;
    }
    let mut secs = days_from_civil(y, mo, d) * 86_400;
    if b.len() >= 19 && matches!(b[10], b' ' | b'T') && b[13] == b':' && b[16] == b':' {
        let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
        if h > 23 || mi > 59 || se > 60 {
            return None;
        }
        secs += i64::from(h * 3600 + mi * 60 + se);
    } else if b.len() != 10 {
        return None;
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_every_accepted_form() {
        assert_eq!(parse_timestamp("1970-01-01 00:00:00"), Some(0));
        assert_eq!(parse_timestamp("2014-07-01 00:30:00"), Some(1_404_174_600));
        assert_eq!(
            parse_timestamp("2014-07-01T00:30:00.000Z"),
            Some(1_404_174_600)
        );
        assert_eq!(parse_timestamp("2000-03-01"), Some(951_868_800));
        assert_eq!(parse_timestamp("1404174600"), Some(1_404_174_600));
        assert_eq!(parse_timestamp("1404174600000"), Some(1_404_174_600));
        assert_eq!(parse_timestamp("1404174600.5"), Some(1_404_174_600));
        assert_eq!(parse_timestamp("2014-13-01"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }
}
