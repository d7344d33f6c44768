//! Password hashing: argon2id with OWASP's parameters (19 MiB, 2 passes,
//! one lane), run on blocking threads behind a semaphore so that a flood of
//! logins queues instead of taking every core and all memory.

use std::sync::Arc;

use argon2::{
    Algorithm, Argon2, Params, Version,
    password_hash::{PasswordHash, PasswordHasher as _, PasswordVerifier as _, SaltString},
};
use tokio::sync::Semaphore;

/// OWASP's minimum for argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;

fn argon2() -> Argon2<'static> {
    // The parameters are constants within argon2's accepted ranges.
    let params = Params::new(MEMORY_KIB, ITERATIONS, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes and checks passwords, at most `permits` at a time.
#[derive(Debug, Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
}

impl Hasher {
    /// A hasher running at most `permits` hashes at once (each needs 19 MiB
    /// and one core for about 20-50 ms).
    pub fn new(permits: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(permits.max(1))),
        }
    }

    /// A PHC string (`$argon2id$v=19$m=19456,t=2,p=1$...`) for `password`.
    pub async fn hash(&self, password: &str) -> Result<String, String> {
        let _permit = self.permits.acquire().await.map_err(|e| e.to_string())?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let mut salt = [0u8; 16];
            getrandom::fill(&mut salt).map_err(|e| e.to_string())?;
            let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
            let phc = argon2()
                .hash_password(password.as_bytes(), &salt)
                .map(|h| h.to_string())
                .map_err(|e| e.to_string());
            crate::alloc::release_freed();
            phc
        })
        .await
        .map_err(|e| e.to_string())?
    }

    /// Whether `password` matches the stored `phc` hash. `None` for `phc`
    /// still costs one hash, so unknown user names take as long as wrong
    /// passwords.
    pub async fn verify(&self, password: &str, phc: Option<String>) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || {
            let phc = phc.unwrap_or_else(|| DUMMY.clone());
            let ok = PasswordHash::new(&phc).is_ok_and(|parsed| {
                argon2()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            }) && phc != *DUMMY;
            crate::alloc::release_freed();
            ok
        })
        .await
        .unwrap_or(false)
    }
}

/// A hash no password matches in practice, verified against for unknown
/// user names.
static DUMMY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
    let mut salt = [7u8; 16];
    let _ = getrandom::fill(&mut salt);
    SaltString::encode_b64(&salt)
        .ok()
        .and_then(|s| {
            argon2()
                .hash_password(b"ophion-dummy-password", &s)
                .ok()
                .map(|h| h.to_string())
        })
        .unwrap_or_default()
});

/// A random secret of `bytes` bytes as lowercase hex.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom fails only without an OS random source, where nothing
    // secure can run; fail loudly rather than hand out a weak secret.
    getrandom::fill(&mut b).expect("the OS random number generator");
    hex::encode(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_are_argon2id_with_owasp_parameters_and_verify() {
        let h = Hasher::new(2);
        let phc = h.hash("correct horse").await.expect("hash");
        assert!(phc.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{phc}");
        assert!(h.verify("correct horse", Some(phc.clone())).await);
        assert!(!h.verify("wrong horse", Some(phc.clone())).await);
        assert!(!h.verify("ophion-dummy-password", None).await);
        assert_ne!(phc, h.hash("correct horse").await.expect("hash"), "salted");
    }
}
