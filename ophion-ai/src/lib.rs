//! # ophion-ai
//!
//! Ophion's AI engine (not implemented yet; see the AI issues): anomaly
//! detection, log patterns, forecasting and root cause over the data model
//! of [`ophion_core`], smart alerts, auto-healing, and a copilot with any LLM
//! behind a trait, everything working without one.
