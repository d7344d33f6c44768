//! Insights as triggers: what the continuous watch reports (anomalies,
//! new log patterns, capacity) is matched against playbooks like an alert,
//! with the labels `alertname="Insight"`, `kind`, `severity`, `service`,
//! and `operation` and `metric` when the insight has them. An insight
//! triggers once; those already there when a tenant is first looked at
//! (for instance found again after a restart) do not trigger.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex},
};

use ophion_core::TenantId;
use serde_json::Value;

use super::{Heal, HealError, Trigger, model::PlaybookSpec};
use crate::alerts::model::Labels;

/// Where the watch's current insights of a tenant are read.
pub type InsightSource = Arc<dyn Fn(&TenantId) -> Vec<Value> + Send + Sync>;

/// The source, once the server sets it.
#[derive(Default)]
pub(super) struct SourceCell(std::sync::OnceLock<InsightSource>);

impl std::fmt::Debug for SourceCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "InsightSource"
        } else {
            "no insights"
        })
    }
}

/// Insights keys remembered per tenant (the watch keeps far fewer).
const REMEMBERED: usize = 10_000;

/// One tenant's insight keys seen: for lookup, and oldest first.
type Keys = (HashSet<String>, VecDeque<String>);

/// Insights already seen, per tenant.
#[derive(Debug, Default)]
pub(super) struct Seen(Mutex<HashMap<String, Keys>>);

/// The labels a playbook matches an insight by.
pub fn labels_of(i: &Value) -> Labels {
    let mut l = Labels::new();
    l.insert("alertname".into(), "Insight".into());
    for k in ["kind", "severity", "service", "operation", "metric"] {
        if let Some(v) = i[k].as_str().filter(|v| !v.is_empty()) {
            l.insert(k.into(), v.into());
        }
    }
    l
}

impl Heal {
    /// Reads the watch's insights from `source` (the server sets it; without
    /// it, only alerts and people trigger playbooks).
    pub fn read_insights_from(&self, source: InsightSource) {
        let _ = self.insight_source.0.set(source);
    }

    /// New insights of tenants with playbooks trigger those they match.
    pub(super) async fn poll_insights(&self) -> Result<(), HealError> {
        let Some(source) = self.insight_source.0.get() else {
            return Ok(());
        };
        let playbooks = self.store.playbooks(None).await?;
        let mut tenants: Vec<&str> = playbooks.iter().map(|p| p.tenant.as_str()).collect();
        tenants.dedup();
        let mut fresh = Vec::new();
        {
            let mut seen = self
                .seen
                .0
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for t in tenants {
                let tenant = TenantId::new(t).unwrap_or_default();
                let first = !seen.contains_key(t);
                let (set, order) = seen.entry(t.to_owned()).or_default();
                for i in source(&tenant) {
                    let key = format!(
                        "{}|{}|{}|{}|{}",
                        i["kind"], i["service"], i["operation"], i["metric"], i["from"]
                    );
                    if set.insert(key.clone()) {
                        order.push_back(key);
                        if !first {
                            fresh.push((tenant.clone(), i));
                        }
                    }
                }
                while order.len() > REMEMBERED {
                    if let Some(old) = order.pop_front() {
                        set.remove(&old);
                    }
                }
            }
        }
        for (tenant, insight) in fresh {
            let labels = labels_of(&insight);
            for p in playbooks.iter().filter(|p| p.tenant == tenant.as_str()) {
                let Ok(spec) = serde_json::from_value::<PlaybookSpec>(p.spec.clone()) else {
                    continue;
                };
                if spec.matches(&labels) {
                    let trigger = Trigger {
                        source: "insight",
                        labels: labels.clone(),
                        value: insight["value"]
                            .as_f64()
                            .or(insight["score"].as_f64())
                            .unwrap_or(0.0),
                        fingerprint: None,
                        by: None,
                        dry_run: false,
                    };
                    if let Err(e) = self.trigger(&tenant, &p.name, trigger).await {
                        tracing::warn!(playbook = %p.name, error = %e, "healing: trigger failed");
                    }
                }
            }
        }
        Ok(())
    }
}
