//! Users, sessions and permissions.
//!
//! - [`password`]: argon2id hashing behind a concurrency limit.
//! - [`token`]: short-lived HS256 access tokens with an algorithm allowlist.
//! - [`rbac`]: roles and permissions (which route needs which: the API's
//!   route table).
//! - [`audit`]: the hash-chained audit log.
//! - [`keys`]: ingest API keys, checked by the receivers in memory.
//! - [`limits`]: token buckets and sign-in windows.
//! - `sessions`: login, refresh (rotating one-time refresh tokens),
//!   authentication of a bearer token, logout (revokes the token's `jti`).
//! - `users`, `tenants`: managing them. User names are unique within a
//!   tenant; sign-in names the tenant when the name is not unique.
//! - [`signing`]: the token signing key, in its own `0600` file (or the
//!   environment), never in the database; rotation.
//!
//! [`Auth`] ties them to the metadata database, whose tables it owns and
//! migrates ([`MIGRATIONS`]). Every user belongs to one tenant; a
//! principal's tenant comes from the database, never from a request header.

pub mod audit;
pub mod keys;
pub mod limits;
pub mod password;
pub mod rbac;
mod sessions;
pub mod signing;
mod tenants;
pub mod token;
mod users;

use std::sync::Arc;

use ophion_core::TenantId;
use ophion_store::metadata::Metadata;
use rusqlite::OptionalExtension as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use rbac::{Permission, Role};

/// The tables of users, keys, tenants, sessions and the audit log, in
/// order. Never edit a released migration: append a new one.
pub const MIGRATIONS: &[&str] = &[
    // 1: tenants, users, ingest keys, the audit log.
    r#"
    CREATE TABLE tenants (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);
    CREATE TABLE users (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        username TEXT NOT NULL UNIQUE,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
        disabled INTEGER NOT NULL DEFAULT 0,
        token_version INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        name TEXT NOT NULL,
        prefix TEXT NOT NULL,
        key_hash TEXT NOT NULL UNIQUE,
        scope TEXT NOT NULL DEFAULT 'ingest',
        created_at INTEGER NOT NULL,
        revoked_at INTEGER
    );
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT,
        at INTEGER NOT NULL,
        actor TEXT,
        action TEXT NOT NULL,
        target TEXT,
        source TEXT,
        outcome TEXT NOT NULL,
        detail TEXT,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    "#,
    // 2: sessions: server secrets, refresh tokens, revoked access tokens.
    r#"
    CREATE TABLE settings (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    CREATE TABLE refresh_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        token_version INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        used INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE revoked_tokens (
        jti TEXT PRIMARY KEY,
        expires_at INTEGER NOT NULL
    );
    "#,
    // 3: user names unique per tenant, not across tenants (a rebuild:
    // SQLite cannot drop a column's UNIQUE).
    r#"
    CREATE TABLE users_new (
        id INTEGER PRIMARY KEY,
        tenant_id TEXT NOT NULL REFERENCES tenants(id),
        username TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('admin', 'editor', 'viewer')),
        disabled INTEGER NOT NULL DEFAULT 0,
        token_version INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        UNIQUE (tenant_id, username)
    );
    INSERT INTO users_new SELECT id, tenant_id, username, password_hash, role, disabled, token_version, created_at FROM users;
    DROP TABLE users;
    ALTER TABLE users_new RENAME TO users;
    CREATE INDEX users_by_name ON users (username);
    "#,
];

/// Session settings (`[auth]` in the configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Lifetime of an access token, in seconds (default 900).
    pub access_token_ttl_secs: u64,
    /// Lifetime of a refresh token, in seconds (default 7 days). Each is
    /// good for one refresh, which hands out a new one.
    pub refresh_token_ttl_secs: u64,
    /// Refuse OTLP requests without a valid ingest key (default false:
    /// requests without a key go to the default tenant; a wrong or revoked
    /// key is refused either way).
    pub require_ingest_key: bool,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            access_token_ttl_secs: 900,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            require_ingest_key: false,
        }
    }
}

/// Who is making an API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// Their tenant: everything they read and change is in it.
    pub tenant: TenantId,
    /// User id.
    pub user_id: i64,
    /// User name.
    pub username: String,
    /// Role, as stored now (a role change applies at once).
    pub role: Role,
    /// The access token's id and expiry, for logout.
    pub jti: String,
    /// Expiry of the access token, seconds since the epoch.
    pub exp: u64,
}

/// Why an auth operation failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Credentials missing or not valid: 401.
    #[error("{0}")]
    Unauthenticated(String),
    /// A request that cannot be done as asked: 400.
    #[error("{0}")]
    Invalid(String),
    /// No such user (in the caller's tenant): 404.
    #[error("{0}")]
    NotFound(String),
    /// Already exists: 409.
    #[error("{0}")]
    Conflict(String),
    /// Over a limit: 429 with `Retry-After`.
    #[error("too many requests; retry after {0:?}")]
    RateLimited(std::time::Duration),
    /// The metadata database failed: 500 (logged).
    #[error("metadata database: {0}")]
    Store(#[from] ophion_store::Error),
    /// Something else failed: 500 (logged).
    #[error("{0}")]
    Internal(String),
}

/// Tokens handed out by login and refresh.
#[derive(Debug, Clone, Serialize)]
pub struct Tokens {
    /// The access token, for `Authorization: Bearer`.
    pub token: String,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// A one-time token for `POST /api/v1/auth/refresh`.
    pub refresh_token: String,
}

/// A user as the API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Tenant.
    pub tenant: String,
    /// Name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// Whether sign-in is refused.
    pub disabled: bool,
}

/// Changes to a user; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPatch {
    /// New role.
    pub role: Option<Role>,
    /// Disable (revokes the user's tokens) or enable.
    pub disabled: Option<bool>,
    /// New password (revokes the user's tokens).
    pub password: Option<String>,
}

/// Users, sessions and the audit log, over the metadata database.
#[derive(Debug)]
pub struct Auth {
    meta: Metadata,
    keys: std::sync::RwLock<token::Keys>,
    signing: signing::Source,
    hasher: password::Hasher,
    config: AuthConfig,
    ingest: Arc<keys::IngestKeys>,
    /// Rate limits of the API, the receivers and sign-in.
    pub limits: Arc<limits::Limiters>,
}

/// SHA-256 of `text` as lowercase hex: how refresh tokens and ingest keys
/// are stored.
pub fn sha256_hex(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The token of `Authorization: Bearer <token>`, trimmed (possibly empty).
pub fn bearer(headers: &http::HeaderMap) -> Option<&str> {
    let v = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A user name: 1-64 letters, digits and `._-@`.
fn valid_username(name: &str) -> Result<(), AuthError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-@".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "user names are 1-64 letters, digits and . _ - @".into(),
        ))
    }
}

/// Passwords: 12 to 1024 bytes (NIST SP 800-63B asks for at least 8; a
/// server holding production data asks for more).
fn valid_password(pw: &str) -> Result<(), AuthError> {
    if (12..=1024).contains(&pw.len()) {
        Ok(())
    } else {
        Err(AuthError::Invalid(
            "passwords must be 12 to 1024 bytes long".into(),
        ))
    }
}

fn user_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    let role: String = r.get(3)?;
    Ok(User {
        id: r.get(0)?,
        tenant: r.get(1)?,
        username: r.get(2)?,
        role: Role::parse(&role).unwrap_or(Role::Viewer),
        disabled: r.get::<_, i64>(4)? != 0,
    })
}

impl Auth {
    /// Opens users and sessions: migrates their tables and loads (or
    /// creates, on first start) the token signing key from `signing`
    /// (`env`: the key itself when it comes from the environment). A key
    /// an older release kept in the database moves to the key file and
    /// leaves the database.
    pub async fn open(
        meta: Metadata,
        config: AuthConfig,
        limits: limits::LimitsConfig,
        hash_permits: usize,
        signing: (signing::Source, Option<String>),
    ) -> Result<Self, AuthError> {
        meta.migrate("auth", MIGRATIONS).await?;
        let limits = Arc::new(limits::Limiters::new(limits));
        let legacy: Option<String> = meta
            .call(|c| {
                c.query_row(
                    "SELECT value FROM settings WHERE key = 'jwt_secret'",
                    [],
                    |r| r.get(0),
                )
                .optional()
            })
            .await?;
        let (source, env) = signing;
        let secret = signing::load(&source, env.as_deref(), legacy.as_deref())?;
        if legacy.is_some() {
            meta.call(|c| c.execute("DELETE FROM settings WHERE key = 'jwt_secret'", []))
                .await?;
        }
        let ingest = keys::IngestKeys::new(config.require_ingest_key, Arc::clone(&limits));
        let live: Vec<(String, String)> = meta
            .call(|c| {
                let mut st = c.prepare(
                    "SELECT key_hash, tenant_id FROM api_keys WHERE revoked_at IS NULL AND scope = 'ingest'",
                )?;
                st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect()
            })
            .await?;
        for (hash, tenant) in live {
            let tenant = TenantId::new(&tenant).map_err(|e| AuthError::Internal(e.to_string()))?;
            ingest.insert(hash, tenant);
        }
        Ok(Self {
            meta,
            keys: std::sync::RwLock::new(token::Keys::new(&secret)),
            signing: source,
            hasher: password::Hasher::new(hash_permits),
            config,
            ingest,
            limits,
        })
    }

    /// On a server without users, creates `admin` (role admin, default
    /// tenant) with `password`, or a generated one. Returns the generated
    /// password, to be shown once.
    pub async fn bootstrap(&self, password: Option<String>) -> Result<Option<String>, AuthError> {
        let users: i64 = self
            .meta
            .call(|c| c.query_row("SELECT count(*) FROM users", [], |r| r.get(0)))
            .await?;
        if users > 0 {
            return Ok(None);
        }
        let generated = password.is_none();
        let pw = password.unwrap_or_else(|| password::random_hex(12));
        valid_password(&pw)?;
        self.create_user(&TenantId::default(), "admin", &pw, Role::Admin)
            .await?;
        Ok(generated.then_some(pw))
    }

    /// Records an audit event; a failure to record is logged, never hidden.
    pub async fn audit(&self, e: audit::Event) {
        let at = now_ms();
        if let Err(err) = self.meta.call(move |c| audit::append(c, &e, at)).await {
            tracing::error!(error = %err, "could not write the audit log");
        }
    }

    /// The signing key in force.
    fn keys(&self) -> token::Keys {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the token signing key (see [`signing`]): every access
    /// token signed before stops verifying and every refresh token is
    /// deleted, so every session ends. Refused (409) when the key comes
    /// from the environment.
    pub async fn rotate_signing_key(&self) -> Result<(), AuthError> {
        let key = signing::rotate(&self.signing)?;
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = token::Keys::new(&key);
        self.meta
            .call(|c| c.execute("DELETE FROM refresh_tokens", []))
            .await?;
        Ok(())
    }

    /// The metadata database.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The receivers' authenticator: live ingest keys.
    pub fn ingest_keys(&self) -> Arc<keys::IngestKeys> {
        Arc::clone(&self.ingest)
    }
}
