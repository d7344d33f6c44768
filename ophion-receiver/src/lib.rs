//! placeholder
pub mod config;
pub mod convert;
pub mod error;
pub use error::{Error, Result};
