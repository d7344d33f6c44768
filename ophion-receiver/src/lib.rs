//! placeholder
pub mod config;
pub mod convert;
pub mod error;
pub mod json;
pub use error::{Error, Result};
