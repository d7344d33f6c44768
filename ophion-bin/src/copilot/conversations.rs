//! Conversations, stored per tenant and user in the metadata database (the
//! copilot's own table, by its own migration): each question and answer,
//! so a conversation can go on and be read back by its owner only.

use ophion_core::TenantId;
use ophion_store::metadata::OptionalExtension as _;
use ophion_store::metadata::{Metadata, Migrations, SqlError};

/// The copilot's tables, in order. Never edit a released migration.
const MIGRATIONS: Migrations = Migrations {
    sqlite: SQLITE,
    postgres: None,
};

const SQLITE: &[&str] = &[
    // 1: conversations and their messages.
    "CREATE TABLE copilot_conversations (
        id TEXT PRIMARY KEY,
        tenant_id TEXT NOT NULL,
        user_id INTEGER NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE TABLE copilot_messages (
        conversation_id TEXT NOT NULL REFERENCES copilot_conversations(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        PRIMARY KEY (conversation_id, seq)
    );",
    // 2: tokens a tenant's questions spent with the language model, per day.
    "CREATE TABLE copilot_usage (
        tenant_id TEXT NOT NULL,
        day INTEGER NOT NULL,
        tokens INTEGER NOT NULL,
        PRIMARY KEY (tenant_id, day)
    );",
];

/// One stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// `user` or `assistant`.
    pub role: String,
    /// The text (for the assistant, the answer as JSON).
    pub content: String,
}

/// The conversation store.
#[derive(Debug, Clone)]
pub struct Conversations {
    metadata: Metadata,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Conversations {
    /// Migrates the tables.
    pub async fn open(metadata: Metadata) -> Result<Self, ophion_store::Error> {
        metadata.migrate("copilot", &MIGRATIONS).await?;
        Ok(Self { metadata })
    }

    /// The conversation `id` of this tenant and user, or a new one when
    /// `id` is `None`. `Ok(None)` when `id` is not theirs (or unknown).
    pub async fn open_or_start(
        &self,
        tenant: &TenantId,
        user_id: i64,
        id: Option<&str>,
    ) -> Result<Option<String>, ophion_store::Error> {
        let tenant = tenant.as_str().to_owned();
        let id = id.map(str::to_owned);
        self.metadata
            .call(move |c| {
                if let Some(id) = id {
                    let found: Option<String> = c
                        .query_row(
                            "SELECT id FROM copilot_conversations WHERE id = ?1 AND tenant_id = ?2 AND user_id = ?3",
                            (&id, &tenant, user_id),
                            |r| r.get(0),
                        )
                        .optional()?;
                    return Ok(found);
                }
                let mut bytes = [0u8; 16];
                getrandom::fill(&mut bytes)
                    .map_err(|e| SqlError::Conversion(format!("no random bytes: {e}")))?;
                let id = hex::encode(bytes);
                c.execute(
                    "INSERT INTO copilot_conversations (id, tenant_id, user_id, created_at) VALUES (?1, ?2, ?3, ?4)",
                    (&id, &tenant, user_id, now_secs()),
                )?;
                Ok(Some(id))
            })
            .await
    }

    /// Appends a message.
    pub async fn append(
        &self,
        id: &str,
        role: &str,
        content: &str,
    ) -> Result<(), ophion_store::Error> {
        let (id, role, content) = (id.to_owned(), role.to_owned(), content.to_owned());
        self.metadata
            .call(move |c| {
                c.execute(
                    "INSERT INTO copilot_messages (conversation_id, seq, role, content, created_at) \
                     VALUES (?1, (SELECT coalesce(max(seq), 0) + 1 FROM copilot_messages WHERE conversation_id = ?1), ?2, ?3, ?4)",
                    (&id, &role, &content, now_secs()),
                )?;
                Ok(())
            })
            .await
    }

    /// Tokens `tenant` spent today (UTC) with the language model.
    pub async fn used_today(&self, tenant: &TenantId) -> Result<u64, ophion_store::Error> {
        let tenant = tenant.as_str().to_owned();
        self.metadata
            .call(move |c| {
                let n: Option<i64> = c
                    .query_row(
                        "SELECT tokens FROM copilot_usage WHERE tenant_id = ?1 AND day = ?2",
                        (&tenant, now_secs() / 86_400),
                        |r| r.get(0),
                    )
                    .optional()?;
                Ok(n.unwrap_or(0).max(0) as u64)
            })
            .await
    }

    /// Adds `tokens` to what `tenant` spent today.
    pub async fn spend(&self, tenant: &TenantId, tokens: u64) -> Result<(), ophion_store::Error> {
        let tenant = tenant.as_str().to_owned();
        let tokens = i64::try_from(tokens).unwrap_or(i64::MAX);
        self.metadata
            .call(move |c| {
                c.execute(
                    "INSERT INTO copilot_usage (tenant_id, day, tokens) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (tenant_id, day) DO UPDATE SET tokens = copilot_usage.tokens + excluded.tokens",
                    (&tenant, now_secs() / 86_400, tokens),
                )?;
                Ok(())
            })
            .await
    }

    /// The messages of a conversation, oldest first.
    pub async fn messages(&self, id: &str) -> Result<Vec<Stored>, ophion_store::Error> {
        let id = id.to_owned();
        self.metadata
            .call(move |c| {
                let mut st = c.prepare(
                    "SELECT role, content FROM copilot_messages WHERE conversation_id = ?1 ORDER BY seq",
                )?;
                let rows = st
                    .query_map([&id], |r| {
                        Ok(Stored {
                            role: r.get(0)?,
                            content: r.get(1)?,
                        })
                    })?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(rows)
            })
            .await
    }
}
