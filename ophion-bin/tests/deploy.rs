//! The deployment files: the Compose file is valid Compose (checked by
//! `docker compose config`, or Debian's `docker-compose config` where the
//! Docker CLI has no compose plugin: both validate against the Compose
//! schema), and the systemd units pass `systemd-analyze verify` with the
//! binaries just built.

use std::{path::Path, process::Command};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `config -q` of `file` with the validator this machine has, and its name.
fn compose_config(file: &Path) -> (bool, String, &'static str) {
    let plugin = Command::new("docker")
        .args(["compose", "version"])
        .output()
        .is_ok_and(|o| o.status.success());
    let (program, args, name): (&str, Vec<&str>, &str) = if plugin {
        ("docker", vec!["compose", "-f"], "docker compose config")
    } else {
        (
            "docker-compose",
            vec!["-f"],
            "docker-compose config (no compose plugin in the Docker CLI here)",
        )
    };
    let out = Command::new(program)
        .args(args)
        .arg(file)
        .args(["config", "-q"])
        .env("OPHION_ADMIN_PASSWORD", "a-password")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (.ci/run installs Debian's docker-compose)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        name,
    )
}

#[test]
fn the_compose_file_is_valid_compose() {
    let file = root().join("docker-compose.yml");
    let (ok, err, how) = compose_config(&file);
    println!("validated with {how}");
    assert!(ok, "{how}: {err}");
    // The validator refuses a broken file (it is not a no-op).
    let dir = tempfile::tempdir().expect("tmp");
    let broken = dir.path().join("docker-compose.yml");
    let text = std::fs::read_to_string(&file).expect("compose file");
    std::fs::write(
        &broken,
        text.replace("restart: unless-stopped", "restart: [1, 2]"),
    )
    .expect("write");
    let (ok, _, _) = compose_config(&broken);
    assert!(
        !ok,
        "{how} accepted a service with a list as its restart policy"
    );
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tmp");
    for (unit, binary) in [
        ("ophion-server.service", env!("CARGO_BIN_EXE_ophion-server")),
        ("ophion-agent.service", env!("CARGO_BIN_EXE_ophion-agent")),
    ] {
        let text = std::fs::read_to_string(root().join("deploy").join(unit)).expect("unit");
        let name = unit.trim_end_matches(".service");
        let installed = format!("/usr/local/bin/{name}");
        assert!(text.contains(&installed), "{unit} runs {installed}");
        // The unit as installed, with the binary where this build put it.
        let path = dir.path().join(unit);
        std::fs::write(&path, text.replace(&installed, binary)).expect("write");
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .expect("systemd-analyze (.ci/run installs systemd)");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && !err.contains(unit), "{unit}: {err}");
        for hardening in [
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "SystemCallFilter=@system-service",
            "CapabilityBoundingSet=",
        ] {
            assert!(text.contains(hardening), "{unit} lacks {hardening}");
        }
    }
}
