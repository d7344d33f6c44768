//! The deployment files: the Compose files are valid Compose (checked by
//! `docker compose config`, or Debian's `docker-compose config` where the
//! Docker CLI has no compose plugin: both validate against the Compose
//! schema), every Ophion service of the cluster's Compose file has a
//! configuration the server accepts, and the systemd units pass
//! `systemd-analyze verify` with the binaries just built.

use std::{path::Path, process::Command};

fn root() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
}

/// `config -q` of `file` with the validator this machine has, and its name.
fn compose_config(file: &Path) -> (bool, String, &'static str) {
    let (ok, _, err, name) = compose(file, true);
    (ok, err, name)
}

/// `config` of `file` (`-q`: only validate): success, the resolved file,
/// standard error, the validator's name.
fn compose(file: &Path, quiet: bool) -> (bool, String, String, &'static str) {
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
        .arg("config")
        .args(quiet.then_some("-q"))
        .env("OPHION_ADMIN_PASSWORD", "a-password")
        .env("OPHION_CLUSTER_SECRET", "a-cluster-secret")
        .env("OPHION_SIGNING_KEY", "ab".repeat(32))
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e} (.ci/run installs Debian's docker-compose)"));
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        name,
    )
}

#[test]
fn the_compose_files_are_valid_compose() {
    for file in [
        root().join("docker-compose.yml"),
        root().join("deploy/cluster-compose.yml"),
    ] {
        let (ok, err, how) = compose_config(&file);
        println!("{} validated with {how}", file.display());
        assert!(ok, "{}: {how}: {err}", file.display());
    }
    let file = root().join("docker-compose.yml");
    let (_, _, how) = compose_config(&file);
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

/// One service of a resolved Compose file: its name, command and
/// environment (the resolved file lists `command` as `- item` lines and
/// `environment` as `KEY: value` lines).
struct Service {
    name: String,
    image: String,
    command: Vec<String>,
    env: Vec<(String, String)>,
}

fn unquote(v: &str) -> String {
    let v = v.trim();
    for q in ['"', '\''] {
        if let Some(inner) = v.strip_prefix(q).and_then(|x| x.strip_suffix(q)) {
            return inner.to_owned();
        }
    }
    v.to_owned()
}

fn services(resolved: &str) -> Vec<Service> {
    let mut out: Vec<Service> = Vec::new();
    let mut in_services = false;
    let mut section = "";
    for line in resolved.lines() {
        let indent = line.len() - line.trim_start().len();
        let text = line.trim();
        match indent {
            0 => in_services = text == "services:",
            2 if in_services => {
                out.push(Service {
                    name: text.trim_end_matches(':').to_owned(),
                    image: String::new(),
                    command: Vec::new(),
                    env: Vec::new(),
                });
                section = "";
            }
            4 if in_services && text.starts_with("- ") => {
                // A list at its key's indent (how the resolved file writes
                // `command`).
                if section == "command"
                    && let Some(s) = out.last_mut()
                {
                    s.command.push(unquote(&text[2..]));
                }
            }
            4 if in_services => {
                let (key, value) = text.split_once(':').unwrap_or((text, ""));
                section = match key {
                    "command" => "command",
                    "environment" => "environment",
                    _ => "",
                };
                if key == "image"
                    && let Some(s) = out.last_mut()
                {
                    s.image = unquote(value);
                }
            }
            _ if in_services => {
                let Some(s) = out.last_mut() else { continue };
                match section {
                    "command" => {
                        if let Some(item) = text.strip_prefix("- ") {
                            s.command.push(unquote(item));
                        }
                    }
                    "environment" => {
                        if let Some((k, v)) = text.split_once(": ") {
                            s.env.push((k.to_owned(), unquote(v)));
                        } else if let Some(k) = text.strip_suffix(':') {
                            s.env.push((k.to_owned(), String::new()));
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    out
}

#[test]
fn every_ophion_service_of_the_cluster_compose_file_has_a_valid_configuration() {
    let (ok, resolved, err, how) = compose(&root().join("deploy/cluster-compose.yml"), false);
    assert!(ok, "{how}: {err}");
    let ophion: Vec<Service> = services(&resolved)
        .into_iter()
        .filter(|s| s.image.starts_with("ophion"))
        .collect();
    let names: Vec<&str> = ophion.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names.len(),
        5,
        "two ingest, two query and one compact node: {names:?}"
    );
    let dir = tempfile::tempdir().expect("tmp");
    let mut roles = Vec::new();
    for s in &ophion {
        // The server's own check of the service's flags and environment;
        // the data directory is a local one.
        let mut args = s.command.clone();
        if let Some(i) = args.iter().position(|a| a == "--data-dir") {
            args[i + 1] = dir.path().join(&s.name).display().to_string();
        }
        let out = Command::new(env!("CARGO_BIN_EXE_ophion-server"))
            .args(&args)
            .arg("--print-config")
            .env_clear()
            .envs(s.env.iter().map(|(k, v)| (k, v)))
            .output()
            .expect("ophion-server");
        let printed = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {}",
            s.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let role = printed
            .lines()
            .skip_while(|l| l.trim() != "[store.cluster]")
            .find_map(|l| l.trim().strip_prefix("role = "))
            .map(unquote)
            .expect("the printed configuration has a cluster role");
        assert!(
            printed.contains("postgres_url = \"postgres://"),
            "{}: the catalog is in PostgreSQL",
            s.name
        );
        roles.push(role);
    }
    roles.sort();
    assert_eq!(roles, ["compact", "ingest", "ingest", "query", "query"]);
    // The check is not a no-op: a key the server does not know is refused.
    let out = Command::new(env!("CARGO_BIN_EXE_ophion-server"))
        .args(["--print-config", "--role", "query"])
        .env_clear()
        .env("OPHION__STORE__CLUSTER__NO_SUCH_KEY", "1")
        .output()
        .expect("ophion-server");
    assert!(!out.status.success(), "an unknown key is refused");
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
