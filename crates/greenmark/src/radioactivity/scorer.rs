//! How a tape identifies windows and scores tuples, per watermark family.

use crate::config::{Scheme, WatermarkConfig};
use crate::gumbel::philox::PhiloxPrf;
use crate::gumbel::{Algorithm, GumbelConfig, GumbelKey};
use crate::key::Key;
use crate::scheme::{mix32, Seeder};
use crate::tuple::fingerprint;

/// One key's scoring rule.
#[derive(Debug, Clone)]
pub(super) enum Scorer {
    /// KGW green lists: a tuple scores 1 (green) when `mix32(seed, token) < threshold`, else 0.
    Kgw {
        seeder: Seeder,
        threshold: u32,
        selfhash: bool,
    },
    /// Gumbel-max: a tuple scores `-ln(1 - u)`, `u` the key's uniform of (context, token).
    Gumbel { prf: PhiloxPrf },
}

/// A window, identified: `id` names it in the prompt and filter sets; `state` is the Gumbel
/// context's compressed state (unused for KGW).
#[derive(Debug, Clone, Copy)]
pub(super) struct WindowAt {
    pub(super) id: u64,
    state: [u32; 4],
}

impl Scorer {
    pub(super) fn kgw(key: &Key, config: &WatermarkConfig) -> Scorer {
        Scorer::Kgw {
            seeder: Seeder::new(key, config.scheme()),
            threshold: config.threshold(),
            selfhash: matches!(config.scheme(), Scheme::SelfHash { .. }),
        }
    }

    pub(super) fn gumbel(key: &GumbelKey, config: &GumbelConfig) -> Scorer {
        debug_assert_eq!(config.algorithm, Algorithm::Gumbel);
        Scorer::Gumbel {
            prf: key.prfs(Algorithm::Gumbel)[0],
        }
    }

    /// The window's id and (Gumbel) state. Two windows with the same id give every token the
    /// same score (for KGW schemes other than `selfhash`, the seed itself).
    #[inline]
    pub(super) fn window(&self, window: &[u32]) -> WindowAt {
        match self {
            Scorer::Kgw { seeder, .. } => WindowAt {
                id: seeder.window_id(window),
                state: [0; 4],
            },
            Scorer::Gumbel { prf } => {
                let state = prf.compress(window);
                let lo = u64::from(state[0]) | u64::from(state[1]) << 32;
                let hi = u64::from(state[2]) | u64::from(state[3]) << 32;
                WindowAt {
                    id: lo ^ hi.rotate_left(31),
                    state,
                }
            }
        }
    }

    #[inline]
    pub(super) fn window_id(&self, window: &[u32]) -> u64 {
        self.window(window).id
    }

    /// The tuple's fingerprint (what dedup compares) and its score.
    #[inline]
    pub(super) fn tuple(&self, at: &WindowAt, window: &[u32], token: u32) -> (u64, f64) {
        match self {
            Scorer::Kgw {
                seeder,
                threshold,
                selfhash,
            } => {
                let seed = if *selfhash {
                    seeder.seed(window, token)
                } else {
                    at.id
                };
                let green = mix32(seed, token) < *threshold;
                (fingerprint(seed, token), if green { 1.0 } else { 0.0 })
            }
            Scorer::Gumbel { prf } => {
                let u = prf.uniform(&at.state, token);
                (fingerprint(at.id, token), -(-f64::from(u)).ln_1p())
            }
        }
    }

    /// The tuple's fingerprint alone.
    #[inline]
    pub(super) fn fingerprint(&self, window: &[u32], token: u32) -> u64 {
        match self {
            Scorer::Kgw {
                seeder,
                selfhash: true,
                ..
            } => fingerprint(seeder.seed(window, token), token),
            _ => fingerprint(self.window_id(window), token),
        }
    }
}
