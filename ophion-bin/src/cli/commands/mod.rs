//! One file per command group.

pub(super) mod admin;
pub(super) mod ai;
pub(super) mod alerts;
pub(super) mod heal;
pub(super) mod mcp;
pub(super) mod session;
pub(super) mod telemetry;
