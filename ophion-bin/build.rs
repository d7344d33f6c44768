//! Link settings for the binaries, and the web dashboard embedded in
//! `ophion-server`.
//!
//! **Linking.** On Linux with glibc, the binaries (`ophion-server`, `ophion`) are linked with packed relative
//! relocations (`-z pack-relative-relocs`, DT_RELR: binutils 2.38 and
//! glibc 2.36 or later). The binary is position-independent, so every
//! pointer in its read-only data needs a relocation at start-up: with the
//! classic 24-byte entries that table is about 6 MB, which the loader reads
//! in full and which then stays resident; packed, it is a few kilobytes.
//! See docs/benchmarks.md (idle memory).
//!
//! They are also linked as fixed-address executables (`-no-pie`), as Go
//! links the OpenTelemetry Collector and Prometheus by default. A
//! position-independent binary has every pointer in its read-only data
//! (vtables, and a panic location per `unwrap` and bounds check: 4.5 MB
//! here) rewritten at start-up, which turns those pages into private
//! memory of every process; fixed, they stay clean file pages read on
//! demand. Idle resident memory fell from 29.2 to 25.1 MiB. The libraries,
//! heap, stacks and mappings are still placed at random; only the
//! executable's own image is not. `OPHION_PIE=1` builds a
//! position-independent binary for platforms whose policy requires one.
//!
//! **Dashboard.** The single-page app in `ui/` (TypeScript, React, Vite)
//! is built here when its sources change (`npm ci` when the lockfile
//! changed, then `npm run build` into `OUT_DIR`), each file gzipped, and
//! the list written to `OUT_DIR/ui_assets.rs` for `api/ui.rs` to embed.
//! The built bundle is never committed. Without Node.js and npm the build
//! stops with a message; `OPHION_UI=off` builds the server without the
//! dashboard.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
    process::Command,
};

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
        println!("cargo::rerun-if-env-changed=OPHION_PIE");
        if !std::env::var("OPHION_PIE").is_ok_and(|v| v == "1") {
            println!("cargo::rustc-link-arg-bins=-no-pie");
        }
    }
    dashboard();
}

fn out_dir() -> PathBuf {
    PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR"))
}

fn dashboard() {
    println!("cargo::rerun-if-env-changed=OPHION_UI");
    let ui = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("manifest dir")).join("ui");
    for f in [
        "index.html",
        "package.json",
        "package-lock.json",
        "vite.config.ts",
        "tsconfig.json",
        "src",
    ] {
        println!("cargo::rerun-if-changed={}", ui.join(f).display());
    }
    let off = std::env::var("OPHION_UI").is_ok_and(|v| v == "off" || v == "0");
    let list = out_dir().join("ui_assets.rs");
    if off {
        std::fs::write(
            &list,
            "/// Built with OPHION_UI=off: no dashboard.\npub static ASSETS: &[Asset] = &[];\n",
        )
        .expect("write ui_assets.rs");
        return;
    }
    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    if Command::new(npm).arg("--version").output().is_err() {
        panic!(
            "\n\nThe dashboard (ophion-bin/ui) needs Node.js 20 or later and npm to build.\n\
             Install them (https://nodejs.org), or build the server without the dashboard:\n\
             \n    OPHION_UI=off cargo build -p ophion-bin\n\n"
        );
    }
    // Dependencies: again only when the lockfile is newer than the install.
    let stamp = ui.join("node_modules/.package-lock.json");
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    if modified(&stamp) < modified(&ui.join("package-lock.json")) {
        run(
            Command::new(npm)
                .args(["ci", "--no-audit", "--no-fund"])
                .current_dir(&ui),
            "npm ci",
        );
    }
    let dist = out_dir().join("ui-dist");
    run(
        Command::new(npm)
            .args(["run", "build"])
            .env("OPHION_UI_OUT", &dist)
            .current_dir(&ui),
        "npm run build",
    );
    let gz = out_dir().join("ui-gz");
    let _ = std::fs::remove_dir_all(&gz);
    let mut files = Vec::new();
    walk(&dist, &mut files);
    files.sort();
    let mut code = String::from("pub static ASSETS: &[Asset] = &[\n");
    for f in files {
        let rel = f.strip_prefix(&dist).expect("inside dist");
        let web = format!("/{}", rel.to_string_lossy().replace('\\', "/"));
        let target = gz.join(format!("{}.gz", rel.display()));
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        let bytes = std::fs::read(&f).expect("read built file");
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&bytes).expect("gzip");
        std::fs::write(&target, enc.finish().expect("gzip")).expect("write gzip");
        code.push_str(&format!(
            "    Asset {{ path: {web:?}, mime: {:?}, gzip: include_bytes!({:?}) }},\n",
            mime(&web),
            target.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(&list, code).expect("write ui_assets.rs");
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("{what} in ophion-bin/ui could not start: {e}"));
    assert!(
        status.success(),
        "{what} in ophion-bin/ui failed ({status}); its output is above. OPHION_UI=off builds without the dashboard."
    );
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read dist").flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else {
            out.push(p);
        }
    }
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next().unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "json" => "application/json",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}
