//! Benchmarks of Ophion's subsystems; see `receiver.rs` and docs/benchmarks.md.
