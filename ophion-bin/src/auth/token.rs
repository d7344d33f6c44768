//! Access tokens: JWTs signed with HS256 and a per-server secret, checked
//! with an explicit algorithm allowlist (HS256 only: `alg: none` and every
//! public-key algorithm are refused before the signature is looked at) and
//! every registered claim required: `exp`, `nbf`, `iat`, `aud`, `iss`,
//! `jti`, `sub`.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// The `iss` of every token.
pub const ISSUER: &str = "ophion";
/// The `aud` of every API access token.
pub const AUDIENCE: &str = "ophion-api";

/// What an access token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    /// The user's tenant.
    pub ten: String,
    /// The user's token version when issued: a password change or
    /// disabling the user bumps it, which revokes older tokens.
    pub ver: i64,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Not valid before.
    pub nbf: u64,
    /// Issued at.
    pub iat: u64,
    /// Audience.
    pub aud: String,
    /// Issuer.
    pub iss: String,
    /// Token id, for revocation at logout.
    pub jti: String,
}

/// The signing secret.
#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Keys(..)")
    }
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Keys {
    /// Keys from a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        }
    }

    /// A signed token for `claims`.
    pub fn sign(&self, claims: &Claims) -> Result<String, String> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
            .map_err(|e| e.to_string())
    }

    /// The claims of a valid token: right algorithm and signature, within
    /// its validity window (no leeway: one server issues and checks), our
    /// audience and issuer. Revocation is checked by the caller.
    pub fn verify(&self, token: &str) -> Result<Claims, String> {
        let mut v = Validation::new(Algorithm::HS256);
        v.algorithms = vec![Algorithm::HS256];
        v.leeway = 0;
        v.validate_exp = true;
        v.validate_nbf = true;
        v.set_audience(&[AUDIENCE]);
        v.set_issuer(&[ISSUER]);
        v.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub", "jti"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(now: u64) -> Claims {
        Claims {
            sub: "1".into(),
            ten: "default".into(),
            ver: 0,
            exp: now + 60,
            nbf: now,
            iat: now,
            aud: AUDIENCE.into(),
            iss: ISSUER.into(),
            jti: "j".into(),
        }
    }

    #[test]
    fn signed_tokens_verify_and_others_do_not() {
        let k = Keys::new(&[1u8; 32]);
        let now = now_secs();
        let t = k.sign(&claims(now)).expect("sign");
        assert_eq!(k.verify(&t).expect("valid"), claims(now));
        assert!(Keys::new(&[2u8; 32]).verify(&t).is_err(), "other secret");
        let expired = Claims {
            exp: now - 1,
            ..claims(now)
        };
        assert!(k.verify(&k.sign(&expired).expect("sign")).is_err());
        let early = Claims {
            nbf: now + 30,
            ..claims(now)
        };
        assert!(k.verify(&k.sign(&early).expect("sign")).is_err());
    }
}
