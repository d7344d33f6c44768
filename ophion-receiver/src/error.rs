//! Errors of `ophion-receiver`.

/// Errors raised while building or running a receiver. Per-request problems
/// are not errors of the receiver: they become OTLP answers to the client.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Invalid configuration.
    #[error("invalid receiver configuration: {0}")]
    Config(String),
    /// A listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A server stopped with an error.
    #[error("{transport} server failed: {message}")]
    Serve {
        /// `grpc` or `http`.
        transport: &'static str,
        /// What happened.
        message: String,
    },
}

impl Error {
    /// Whether trying again (for example after the port is free) can help.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Bind { .. })
    }
}

/// Result with the receiver error.
pub type Result<T, E = Error> = std::result::Result<T, E>;
