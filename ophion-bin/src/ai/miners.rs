//! Each tenant's log-template miner. It is loaded from the metadata
//! database on first use and saved when it learns something, so a template
//! keeps its id across requests and restarts.

use std::collections::{HashMap, hash_map::Entry};

use ophion_ai::patterns::{MinerState, TemplateMiner};
use ophion_core::TenantId;
use ophion_store::metadata::Metadata;
use ophion_store::{
    metadata::{Dialect, Migrations, OptionalExtension as _},
    params,
};

use super::AiError;

/// The AI service's tables, in order. Never edit a released migration.
const MIGRATIONS: Migrations = Migrations {
    sqlite: &[
        // 1: saved template miners, one row per tenant.
        "CREATE TABLE ai_log_templates (
            tenant_id TEXT PRIMARY KEY,
            state TEXT NOT NULL
        );",
    ],
    postgres: None,
};

/// Where releases before the AI service had its own table kept miners.
const LEGACY_PREFIX: &str = "ai.log_templates.";

#[derive(Debug)]
pub(super) struct Miners {
    metadata: Metadata,
    loaded: tokio::sync::Mutex<HashMap<TenantId, TemplateMiner>>,
}

impl Miners {
    /// Migrates the table (moving miners saved by older releases) and
    /// starts with none loaded.
    pub(super) async fn open(metadata: Metadata) -> Result<Self, AiError> {
        metadata.migrate("ai", &MIGRATIONS).await?;
        metadata
            .call(|c| {
                // Only an embedded database can be of a release that kept
                // miners in its settings.
                let legacy: bool = c.dialect() == Dialect::Sqlite
                    && c.query_row(
                        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'settings'",
                        params![],
                        |r| r.get(0),
                    )?;
                if legacy {
                    let tx = c.transaction()?;
                    tx.execute(
                        "INSERT INTO ai_log_templates (tenant_id, state) \
                         SELECT substr(key, ?1), value FROM settings WHERE key LIKE ?2 \
                         ON CONFLICT DO NOTHING",
                        ((LEGACY_PREFIX.len() + 1) as i64, format!("{LEGACY_PREFIX}%")),
                    )?;
                    tx.execute(
                        "DELETE FROM settings WHERE key LIKE ?1",
                        [format!("{LEGACY_PREFIX}%")],
                    )?;
                    tx.commit()?;
                }
                Ok(())
            })
            .await?;
        Ok(Self {
            metadata,
            loaded: tokio::sync::Mutex::default(),
        })
    }

    async fn load(&self, tenant: &TenantId) -> Result<TemplateMiner, AiError> {
        let id = tenant.as_str().to_owned();
        let saved: Option<String> = self
            .metadata
            .call(move |c| {
                c.query_row(
                    "SELECT state FROM ai_log_templates WHERE tenant_id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        Ok(saved
            .and_then(|json| serde_json::from_str::<MinerState>(&json).ok())
            .map_or_else(TemplateMiner::default, TemplateMiner::restore))
    }

    async fn save(&self, tenant: &TenantId, miner: &TemplateMiner) -> Result<(), AiError> {
        let id = tenant.as_str().to_owned();
        let json = serde_json::to_string(&miner.state())
            .map_err(|e| ophion_store::Error::Corrupt(format!("log templates: {e}")))?;
        self.metadata
            .call(move |c| {
                c.execute(
                    "INSERT INTO ai_log_templates (tenant_id, state) VALUES (?1, ?2) \
                     ON CONFLICT (tenant_id) DO UPDATE SET state = excluded.state",
                    [&id, &json],
                )
            })
            .await?;
        Ok(())
    }

    /// Runs `f` on the tenant's miner (loading it on first use) and saves
    /// the miner when `f` taught it anything.
    pub(super) async fn with<R>(
        &self,
        tenant: &TenantId,
        f: impl FnOnce(&mut TemplateMiner) -> R,
    ) -> Result<R, AiError> {
        let mut loaded = self.loaded.lock().await;
        let miner = match loaded.entry(tenant.clone()) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => e.insert(self.load(tenant).await?),
        };
        let before = miner.messages();
        let out = f(miner);
        if miner.messages() != before {
            self.save(tenant, miner).await?;
        }
        Ok(out)
    }
}
