//! Keyed seeding (context -> 64-bit seed) and green membership (seed, token -> green?).
//!
//! **Seeds.** A [`Seeder`] holds a subkey derived from the secret for one scheme and window size
//! (`Key::derive("<scheme id>/window=<h>")`) and maps a window to a seed with SipHash-2-4, a real
//! PRF: learning the seeds of some windows tells nothing about the others.
//!
//! | scheme | seed at a position whose window is `x1 .. xh` (selfhash: `x1 .. x(h-1)`, candidate `c`) |
//! |---|---|
//! | lefthash | `PRF(x1)` |
//! | minhash | `min_j PRF(xj)` |
//! | sumhash | `PRF(lo32(S), hi32(S))` with `S = x1 + .. + xh` as a 64-bit sum |
//! | selfhash | `min_j PRF(a, yj)` over `y = (x1 .. x(h-1), c)`, anchor `a = y1` |
//! | unigram | `PRF()` (the empty message) |
//!
//! **Membership.** Token `v` is green for seed `s` iff `G(s, v) < threshold`, where
//! `threshold = floor(gamma * 2^32)` and `G` is [`mix32`]: a keyed 32-bit integer mixer, so each
//! token is green with probability `threshold / 2^32` independently of the others. No
//! permutation of the vocabulary is built: detection costs O(1) per token and biasing is one
//! vectorizable pass. `G` uses only xor, logical right shifts and multiplication by constants
//! below 2^31, so it is reproduced bit-exactly by int64 tensor code (numpy, torch) with a
//! `& 0xFFFFFFFF` after each multiply, and no int64 product ever overflows.
//!
//! # Example
//! ```
//! use greenmark::{scheme::{mix32, Seeder}, Key, Scheme};
//! let key = Key::from_bytes([1; 32]);
//! let seeder = Seeder::new(&key, Scheme::LeftHash { window: 1 });
//! let seed = seeder.seed(&[17], 42);
//! let green = mix32(seed, 42) < (1 << 30); // gamma = 0.25
//! # let _ = green;
//! ```

use crate::config::Scheme;
use crate::key::Key;
use crate::prf::SipKey;

/// First multiplier of [`mix32`] (odd, below 2^31).
pub const MIX_M1: u32 = 0x21f0_aaad;
/// Second multiplier of [`mix32`] (odd, below 2^31).
pub const MIX_M2: u32 = 0x735a_2d97;

// Odd multipliers keep each step a bijection; below 2^31 keeps every int64 tensor product
// `x * M` (x < 2^32) below 2^63.
const _: () = assert!(MIX_M1 < 1 << 31 && MIX_M2 < 1 << 31 && MIX_M1 % 2 == 1 && MIX_M2 % 2 == 1);

/// `G(seed, token)`: the 32-bit value compared with the threshold. Version 1, pinned by the
/// committed vectors:
///
/// ```text
/// x = token ^ lo32(seed)
/// x ^= x >> 16;  x *= M1;  x ^= x >> 15        (mod 2^32)
/// x ^= hi32(seed)
/// x *= M2;  x ^= x >> 15                       (mod 2^32)
/// ```
#[inline(always)]
pub fn mix32(seed: u64, token: u32) -> u32 {
    let mut x = token ^ seed as u32;
    x ^= x >> 16;
    x = x.wrapping_mul(MIX_M1);
    x ^= x >> 15;
    x ^= (seed >> 32) as u32;
    x = x.wrapping_mul(MIX_M2);
    x ^ (x >> 15)
}

/// Maps windows to seeds for one key and one scheme.
#[derive(Clone)]
pub struct Seeder {
    scheme: Scheme,
    prf: SipKey,
}

impl std::fmt::Debug for Seeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeder")
            .field("scheme", &self.scheme)
            .finish_non_exhaustive()
    }
}

/// The part of a `selfhash` seed that does not depend on the candidate token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SelfContext {
    anchor: Option<u32>,
    min: u64,
}

impl Seeder {
    /// The seeder for `scheme` under `key`. The scheme should be valid ([`Scheme::validate`]).
    pub fn new(key: &Key, scheme: Scheme) -> Seeder {
        let purpose = format!("{}/window={}", scheme.id(), scheme.window());
        Seeder {
            scheme,
            prf: SipKey::new(&key.derive(&purpose)),
        }
    }

    /// The scheme this seeder implements.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The seed for scoring `token` after `context`, where `context` is exactly the
    /// [`Scheme::context_len`] tokens before it. `token` matters only for `selfhash`.
    ///
    /// # Panics
    /// If `context` has the wrong length (callers inside the crate slice it exactly).
    #[inline]
    pub fn seed(&self, context: &[u32], token: u32) -> u64 {
        assert_eq!(context.len(), self.scheme.context_len(), "context length");
        match self.scheme {
            Scheme::SelfHash { .. } => self.self_seed(self.self_context(context), token),
            _ => self.context_seed(context),
        }
    }

    /// The seed of a non-selfhash scheme (independent of the candidate token).
    #[inline]
    pub(crate) fn context_seed(&self, context: &[u32]) -> u64 {
        match self.scheme {
            Scheme::LeftHash { .. } => self.prf.hash1(context[0]),
            Scheme::MinHash { .. } => context
                .iter()
                .map(|&t| self.prf.hash1(t))
                .min()
                .expect("window >= 1"),
            Scheme::SumHash { .. } => {
                let sum: u64 = context.iter().map(|&t| u64::from(t)).sum();
                self.prf.hash2(sum as u32, (sum >> 32) as u32)
            }
            Scheme::Unigram => self.prf.hash_words(&[]),
            Scheme::SelfHash { .. } => unreachable!("selfhash seeds depend on the candidate"),
        }
    }

    /// A 64-bit id of a window that two windows share iff they give every candidate the same
    /// seed (up to PRF collisions): the seed itself, or for `selfhash` a hash of the
    /// candidate-independent part. Used to exclude or filter windows by their effect.
    #[inline]
    pub(crate) fn window_id(&self, context: &[u32]) -> u64 {
        match self.scheme {
            Scheme::SelfHash { .. } => {
                let ctx = self.self_context(context);
                let anchor = ctx.anchor.map_or(0, |a| u64::from(a) + 1);
                crate::tuple::fingerprint(ctx.min, 0) ^ anchor.wrapping_mul(0x9e37_79b9_7f4a_7c15)
            }
            _ => self.context_seed(context),
        }
    }

    #[inline]
    pub(crate) fn self_context(&self, context: &[u32]) -> SelfContext {
        match context.first() {
            None => SelfContext {
                anchor: None,
                min: u64::MAX,
            },
            Some(&anchor) => SelfContext {
                anchor: Some(anchor),
                min: context
                    .iter()
                    .map(|&t| self.prf.hash2(anchor, t))
                    .min()
                    .expect("non-empty"),
            },
        }
    }

    #[inline]
    pub(crate) fn self_seed(&self, ctx: SelfContext, candidate: u32) -> u64 {
        let anchor = ctx.anchor.unwrap_or(candidate);
        ctx.min.min(self.prf.hash2(anchor, candidate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mix_is_a_bijection_on_a_sample_and_balanced() {
        let seed = 0x0123_4567_89ab_cdef;
        let mut seen = std::collections::HashSet::new();
        let mut below = 0u32;
        for v in 0..200_000u32 {
            let x = mix32(seed, v);
            assert!(seen.insert(x));
            below += u32::from(x < 1 << 30);
        }
        // 200k Bernoulli(1/4): sd ~ 194; allow 6 sd.
        assert!((f64::from(below) - 50_000.0).abs() < 1200.0, "{below}");
    }

    #[test]
    fn schemes_and_windows_use_distinct_subkeys() {
        let key = Key::from_bytes([3; 32]);
        let a = Seeder::new(&key, Scheme::LeftHash { window: 1 }).seed(&[5], 0);
        let b = Seeder::new(&key, Scheme::MinHash { window: 1 }).seed(&[5], 0);
        let c = Seeder::new(&key, Scheme::LeftHash { window: 2 }).seed(&[5, 6], 0);
        assert!(a != b && a != c && b != c);
    }

    #[test]
    fn selfhash_seed_depends_on_the_candidate() {
        let key = Key::from_bytes([4; 32]);
        let s = Seeder::new(&key, Scheme::SELFHASH_DEFAULT);
        let seeds: std::collections::HashSet<u64> =
            (0..50).map(|c| s.seed(&[10, 20, 30], c)).collect();
        assert!(seeds.len() > 1);
    }
}
