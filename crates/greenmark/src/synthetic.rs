//! A synthetic language model with a stated entropy, for calibration, power tests, examples
//! and benches, where a real model would be too slow to run thousands of times.
//!
//! At every step the next-token distribution is Zipf with exponent `s` over the vocabulary:
//! `P(rank r) ∝ (r + 1)^-s`, where the ranking of the tokens is an affine permutation of the
//! vocabulary chosen by the previous token (`rank(v) = (a v + b) mod V`, `a` coprime to `V`).
//! Every context therefore has the same entropy ([`ZipfLm::entropy`], in nats), while which
//! tokens are likely changes from one context to the next, as in real text.
//!
//! # Example
//! ```
//! use greenmark::synthetic::ZipfLm;
//! use rand::SeedableRng;
//! let lm = ZipfLm::new(2048, 1.1)?;
//! assert!(lm.entropy() > 2.0 && lm.entropy() < 6.0);
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let text = lm.generate(&[1], 50, None, &mut rng)?;
//! assert_eq!(text.len(), 50);
//! # Ok::<(), greenmark::Error>(())
//! ```

use rand::Rng;

use crate::bias::Watermarker;
use crate::error::{Error, Result};

/// A Zipf next-token model over `vocab_size` tokens (see the module docs).
#[derive(Debug, Clone)]
pub struct ZipfLm {
    /// `log_weights[r] = -s ln(r + 1)`, the logit of the token ranked `r`.
    log_weights: Vec<f32>,
    /// `cdf[r] = sum_{q <= r} exp(log_weights[q])`, for sampling a rank in O(log V).
    cdf: Vec<f64>,
    entropy: f64,
}

impl ZipfLm {
    /// A model over `vocab_size` (>= 2) tokens with Zipf exponent `exponent` (finite, > 0;
    /// larger is lower entropy).
    pub fn new(vocab_size: u32, exponent: f64) -> Result<ZipfLm> {
        if vocab_size < 2 {
            return Err(Error::InvalidVocabSize(u64::from(vocab_size)));
        }
        if !(exponent.is_finite() && exponent > 0.0) {
            return Err(Error::option(
                "exponent",
                format!("the Zipf exponent must be finite and > 0, got {exponent}"),
            ));
        }
        let log_weights: Vec<f32> = (0..vocab_size)
            .map(|r| (-exponent * f64::from(r + 1).ln()) as f32)
            .collect();
        let mut z = 0.0;
        let cdf = log_weights
            .iter()
            .map(|&l| {
                z += f64::from(l).exp();
                z
            })
            .collect();
        let entropy = -log_weights
            .iter()
            .map(|&l| {
                let p = f64::from(l).exp() / z;
                p * p.ln()
            })
            .sum::<f64>();
        Ok(ZipfLm {
            log_weights,
            cdf,
            entropy,
        })
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> u32 {
        self.log_weights.len() as u32
    }

    /// The entropy of every next-token distribution, in nats.
    pub fn entropy(&self) -> f64 {
        self.entropy
    }

    /// Writes the next-token logits after `context` into `out` (length `vocab_size`).
    pub fn logits(&self, context: &[u32], out: &mut [f32]) {
        let v = self.vocab_size() as u64;
        let (a, b) = self.ranking(context.last().copied().unwrap_or(0));
        for (token, logit) in out.iter_mut().enumerate() {
            let rank = (a * token as u64 + b) % v;
            *logit = self.log_weights[rank as usize];
        }
    }

    /// The affine ranking `rank(v) = (a v + b) mod V` chosen by the previous token.
    fn ranking(&self, prev: u32) -> (u64, u64) {
        let v = self.vocab_size() as u64;
        let h = splitmix(u64::from(prev) ^ 0x5eed);
        let mut a = (h % v) | 1;
        while gcd(a, v) != 1 {
            a += 2;
        }
        (a, (h >> 32) % v)
    }

    /// The token ranked `rank` after `prev`: the inverse of the ranking.
    fn token_of_rank(&self, prev: u32, rank: usize) -> u32 {
        let v = self.vocab_size() as u64;
        let (a, b) = self.ranking(prev);
        let shifted = (rank as u64 + v - b) % v;
        (u128::from(inverse_mod(a, v)) * u128::from(shifted) % u128::from(v)) as u32
    }

    /// Generates `n` unwatermarked tokens after the token `prev`, with exactly the distribution
    /// of [`ZipfLm::generate`] without a watermarker, in O(log V) a token instead of O(V): it
    /// samples a rank and maps it to its token. For the many long human-like texts that
    /// calibration and power tests need.
    pub fn generate_plain(&self, prev: u32, n: usize, rng: &mut impl Rng) -> Vec<u32> {
        let total = self.cdf[self.cdf.len() - 1];
        let mut prev = prev;
        (0..n)
            .map(|_| {
                let u = rng.gen::<f64>() * total;
                let rank = self
                    .cdf
                    .partition_point(|&c| c <= u)
                    .min(self.cdf.len() - 1);
                prev = self.token_of_rank(prev, rank);
                prev
            })
            .collect()
    }

    /// Generates `n` tokens after `prompt`, sampling at temperature 1; with `watermarker`, the
    /// logits are biased at every step first.
    pub fn generate(
        &self,
        prompt: &[u32],
        n: usize,
        watermarker: Option<&Watermarker>,
        rng: &mut impl Rng,
    ) -> Result<Vec<u32>> {
        let mut context = prompt.to_vec();
        let mut logits = vec![0.0f32; self.vocab_size() as usize];
        let mut probs = vec![0.0f64; logits.len()];
        for _ in 0..n {
            self.logits(&context, &mut logits);
            if let Some(wm) = watermarker {
                wm.bias(&mut logits, &context)?;
            }
            context.push(sample(&logits, &mut probs, rng));
        }
        Ok(context.split_off(prompt.len()))
    }
}

/// Samples from `softmax(logits)`; `probs` is scratch of the same length.
pub fn sample(logits: &[f32], probs: &mut [f64], rng: &mut impl Rng) -> u32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut total = 0.0;
    for (p, &l) in probs.iter_mut().zip(logits) {
        *p = f64::from(l - max).exp();
        total += *p;
    }
    let mut u = rng.gen::<f64>() * total;
    for (i, &p) in probs.iter().enumerate() {
        u -= p;
        if u < 0.0 {
            return i as u32;
        }
    }
    (logits.len() - 1) as u32
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// `a^-1 mod m` for `a` coprime to `m` (extended Euclid).
fn inverse_mod(a: u64, m: u64) -> u64 {
    let (mut r0, mut r1) = (i128::from(m), i128::from(a % m));
    let (mut t0, mut t1) = (0i128, 1i128);
    while r1 != 0 {
        let q = r0 / r1;
        (r0, r1) = (r1, r0 - q * r1);
        (t0, t1) = (t1, t0 - q * t1);
    }
    t0.rem_euclid(i128::from(m)) as u64
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_context_is_a_permutation_of_the_same_weights() {
        let lm = ZipfLm::new(1000, 1.0).unwrap();
        let mut out = vec![0.0; 1000];
        for prev in [0u32, 1, 17, 999] {
            lm.logits(&[prev], &mut out);
            let mut sorted = out.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            assert_eq!(sorted, lm.log_weights);
        }
    }

    #[test]
    fn token_of_rank_inverts_the_ranking() {
        for v in [2u32, 1000, 4096, 49152] {
            let lm = ZipfLm::new(v, 1.3).unwrap();
            let mut out = vec![0.0; v as usize];
            for prev in [0, 1, v / 3, v - 1] {
                lm.logits(&[prev], &mut out);
                let mut seen = vec![false; v as usize];
                for (rank, &w) in lm.log_weights.iter().enumerate() {
                    let t = lm.token_of_rank(prev, rank) as usize;
                    assert!(
                        !seen[t],
                        "V={v}, after {prev}: rank map is not a permutation"
                    );
                    seen[t] = true;
                    assert_eq!(out[t], w, "V={v}, after {prev}: token {t} has rank {rank}");
                }
            }
        }
    }

    /// Both samplers draw the same distribution: next-token frequencies after a fixed token
    /// agree with `softmax(logits)` (chi-square against the exact probabilities).
    #[test]
    fn generate_plain_samples_softmax_of_the_logits() {
        use rand::SeedableRng;
        let lm = ZipfLm::new(64, 1.2).unwrap();
        let mut logits = vec![0.0; 64];
        lm.logits(&[5], &mut logits);
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = 200_000;
        let mut counts = [0u32; 64];
        for _ in 0..n {
            counts[lm.generate_plain(5, 1, &mut rng)[0] as usize] += 1;
        }
        let chi2: f64 = (0..64)
            .map(|t| {
                let e = f64::from(n) * f64::from(logits[t]).exp() / z;
                (f64::from(counts[t]) - e).powi(2) / e
            })
            .sum();
        // 63 degrees of freedom: P(chi2 > 110) < 1e-4 under a correct sampler; a sampler that
        // maps ranks to the wrong tokens gives chi2 in the hundreds of thousands.
        assert!(chi2 < 110.0, "chi2 {chi2}");
    }
}
