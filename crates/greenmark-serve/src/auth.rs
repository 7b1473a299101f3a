//! Bearer tokens: stored as SHA-256 digests, compared in constant time, each holder with its
//! own rate limit.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use sha2::{Digest, Sha256};

use crate::config::{Role, TokenEntry};
use crate::ServeError;

/// The accepted tokens: digests, roles and rate limits.
#[derive(Debug)]
pub struct Tokens(Vec<Holder>);

/// One accepted token.
#[derive(Debug)]
struct Holder {
    digest: [u8; 32],
    role: Role,
    limiter: Option<DefaultDirectRateLimiter>,
}

/// Who is calling: the index of their token in the config, and its role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Index of the token in the config's `tokens`.
    pub holder: usize,
    /// What the token may see.
    pub role: Role,
}

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
            let limiter = entry.requests_per_second.map(|rate| {
                let burst = entry.burst.unwrap_or(rate.ceil() as u32).max(1);
                let period = Duration::from_secs_f64(1.0 / rate).max(Duration::from_nanos(1));
                let quota = Quota::with_period(period)
                    .expect("a period of at least 1 ns")
                    .allow_burst(NonZeroU32::new(burst).expect("burst is at least 1"));
                RateLimiter::direct(quota)
            });
            out.push(Holder {
                digest: bytes,
                role: entry.role,
                limiter,
            });
        }
        Ok(Tokens(out))
    }

    /// The caller holding the `Authorization` header's bearer token, or `None` when it is
    /// missing or unknown. Every stored digest is compared, so the time does not say which
    /// one matched.
    pub fn caller(&self, authorization: Option<&str>) -> Option<Caller> {
        let token = authorization?.strip_prefix("Bearer ")?.trim();
        let d = digest(token);
        let mut found = None;
        for (holder, stored) in self.0.iter().enumerate() {
            if same(&stored.digest, &d) {
                found = Some(Caller {
                    holder,
                    role: stored.role,
                });
            }
        }
        found
    }

    /// Takes one request from `caller`'s rate limit: `Err(wait)` when the holder is over
    /// it, with the time until the next request would be allowed.
    pub fn admit(&self, caller: Caller) -> Result<(), Duration> {
        let Some(limiter) = self.0.get(caller.holder).and_then(|h| h.limiter.as_ref()) else {
            return Ok(());
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
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

    fn entry(token: &str, role: Role, rate: Option<f64>, burst: Option<u32>) -> TokenEntry {
        TokenEntry {
            sha256: hex(digest(token)),
            role,
            requests_per_second: rate,
            burst,
        }
    }

    #[test]
    fn tokens_match_by_digest_only() {
        let tokens = Tokens::new(&[
            entry("open sesame", Role::Trusted, None, None),
            entry("hello", Role::Public, None, None),
        ])
        .unwrap();
        let role = |header| tokens.caller(header).map(|c| c.role);
        assert_eq!(role(Some("Bearer open sesame")), Some(Role::Trusted));
        assert_eq!(role(Some("Bearer hello")), Some(Role::Public));
        assert_eq!(tokens.caller(Some("Bearer hello")).unwrap().holder, 1);
        assert_eq!(role(Some("Bearer nope")), None);
        assert_eq!(role(Some("hello")), None);
        assert_eq!(role(None), None);
        let mut bad = entry("x", Role::Public, None, None);
        bad.sha256 = "12".into();
        assert!(Tokens::new(&[bad]).is_err());
    }

    #[test]
    fn each_holder_has_its_own_rate() {
        let tokens = Tokens::new(&[
            entry("slow", Role::Public, Some(0.5), Some(3)),
            entry("free", Role::Public, None, None),
        ])
        .unwrap();
        let slow = tokens.caller(Some("Bearer slow")).unwrap();
        let free = tokens.caller(Some("Bearer free")).unwrap();
        for _ in 0..3 {
            assert_eq!(tokens.admit(slow), Ok(()));
        }
        let wait = tokens.admit(slow).unwrap_err();
        assert!(
            wait > Duration::from_millis(1000) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        for _ in 0..1000 {
            assert_eq!(tokens.admit(free), Ok(()));
        }
    }
}
