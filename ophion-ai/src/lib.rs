//! # ophion-ai
//!
//! Ophion's AI engine: algorithmic and deterministic, working without any
//! LLM, over the shared data model of [`ophion_core`] (spans are read from
//! the core spans schema's record batches, [`spans`]).
//!
//! ```text
//!  TelemetryQuery (ophion-core) ──record batches──► spans::SpanInfo ──► rca, tips
//!           │ per-minute counts                                         │
//!           ▼                                                           ▼
//!  red::values ──► anomaly::Detector ──► insights ◄── patterns / pattern_watch (log bodies)
//!                                  forecast (series) ──► capacity, "time until"
//!  llm::LlmProvider ──► the copilot (to come), over the same read-only tools
//! ```
//!
//! - [`anomaly`]: streaming anomaly detection on time series (bounded state
//!   per series, scores in `[0, 1]` with an expected range; deviations and
//!   flatlines; the defaults and the server's minute setting).
//! - [`forecast`]: seasonal forecasts with prediction intervals, and time
//!   until a threshold.
//! - [`patterns`]: log template mining (masking of variables, positions
//!   that hold many words learnt as variables, stable template ids that a
//!   merge resolves); [`pattern_watch`]: templates over time (counts per
//!   bucket, new patterns, rate anomalies).
//! - [`red`]: what a RED series measures per minute, in one place.
//! - [`rca`]: root-cause ranking for an incident window (critical-path and
//!   own time, origin errors, client spans charged to their callee, new
//!   versions).
//! - [`spans`]: the engine's view of a span, read from record batches.
//! - [`series`]: reading time series from text.
//! - [`tips`]: optimisation tips with evidence (N+1 queries, slow
//!   endpoints, error hot spots, chatty services, oversized payloads, noisy
//!   log patterns).
//! - [`incidents`]: Smart Alerts: firing alerts grouped into incidents
//!   (time, the service graph, labels), the probable root-cause alert
//!   first, a priority score, and when each incident's notifications go
//!   out (Alertmanager's group wait, interval and repeat).
//! - [`llm`]: the [`llm::LlmProvider`] trait and its contract; the
//!   providers (OpenAI-compatible, Anthropic, Ollama) come with the copilot.
//!
//! The detector's, forecaster's and miner's defaults are the choices of
//! `benches/choose_settings.py` on their benchmarks (CI checks it); the
//! ranker's were developed on `rca_sim`'s development seeds and are scored
//! on its held-out ones. Held-out scores sit beside full ones in
//! `docs/benchmarks.md`.
//!
//! The engine holds no I/O: the server (`ophion-bin`'s AI service) reads
//! through the read seam and keeps state; everything here is a pure
//! function or a bounded state machine, testable without a store.
//!
//! | feature | what it adds |
//! |---------|--------------|
//! | `sim`   | `rca_sim`: a seeded fault-injection shop (17 services, databases and an untraced service as client spans, async work, clock skew, timeouts and retries, decoys) for judging root cause and the watch, and its traces as OTLP (pulls `rand` and the OTLP types); used by tests and benches; `storm_sim`: seeded alert storms over random topologies, with the truth to score Smart Alerts |

pub mod anomaly;
pub mod forecast;
pub mod incidents;
pub mod llm;
pub mod pattern_watch;
pub mod patterns;
pub mod rca;
#[cfg(feature = "sim")]
pub mod rca_sim;
pub mod red;
pub mod series;
pub mod spans;
#[cfg(feature = "sim")]
pub mod storm_sim;
pub mod tips;
