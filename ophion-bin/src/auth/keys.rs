//! Ingest API keys: write-only credentials for the OTLP receivers.
//!
//! A key is `oph_` and 64 random hex characters, shown once when created.
//! The database keeps its SHA-256 (a key has 256 bits of entropy, so a fast
//! hash is enough: nothing to brute-force) and a short prefix to recognise
//! it by. The receivers check keys in memory, before reading a body: the
//! table of live keys is loaded at start and updated when keys are created
//! or revoked.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use ophion_core::TenantId;
use ophion_receiver::{AuthError, Authenticator};
use serde::Serialize;

use super::limits::Limiters;

/// The prefix of every ingest key.
pub const KEY_PREFIX: &str = "oph_";

/// The header that carries a key, besides `Authorization: Bearer`.
pub const KEY_HEADER: &str = "x-ophion-api-key";

/// A key as the API lists it (never the secret).
#[derive(Debug, Clone, Serialize)]
pub struct KeyInfo {
    /// Id.
    pub id: i64,
    /// Tenant its data goes to.
    pub tenant: String,
    /// A name to recognise it by.
    pub name: String,
    /// The first characters of the key.
    pub prefix: String,
    /// Creation time, unix milliseconds.
    pub created_at_ms: i64,
    /// Revocation time, if revoked.
    pub revoked_at_ms: Option<i64>,
}

/// The live keys, by hash, and whether ingestion requires one.
#[derive(Debug)]
pub struct IngestKeys {
    live: RwLock<HashMap<String, TenantId>>,
    required: bool,
    limits: Arc<Limiters>,
}

impl IngestKeys {
    /// A key table; with `required`, requests without a key are refused.
    /// Requests are limited per key and per client address.
    pub fn new(required: bool, limits: Arc<Limiters>) -> Arc<Self> {
        Arc::new(Self {
            live: RwLock::new(HashMap::new()),
            required,
            limits,
        })
    }

    /// Lets `hash` in for `tenant`.
    pub fn insert(&self, hash: String, tenant: TenantId) {
        if let Ok(mut m) = self.live.write() {
            m.insert(hash, tenant);
        }
    }

    /// Stops letting `hash` in.
    pub fn remove(&self, hash: &str) {
        if let Ok(mut m) = self.live.write() {
            m.remove(hash);
        }
    }

    /// The key a request carries, if any.
    pub fn presented(headers: &http::HeaderMap) -> Option<&str> {
        if let Some(k) = headers.get(KEY_HEADER).and_then(|v| v.to_str().ok()) {
            return Some(k.trim());
        }
        super::bearer(headers)
    }
}

fn limited(which: &str, retry_after: std::time::Duration) -> AuthError {
    AuthError::RateLimited {
        retry_after,
        message: format!("too many requests {which}; retry after {retry_after:?}"),
    }
}

impl Authenticator for IngestKeys {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, AuthError> {
        self.authenticate_from(headers, None)
    }

    fn authenticate_from(
        &self,
        headers: &http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<TenantId, AuthError> {
        if let Some(ip) = self.limits.config.client(peer, headers) {
            self.limits
                .ingest_ip
                .take(&ip.to_string())
                .map_err(|d| limited("from this address", d))?;
        }
        let Some(key) = Self::presented(headers) else {
            return if self.required {
                Err(AuthError::Unauthenticated(format!(
                    "an ingest key is required: `Authorization: Bearer {KEY_PREFIX}...` or `{KEY_HEADER}`"
                )))
            } else {
                Ok(TenantId::default())
            };
        };
        let hash = super::sha256_hex(key);
        let tenant = self.live.read().ok().and_then(|m| m.get(&hash).cloned());
        let tenant =
            tenant.ok_or_else(|| AuthError::Unauthenticated("ingest key not valid".into()))?;
        self.limits
            .ingest_key
            .take(&hash)
            .map_err(|d| limited("for this key", d))?;
        Ok(tenant)
    }
}
