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
            return Err(Error::InvalidOption(format!(
                "the Zipf exponent must be finite and > 0, got {exponent}"
            )));
        }
        let log_weights: Vec<f32> = (0..vocab_size)
            .map(|r| (-exponent * f64::from(r + 1).ln()) as f32)
            .collect();
        let z: f64 = log_weights.iter().map(|&l| f64::from(l).exp()).sum();
        let entropy = -log_weights
            .iter()
            .map(|&l| {
                let p = f64::from(l).exp() / z;
                p * p.ln()
            })
            .sum::<f64>();
        Ok(ZipfLm {
            log_weights,
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
        let prev = u64::from(context.last().copied().unwrap_or(0));
        let h = splitmix(prev ^ 0x5eed);
        let mut a = (h % v) | 1;
        while gcd(a, v) != 1 {
            a += 2;
        }
        let b = (h >> 32) % v;
        for (token, logit) in out.iter_mut().enumerate() {
            let rank = (a * token as u64 + b) % v;
            *logit = self.log_weights[rank as usize];
        }
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
}
