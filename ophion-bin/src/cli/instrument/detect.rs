//! What a project is: its languages and frameworks, from the manifests
//! each ecosystem keeps at its root.

use std::path::{Path, PathBuf};

/// A language `ophion instrument` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Language {
    /// Node.js (`package.json`).
    Node,
    /// Python (`requirements.txt`, `pyproject.toml`, `Pipfile`, `setup.py`).
    Python,
    /// Java (`pom.xml`, `build.gradle`, `build.gradle.kts`).
    Java,
    /// .NET (`*.csproj`, `*.fsproj`).
    DotNet,
    /// Go (`go.mod`).
    Go,
    /// Ruby (`Gemfile`).
    Ruby,
    /// Rust (`Cargo.toml`).
    Rust,
}

impl Language {
    /// Its name as people write it.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Language::Node => "Node.js",
            Language::Python => "Python",
            Language::Java => "Java",
            Language::DotNet => ".NET",
            Language::Go => "Go",
            Language::Ruby => "Ruby",
            Language::Rust => "Rust",
        }
    }
}

/// One language found in a project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Found {
    /// The language.
    pub(crate) language: Language,
    /// The manifest that says so.
    pub(crate) manifest: PathBuf,
    /// Web or RPC frameworks its dependencies name.
    pub(crate) frameworks: Vec<&'static str>,
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .to_lowercase()
}

/// Frameworks among `known` (dependency name, framework) that `text`
/// names as a dependency.
fn frameworks(text: &str, known: &[(&str, &'static str)]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for (dep, name) in known {
        let named = text.lines().any(|l| {
            let l = l.trim();
            // go.mod's one-line form: `require module version`.
            let l = l.strip_prefix("require ").unwrap_or(l).trim_start();
            let l = l.trim_start_matches(['"', '\'']);
            l.starts_with(dep)
                && l[dep.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        }) || text.contains(&format!("\"{dep}\""));
        if named && !out.contains(name) {
            out.push(name);
        }
    }
    out
}

/// Every language whose manifest is at `dir`'s root.
pub(crate) fn detect(dir: &Path) -> Vec<Found> {
    let mut out = Vec::new();
    let at = |f: &str| dir.join(f);
    let mut found = |language, manifest: PathBuf, frameworks| {
        out.push(Found {
            language,
            manifest,
            frameworks,
        })
    };
    if at("package.json").is_file() {
        let t = read(&at("package.json"));
        found(
            Language::Node,
            at("package.json"),
            frameworks(
                &t,
                &[
                    ("express", "Express"),
                    ("fastify", "Fastify"),
                    ("koa", "Koa"),
                    ("next", "Next.js"),
                    ("@nestjs/core", "NestJS"),
                    ("@hapi/hapi", "hapi"),
                ],
            ),
        );
    }
    for m in ["requirements.txt", "pyproject.toml", "Pipfile", "setup.py"] {
        if at(m).is_file() {
            let t = read(&at(m));
            found(
                Language::Python,
                at(m),
                frameworks(
                    &t,
                    &[
                        ("flask", "Flask"),
                        ("django", "Django"),
                        ("fastapi", "FastAPI"),
                        ("starlette", "Starlette"),
                        ("tornado", "Tornado"),
                        ("aiohttp", "aiohttp"),
                        ("grpcio", "gRPC"),
                    ],
                ),
            );
            break;
        }
    }
    for m in ["pom.xml", "build.gradle", "build.gradle.kts"] {
        if at(m).is_file() {
            let t = read(&at(m));
            let fw = if t.contains("spring-boot") {
                vec!["Spring Boot"]
            } else if t.contains("quarkus") {
                vec!["Quarkus"]
            } else if t.contains("micronaut") {
                vec!["Micronaut"]
            } else {
                vec![]
            };
            found(Language::Java, at(m), fw);
            break;
        }
    }
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut projects: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "csproj" || x == "fsproj")
            })
            .collect();
        projects.sort();
        if let Some(p) = projects.into_iter().next() {
            let t = read(&p);
            let fw = if t.contains("microsoft.net.sdk.web") {
                vec!["ASP.NET Core"]
            } else {
                vec![]
            };
            found(Language::DotNet, p, fw);
        }
    }
    if at("go.mod").is_file() {
        let t = read(&at("go.mod"));
        found(
            Language::Go,
            at("go.mod"),
            frameworks(
                &t,
                &[
                    ("github.com/gin-gonic/gin", "Gin"),
                    ("github.com/labstack/echo", "Echo"),
                    ("github.com/go-chi/chi", "chi"),
                    ("github.com/gofiber/fiber", "Fiber"),
                    ("google.golang.org/grpc", "gRPC"),
                ],
            ),
        );
    }
    if at("Gemfile").is_file() {
        let t = read(&at("Gemfile"));
        let fw = if t.contains("'rails'") || t.contains("\"rails\"") {
            vec!["Rails"]
        } else if t.contains("sinatra") {
            vec!["Sinatra"]
        } else {
            vec![]
        };
        found(Language::Ruby, at("Gemfile"), fw);
    }
    if at("Cargo.toml").is_file() {
        let t = read(&at("Cargo.toml"));
        found(
            Language::Rust,
            at("Cargo.toml"),
            frameworks(
                &t,
                &[
                    ("axum", "axum"),
                    ("actix-web", "Actix Web"),
                    ("tonic", "tonic"),
                    ("rocket", "Rocket"),
                    ("warp", "warp"),
                ],
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_name_languages_and_frameworks() {
        let dir = tempfile::tempdir().expect("tmp");
        let w = |f: &str, t: &str| std::fs::write(dir.path().join(f), t).expect("write");
        w(
            "package.json",
            r#"{"dependencies": {"express": "^5.1.0", "expression-eval": "1"}}"#,
        );
        w("requirements.txt", "Flask==3.1\nflask-cors\n");
        w(
            "go.mod",
            "module x\nrequire github.com/gin-gonic/gin v1.10.0\n",
        );
        w(
            "shop.csproj",
            r#"<Project Sdk="Microsoft.NET.Sdk.Web"></Project>"#,
        );
        w(
            "Gemfile",
            "source 'https://rubygems.org'\ngem 'rails', '~> 7.1'\n",
        );
        w("Cargo.toml", "[dependencies]\naxum = \"0.8\"\n");
        w(
            "pom.xml",
            "<artifactId>spring-boot-starter-web</artifactId>",
        );
        let found = detect(dir.path());
        let by = |l: Language| {
            found
                .iter()
                .find(|f| f.language == l)
                .map(|f| f.frameworks.clone())
        };
        assert_eq!(by(Language::Node), Some(vec!["Express"]));
        assert_eq!(by(Language::Python), Some(vec!["Flask"]));
        assert_eq!(by(Language::Go), Some(vec!["Gin"]));
        assert_eq!(by(Language::DotNet), Some(vec!["ASP.NET Core"]));
        assert_eq!(by(Language::Ruby), Some(vec!["Rails"]));
        assert_eq!(by(Language::Rust), Some(vec!["axum"]));
        assert_eq!(by(Language::Java), Some(vec!["Spring Boot"]));
        assert!(detect(&dir.path().join("nothing-here")).is_empty());
    }
}
