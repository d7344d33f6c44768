//! The state machine and the dispatcher, each one SQLite transaction:
//!
//! - [`apply`]: one evaluation of one rule: inactive -> pending -> firing
//!   -> resolved per label set, with history; a newly firing alert joins
//!   an incident ([`ophion_ai::incidents::assign`]).
//! - [`dispatch`]: one tenant's incidents quieted and resolved, alerts
//!   routed to channels (the rule's channels, label routes), silences and
//!   inhibition applied, grouped (by incident, or by a channel's
//!   `group_by`), and what [`ophion_ai::incidents::Policy`] says is due
//!   written to the outbox with the group's new schedule.

use std::collections::{BTreeMap, HashMap};

use ophion_ai::incidents::{
    self, Alert, CorrelateConfig, Due, OpenIncident, Schedule, ServiceGraph, Severity,
};
use ophion_store::{
    metadata::{SqlError, sql::Transaction},
    params,
};
use serde_json::Value;

use super::message::{DIGEST, Routed, message};
use super::model::{ChannelSpec, InhibitSpec, Labels, SilenceSpec, all_match, fingerprint};

/// One row of a rule's result.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Labels (the rule's, the row's, `alertname`, `severity`).
    pub labels: Labels,
    /// Rendered annotations.
    pub annotations: Labels,
    /// The value.
    pub value: f64,
}

#[allow(clippy::too_many_arguments)]
fn history(
    tx: &Transaction<'_>,
    t: &str,
    rule: i64,
    fp: &str,
    labels: &str,
    from: &str,
    to: &str,
    v: f64,
    now: i64,
) -> ophion_store::metadata::sql::Result<()> {
    tx.execute(
        "INSERT INTO alert_history (tenant_id, rule_id, fingerprint, labels, from_state, to_state, value, at_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![t, rule, fp, labels, from, to, v, now],
    )?;
    Ok(())
}

fn member(fp: String, labels: &str, fired: i64) -> Alert {
    let labels: Labels = serde_json::from_str(labels).unwrap_or_default();
    Alert {
        key: fp,
        service: incidents::service_of(&labels),
        severity: Severity::parse(labels.get("severity").map_or("", String::as_str)),
        labels,
        starts_ns: fired,
    }
}

/// `tenant`'s open incidents with their members.
fn open_incidents(
    tx: &Transaction<'_>,
    t: &str,
) -> ophion_store::metadata::sql::Result<Vec<(i64, OpenIncident)>> {
    let mut st = tx.prepare(
        "SELECT i.id, i.quiet_ns, a.fingerprint, a.labels, a.fired_ns FROM incidents i
         LEFT JOIN alerts a ON a.tenant_id = i.tenant_id AND a.incident_id = i.id
         WHERE i.tenant_id = ?1 AND i.resolved_ns IS NULL ORDER BY i.id",
    )?;
    let mut out: Vec<(i64, OpenIncident)> = Vec::new();
    let rows = st.query_map([t], |r| {
        Ok((
            r.get::<i64>(0)?,
            r.get::<Option<i64>>(1)?,
            r.get::<Option<String>>(2)?,
            r.get::<Option<String>>(3)?,
            r.get::<Option<i64>>(4)?,
        ))
    })?;
    for row in rows {
        let (id, quiet, fp, labels, fired) = row?;
        if out.last().is_none_or(|(last, _)| *last != id) {
            out.push((
                id,
                OpenIncident {
                    alerts: Vec::new(),
                    quiet_since_ns: quiet,
                },
            ));
        }
        if let (Some(fp), Some(labels), Some((_, inc))) = (fp, labels, out.last_mut()) {
            inc.alerts.push(member(fp, &labels, fired.unwrap_or(0)));
        }
    }
    Ok(out)
}

/// The incident a newly firing alert joins (created if none fits).
fn join(
    tx: &Transaction<'_>,
    t: &str,
    a: &Alert,
    graph: &ServiceGraph,
    cfg: &CorrelateConfig,
    now: i64,
) -> ophion_store::metadata::sql::Result<i64> {
    let open = open_incidents(tx, t)?;
    let again = open
        .iter()
        .find(|(_, i)| i.alerts.iter().any(|m| m.key == a.key));
    let id = match again {
        Some((id, _)) => *id,
        None => {
            let views: Vec<OpenIncident> = open.iter().map(|(_, i)| i.clone()).collect();
            match incidents::assign(cfg, graph, &views, a) {
                Some(k) => open[k].0,
                None => tx.query_row(
                    "INSERT INTO incidents (tenant_id, opened_ns) VALUES (?1, ?2) RETURNING id",
                    params![t, now],
                    |r| r.get(0),
                )?,
            }
        }
    };
    tx.execute("UPDATE incidents SET quiet_ns = NULL WHERE id = ?1", [id])?;
    Ok(id)
}

/// Applies one evaluation of rule `rule` (alerts fire after `for_ns`).
#[allow(clippy::too_many_arguments)]
pub fn apply(
    tx: &Transaction<'_>,
    t: &str,
    rule: i64,
    for_ns: i64,
    samples: &[Sample],
    graph: &ServiceGraph,
    cfg: &CorrelateConfig,
    now: i64,
) -> ophion_store::metadata::sql::Result<()> {
    let mut current: HashMap<String, (String, i64, Option<i64>)> = HashMap::new();
    {
        let mut st = tx.prepare(
            "SELECT fingerprint, state, active_ns, incident_id FROM alerts WHERE tenant_id = ?1 AND rule_id = ?2 AND state IN ('pending', 'firing')",
        )?;
        for r in st.query_map(params![t, rule], |r| {
            Ok((r.get::<String>(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })? {
            let (fp, state, active, inc) = r?;
            current.insert(fp, (state, active, inc));
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in samples {
        let fp = fingerprint(&s.labels);
        if !seen.insert(fp.clone()) {
            continue;
        }
        let labels = serde_json::to_string(&s.labels).unwrap_or_default();
        let ann = serde_json::to_string(&s.annotations).unwrap_or_default();
        let fire = |tx: &Transaction<'_>,
                    from: &str,
                    active: i64|
         -> ophion_store::metadata::sql::Result<()> {
            let a = member(fp.clone(), &labels, now);
            let inc = join(tx, t, &a, graph, cfg, now)?;
            tx.execute(
                "INSERT INTO alerts (tenant_id, fingerprint, rule_id, labels, annotations, value, state, active_ns, fired_ns, resolved_ns, incident_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'firing', ?7, ?8, NULL, ?9)
                 ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET rule_id = excluded.rule_id, labels = excluded.labels,
                   annotations = excluded.annotations, value = excluded.value, state = excluded.state, active_ns = excluded.active_ns,
                   fired_ns = excluded.fired_ns, resolved_ns = excluded.resolved_ns, incident_id = excluded.incident_id",
                params![t, fp, rule, labels, ann, s.value, active, now, inc],
            )?;
            history(tx, t, rule, &fp, &labels, from, "firing", s.value, now)
        };
        match current.get(&fp) {
            Some((state, active, _)) if state == "pending" => {
                if now - active >= for_ns {
                    fire(tx, "pending", *active)?;
                } else {
                    tx.execute(
                        "UPDATE alerts SET value = ?3, annotations = ?4 WHERE tenant_id = ?1 AND fingerprint = ?2",
                        params![t, fp, s.value, ann],
                    )?;
                }
            }
            Some(_) => {
                tx.execute(
                    "UPDATE alerts SET value = ?3, annotations = ?4 WHERE tenant_id = ?1 AND fingerprint = ?2",
                    params![t, fp, s.value, ann],
                )?;
            }
            None if for_ns == 0 => fire(tx, "inactive", now)?,
            None => {
                // A resolved row of the same labels keeps its incident
                // until this one fires.
                tx.execute(
                    "INSERT INTO alerts (tenant_id, fingerprint, rule_id, labels, annotations, value, state, active_ns)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'pending', ?7)
                     ON CONFLICT (tenant_id, fingerprint) DO UPDATE SET state = 'pending', active_ns = ?7, value = ?6, annotations = ?5, rule_id = ?3",
                    params![t, fp, rule, labels, ann, s.value, now],
                )?;
                history(
                    tx, t, rule, &fp, &labels, "inactive", "pending", s.value, now,
                )?;
            }
        }
    }
    for (fp, (state, _, inc)) in current {
        if seen.contains(&fp) {
            continue;
        }
        let (labels, value): (String, f64) = tx.query_row(
            "SELECT labels, value FROM alerts WHERE tenant_id = ?1 AND fingerprint = ?2",
            params![t, fp],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if state == "pending" {
            if inc.is_some() {
                // Was firing before (a flap that had not fired again yet).
                tx.execute("UPDATE alerts SET state = 'resolved' WHERE tenant_id = ?1 AND fingerprint = ?2", params![t, fp])?;
            } else {
                tx.execute(
                    "DELETE FROM alerts WHERE tenant_id = ?1 AND fingerprint = ?2",
                    params![t, fp],
                )?;
            }
            history(tx, t, rule, &fp, &labels, "pending", "inactive", value, now)?;
        } else {
            tx.execute(
                "UPDATE alerts SET state = 'resolved', resolved_ns = ?3 WHERE tenant_id = ?1 AND fingerprint = ?2",
                params![t, fp, now],
            )?;
            history(tx, t, rule, &fp, &labels, "firing", "resolved", value, now)?;
        }
    }
    Ok(())
}

/// One dispatcher pass over `tenant`.
pub fn dispatch(
    tx: &Transaction<'_>,
    t: &str,
    graph: &ServiceGraph,
    cfg: &CorrelateConfig,
    external: &str,
    now: i64,
) -> ophion_store::metadata::sql::Result<usize> {
    let quiet = cfg.quiet_secs as i64 * 1_000_000_000;
    // Incidents quiet down, then resolve.
    tx.execute(
        "UPDATE incidents SET quiet_ns = (SELECT max(resolved_ns) FROM alerts a WHERE a.tenant_id = incidents.tenant_id AND a.incident_id = incidents.id)
         WHERE tenant_id = ?1 AND resolved_ns IS NULL AND quiet_ns IS NULL
           AND NOT EXISTS (SELECT 1 FROM alerts a WHERE a.tenant_id = incidents.tenant_id AND a.incident_id = incidents.id AND a.state = 'firing')",
        [t],
    )?;
    tx.execute(
        "UPDATE incidents SET resolved_ns = ?2 WHERE tenant_id = ?1 AND resolved_ns IS NULL AND quiet_ns IS NOT NULL AND ?2 - quiet_ns >= ?3",
        params![t, now, quiet],
    )?;
    let json_of = |s: String| serde_json::from_str::<Value>(&s).unwrap_or(Value::Null);
    let mut channels: Vec<(i64, ChannelSpec)> = Vec::new();
    {
        let mut st = tx.prepare("SELECT id, spec FROM alert_channels WHERE tenant_id = ?1")?;
        for r in st.query_map([t], |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)))? {
            let (id, spec) = r?;
            if let Ok(c) = serde_json::from_value::<ChannelSpec>(json_of(spec)) {
                channels.push((id, c));
            }
        }
    }
    if channels.is_empty() {
        return Ok(0);
    }
    let mut rule_channels: HashMap<i64, Vec<String>> = HashMap::new();
    {
        let mut st = tx.prepare("SELECT id, spec FROM alert_rules WHERE tenant_id = ?1")?;
        for r in st.query_map([t], |r| Ok((r.get::<i64>(0)?, r.get::<String>(1)?)))? {
            let (id, spec) = r?;
            let chans = json_of(spec)["channels"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            rule_channels.insert(id, chans);
        }
    }
    let load = |sql: &str| -> ophion_store::metadata::sql::Result<Vec<Value>> {
        let mut st = tx.prepare(sql)?;
        st.query_map([t], |r| r.get::<String>(0))?
            .map(|r| r.map(json_of))
            .collect()
    };
    let silences: Vec<SilenceSpec> = load("SELECT spec FROM alert_silences WHERE tenant_id = ?1")?
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .collect();
    let inhibitions: Vec<InhibitSpec> =
        load("SELECT spec FROM alert_inhibitions WHERE tenant_id = ?1")?
            .into_iter()
            .filter_map(|v| serde_json::from_value(v).ok())
            .collect();
    // Alerts of open incidents and of those resolved but not yet closed
    // in every group.
    let mut alerts: Vec<Routed> = Vec::new();
    let mut resolved_incidents: HashMap<i64, bool> = HashMap::new();
    {
        let mut st = tx.prepare(
            "SELECT a.fingerprint, a.rule_id, a.labels, a.annotations, a.state, a.fired_ns, a.resolved_ns, a.value, i.id, i.resolved_ns
             FROM alerts a JOIN incidents i ON i.id = a.incident_id
             WHERE a.tenant_id = ?1 AND a.fired_ns IS NOT NULL
               AND (i.resolved_ns IS NULL OR EXISTS (SELECT 1 FROM notify_groups g WHERE g.tenant_id = ?1 AND g.closed = 0))",
        )?;
        let rows = st.query_map([t], |r| {
            Ok((
                r.get::<String>(0)?,
                r.get::<i64>(1)?,
                r.get::<String>(2)?,
                r.get::<String>(3)?,
                r.get::<String>(4)?,
                r.get::<i64>(5)?,
                r.get::<Option<i64>>(6)?,
                r.get::<f64>(7)?,
                r.get::<i64>(8)?,
                r.get::<Option<i64>>(9)?,
            ))
        })?;
        for row in rows {
            let (fp, rule, labels, ann, state, fired, resolved, value, inc, inc_resolved) = row?;
            resolved_incidents.insert(inc, inc_resolved.is_some());
            alerts.push(Routed {
                alert: member(fp, &labels, fired),
                rule,
                annotations: serde_json::from_str(&ann).unwrap_or_default(),
                firing: state == "firing",
                fired_ns: fired,
                resolved_ns: resolved,
                value,
                incident: inc,
            });
        }
    }
    let firing_labels: Vec<&Labels> = alerts
        .iter()
        .filter(|a| a.firing)
        .map(|a| &a.alert.labels)
        .collect();
    let muted = |a: &Routed| {
        silences.iter().any(|s| s.silences(&a.alert.labels, now))
            || (a.firing
                && inhibitions
                    .iter()
                    .any(|i| i.inhibits(&a.alert.labels, &firing_labels)))
    };
    let mut queued = 0;
    // Incidents with no critical member: a channel's digest takes them.
    let mut low: HashMap<i64, bool> = HashMap::new();
    for a in &alerts {
        let l = low.entry(a.incident).or_insert(true);
        *l &= a.alert.severity < Severity::Critical;
    }
    for (cid, ch) in &channels {
        let Ok(policy) = ch.policy() else { continue };
        let digest = policy.digest();
        let mut groups: BTreeMap<String, (Labels, Vec<&Routed>)> = BTreeMap::new();
        for a in &alerts {
            let named = rule_channels
                .get(&a.rule)
                .is_some_and(|c| c.contains(&ch.name));
            let routed =
                named || (!ch.matchers.is_empty() && all_match(&ch.matchers, &a.alert.labels));
            if !routed || muted(a) {
                continue;
            }
            let (key, gl) = if digest.is_some() && low.get(&a.incident) == Some(&true) {
                (DIGEST.to_owned(), Labels::new())
            } else if ch.group_by.is_empty() {
                (format!("incident-{}", a.incident), Labels::new())
            } else {
                let gl: Labels = ch
                    .group_by
                    .iter()
                    .map(|k| {
                        (
                            k.clone(),
                            a.alert.labels.get(k).cloned().unwrap_or_default(),
                        )
                    })
                    .collect();
                (format!("{gl:?}"), gl)
            };
            groups
                .entry(key)
                .or_insert_with(|| (gl, Vec::new()))
                .1
                .push(a);
        }
        for (key, (gl, members)) in groups {
            let (sched, closed): (Option<String>, bool) = tx
                .query_row(
                    "SELECT schedule, closed FROM notify_groups WHERE tenant_id = ?1 AND channel_id = ?2 AND group_key = ?3",
                    params![t, cid, key],
                    |r| Ok((Some(r.get(0)?), r.get::<i64>(1)? != 0)),
                )
                .or_else(|e| if e == SqlError::NoRows { Ok((None, false)) } else { Err(e) })?;
            let prior: Option<Schedule> = sched
                .as_deref()
                .filter(|_| !closed)
                .and_then(|t| serde_json::from_str(t).ok());
            // As Alertmanager: a resolved alert is told only to a group
            // that was told it fired (an alert inhibited while it fired
            // resolves silently).
            let members: Vec<&Routed> = members
                .into_iter()
                .filter(|a| {
                    a.firing
                        || prior
                            .as_ref()
                            .is_some_and(|p| p.sent_firing.contains(&a.alert.key))
                })
                .collect();
            if members.is_empty() {
                if prior.is_some() {
                    tx.execute(
                        "UPDATE notify_groups SET closed = 1 WHERE tenant_id = ?1 AND channel_id = ?2 AND group_key = ?3",
                        params![t, cid, key],
                    )?;
                }
                continue;
            }
            let mut firing: Vec<String> = members
                .iter()
                .filter(|a| a.firing)
                .map(|a| a.alert.key.clone())
                .collect();
            firing.sort();
            let resolved = if ch.group_by.is_empty() || key == DIGEST {
                members.iter().all(|a| {
                    resolved_incidents
                        .get(&a.incident)
                        .copied()
                        .unwrap_or(false)
                })
            } else {
                firing.is_empty()
            };
            let mut s: Schedule = match (prior, &sched) {
                (Some(s), _) => s,
                (None, Some(_)) if resolved => continue,
                _ => Schedule {
                    opened_ns: members.iter().map(|a| a.fired_ns).min().unwrap_or(now),
                    ..Schedule::default()
                },
            };
            let timing = match digest {
                Some(d) if key == DIGEST => d,
                _ => policy,
            };
            let status = match timing.due(&s, &firing, resolved, now) {
                Due::Firing => "firing",
                Due::Resolved => "resolved",
                Due::Wait(_) => {
                    if resolved {
                        tx.execute(
                            "INSERT INTO notify_groups (tenant_id, channel_id, group_key, schedule, closed) VALUES (?1, ?2, ?3, ?4, 1) \
                             ON CONFLICT (tenant_id, channel_id, group_key) DO UPDATE SET schedule = excluded.schedule, closed = excluded.closed",
                            params![t, cid, key, serde_json::to_string(&s).unwrap_or_default()],
                        )?;
                    } else if sched.is_none() {
                        tx.execute(
                            "INSERT INTO notify_groups (tenant_id, channel_id, group_key, schedule) VALUES (?1, ?2, ?3, ?4)",
                            params![t, cid, key, serde_json::to_string(&s).unwrap_or_default()],
                        )?;
                    }
                    continue;
                }
            };
            let before =
                |fp: &str, at: i64| super::store::fired_before(tx, t, fp, at).unwrap_or(false);
            let msg = message(status, &key, &gl, &members, graph, external, &before);
            tx.execute(
                "INSERT INTO deliveries (tenant_id, channel_id, group_key, status, message, created_ns, next_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
                params![t, cid, key, status, msg.to_string(), now],
            )?;
            s.sent_ns = Some(now);
            s.sent_firing = firing;
            s.sent_resolved = status == "resolved";
            tx.execute(
                "INSERT INTO notify_groups (tenant_id, channel_id, group_key, schedule, closed) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (tenant_id, channel_id, group_key) DO UPDATE SET schedule = excluded.schedule, closed = excluded.closed",
                params![t, cid, key, serde_json::to_string(&s).unwrap_or_default(), i64::from(s.sent_resolved)],
            )?;
            queued += 1;
        }
    }
    // Resolved alerts of incidents closed an hour ago are history now.
    tx.execute(
        "DELETE FROM alerts WHERE tenant_id = ?1 AND state = 'resolved' AND incident_id IN
           (SELECT id FROM incidents WHERE tenant_id = ?1 AND resolved_ns IS NOT NULL AND ?2 - resolved_ns > 3600000000000)",
        params![t, now],
    )?;
    Ok(queued)
}
