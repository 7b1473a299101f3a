//! A naive oracle: plain, obvious code for every scheme, written from the documented
//! semantics and independently of the fast paths (reference SipHash from the `siphasher`
//! crate, the mixer in 64-bit "tensor" arithmetic with masks, sorting instead of a top-k
//! heap, a linear list instead of a hash set).
#![allow(dead_code)]

use std::hash::Hasher;

use greenmark::{Key, Scheme, WatermarkConfig};

const MASK: u64 = 0xffff_ffff;

/// Reference SipHash-2-4 over the little-endian bytes of `words`, keyed by the first 16 bytes
/// of the scheme's subkey.
fn prf(key: &Key, scheme: Scheme, words: &[u32]) -> u64 {
    let subkey = key.derive(&format!("{}/window={}", scheme.id(), scheme.window()));
    let mut k = [0u8; 16];
    k.copy_from_slice(&subkey[..16]);
    let mut h = siphasher::sip::SipHasher24::new_with_key(&k);
    let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
    h.write(&bytes);
    h.finish()
}

/// The seed for `token` after exactly `context_len` context tokens, per the table in
/// `greenmark::scheme`.
pub fn seed(key: &Key, scheme: Scheme, context: &[u32], token: u32) -> u64 {
    assert_eq!(context.len(), scheme.context_len());
    match scheme {
        Scheme::LeftHash { .. } => prf(key, scheme, &[context[0]]),
        Scheme::MinHash { .. } => context
            .iter()
            .map(|&t| prf(key, scheme, &[t]))
            .min()
            .unwrap(),
        Scheme::SumHash { .. } => {
            let s: u64 = context.iter().map(|&t| t as u64).sum();
            prf(key, scheme, &[(s & MASK) as u32, (s >> 32) as u32])
        }
        Scheme::SelfHash { .. } => {
            let mut y = context.to_vec();
            y.push(token);
            let anchor = y[0];
            y.iter()
                .map(|&t| prf(key, scheme, &[anchor, t]))
                .min()
                .unwrap()
        }
        Scheme::Unigram => prf(key, scheme, &[]),
        _ => unreachable!(),
    }
}

/// G(seed, token) as int64 tensor code computes it: 64-bit lanes, a mask after each multiply.
pub fn mix(seed: u64, token: u32) -> u32 {
    let (lo, hi) = (seed & MASK, seed >> 32);
    let mut x = token as u64 ^ lo;
    x ^= x >> 16;
    x = (x * 0x21f0aaad) & MASK;
    x ^= x >> 15;
    x ^= hi;
    x = (x * 0x735a2d97) & MASK;
    x ^= x >> 15;
    x as u32
}

pub fn is_green(config: &WatermarkConfig, seed: u64, token: u32) -> bool {
    (mix(seed, token) as f64) < (config.gamma() * 4294967296.0).floor()
}

/// Whether biasing happens at the end of `context` (window present, not repeated).
pub fn biased(config: &WatermarkConfig, context: &[u32]) -> bool {
    let h = config.scheme().context_len();
    if context.len() < h {
        return false;
    }
    if h == 0 || !config.skip_repeated_windows() {
        return true;
    }
    let n = context.len();
    let window = &context[n - h..];
    !(h..n).any(|j| &context[j - h..j] == window)
}

/// The biased row, computed token by token.
pub fn bias(key: &Key, config: &WatermarkConfig, logits: &[f32], context: &[u32]) -> Vec<f32> {
    let mut out = logits.to_vec();
    if !biased(config, context) {
        return out;
    }
    let scheme = config.scheme();
    let window = &context[context.len() - scheme.context_len()..];
    let delta = config.delta() as f32;
    let candidates: Vec<usize> = match scheme {
        Scheme::SelfHash { top_k, .. } => {
            let mut idx: Vec<usize> = (0..logits.len()).filter(|&i| !logits[i].is_nan()).collect();
            // Largest first; ties to the lower id.
            idx.sort_by(|&a, &b| logits[b].partial_cmp(&logits[a]).unwrap().then(a.cmp(&b)));
            idx.truncate(top_k);
            idx
        }
        _ => (0..logits.len()).collect(),
    };
    for v in candidates {
        if is_green(config, seed(key, scheme, window, v as u32), v as u32) {
            out[v] += delta;
        }
    }
    out
}

/// Per-token outcome: None = not scored, Some(green).
pub fn score(
    key: &Key,
    config: &WatermarkConfig,
    tokens: &[u32],
    prompt: &[u32],
    dedup: bool,
) -> Vec<Option<bool>> {
    let all: Vec<u32> = prompt.iter().chain(tokens).copied().collect();
    let scheme = config.scheme();
    let h = scheme.context_len();
    let mut seen: Vec<(u64, u32)> = Vec::new();
    let mut out = Vec::new();
    for i in 0..tokens.len() {
        let p = prompt.len() + i;
        if p < h {
            out.push(None);
            continue;
        }
        let s = seed(key, scheme, &all[p - h..p], all[p]);
        if dedup && seen.contains(&(s, all[p])) {
            out.push(None);
            continue;
        }
        seen.push((s, all[p]));
        out.push(Some(is_green(config, s, all[p])));
    }
    out
}
