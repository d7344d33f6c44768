//! # ophion-ai
//!
//! Ophion's AI engine, algorithmic and deterministic, working without any
//! LLM. So far:
//!
//! - [`anomaly`]: streaming anomaly detection on time series (bounded state
//!   per series, scores in `[0, 1]` with an expected range).
//! - [`forecast`]: seasonal forecasts with prediction intervals, and time
//!   until a threshold.
//! - [`patterns`]: log template mining (masking of variables, stable
//!   template ids).
//! - [`pattern_watch`]: log templates over time (counts per bucket, new
//!   patterns, rate anomalies).
//! - [`rca`]: root-cause ranking for an incident window (own time, own
//!   errors, new versions), with [`rca_sim`], a seeded fault-injection
//!   generator to judge it.
//! - [`series`]: reading time series from text.
//! - [`tips`]: optimisation tips with evidence (N+1 queries, slow
//!   endpoints, error hot spots, chatty services, oversized payloads, noisy
//!   log patterns).
//!
//! Planned (issue 6): root cause
//! over the data model of [`ophion_core`]; smart alerts, auto-healing and a
//! copilot with any LLM behind a trait.

pub mod anomaly;
pub mod forecast;
pub mod pattern_watch;
pub mod patterns;
pub mod rca;
pub mod rca_sim;
pub mod series;
pub mod tips;
