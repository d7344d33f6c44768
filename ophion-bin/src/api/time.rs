//! Time ranges in query strings, `from` and `to`, in the forms of
//! [`crate::read::time`] (defaults: the last hour).

use serde::Deserialize;

use super::ApiError;
use crate::read::Range;
pub(super) use crate::read::time::duration_ns;

/// `from` / `to` as sent.
#[derive(Debug, Default, Clone, Deserialize)]
pub(super) struct RangeParams {
    pub from: Option<String>,
    pub to: Option<String>,
}

impl RangeParams {
    /// The range, defaulting to the hour before `to` (itself defaulting to now).
    pub(super) fn resolve(&self) -> Result<Range, ApiError> {
        resolve(self.from.as_deref(), self.to.as_deref())
    }
}

/// `from` and `to` as sent, resolved; see [`RangeParams::resolve`].
pub(super) fn resolve(from: Option<&str>, to: Option<&str>) -> Result<Range, ApiError> {
    Ok(crate::read::time::resolve(from, to)?)
}
