//! Users of a tenant: create, list, change role, disable, passwords. A
//! user belongs to one tenant; every query here is scoped by it.

use ophion_store::{metadata::OptionalExtension as _, params};

use super::{
    Auth, AuthError, Principal, Role, User, UserPatch, now_ms, user_row, valid_password,
    valid_username,
};
use ophion_core::TenantId;

impl Auth {
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
                c.query_row(
                    "INSERT INTO users (tenant_id, username, password_hash, role, created_at) VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT DO NOTHING RETURNING id",
                    params![t, name, phc, role.as_str(), now_ms()],
                    |r| r.get::<i64>(0),
                )
                .optional()
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
}
