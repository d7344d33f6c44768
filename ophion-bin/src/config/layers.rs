//! Configuration in layers, for every binary: defaults < TOML file
//! (`--config`) < environment < command-line flags. Option names are
//! checked against the configuration's shape, so a typo in a file, a
//! variable or a flag is an error naming it, never silently ignored.
//!
//! In the environment, a program's common options have short names, and
//! any option can be set by its path with `__` between levels after the
//! program's prefix (`OPHION__STORE__RETENTION__TRACES_DAYS=7`,
//! `OPHION_AGENT__QUEUE__MAX_BYTES=1073741824`).

use std::{
    fmt::Display,
    net::SocketAddr,
    path::{Path, PathBuf},
};

use serde::{Serialize, de::DeserializeOwned};

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file, a variable or the merged result is not a valid configuration.
    #[error("{origin}: {message}")]
    Invalid {
        /// Which layer: the file, an environment variable, the result.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// Which variables a program reads.
#[derive(Debug, Clone, Copy)]
pub struct Env<'a> {
    /// The prefix of path variables, e.g. `OPHION__`.
    pub paths: &'a str,
    /// Short names and the option each sets.
    pub short: &'a [(&'a str, &'a [&'a str])],
}

/// A flag given on the command line: its name, the option it sets, the
/// value.
pub type Flag = (&'static str, &'static [&'static str], toml::Value);

/// Where a binary takes OTLP: the flags the server and the agent share.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ListenFlags {
    /// Where to listen for OTLP/gRPC (default 127.0.0.1:4317).
    #[arg(long)]
    pub grpc_addr: Option<SocketAddr>,
    /// Where to listen for OTLP/HTTP (default 127.0.0.1:4318).
    #[arg(long)]
    pub otlp_http_addr: Option<SocketAddr>,
}

/// The flags given on a command line, each with the option it sets.
#[derive(Debug, Default)]
pub struct Given(Vec<Flag>);

impl Given {
    /// `flag`, when given, sets the text option at `path`.
    pub fn set(
        &mut self,
        flag: &'static str,
        path: &'static [&'static str],
        value: Option<impl Display>,
    ) -> &mut Self {
        if let Some(v) = value {
            self.0
                .push((flag, path, toml::Value::String(v.to_string())));
        }
        self
    }

    /// The listening flags, which set `receiver.grpc_addr` and
    /// `receiver.http_addr`.
    pub fn listen(&mut self, l: &ListenFlags) -> &mut Self {
        self.set("--grpc-addr", &["receiver", "grpc_addr"], l.grpc_addr)
            .set(
                "--otlp-http-addr",
                &["receiver", "http_addr"],
                l.otlp_http_addr,
            )
    }

    /// The flags, for [`load`].
    pub fn flags(&self) -> &[Flag] {
        &self.0
    }
}

/// Loads `T` from its defaults, `file`, the variables of `env` that `vars`
/// names, and `flags`, in that order. `shape` is a value of `T` with every
/// optional option set, to check names against.
pub fn load<T: Serialize + DeserializeOwned + Default>(
    vars: &Env<'_>,
    shape: &T,
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
    flags: &[Flag],
) -> Result<T, ConfigError> {
    let invalid = |origin: &str, e: &dyn std::fmt::Display| ConfigError::Invalid {
        origin: origin.to_owned(),
        message: e.to_string(),
    };
    let mut tree = toml::Table::try_from(T::default()).map_err(|e| invalid("defaults", &e))?;
    let shape = toml::Table::try_from(shape).map_err(|e| invalid("defaults", &e))?;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let origin = path.display().to_string();
        let layer: toml::Table = text.parse().map_err(|e| invalid(&origin, &e))?;
        // Check the file on its own first, for errors that name it.
        toml::Value::Table(layer.clone())
            .try_into::<T>()
            .map_err(|e| invalid(&origin, &e))?;
        merge(&mut tree, layer);
    }
    let mut pairs: Vec<(String, String)> = env.into_iter().collect();
    pairs.sort();
    for (key, value) in pairs {
        let path: Vec<String> = if let Some(rest) = key.strip_prefix(vars.paths) {
            rest.split("__").map(str::to_lowercase).collect()
        } else if let Some((_, p)) = vars.short.iter().find(|(k, _)| *k == key) {
            p.iter().map(|s| (*s).to_owned()).collect()
        } else {
            continue; // another program's, or not an option
        };
        set(&mut tree, &shape, &path, env_value(&value)).map_err(|m| invalid(&key, &m))?;
    }
    for (name, path, value) in flags {
        let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
        set(&mut tree, &shape, &path, value.clone()).map_err(|m| invalid(name, &m))?;
    }
    toml::Value::Table(tree)
        .try_into()
        .map_err(|e| invalid("configuration", &e))
}

/// A variable's text as a TOML value: numbers and booleans as such, other
/// text as a string.
fn env_value(text: &str) -> toml::Value {
    // Arrays in TOML syntax: OPHION__LIMITS__TRUSTED_PROXIES='["10.0.0.2"]'.
    if text.trim_start().starts_with('[')
        && let Ok(mut t) = format!("v = {text}").parse::<toml::Table>()
        && let Some(v) = t.remove("v")
    {
        return v;
    }
    if let Ok(i) = text.parse::<i64>() {
        toml::Value::Integer(i)
    } else if let Ok(b) = text.parse::<bool>() {
        toml::Value::Boolean(b)
    } else if let Ok(f) = text.parse::<f64>()
        && text.contains('.')
        && !text.contains(':')
    {
        toml::Value::Float(f)
    } else {
        toml::Value::String(text.to_owned())
    }
}

/// Sets `path` in `tree`; the option must exist in `shape` (typos are
/// errors, not silently ignored).
fn set(
    tree: &mut toml::Table,
    shape: &toml::Table,
    path: &[String],
    value: toml::Value,
) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty option name")?;
    let mut table = tree;
    let mut known = shape;
    for p in parents {
        table = match table.get_mut(p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(format!("no option section `{p}`")),
        };
        known = match known.get(p) {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(format!("no option section `{p}`")),
        };
    }
    // Tagged sections (`kind = ...`) take the keys of their kind.
    if !known.contains_key(last) && !table.contains_key("kind") {
        return Err(format!("no option `{}`", path.join(".")));
    }
    // A string where the default is a number stays a string: the final
    // parse reports it clearly.
    table.insert(last.clone(), value);
    Ok(())
}

/// Merges `layer` into `base`, tables recursively, other values replaced.
fn merge(base: &mut toml::Table, layer: toml::Table) {
    for (k, v) in layer {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(l)) => merge(b, l),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}
