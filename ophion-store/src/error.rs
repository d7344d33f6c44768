//! Errors of `ophion-store`.

use std::time::Duration;

pub use ophion_core::QueryError;
use ophion_core::SinkError;

/// Errors raised by the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration.
    #[error("invalid store configuration: {0}")]
    Config(String),
    /// A local file operation failed (WAL, data directory).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The write-ahead log could not make a write durable (disk full, I/O
    /// error). Retryable: space may come back.
    #[error("write-ahead log: {0}")]
    Wal(String),
    /// A queue or the memory budget is full. Retryable.
    #[error("overloaded: {0}")]
    Backpressure(String),
    /// The store is shutting down.
    #[error("the store is closed")]
    Closed,
    /// Stored bytes failed a check.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Arrow encoding or decoding failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The object store failed (after its own retries). Retryable.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// The metadata database failed.
    #[error("metadata database: {0}")]
    Metadata(#[from] SqlError),
    /// The PostgreSQL catalog failed or cannot be reached. Retryable.
    #[error("catalog database: {0}")]
    Postgres(String),
    /// A catalog change lost a race with another node's (the files it
    /// retires are no longer live); nothing was changed.
    #[error("catalog conflict: {0}")]
    Conflict(String),
    /// A query failed to plan or run.
    #[error("query: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    /// A user query was refused or stopped; the message is safe to show.
    #[error("{0}")]
    Query(#[from] QueryError),
}

impl Error {
    /// Whether a retry can help.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Wal(_)
                | Error::Backpressure(_)
                | Error::ObjectStore(_)
                | Error::Postgres(_)
                | Error::Metadata(SqlError::Unavailable(_))
                | Error::Closed
                | Error::Io(_)
        )
    }

    /// The error as a query error for readers of [`ophion_core::TelemetryQuery`]:
    /// refusals as they are, storage trouble as retryable, the rest as
    /// internal (logged here, since callers hide its text).
    pub fn into_query_error(self) -> QueryError {
        match self {
            Error::Query(q) => q,
            e if e.is_retryable() => QueryError::Unavailable(e.to_string()),
            e => {
                tracing::error!(error = %e, "query failed");
                QueryError::Internal(e.to_string())
            }
        }
    }

    /// The error as a sink error for receivers.
    pub fn into_sink_error(self) -> SinkError {
        let retry_after = Duration::from_secs(1);
        match self {
            Error::Backpressure(reason) => SinkError::Overloaded {
                retry_after,
                reason,
            },
            e if e.is_retryable() => SinkError::Unavailable {
                retry_after,
                reason: e.to_string(),
            },
            Error::Corrupt(m) => SinkError::Rejected(m),
            e => SinkError::Internal(e.to_string()),
        }
    }
}

/// Result with the store error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why a statement failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SqlError {
    /// `query_row` found no row.
    #[error("query returned no rows")]
    NoRows,
    /// A uniqueness, foreign key or check constraint refused the change.
    #[error("constraint violated: {0}")]
    Constraint(String),
    /// A value could not be converted to or from the database's type.
    #[error("conversion: {0}")]
    Conversion(String),
    /// The database failed.
    #[error("{0}")]
    Database(String),
    /// The database cannot be reached (PostgreSQL down, the connection
    /// broken). Retryable.
    #[error("unreachable: {0}")]
    Unavailable(String),
}
