//! Users, sessions and permissions.
//!
//! - [`password`]: argon2id hashing behind a concurrency limit.
//! - [`token`]: short-lived HS256 access tokens with an algorithm allowlist.
//! - [`rbac`]: roles, permissions and the route table.
//! - [`audit`]: the hash-chained audit log.
//! - [`keys`]: ingest API keys, checked by the receivers in memory.
//! - [`limits`]: token buckets and sign-in windows.
//!
//! [`Auth`] ties them to the metadata database: login, refresh (rotating
//! one-time refresh tokens), logout (revokes the access token's `jti`),
//! and user management. Every user belongs to one tenant; a principal's
//! tenant comes from the database, never from a request header.

pub mod audit;
pub mod keys;
pub mod limits;
pub mod password;
pub mod rbac;
pub mod token;

use std::sync::Arc;

use ophion_core::TenantId;
use ophion_store::metadata::Metadata;
use rusqlite::{OptionalExtension as _, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};

pub use rbac::{Permission, Role};

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
    keys: token::Keys,
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
    /// Loads (or creates, on first start) the token signing secret.
    pub async fn open(
        meta: Metadata,
        config: AuthConfig,
        limits: limits::LimitsConfig,
        hash_permits: usize,
    ) -> Result<Self, AuthError> {
        let limits = Arc::new(limits::Limiters::new(limits));
        let fresh = password::random_hex(32);
        let secret: String = meta
            .call(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO settings (key, value) VALUES ('jwt_secret', ?1)",
                    [&fresh],
                )?;
                c.query_row(
                    "SELECT value FROM settings WHERE key = 'jwt_secret'",
                    [],
                    |r| r.get(0),
                )
            })
            .await?;
        let secret = hex::decode(secret)
            .map_err(|e| AuthError::Internal(format!("stored token secret: {e}")))?;
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
            keys: token::Keys::new(&secret),
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

    /// The metadata database.
    pub fn metadata(&self) -> &Metadata {
        &self.meta
    }

    /// The receivers' authenticator: live ingest keys.
    pub fn ingest_keys(&self) -> Arc<keys::IngestKeys> {
        Arc::clone(&self.ingest)
    }

    /// Creates an ingest key for `tenant`; the key itself is in the answer
    /// and nowhere else.
    pub async fn create_key(
        &self,
        tenant: &TenantId,
        name: &str,
    ) -> Result<(keys::KeyInfo, String), AuthError> {
        if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
            return Err(AuthError::Invalid(
                "key names are 1-128 characters, no control characters".into(),
            ));
        }
        let secret = format!("{}{}", keys::KEY_PREFIX, password::random_hex(32));
        let hash = sha256_hex(&secret);
        let prefix = secret[..keys::KEY_PREFIX.len() + 8].to_owned();
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
                c.execute(
                    "INSERT INTO api_keys (tenant_id, name, prefix, key_hash, scope, created_at) VALUES (?1, ?2, ?3, ?4, 'ingest', ?5)",
                    params![t, n, p, h, at],
                )?;
                Ok(c.last_insert_rowid())
            })
            .await?;
        self.ingest.insert(hash, tenant.clone());
        Ok((
            keys::KeyInfo {
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
    pub async fn list_keys(&self, tenant: &TenantId) -> Result<Vec<keys::KeyInfo>, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self
            .meta
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, tenant_id, name, prefix, created_at, revoked_at FROM api_keys WHERE tenant_id = ?1 ORDER BY id DESC",
                )?;
                st.query_map([t], |r| {
                    Ok(keys::KeyInfo {
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
    pub async fn revoke_key(&self, tenant: &TenantId, id: i64) -> Result<keys::KeyInfo, AuthError> {
        let t = tenant.as_str().to_owned();
        let at = now_ms();
        let found: Option<(String, keys::KeyInfo)> = self
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
                            keys::KeyInfo {
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

    async fn issue(&self, user_id: i64, tenant: String, ver: i64) -> Result<Tokens, AuthError> {
        let now = token::now_secs();
        let claims = token::Claims {
            sub: user_id.to_string(),
            ten: tenant,
            ver,
            exp: now + self.config.access_token_ttl_secs,
            nbf: now,
            iat: now,
            aud: token::AUDIENCE.into(),
            iss: token::ISSUER.into(),
            jti: password::random_hex(16),
        };
        let token = self.keys.sign(&claims).map_err(AuthError::Internal)?;
        let refresh = password::random_hex(32);
        let hash = sha256_hex(&refresh);
        let expires = (now + self.config.refresh_token_ttl_secs) as i64;
        self.meta
            .call(move |c| {
                c.execute(
                    "DELETE FROM refresh_tokens WHERE expires_at < ?1",
                    [now as i64],
                )?;
                c.execute(
                    "INSERT INTO refresh_tokens (token_hash, user_id, token_version, expires_at) VALUES (?1, ?2, ?3, ?4)",
                    params![hash, user_id, ver, expires],
                )
            })
            .await?;
        Ok(Tokens {
            token,
            token_type: "Bearer",
            expires_in: self.config.access_token_ttl_secs,
            refresh_token: refresh,
        })
    }

    /// Checks a password and hands out tokens. Every attempt is audited.
    /// Attempts count against a window per user name and per client
    /// address (`source`) before any hashing; successes are taken back.
    pub async fn login(
        &self,
        username: &str,
        password: &str,
        source: &str,
    ) -> Result<Tokens, AuthError> {
        let by_user = self.limits.login_user.hit(username);
        let by_ip = self.limits.login_ip.hit(source);
        let (at_user, at_ip) = match (by_user, by_ip) {
            (Ok(u), Ok(i)) => (u, i),
            (u, i) => {
                if let Ok(at) = u {
                    self.limits.login_user.forget(username, at);
                }
                if let Ok(at) = i {
                    self.limits.login_ip.forget(source, at);
                }
                let wait = [u.err(), i.err()]
                    .into_iter()
                    .flatten()
                    .max()
                    .unwrap_or_default();
                self.audit(audit::Event {
                    tenant: TenantId::default().as_str().to_owned(),
                    actor: username.to_owned(),
                    action: "login",
                    target: username.to_owned(),
                    source: source.to_owned(),
                    outcome: "denied",
                    detail: "too many sign-in attempts".into(),
                })
                .await;
                return Err(AuthError::RateLimited(wait));
            }
        };
        let name = username.to_owned();
        let row: Option<(i64, String, String, bool, i64)> = self
            .meta
            .call(move |c| {
                c.query_row(
                    "SELECT id, tenant_id, password_hash, disabled, token_version FROM users WHERE username = ?1",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get::<_, i64>(3)? != 0, r.get(4)?)),
                )
                .optional()
            })
            .await?;
        let ok = self
            .hasher
            .verify(password, row.as_ref().map(|r| r.2.clone()))
            .await;
        let mut event = audit::Event {
            tenant: row
                .as_ref()
                .map_or_else(|| TenantId::default().as_str().to_owned(), |r| r.1.clone()),
            actor: username.to_owned(),
            action: "login",
            target: username.to_owned(),
            source: source.to_owned(),
            outcome: "ok",
            detail: String::new(),
        };
        match row {
            Some((id, tenant, _, false, ver)) if ok => {
                self.limits.login_user.forget(username, at_user);
                self.limits.login_ip.forget(source, at_ip);
                let tokens = self.issue(id, tenant, ver).await?;
                self.audit(event).await;
                Ok(tokens)
            }
            other => {
                event.outcome = "failed";
                event.detail = match other {
                    None => "unknown user",
                    Some((.., true, _)) if ok => "user disabled",
                    Some(_) => "wrong password",
                }
                .into();
                self.audit(event).await;
                Err(AuthError::Unauthenticated(
                    "wrong user name or password".into(),
                ))
            }
        }
    }

    /// Trades a refresh token for new tokens. A refresh token works once:
    /// presenting a used one again means it was stolen, and revokes every
    /// token of its user.
    pub async fn refresh(&self, refresh_token: &str, source: &str) -> Result<Tokens, AuthError> {
        let hash = sha256_hex(refresh_token);
        let now = token::now_secs() as i64;
        type Found = Option<(i64, String, String, i64, bool, bool, i64)>;
        let found: Found = self
            .meta
            .call(move |c| {
                let tx = c.transaction()?;
                let row = tx
                    .query_row(
                        "SELECT t.user_id, u.tenant_id, u.username, t.token_version, t.used != 0, u.disabled != 0, u.token_version
                         FROM refresh_tokens t JOIN users u ON u.id = t.user_id
                         WHERE t.token_hash = ?1 AND t.expires_at >= ?2",
                        params![hash, now],
                        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?)),
                    )
                    .optional()?;
                if let Some((user, .., used, _, _)) = &row {
                    if *used {
                        tx.execute(
                            "UPDATE users SET token_version = token_version + 1 WHERE id = ?1",
                            [user],
                        )?;
                    } else {
                        tx.execute("UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?1", [&hash])?;
                    }
                }
                tx.commit()?;
                Ok(row)
            })
            .await?;
        let refused = || AuthError::Unauthenticated("refresh token not valid".into());
        let Some((user, tenant, username, ver, used, disabled, current)) = found else {
            return Err(refused());
        };
        if used {
            self.audit(audit::Event {
                tenant,
                actor: username.clone(),
                action: "token_reuse",
                target: username,
                source: source.to_owned(),
                outcome: "denied",
                detail:
                    "a used refresh token was presented again; all of the user's tokens are revoked"
                        .into(),
            })
            .await;
            return Err(refused());
        }
        if disabled || ver != current {
            return Err(refused());
        }
        self.issue(user, tenant, current).await
    }

    /// The principal of a bearer access token: valid signature and claims,
    /// not revoked, its user enabled and its token version current.
    pub async fn authenticate(&self, bearer: &str) -> Result<Principal, AuthError> {
        let refused = |why: &str| AuthError::Unauthenticated(format!("access token {why}"));
        let claims = self.keys.verify(bearer).map_err(|_| refused("not valid"))?;
        let id: i64 = claims.sub.parse().map_err(|_| refused("not valid"))?;
        let jti = claims.jti.clone();
        let row: Option<(String, String, String, bool, i64, bool)> = self
            .meta
            .call(move |c| {
                c.query_row(
                    "SELECT tenant_id, username, role, disabled != 0, token_version,
                            EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?2)
                     FROM users WHERE id = ?1",
                    params![id, jti],
                    |r| {
                        Ok((
                            r.get(0)?,
                            r.get(1)?,
                            r.get(2)?,
                            r.get(3)?,
                            r.get(4)?,
                            r.get(5)?,
                        ))
                    },
                )
                .optional()
            })
            .await?;
        let Some((tenant, username, role, disabled, ver, revoked)) = row else {
            return Err(refused("not valid"));
        };
        if revoked {
            return Err(refused("revoked (signed out)"));
        }
        if disabled || ver != claims.ver || tenant != claims.ten {
            return Err(refused("revoked"));
        }
        Ok(Principal {
            tenant: TenantId::new(&tenant).map_err(|e| AuthError::Internal(e.to_string()))?,
            user_id: id,
            username,
            role: Role::parse(&role).unwrap_or(Role::Viewer),
            jti: claims.jti,
            exp: claims.exp,
        })
    }

    /// Revokes the principal's access token and, if given, a refresh token.
    pub async fn logout(
        &self,
        p: &Principal,
        refresh_token: Option<&str>,
    ) -> Result<(), AuthError> {
        let (jti, exp) = (p.jti.clone(), p.exp as i64);
        let hash = refresh_token.map(sha256_hex);
        let now = token::now_secs() as i64;
        self.meta
            .call(move |c| {
                c.execute("DELETE FROM revoked_tokens WHERE expires_at < ?1", [now])?;
                c.execute(
                    "INSERT OR IGNORE INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2)",
                    params![jti, exp],
                )?;
                if let Some(h) = hash {
                    c.execute(
                        "UPDATE refresh_tokens SET used = 1 WHERE token_hash = ?1",
                        [h],
                    )?;
                }
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Creates a user in `tenant`.
    pub async fn create_user(
        &self,
        tenant: &TenantId,
        username: &str,
        password: &str,
        role: Role,
    ) -> Result<User, AuthError> {
        valid_username(username)?;
        valid_password(password)?;
        let phc = self
            .hasher
            .hash(password)
            .await
            .map_err(AuthError::Internal)?;
        let (t, name) = (tenant.as_str().to_owned(), username.to_owned());
        let created = self
            .meta
            .call(move |c| {
                let n = c.execute(
                    "INSERT OR IGNORE INTO users (tenant_id, username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![t, name, phc, role.as_str(), now_ms()],
                )?;
                Ok((n == 1).then(|| c.last_insert_rowid()))
            })
            .await?;
        let id = created
            .ok_or_else(|| AuthError::Conflict(format!("user `{username}` already exists")))?;
        Ok(User {
            id,
            tenant: tenant.as_str().to_owned(),
            username: username.to_owned(),
            role,
            disabled: false,
        })
    }

    /// The users of `tenant`.
    pub async fn users(&self, tenant: &TenantId) -> Result<Vec<User>, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self
            .meta
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, tenant_id, username, role, disabled FROM users WHERE tenant_id = ?1 ORDER BY id",
                )?;
                st.query_map([t], user_row)?.collect()
            })
            .await?)
    }

    /// Applies `patch` to user `id` of `tenant`. Disabling the user or
    /// changing their password revokes their tokens.
    pub async fn update_user(
        &self,
        tenant: &TenantId,
        id: i64,
        patch: UserPatch,
    ) -> Result<User, AuthError> {
        if let Some(pw) = &patch.password {
            valid_password(pw)?;
        }
        let phc = match &patch.password {
            Some(pw) => Some(self.hasher.hash(pw).await.map_err(AuthError::Internal)?),
            None => None,
        };
        let t = tenant.as_str().to_owned();
        let revoke = patch.disabled == Some(true) || phc.is_some();
        self.meta
            .call(move |c| {
                let tx = c.transaction()?;
                let n = tx.execute(
                    "UPDATE users SET role = coalesce(?3, role), disabled = coalesce(?4, disabled),
                            password_hash = coalesce(?5, password_hash),
                            token_version = token_version + ?6
                     WHERE id = ?1 AND tenant_id = ?2",
                    params![
                        id,
                        t,
                        patch.role.map(Role::as_str),
                        patch.disabled.map(i64::from),
                        phc,
                        i64::from(revoke)
                    ],
                )?;
                if n == 0 {
                    return Ok(Err(AuthError::NotFound(format!("no user {id}"))));
                }
                // A tenant keeps at least one enabled admin; otherwise the
                // change is undone (the transaction is dropped).
                let admins: i64 = tx.query_row(
                    "SELECT count(*) FROM users WHERE tenant_id = ?1 AND role = 'admin' AND disabled = 0",
                    [&t],
                    |r| r.get(0),
                )?;
                if admins == 0 {
                    return Ok(Err(AuthError::Conflict(
                        "this would leave the tenant without an enabled admin".into(),
                    )));
                }
                let user = tx.query_row(
                    "SELECT id, tenant_id, username, role, disabled FROM users WHERE id = ?1",
                    [id],
                    user_row,
                )?;
                tx.commit()?;
                Ok(Ok(user))
            })
            .await?
    }

    /// Changes the principal's own password after checking the current one.
    pub async fn change_password(
        &self,
        p: &Principal,
        current: &str,
        new: &str,
    ) -> Result<(), AuthError> {
        let id = p.user_id;
        let phc: Option<String> = self
            .meta
            .call(move |c| {
                c.query_row("SELECT password_hash FROM users WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()
            })
            .await?;
        if !self.hasher.verify(current, phc).await {
            return Err(AuthError::Unauthenticated(
                "the current password is wrong".into(),
            ));
        }
        self.update_user(
            &p.tenant,
            id,
            UserPatch {
                password: Some(new.to_owned()),
                ..Default::default()
            },
        )
        .await
        .map(|_| ())
    }

    /// Creates a tenant with its first admin.
    pub async fn create_tenant(
        &self,
        id: &str,
        name: &str,
        admin: &str,
        password: &str,
    ) -> Result<User, AuthError> {
        let tenant = TenantId::new(id).map_err(|e| AuthError::Invalid(e.to_string()))?;
        valid_username(admin)?;
        valid_password(password)?;
        let taken_name = admin.to_owned();
        let taken: bool = self
            .meta
            .call(move |c| {
                c.query_row(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE username = ?1)",
                    [taken_name],
                    |r| r.get(0),
                )
            })
            .await?;
        if taken {
            return Err(AuthError::Conflict(format!(
                "user `{admin}` already exists"
            )));
        }
        let (t, n) = (id.to_owned(), name.to_owned());
        let created = self
            .meta
            .call(move |c| {
                c.execute(
                    "INSERT OR IGNORE INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3)",
                    params![t, n, now_ms()],
                )
            })
            .await?;
        if created == 0 {
            return Err(AuthError::Conflict(format!("tenant `{id}` already exists")));
        }
        self.create_user(&tenant, admin, password, Role::Admin)
            .await
    }

    /// A tenant's audit records.
    pub async fn audit_records(
        &self,
        tenant: &TenantId,
        filter: audit::Filter,
    ) -> Result<Vec<audit::Record>, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self.meta.call(move |c| audit::list(c, &t, &filter)).await?)
    }

    /// Checks a tenant's audit chain.
    pub async fn audit_verify(&self, tenant: &TenantId) -> Result<audit::Verification, AuthError> {
        let t = tenant.as_str().to_owned();
        Ok(self.meta.call(move |c| audit::verify(c, &t)).await?)
    }
}
