//! Sessions: sign-in (argon2id password check under the sign-in windows),
//! access tokens (HS256, short-lived) with one-time rotating refresh
//! tokens, authentication of a bearer token into a [`Principal`], and
//! sign-out (revoking the access token's `jti` and the refresh token).

use ophion_store::{metadata::OptionalExtension as _, params};

use super::{Auth, AuthError, Principal, Role, Tokens, audit, password, sha256_hex, token};
use ophion_core::TenantId;

impl Auth {
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
        let token = self.keys().sign(&claims).map_err(AuthError::Internal)?;
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
    ///
    /// User names are unique per tenant: `tenant` picks the user. Without
    /// it, the name must belong to one tenant only, or to the default
    /// tenant; otherwise the sign-in fails like a wrong password (the
    /// answer never tells whether a name exists in other tenants).
    pub async fn login(
        &self,
        tenant: Option<&str>,
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
        let tenant = tenant.map(str::to_owned);
        let row: Option<(i64, String, String, bool, i64)> = self
            .meta
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT id, tenant_id, password_hash, disabled, token_version FROM users \
                     WHERE username = ?1 AND (tenant_id = ?2 OR ?2 IS NULL) \
                     ORDER BY tenant_id = 'default' DESC LIMIT 2",
                )?;
                let rows = st
                        .query_map(params![name, tenant], |r| {
                            Ok((
                                r.get(0)?,
                                r.get(1)?,
                                r.get(2)?,
                                r.get::<i64>(3)? != 0,
                                r.get(4)?,
                            ))
                        })?
                        .collect::<ophion_store::metadata::sql::Result<
                            Vec<(i64, String, String, bool, i64)>,
                        >>()?;
                // One match, or the default tenant's user among several.
                Ok(match rows.as_slice() {
                    [one] => Some(one.clone()),
                    [first, _] if first.1 == TenantId::default().as_str() => Some(first.clone()),
                    _ => None,
                })
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
                    "wrong user name or password (a user of another tenant than the default signs in with its tenant)".into(),
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
        let claims = self
            .keys()
            .verify(bearer)
            .map_err(|_| refused("not valid"))?;
        let id: i64 = claims.sub.parse().map_err(|_| refused("not valid"))?;
        let jti = claims.jti.clone();
        let row: Option<(String, String, String, bool, i64, bool)> = self
            .meta
            .call(move |c| {
                // Every authenticated request runs this: parsed once per
                // connection, not once per request.
                c.prepare(
                    "SELECT tenant_id, username, role, disabled != 0, token_version,
                            EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?2)
                     FROM users WHERE id = ?1",
                )?
                .query_row(params![id, jti], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                    ))
                })
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
                    "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
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
}
