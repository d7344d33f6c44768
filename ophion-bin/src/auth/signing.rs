//! The token signing key: where it lives and how it is replaced.
//!
//! The key is never in the metadata database. It comes from
//! `OPHION_SIGNING_KEY` (hex, at least 32 bytes; for deployments that
//! inject secrets) or from the file `signing.key` in the data directory,
//! created on first start with mode `0600`. The server refuses to start
//! when that file may be read by other users. Rotation writes a new key
//! (temporary file, fsync, rename) and ends every session: tokens signed
//! with the old key no longer verify, refresh tokens are deleted.

use std::{
    io::Write as _,
    path::{Path, PathBuf},
};

use super::{AuthError, password};

/// The environment variable that, when set, holds the key (hex).
pub const ENV: &str = "OPHION_SIGNING_KEY";
/// The key file's name in the data directory.
pub const FILE: &str = "signing.key";
/// Shortest key accepted, in bytes.
const MIN_BYTES: usize = 32;

/// Where the key comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A file the server owns (and may rotate).
    File(PathBuf),
    /// The environment: rotated by whoever sets it.
    Env,
}

impl Source {
    /// The key source of a server: the environment's key when `env` is
    /// set, else `signing.key` in `data_dir`.
    pub fn of(data_dir: &Path, env: Option<String>) -> (Self, Option<String>) {
        match env.filter(|v| !v.trim().is_empty()) {
            Some(v) => (Self::Env, Some(v)),
            None => (Self::File(data_dir.join(FILE)), None),
        }
    }
}

fn decode(text: &str, whence: &str) -> Result<Vec<u8>, AuthError> {
    let key = hex::decode(text.trim())
        .map_err(|e| AuthError::Invalid(format!("{whence}: not hex: {e}")))?;
    if key.len() < MIN_BYTES {
        return Err(AuthError::Invalid(format!(
            "{whence}: the signing key must be at least {MIN_BYTES} bytes ({} hex digits)",
            2 * MIN_BYTES
        )));
    }
    Ok(key)
}

/// Refuses a key file others may read or write.
fn check_mode(path: &Path) -> Result<(), AuthError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(path)
            .map_err(|e| AuthError::Internal(format!("{}: {e}", path.display())))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(AuthError::Invalid(format!(
                "{} has mode {:o}: other users could read the token signing key and sign in as anyone; \
                 run `chmod 600 {}` (and consider rotating the key)",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
    }
    Ok(())
}

/// Writes `key` to `path` with mode 0600 through a temporary file and a
/// rename, both synced.
fn write(path: &Path, key: &[u8]) -> Result<(), AuthError> {
    let io = |e: std::io::Error| AuthError::Internal(format!("{}: {e}", path.display()));
    let tmp = path.with_extension("key.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o600);
    let mut f = o.open(&tmp).map_err(io)?;
    f.write_all(hex::encode(key).as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}

/// A new random key.
pub fn generate() -> Vec<u8> {
    hex::decode(password::random_hex(32)).unwrap_or_default()
}

/// The key: from the environment, or the key file (created with
/// `legacy` — a key an older release kept in the database — or a fresh
/// one when there is none).
pub fn load(
    source: &Source,
    env: Option<&str>,
    legacy: Option<&str>,
) -> Result<Vec<u8>, AuthError> {
    match source {
        Source::Env => decode(env.unwrap_or_default(), ENV),
        Source::File(path) => {
            if path.exists() {
                check_mode(path)?;
                let text = std::fs::read_to_string(path)
                    .map_err(|e| AuthError::Internal(format!("{}: {e}", path.display())))?;
                return decode(&text, &path.display().to_string());
            }
            let key = match legacy {
                Some(old) => decode(old, "the signing key in metadata.db")?,
                None => generate(),
            };
            write(path, &key)?;
            Ok(key)
        }
    }
}

/// Replaces the key file's key with a new one; the new key.
pub fn rotate(source: &Source) -> Result<Vec<u8>, AuthError> {
    match source {
        Source::Env => Err(AuthError::Conflict(format!(
            "the signing key comes from {ENV}: set a new value there and restart the server"
        ))),
        Source::File(path) => {
            let key = generate();
            write(path, &key)?;
            Ok(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_file_is_private_and_refused_when_it_is_not() {
        let dir = tempfile::tempdir().expect("tmp");
        let (source, env) = Source::of(dir.path(), None);
        assert!(env.is_none());
        let key = load(&source, None, None).expect("created");
        assert_eq!(key.len(), 32);
        let path = dir.path().join(FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            assert_eq!(load(&source, None, None).expect("again"), key);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
            let e = load(&source, None, None).expect_err("readable by others");
            assert!(e.to_string().contains("chmod 600"), "{e}");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        }
        let new = rotate(&source).expect("rotated");
        assert_ne!(new, key);
        assert_eq!(load(&source, None, None).expect("new"), new);
    }

    #[test]
    fn a_key_from_the_environment_is_checked_and_not_rotated_here() {
        let dir = tempfile::tempdir().expect("tmp");
        let (source, env) = Source::of(dir.path(), Some("ab".repeat(32)));
        assert_eq!(source, Source::Env);
        assert_eq!(
            load(&source, env.as_deref(), None).expect("key"),
            vec![0xab; 32]
        );
        assert!(load(&source, Some("abcd"), None).is_err(), "too short");
        assert!(load(&source, Some("not hex"), None).is_err());
        assert!(matches!(rotate(&source), Err(AuthError::Conflict(_))));
        assert!(!dir.path().join(FILE).exists(), "no file written");
    }

    #[test]
    fn a_legacy_key_moves_to_the_file() {
        let dir = tempfile::tempdir().expect("tmp");
        let (source, _) = Source::of(dir.path(), None);
        let old = "cd".repeat(32);
        assert_eq!(
            load(&source, None, Some(&old)).expect("moved"),
            vec![0xcd; 32]
        );
        let text = std::fs::read_to_string(dir.path().join(FILE)).expect("file");
        assert_eq!(text, old);
    }
}
