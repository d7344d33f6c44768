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
use ophion_receiver::{AuthError as Refusal, Authenticator};
use serde::Serialize;

use ophion_store::{metadata::OptionalExtension as _, params};

use super::{Auth, AuthError, limits::Limiters, now_ms, password, sha256_hex};

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

    /// Lets exactly `live` in.
    pub fn replace(&self, live: HashMap<String, TenantId>) {
        if let Ok(mut m) = self.live.write() {
            *m = live;
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

fn limited(which: &str, retry_after: std::time::Duration) -> Refusal {
    Refusal::RateLimited {
        retry_after,
        message: format!("too many requests {which}; retry after {retry_after:?}"),
    }
}

impl Authenticator for IngestKeys {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<TenantId, Refusal> {
        self.authenticate_from(headers, None)
    }

    fn authenticate_from(
        &self,
        headers: &http::HeaderMap,
        peer: Option<std::net::IpAddr>,
    ) -> Result<TenantId, Refusal> {
        if let Some(ip) = self.limits.config.client(peer, headers) {
            self.limits
                .ingest_ip
                .take(&ip.to_string())
                .map_err(|d| limited("from this address", d))?;
        }
        let Some(key) = Self::presented(headers) else {
            return if self.required {
                Err(Refusal::Unauthenticated(format!(
                    "an ingest key is required: `Authorization: Bearer {KEY_PREFIX}...` or `{KEY_HEADER}`"
                )))
            } else {
                Ok(TenantId::default())
            };
        };
        let hash = super::sha256_hex(key);
        let tenant = self.live.read().ok().and_then(|m| m.get(&hash).cloned());
        let tenant =
            tenant.ok_or_else(|| Refusal::Unauthenticated("ingest key not valid".into()))?;
        self.limits
            .ingest_key
            .take(&hash)
            .map_err(|d| limited("for this key", d))?;
        Ok(tenant)
    }
}

/// The live ingest keys in the database, by hash.
pub(super) async fn live(
    meta: &ophion_store::metadata::Metadata,
) -> Result<HashMap<String, TenantId>, AuthError> {
    let rows: Vec<(String, String)> = meta
        .call(|c| {
            c.query_map(
                "SELECT key_hash, tenant_id FROM api_keys WHERE revoked_at IS NULL AND scope = 'ingest'",
                params![],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
        })
        .await?;
    rows.into_iter()
        .map(|(hash, tenant)| {
            let tenant = TenantId::new(&tenant).map_err(|e| AuthError::Internal(e.to_string()))?;
            Ok((hash, tenant))
        })
        .collect()
}

impl Auth {
    /// Reads the live ingest keys again: on a node sharing the metadata
    /// database, keys created or revoked on other nodes take effect here
    /// at the next reload.
    pub async fn reload_ingest_keys(&self) -> Result<(), AuthError> {
        self.ingest.replace(live(&self.meta).await?);
        Ok(())
    }

    /// Creates an ingest key for `tenant`; the key itself is in the answer
    /// and nowhere else.
    pub async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<(KeyInfo, String), AuthError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "key names are 1-128 characters, no control characters".into(),
            ));
        }
        let secret = format!("{}{}", KEY_PREFIX, password::random_hex(32));
        let hash = sha256_hex(&secret);
        let prefix = secret[..KEY_PREFIX.len() + 8].to_owned();
        let (t, n, h, p) = (
            tenant.as_str().to_owned(),
            name.to_owned(),
            hash.clone(),
            prefix.clone(),
        );
        let at = now_ms();
        let id = self
            .meta
            .call(move |c| {
                c.query_row(
                    "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scope, created_at) VALUES (?1, ?2, ?3, ?4, 'ingest', ?5) RETURNING id",
                    params![t, n, p, h, at],
                    |r| r.get::<i64>(0),
                )
            })
            .await?;
        self.ingest.insert(hash, tenant.clone());
        Ok((
            KeyInfo {
                id,
                tenant: tenant.as_str().to_owned(),
                name: name.to_owned(),
                prefix,
                created_at_ms: at,
                revoked_at_ms: None,
            },
            secret,
        ))
    }

    /// The ingest keys of `tenant`, newest first.
    pub async fn list_keys(&self, tenant: &TenantId) -> Result<Vec<KeyInfo>, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self
            .meta
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ?1 ORDER BY id DESC",
                )?;
                st.query_map([t], |r| {
                    Ok(KeyInfo {
                        id: r.get(0)?,
                        tenant: r.get(1)?,
                        name: r.get(2)?,
                        prefix: r.get(3)?,
                        created_at_ms: r.get(4)?,
                        revoked_at_ms: r.get(5)?,
                    })
                })?
                .collect()
            })
            .await?)
    }

    /// Revokes key `id` of `tenant`: the receivers refuse it from now on.
    pub async fn revoke_key(&self, tenant: &TenantId, id: i64) -> Result<KeyInfo, AuthError> {
        let t = tenant.as_str().to_owned();
        let at = now_ms();
        let found: Option<(String, KeyInfo)> = self
            .meta
            .call(move |c| {
                c.execute(
                    "UPDATE api_keys SET revoked_at = ?3 WHERE id = ?1 AND tenant_id = ?2 AND revoked_at IS NULL",
                    params![id, t, at],
                )?;
                c.query_row(
                    "SELECT key_hash, id, tenant_id, name, prefix, created_at, revoked_at FROM api_keys WHERE id = ?1 AND tenant_id = ?2",
                    params![id, t],
                    |r| {
                        Ok((
                            r.get(0)?,
                            KeyInfo {
                                id: r.get(1)?,
                                tenant: r.get(2)?,
                                name: r.get(3)?,
                                prefix: r.get(4)?,
                                created_at_ms: r.get(5)?,
                                revoked_at_ms: r.get(6)?,
                            },
                        ))
                    },
                )
                .optional()
            })
            .await?;
        let (hash, info) = found.ok_or_else(|| AuthError::NotFound(format!("no key {id}")))?;
        self.ingest.remove(&hash);
        Ok(info)
    }
}
