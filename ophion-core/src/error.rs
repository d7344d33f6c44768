//! Errors of `ophion-core`.

/// Errors raised by the core data model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A tenant id with characters outside `[A-Za-z0-9_-]` or a bad length.
    #[error("invalid tenant id {0:?}: use 1-64 characters from A-Z, a-z, 0-9, '_' and '-'")]
    InvalidTenant(String),
    /// A record batch whose schema is not the signal's schema.
    #[error("batch schema does not match the {0} schema")]
    SchemaMismatch(crate::Signal),
}

/// Result with the core error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
