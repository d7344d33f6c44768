//! # ophion-bin
//!
//! The binaries `ophion-server`, `ophion-agent` and the `ophion` CLI (not
//! implemented yet; see the server issue). The wiring will live here as
//! library code, `server::run(config, shutdown)`, that tests can call; the
//! binaries stay thin.
