//! What users write: rules, channels, silences and inhibition rules, their
//! checks, label matchers and annotation templates. Nothing here runs a
//! query or sends anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::read::time::duration_ns;

/// Labels of an alert.
pub type Labels = BTreeMap<String, String>;

/// Rule kinds.
pub const RULE_KINDS: [&str; 3] = ["sql", "anomaly", "absence"];
/// Channel kinds.
pub const CHANNEL_KINDS: [&str; 6] = [
    "webhook",
    "slack",
    "pagerduty",
    "teams",
    "email",
    "alertmanager",
];

/// A comparison of a rule's value with its threshold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    /// One of `>`, `>=`, `<`, `<=`, `==`, `!=`.
    pub op: String,
    /// The threshold.
    pub threshold: f64,
}

impl Condition {
    /// Whether `v` meets the condition.
    pub fn holds(&self, v: f64) -> bool {
        match self.op.as_str() {
            ">" => v > self.threshold,
            ">=" => v >= self.threshold,
            "<" => v < self.threshold,
            "<=" => v <= self.threshold,
            "==" => v == self.threshold,
            "!=" => v != self.threshold,
            _ => false,
        }
    }
}

/// A rule as sent and stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique within the tenant; the alerts' `alertname`.
    pub name: String,
    /// One of [`RULE_KINDS`].
    pub kind: String,
    /// `sql`: one read-only query returning one row per group: a numeric
    /// `value` column (or exactly one numeric column) and label columns.
    /// `$from` and `$to` are bound to the last `range`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql: Option<String>,
    /// `anomaly` and `absence`: the service watched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// `anomaly`: `errors`, `latency` or `rate` (a RED series).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// `anomaly` and `absence`: a metric watched instead of a service's
    /// spans (its per-minute mean; with `service`, that service's points).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// `sql`: when an alert is active; `anomaly`: on the anomaly score
    /// (default `> 0.8`); `absence`: not used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<Condition>,
    /// How long the condition must hold before the alert fires.
    #[serde(default = "zero", rename = "for")]
    pub for_: String,
    /// How often the rule is evaluated.
    #[serde(default = "minute")]
    pub interval: String,
    /// The window `$from`..`$to` of a query (`absence`: no data for this
    /// long fires). Default 5m.
    #[serde(default = "five_minutes")]
    pub range: String,
    /// `critical`, `warning` or `info`.
    #[serde(default = "warning")]
    pub severity: String,
    /// Extra labels.
    #[serde(default)]
    pub labels: Labels,
    /// Annotations; templates may use `{{ $value }}`, `{{ $labels.NAME }}`,
    /// `{{ $links.traces }}` and `{{ $links.logs }}`.
    #[serde(default)]
    pub annotations: Labels,
    /// Channels notified (by name).
    #[serde(default)]
    pub channels: Vec<String>,
}

fn zero() -> String {
    "0s".into()
}
fn minute() -> String {
    "1m".into()
}
fn five_minutes() -> String {
    "5m".into()
}
fn warning() -> String {
    "warning".into()
}

/// A duration as written (`30s`, `5m`), in seconds.
pub fn secs(text: &str, what: &str) -> Result<u64, String> {
    duration_ns(text)
        .filter(|n| *n >= 0)
        .map(|n| (n / 1_000_000_000) as u64)
        .ok_or_else(|| format!("`{what}` must be a duration such as 30s, 5m or 1h, not `{text}`"))
}

fn label_name_ok(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !k.starts_with(|c: char| c.is_ascii_digit())
}

impl RuleSpec {
    /// Checks everything but the query itself (the service plans it).
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 200 {
            return Err("`name` must hold 1 to 200 characters".into());
        }
        if !RULE_KINDS.contains(&self.kind.as_str()) {
            return Err(format!(
                "`kind` must be one of {}, not `{}`",
                RULE_KINDS.join(", "),
                self.kind
            ));
        }
        let every = secs(&self.interval, "interval")?;
        if every < 1 {
            return Err("`interval` must be at least 1s".into());
        }
        secs(&self.for_, "for")?;
        if secs(&self.range, "range")? < 1 {
            return Err("`range` must be at least 1s".into());
        }
        if !["critical", "warning", "info"].contains(&self.severity.as_str()) {
            return Err("`severity` must be critical, warning or info".into());
        }
        if let Some(c) = &self.condition
            && !([">", ">=", "<", "<=", "==", "!="].contains(&c.op.as_str())
                && c.threshold.is_finite())
        {
            return Err(
                "`condition.op` must be one of > >= < <= == != with a finite `threshold`".into(),
            );
        }
        for k in self.labels.keys().chain(self.annotations.keys()) {
            if !label_name_ok(k) {
                return Err(format!(
                    "label or annotation name `{k}` must be letters, digits, _ or ."
                ));
            }
        }
        match self.kind.as_str() {
            "sql" => {
                if self.sql.as_deref().is_none_or(|s| s.trim().is_empty()) {
                    return Err("a `sql` rule needs `sql`".into());
                }
                if self.condition.is_none() {
                    return Err(
                        "a `sql` rule needs a `condition` ({\"op\": \">\", \"threshold\": 10})"
                            .into(),
                    );
                }
            }
            "anomaly" if self.metric.is_none() => {
                if self.service.is_none() {
                    return Err(
                        "an `anomaly` rule needs `metric`, or `service` and `signal`".into(),
                    );
                }
                if !["errors", "latency", "rate"].contains(&self.signal.as_deref().unwrap_or("")) {
                    return Err("an `anomaly` rule needs `signal`: errors, latency or rate".into());
                }
            }
            "anomaly" => {}
            _ => {
                if self.service.is_none() && self.metric.is_none() {
                    return Err("an `absence` rule needs `service` or `metric`".into());
                }
            }
        }
        Ok(())
    }

    /// The query this rule runs, whatever its kind.
    pub fn query(&self) -> String {
        match self.kind.as_str() {
            "absence" if self.metric.is_some() => format!(
                "SELECT count(*) AS value FROM metrics WHERE metric_name = $metric{} AND timestamp >= $from AND timestamp < $to",
                if self.service.is_some() { " AND service_name = $service" } else { "" }
            ),
            "absence" => "SELECT count(*) AS value FROM spans WHERE service_name = $service AND start_time >= $from AND start_time < $to".into(),
            _ => self.sql.clone().unwrap_or_default(),
        }
    }

    /// The condition in force.
    pub fn condition(&self) -> Condition {
        match (self.kind.as_str(), &self.condition) {
            ("absence", _) => Condition {
                op: "<".into(),
                threshold: 1.0,
            },
            (_, Some(c)) => c.clone(),
            _ => Condition {
                op: ">".into(),
                threshold: 0.8,
            },
        }
    }
}

/// A label matcher, as Alertmanager writes them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Matcher {
    /// Label name.
    pub name: String,
    /// Value or regular expression (anchored).
    pub value: String,
    /// Whether `value` is a regular expression.
    #[serde(default)]
    pub is_regex: bool,
    /// `true` for = and =~, `false` for != and !~.
    #[serde(default = "yes")]
    pub is_equal: bool,
}

fn yes() -> bool {
    true
}

impl Matcher {
    /// Checks the regular expression.
    pub fn validate(&self) -> Result<(), String> {
        if self.is_regex {
            regex::Regex::new(&format!("^(?:{})$", self.value))
                .map_err(|e| format!("matcher `{}`: bad regular expression: {e}", self.name))?;
        }
        Ok(())
    }

    /// Whether `labels` match (a missing label is the empty string).
    pub fn matches(&self, labels: &Labels) -> bool {
        let v = labels.get(&self.name).map_or("", String::as_str);
        let hit = if self.is_regex {
            regex::Regex::new(&format!("^(?:{})$", self.value)).is_ok_and(|r| r.is_match(v))
        } else {
            v == self.value
        };
        hit == self.is_equal
    }
}

/// Whether every matcher matches.
pub fn all_match(ms: &[Matcher], labels: &Labels) -> bool {
    ms.iter().all(|m| m.matches(labels))
}

/// A silence or maintenance window (`/api/v1/silences`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SilenceSpec {
    /// Which alerts it silences (all must match).
    pub matchers: Vec<Matcher>,
    /// From (RFC 3339).
    pub starts_at: String,
    /// Until (RFC 3339).
    pub ends_at: String,
    /// Why.
    #[serde(default)]
    pub comment: String,
    /// A maintenance window that comes back: `starts_at`..`ends_at`
    /// again every this long (`24h`, `168h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<String>,
}

impl SilenceSpec {
    /// Checks it and returns its `[start, end)` and period, ns.
    pub fn window(&self) -> Result<(i64, i64, Option<i64>), String> {
        if self.matchers.is_empty() {
            return Err("a silence needs at least one matcher".into());
        }
        for m in &self.matchers {
            m.validate()?;
        }
        let at = |t: &str, what: &str| {
            crate::read::time::instant(t, crate::read::now_ns())
                .map_err(|_| format!("`{what}` must be an RFC 3339 time"))
        };
        let (s, e) = (
            at(&self.starts_at, "startsAt")?,
            at(&self.ends_at, "endsAt")?,
        );
        if e <= s {
            return Err("`endsAt` must be after `startsAt`".into());
        }
        let every = match &self.every {
            Some(p) => {
                let p = secs(p, "every")? as i64 * 1_000_000_000;
                if p < e - s {
                    return Err("`every` must be at least as long as the window".into());
                }
                Some(p)
            }
            None => None,
        };
        Ok((s, e, every))
    }

    /// Whether it is in force at `now` and matches `labels`.
    pub fn silences(&self, labels: &Labels, now: i64) -> bool {
        let Ok((s, e, every)) = self.window() else {
            return false;
        };
        let on = match every {
            None => now >= s && now < e,
            Some(p) => now >= s && (now - s) % p < e - s,
        };
        on && all_match(&self.matchers, labels)
    }
}

/// An inhibition rule, as Alertmanager defines it: while an alert matching
/// `source_matchers` fires, alerts matching `target_matchers` with the same
/// values of the `equal` labels are not notified.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InhibitSpec {
    /// The inhibiting alerts.
    pub source_matchers: Vec<Matcher>,
    /// The inhibited alerts.
    pub target_matchers: Vec<Matcher>,
    /// Labels both must share.
    #[serde(default)]
    pub equal: Vec<String>,
}

impl InhibitSpec {
    /// Whether `target` is inhibited by one of `firing`.
    pub fn inhibits(&self, target: &Labels, firing: &[&Labels]) -> bool {
        all_match(&self.target_matchers, target)
            && firing.iter().any(|src| {
                *src != target
                    && all_match(&self.source_matchers, src)
                    && self.equal.iter().all(|k| src.get(k) == target.get(k))
            })
    }
}

/// A channel as sent: `name`, `kind`, `url`, `secret` and kind-specific
/// fields, plus routing and timing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelSpec {
    /// Unique within the tenant.
    pub name: String,
    /// One of [`CHANNEL_KINDS`].
    pub kind: String,
    /// Where it posts (http or https); `email`: `smtp://host:port` or
    /// `smtps://host:port`.
    #[serde(default)]
    pub url: String,
    /// Webhook: the HMAC-SHA256 key; PagerDuty: the routing key; email:
    /// the SMTP password. Never returned.
    #[serde(default, skip_serializing)]
    pub secret: Option<String>,
    /// Also receive alerts whose labels match these (a label route), beside
    /// the rules that name this channel.
    #[serde(default)]
    pub matchers: Vec<Matcher>,
    /// Group alerts by these labels instead of by incident.
    #[serde(default)]
    pub group_by: Vec<String>,
    /// Group timing (Alertmanager's defaults: 30s, 5m, 4h).
    #[serde(default)]
    pub group_wait: Option<String>,
    /// See `group_wait`.
    #[serde(default)]
    pub group_interval: Option<String>,
    /// See `group_wait`.
    #[serde(default)]
    pub repeat_interval: Option<String>,
    /// Most messages a minute (default 30).
    #[serde(default)]
    pub rate_per_minute: Option<u32>,
    /// Tell incidents with no critical alert together, in one digest
    /// message at most this often (`30m`), instead of one by one (off by
    /// default; see [`ophion_ai::incidents::Policy::digest_secs`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// Kind-specific fields (email: `to`, `from`, `username`, `starttls`,
    /// `ca_pem`).
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl ChannelSpec {
    /// Checks it.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() || self.name.len() > 100 {
            return Err("`name` must hold 1 to 100 characters".into());
        }
        if !CHANNEL_KINDS.contains(&self.kind.as_str()) {
            return Err(format!(
                "`kind` must be one of {}, not `{}`",
                CHANNEL_KINDS.join(", "),
                self.kind
            ));
        }
        let url = reqwest::Url::parse(&self.url)
            .map_err(|_| format!("`url` is not a URL: `{}`", self.url))?;
        let schemes: &[&str] = if self.kind == "email" {
            &["smtp", "smtps"]
        } else {
            &["http", "https"]
        };
        if !schemes.contains(&url.scheme()) || url.host_str().is_none() {
            return Err(format!(
                "`url` of a {} channel must be {} with a host",
                self.kind,
                schemes.join(" or ")
            ));
        }
        if self.kind == "pagerduty" && self.secret.is_none() {
            return Err("a pagerduty channel needs `secret`: the integration's routing key".into());
        }
        if self.kind == "email" && self.extra.get("to").and_then(Value::as_str).is_none() {
            return Err("an email channel needs `to`".into());
        }
        for m in &self.matchers {
            m.validate()?;
        }
        self.policy()?;
        Ok(())
    }

    /// Its group timing.
    pub fn policy(&self) -> Result<ophion_ai::incidents::Policy, String> {
        let d = ophion_ai::incidents::Policy::default();
        let pick = |v: &Option<String>, what: &str, default: u64| match v {
            Some(t) => secs(t, what),
            None => Ok(default),
        };
        Ok(ophion_ai::incidents::Policy {
            group_wait_secs: pick(&self.group_wait, "group_wait", d.group_wait_secs)?,
            group_interval_secs: pick(
                &self.group_interval,
                "group_interval",
                d.group_interval_secs,
            )?
            .max(1),
            repeat_interval_secs: pick(
                &self.repeat_interval,
                "repeat_interval",
                d.repeat_interval_secs,
            )?,
            digest_secs: pick(&self.digest, "digest", 0)?,
        })
    }
}

/// The fingerprint of a label set: FNV-1a 64 over the sorted pairs, in
/// hex, as Alertmanager's are.
pub fn fingerprint(labels: &Labels) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for (k, v) in labels {
        for b in k.bytes().chain([0xff]).chain(v.bytes()).chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{h:016x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matchers_silences_and_inhibition_follow_alertmanager() {
        let l = |pairs: &[(&str, &str)]| -> Labels {
            pairs
                .iter()
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .collect()
        };
        let m = |n: &str, v: &str, re: bool, eq: bool| Matcher {
            name: n.into(),
            value: v.into(),
            is_regex: re,
            is_equal: eq,
        };
        let a = l(&[("service", "checkout"), ("severity", "warning")]);
        assert!(m("service", "check.*", true, true).matches(&a));
        assert!(!m("service", "check", true, true).matches(&a), "anchored");
        assert!(m("team", "", false, true).matches(&a), "missing is empty");
        assert!(m("severity", "critical", false, false).matches(&a));
        let s = SilenceSpec {
            matchers: vec![m("service", "checkout", false, true)],
            starts_at: "2026-01-05T02:00:00Z".into(),
            ends_at: "2026-01-05T03:00:00Z".into(),
            comment: String::new(),
            every: Some("168h".into()),
        };
        let t = |x: &str| crate::read::time::instant(x, 0).expect("time");
        assert!(s.silences(&a, t("2026-01-05T02:30:00Z")));
        assert!(s.silences(&a, t("2026-01-12T02:59:00Z")), "next week");
        assert!(!s.silences(&a, t("2026-01-12T03:00:00Z")));
        assert!(!s.silences(&l(&[("service", "cart")]), t("2026-01-05T02:30:00Z")));
        let inh = InhibitSpec {
            source_matchers: vec![m("severity", "critical", false, true)],
            target_matchers: vec![m("severity", "warning", false, true)],
            equal: vec!["service".into()],
        };
        let crit = l(&[("service", "checkout"), ("severity", "critical")]);
        let other = l(&[("service", "cart"), ("severity", "critical")]);
        assert!(inh.inhibits(&a, &[&crit]));
        assert!(!inh.inhibits(&a, &[&other]), "equal labels differ");
        assert!(!inh.inhibits(&crit, &[&crit]));
    }
}
