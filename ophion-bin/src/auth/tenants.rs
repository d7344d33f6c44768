//! Tenants: created by operators (admins of the default tenant) together
//! with their first admin; listed for the server's background tasks.

use ophion_store::params;

use super::{Auth, AuthError, Role, User, now_ms, valid_password, valid_username};
use ophion_core::TenantId;

impl Auth {
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
        let (t, n) = (id.to_owned(), name.to_owned());
        let created = self
            .meta
            .call(move |c| {
                c.execute(
                    "INSERT INTO tenants (id, name, created_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
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

    /// Every tenant's id, for background tasks that visit each (the AI
    /// watch); empty (and logged) when the database cannot be read.
    pub async fn tenant_ids(&self) -> Vec<TenantId> {
        let ids = self
            .meta
            .call(|c| {
                let mut q = c.prepare("SELECT id FROM tenants ORDER BY id")?;
                q.query_map(params![], |r| r.get(0))?
                    .collect::<ophion_store::metadata::sql::Result<Vec<String>>>()
            })
            .await;
        match ids {
            Ok(ids) => ids.iter().filter_map(|t| TenantId::new(t).ok()).collect(),
            Err(e) => {
                tracing::warn!(error = %e, "cannot list tenants");
                Vec::new()
            }
        }
    }
}
