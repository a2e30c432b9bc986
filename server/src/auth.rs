//! Bearer-token authentication. Tokens are kept only as SHA-256 digests and compared in
//! constant time; the admin service always requires one, the check service when configured.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tonic::{Request, Status};

/// A set of accepted tokens, stored hashed.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Vec<[u8; 32]>,
}

/// SHA-256 of a token, hex: what config files hold.
pub fn digest_hex(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

impl Tokens {
    /// Accepts tokens given in plain text (hashed at once).
    pub fn add_plain(&mut self, token: &str) {
        self.digests.push(Sha256::digest(token.as_bytes()).into());
    }

    /// Accepts tokens given as hex SHA-256 digests.
    pub fn add_digest_hex(&mut self, hex_digest: &str) -> Result<(), String> {
        let bytes =
            hex::decode(hex_digest.trim()).map_err(|e| format!("token digest `{hex_digest}` is not hex: {e}"))?;
        let digest: [u8; 32] = bytes
            .try_into()
            .map_err(|_| format!("token digest `{hex_digest}` is not 32 bytes"))?;
        self.digests.push(digest);
        Ok(())
    }

    /// Whether no token is configured.
    pub fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }

    /// Whether `token` is one of ours; constant time in the token's content.
    pub fn accepts(&self, token: &str) -> bool {
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.digests
            .iter()
            .fold(0u8, |hit, d| hit | d.ct_eq(&presented).unwrap_u8())
            == 1
    }

    /// Checks the `authorization: Bearer TOKEN` header of a request.
    pub fn check<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(bearer_token)
            .ok_or_else(|| Status::unauthenticated("authorization header must be `Bearer TOKEN`"))?;
        if self.accepts(token) {
            Ok(())
        } else {
            Err(Status::unauthenticated("invalid bearer token"))
        }
    }

    /// Whether the request carries one of these tokens.
    pub fn presented_by<T>(&self, request: &Request<T>) -> bool {
        !self.is_empty() && self.check(request).is_ok()
    }
}

/// Set on a request by the interceptor when it carries an admin token: such callers may
/// ask what-if questions (a decision time of their choosing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminCredential;

/// The token of an `authorization` header value `Bearer TOKEN` (the scheme is
/// case-insensitive, RFC 9110 section 11.1).
pub fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim_start();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A fresh random token (256 bits, hex).
pub fn generate_token() -> String {
    let bytes: [u8; 32] = rand::random();
    hex::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_only_configured_tokens() {
        let mut t = Tokens::default();
        t.add_plain("s3cret");
        t.add_digest_hex(&digest_hex("other")).unwrap();
        assert!(t.accepts("s3cret"));
        assert!(t.accepts("other"));
        assert!(!t.accepts("s3cre"));
        assert!(!t.accepts(""));
        assert!(t.add_digest_hex("zz").is_err());
    }

    #[test]
    fn bearer_scheme_is_case_insensitive() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearerabc"), None);
    }
}
