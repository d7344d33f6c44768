//! The steps that instrument one language: file edits (shown as diffs
//! before anything is written), new files, commands, and what is left to
//! do by hand. Zero-code instrumentation where the language has it
//! (Python's `opentelemetry-instrument`, Node's `--require
//! @opentelemetry/auto-instrumentations-node/register`, Java's agent,
//! .NET's automatic instrumentation); the SDK and its setup where it has
//! not (Go, Ruby, Rust). Source code is never edited.

use std::path::{Path, PathBuf};

use super::detect::{Found, Language};

/// What the instrumented process is told, as `OTEL_*` variables.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    /// `OTEL_SERVICE_NAME`.
    pub(crate) service: String,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` (OTLP/HTTP).
    pub(crate) endpoint: String,
    /// `OTEL_RESOURCE_ATTRIBUTES`.
    pub(crate) resource_attributes: String,
}

impl Settings {
    /// The variables, in order.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("OTEL_SERVICE_NAME", self.service.clone()),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", self.endpoint.clone()),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf".into()),
            ("OTEL_TRACES_EXPORTER", "otlp".into()),
            ("OTEL_METRICS_EXPORTER", "otlp".into()),
            ("OTEL_LOGS_EXPORTER", "otlp".into()),
        ];
        if !self.resource_attributes.is_empty() {
            v.push(("OTEL_RESOURCE_ATTRIBUTES", self.resource_attributes.clone()));
        }
        v
    }
}

/// One step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// Replace a file's text (`before` is what it holds now, empty for a
    /// new file).
    Write {
        /// The file.
        path: PathBuf,
        /// Its text now.
        before: String,
        /// Its text after.
        after: String,
        /// Mode bits for a new file (0o755 for a wrapper script).
        executable: bool,
    },
    /// Run a program in the project directory.
    Run {
        /// Program and arguments.
        argv: Vec<String>,
    },
    /// Something only a person can do (or that needs a download the
    /// tool does not make).
    Manual(String),
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// `text` with `lines` appended (each once: lines already there, by
/// package name, are left alone).
fn with_lines(text: &str, lines: &[&str], name: impl Fn(&str) -> String) -> String {
    let have: Vec<String> = text.lines().map(|l| name(l.trim())).collect();
    let mut out = text.to_owned();
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for l in lines {
        if !have.contains(&name(l)) {
            out.push_str(l);
            out.push('\n');
        }
    }
    out
}

/// A POSIX shell wrapper that sets the variables and runs `exec`.
fn wrapper(s: &Settings, exec: &str, comment: &str) -> String {
    let mut w = String::from(
        "#!/bin/sh\n# Written by `ophion instrument`: runs the application with OpenTelemetry.\n",
    );
    w.push_str(&format!("# {comment}\n"));
    for (k, v) in s.env() {
        w.push_str(&format!("export {k}=\"${{{k}:-{v}}}\"\n"));
    }
    w.push_str(&format!("exec {exec}\n"));
    w
}

/// The steps for one detected language of the project at `dir`.
pub(crate) fn plan(dir: &Path, found: &Found, s: &Settings) -> Vec<Step> {
    let wrapper_path = dir.join("otel-run.sh");
    let mut steps = Vec::new();
    let write_wrapper = |exec: &str, comment: &str| Step::Write {
        path: wrapper_path.clone(),
        before: read(&wrapper_path),
        after: wrapper(s, exec, comment),
        executable: true,
    };
    match found.language {
        Language::Python => {
            let mut pkgs = vec![
                "opentelemetry-distro",
                "opentelemetry-exporter-otlp-proto-http",
            ];
            for fw in &found.frameworks {
                match *fw {
                    "Flask" => pkgs.push("opentelemetry-instrumentation-flask"),
                    "Django" => pkgs.push("opentelemetry-instrumentation-django"),
                    "FastAPI" => pkgs.push("opentelemetry-instrumentation-fastapi"),
                    "Starlette" => pkgs.push("opentelemetry-instrumentation-starlette"),
                    "Tornado" => pkgs.push("opentelemetry-instrumentation-tornado"),
                    "aiohttp" => pkgs.push("opentelemetry-instrumentation-aiohttp-server"),
                    "gRPC" => pkgs.push("opentelemetry-instrumentation-grpc"),
                    _ => {}
                }
            }
            let name = |l: &str| {
                l.split(['=', '<', '>', '~', '!', ';', '[', ' '])
                    .next()
                    .unwrap_or("")
                    .to_lowercase()
                    .replace('_', "-")
            };
            if found
                .manifest
                .file_name()
                .is_some_and(|n| n == "requirements.txt")
            {
                let before = read(&found.manifest);
                steps.push(Step::Write {
                    path: found.manifest.clone(),
                    after: with_lines(&before, &pkgs, name),
                    before,
                    executable: false,
                });
                steps.push(Step::Manual(
                    "install them in the application's environment: pip install -r requirements.txt".into(),
                ));
            } else {
                steps.push(Step::Manual(format!(
                    "add {} to {} and install them",
                    pkgs.join(", "),
                    found.manifest.display()
                )));
            }
            steps.push(write_wrapper(
                "opentelemetry-instrument \"$@\"",
                "usage: ./otel-run.sh python app.py (or gunicorn ..., flask run ...)",
            ));
        }
        Language::Node => {
            steps.push(Step::Run {
                argv: [
                    "npm",
                    "install",
                    "--save",
                    "--no-audit",
                    "--no-fund",
                    "@opentelemetry/api",
                    "@opentelemetry/auto-instrumentations-node",
                ]
                .map(str::to_owned)
                .to_vec(),
            });
            steps.push(write_wrapper(
                "env NODE_OPTIONS=\"${NODE_OPTIONS:-} --require @opentelemetry/auto-instrumentations-node/register\" \"$@\"",
                "usage: ./otel-run.sh node app.js (or npm start)",
            ));
        }
        Language::Java => {
            steps.push(Step::Manual(
                "download the OpenTelemetry Java agent next to the application: \
                 https://github.com/open-telemetry/opentelemetry-java-instrumentation/releases/latest/download/opentelemetry-javaagent.jar"
                    .into(),
            ));
            steps.push(write_wrapper(
                "env JAVA_TOOL_OPTIONS=\"${JAVA_TOOL_OPTIONS:-} -javaagent:$(dirname \"$0\")/opentelemetry-javaagent.jar\" \"$@\"",
                "usage: ./otel-run.sh java -jar app.jar",
            ));
        }
        Language::DotNet => {
            steps.push(Step::Run {
                argv: [
                    "dotnet",
                    "add",
                    "package",
                    "OpenTelemetry.AutoInstrumentation",
                ]
                .map(str::to_owned)
                .to_vec(),
            });
            steps.push(write_wrapper(
                "env CORECLR_ENABLE_PROFILING=1 \"$@\"",
                "usage: ./otel-run.sh dotnet run (the package's build output sets up the profiler; see its README)",
            ));
        }
        Language::Go => {
            steps.push(Step::Run {
                argv: [
                    "go",
                    "get",
                    "go.opentelemetry.io/otel",
                    "go.opentelemetry.io/otel/sdk",
                    "go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp",
                    "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp",
                ]
                .map(str::to_owned)
                .to_vec(),
            });
            steps.push(Step::Manual(
                "Go has no zero-code instrumentation: create a TracerProvider with the otlptracehttp exporter in main() \
                 and wrap your handlers with otelhttp.NewHandler (gin: otelgin, echo: otelecho, gRPC: otelgrpc); \
                 the variables in otel-run.sh configure it"
                    .into(),
            ));
            steps.push(write_wrapper(
                "\"$@\"",
                "usage: ./otel-run.sh ./your-binary",
            ));
        }
        Language::Ruby => {
            let before = read(&found.manifest);
            let gems = [
                "gem 'opentelemetry-sdk'",
                "gem 'opentelemetry-exporter-otlp'",
                "gem 'opentelemetry-instrumentation-all'",
            ];
            let name = |l: &str| {
                l.split(',')
                    .next()
                    .unwrap_or("")
                    .replace('"', "'")
                    .trim()
                    .to_owned()
            };
            steps.push(Step::Write {
                path: found.manifest.clone(),
                after: with_lines(&before, &gems, name),
                before,
                executable: false,
            });
            let init = if found.frameworks.contains(&"Rails") {
                dir.join("config/initializers/opentelemetry.rb")
            } else {
                dir.join("opentelemetry.rb")
            };
            steps.push(Step::Write {
                before: read(&init),
                after: "# Written by `ophion instrument`: the SDK, configured by the OTEL_* variables.\n\
                        require 'opentelemetry/sdk'\nrequire 'opentelemetry/exporter/otlp'\nrequire 'opentelemetry/instrumentation/all'\n\
                        OpenTelemetry::SDK.configure(&:use_all)\n"
                    .into(),
                path: init,
                executable: false,
            });
            steps.push(Step::Manual(
                "run bundle install; outside Rails, require_relative 'opentelemetry' first".into(),
            ));
            steps.push(write_wrapper(
                "\"$@\"",
                "usage: ./otel-run.sh bundle exec rails server",
            ));
        }
        Language::Rust => {
            steps.push(Step::Run {
                argv: [
                    "cargo",
                    "add",
                    "opentelemetry",
                    "opentelemetry_sdk",
                    "opentelemetry-otlp",
                    "tracing-opentelemetry",
                ]
                .map(str::to_owned)
                .to_vec(),
            });
            steps.push(Step::Manual(
                "Rust has no zero-code instrumentation: build an SdkTracerProvider with opentelemetry_otlp's HTTP exporter in main() \
                 and add tracing_opentelemetry's layer to your tracing subscriber (axum: tower-http's TraceLayer); \
                 the variables in otel-run.sh configure it"
                    .into(),
            ));
            steps.push(write_wrapper(
                "\"$@\"",
                "usage: ./otel-run.sh cargo run --release",
            ));
        }
    }
    steps
}

/// A Compose override and a Kubernetes patch setting the variables on the
/// project's container (for projects with a `Dockerfile`).
pub(crate) fn containers(dir: &Path, s: &Settings) -> Vec<Step> {
    if !dir.join("Dockerfile").is_file() {
        return Vec::new();
    }
    let mut compose = format!(
        "# Written by `ophion instrument`: docker compose -f docker-compose.yml -f docker-compose.otel.yml up\n\
         services:\n  {}:\n    environment:\n",
        s.service
    );
    let mut patch = format!(
        "# Written by `ophion instrument`: kubectl patch deployment {} --patch-file otel-patch.yaml\n\
         spec:\n  template:\n    spec:\n      containers:\n        - name: {}\n          env:\n",
        s.service, s.service
    );
    for (k, v) in s.env() {
        compose.push_str(&format!("      {k}: \"{v}\"\n"));
        patch.push_str(&format!(
            "            - name: {k}\n              value: \"{v}\"\n"
        ));
    }
    [
        ("docker-compose.otel.yml", compose),
        ("otel-patch.yaml", patch),
    ]
    .into_iter()
    .map(|(f, after)| Step::Write {
        path: dir.join(f),
        before: read(&dir.join(f)),
        after,
        executable: false,
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::instrument::detect::detect;

    fn settings() -> Settings {
        Settings {
            service: "shop".into(),
            endpoint: "http://127.0.0.1:4318".into(),
            resource_attributes: "deployment.environment=dev".into(),
        }
    }

    #[test]
    fn python_gets_its_packages_once_and_a_wrapper() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(
            dir.path().join("requirements.txt"),
            "flask==3.1.3\nOpenTelemetry_Distro>=0.1",
        )
        .expect("write");
        let found = detect(dir.path());
        let steps = plan(dir.path(), &found[0], &settings());
        let Step::Write { after, .. } = &steps[0] else {
            panic!("{steps:?}")
        };
        assert_eq!(
            after,
            "flask==3.1.3\nOpenTelemetry_Distro>=0.1\nopentelemetry-exporter-otlp-proto-http\nopentelemetry-instrumentation-flask\n"
        );
        let Some(Step::Write {
            after: w,
            executable: true,
            ..
        }) = steps.last()
        else {
            panic!("{steps:?}")
        };
        assert!(w.contains("export OTEL_SERVICE_NAME=\"${OTEL_SERVICE_NAME:-shop}\""));
        assert!(w.contains("exec opentelemetry-instrument \"$@\""));
        assert!(w.contains("deployment.environment=dev"));
    }

    #[test]
    fn a_dockerfile_gets_a_compose_override_and_a_kubernetes_patch() {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").expect("write");
        let steps = containers(dir.path(), &settings());
        assert_eq!(steps.len(), 2);
        for s in &steps {
            let Step::Write { after, .. } = s else {
                panic!()
            };
            assert!(after.contains("OTEL_EXPORTER_OTLP_ENDPOINT"));
        }
    }
}
