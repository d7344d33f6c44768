//! Link settings for the binaries.
//!
//! On Linux with glibc, the binaries (`ophion-server`, `ophion`) are linked with packed relative
//! relocations (`-z pack-relative-relocs`, DT_RELR: binutils 2.38 and
//! glibc 2.36 or later). The binary is position-independent, so every
//! pointer in its read-only data needs a relocation at start-up: with the
//! classic 24-byte entries that table is about 6 MB, which the loader reads
//! in full and which then stays resident; packed, it is a few kilobytes.
//! See docs/benchmarks.md (idle memory).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
