//! End-to-end tests: real OTLP clients against real Ophion servers on
//! loopback ports chosen by the OS. One test binary (see STYLE.md).

mod golden;
mod json_agreement;
mod python_sdk;
mod rust_sdk;
mod s3;
