//! Bearer tokens: stored as SHA-256 digests, compared in constant time.

use sha2::{Digest, Sha256};

use crate::config::{Role, TokenEntry};
use crate::ServeError;

/// The accepted tokens' digests and roles.
#[derive(Debug, Clone)]
pub struct Tokens(Vec<([u8; 32], Role)>);

/// SHA-256 of a token, as stored in the config.
pub fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Equality of two digests that takes the same time wherever they differ.
fn same(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

impl Tokens {
    /// The tokens of a config, each digest 64 hex digits.
    pub fn new(entries: &[TokenEntry]) -> Result<Tokens, ServeError> {
        let mut out = Vec::with_capacity(entries.len());
        for (i, entry) in entries.iter().enumerate() {
            let bytes = hex32(&entry.sha256).ok_or_else(|| {
                ServeError::Config(format!(
                    "tokens[{i}].sha256 must be 64 hex digits (the SHA-256 of the token)"
                ))
            })?;
            out.push((bytes, entry.role));
        }
        Ok(Tokens(out))
    }

    /// The role of the `Authorization` header's bearer token, or `None` when it is missing or
    /// unknown. Every stored digest is compared, so the time does not say which one matched.
    pub fn role(&self, authorization: Option<&str>) -> Option<Role> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let d = digest(token);
        let mut found = None;
        for (stored, role) in &self.0 {
            if same(stored, &d) {
                found = Some(*role);
            }
        }
        found
    }
}

fn hex32(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 || !text.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(d: [u8; 32]) -> String {
        d.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn tokens_match_by_digest_only() {
        let tokens = Tokens::new(&[
            TokenEntry {
                sha256: hex(digest("open sesame")),
                role: Role::Trusted,
            },
            TokenEntry {
                sha256: hex(digest("hello")),
                role: Role::Public,
            },
        ])
        .unwrap();
        assert_eq!(tokens.role(Some("Bearer open sesame")), Some(Role::Trusted));
        assert_eq!(tokens.role(Some("Bearer hello")), Some(Role::Public));
        assert_eq!(tokens.role(Some("Bearer nope")), None);
        assert_eq!(tokens.role(Some("hello")), None);
        assert_eq!(tokens.role(None), None);
        assert!(Tokens::new(&[TokenEntry {
            sha256: "12".into(),
            role: Role::Public
        }])
        .is_err());
    }
}
