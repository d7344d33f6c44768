//! The AI service: everything the server does with `ophion-ai` over a
//! tenant's telemetry, in one place the API calls and nothing else
//! imports.
//!
//! - [`AiService::analyze`]: `POST /api/v1/ai/analyze` (RED anomalies, log
//!   templates, ranked root causes and tips for a window), and
//!   [`AiService::insights`] (`GET /api/v1/ai/insights`).
//! - [`watch`]: the continuous watch, one pass a minute over each tenant's
//!   closed minutes (RED series, selected metrics, capacity, log patterns).
//! - `miners`: each tenant's log-template miner, kept in memory and saved in
//!   the metadata database (its own table, created by its own migration).
//! - `red`: the one query that computes RED series per minute.
//! - [`forecast`]: one series per minute and its forecast with intervals
//!   (`GET /api/v1/ai/forecast`).
//!
//! It reads only through [`crate::read::Reader`] (the read seam,
//! [`ophion_core::TelemetryQuery`]), so it runs the same over the store
//! and over [`ophion_store::MemoryTables`] in unit tests.

mod analyze;
mod confirm;
pub mod forecast;
mod miners;
mod red;
#[cfg(test)]
mod tests;
pub mod watch;

use std::sync::Arc;

pub use analyze::Analysis;
use ophion_core::TenantId;
use ophion_store::metadata::Metadata;
use serde_json::Value;

use crate::{
    config::AiConfig,
    read::{ReadError, Reader},
};

/// Why an analysis failed.
#[derive(Debug, thiserror::Error)]
pub enum AiError {
    /// Reading telemetry failed, or a parameter was bad.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The metadata database (saved templates) failed.
    #[error("saved log templates: {0}")]
    Metadata(#[from] ophion_store::Error),
}

/// The AI engine as the server runs it. Cheap to share (`Arc`).
#[derive(Debug)]
pub struct AiService {
    reader: Reader,
    config: AiConfig,
    miners: miners::Miners,
    watch: watch::WatchState,
}

impl AiService {
    /// The service over `reader`, keeping its templates in `metadata`
    /// (migrating its table on first use).
    pub async fn open(
        reader: Reader,
        metadata: Metadata,
        config: AiConfig,
    ) -> Result<Arc<Self>, AiError> {
        Ok(Arc::new(Self {
            reader,
            config,
            miners: miners::Miners::open(metadata).await?,
            watch: watch::WatchState::default(),
        }))
    }

    /// What the continuous watch found for `tenant`, newest first.
    pub fn watch_insights(&self, tenant: &TenantId) -> Vec<Value> {
        self.watch.insights(tenant)
    }

    /// The configuration it runs.
    pub fn config(&self) -> &AiConfig {
        &self.config
    }
}
