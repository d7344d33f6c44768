//! # ophion-ai
//!
//! Ophion's AI engine, algorithmic and deterministic, working without any
//! LLM. So far:
//!
//! - [`patterns`]: log template mining (masking of variables, stable
//!   template ids).
//!
//! Planned (issue 6): anomaly detection, forecasting, root cause and tips
//! over the data model of [`ophion_core`]; smart alerts, auto-healing and a
//! copilot with any LLM behind a trait.

pub mod patterns;
