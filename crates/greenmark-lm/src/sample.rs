//! Generation options and the seeded sampler (temperature, top-k, top-p).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::error::{LmError, Result};

/// How to sample an answer.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateOptions {
    /// Most new tokens per answer (default 200).
    pub max_new_tokens: usize,
    /// Fewest new tokens per answer: the stop tokens are masked out until then (default 0).
    pub min_new_tokens: usize,
    /// Softmax temperature, finite and >= 0; 0 is greedy (default 1).
    pub temperature: f32,
    /// Keep only the `k` most likely tokens (default: all).
    pub top_k: Option<usize>,
    /// Keep the smallest set of most likely tokens whose probability reaches `p`, in (0, 1]
    /// (default: all).
    pub top_p: Option<f32>,
    /// Seed of the sampler; the same seed, prompts and options give the same answers.
    pub seed: u64,
    /// Most prompts of equal length run through the model together (default 16).
    pub max_batch: usize,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        GenerateOptions {
            max_new_tokens: 200,
            min_new_tokens: 0,
            temperature: 1.0,
            top_k: None,
            top_p: None,
            seed: 0,
            max_batch: 16,
        }
    }
}

impl GenerateOptions {
    /// Checks every option, saying which is wrong and what would be right.
    pub fn validate(&self) -> Result<()> {
        if self.max_new_tokens == 0 {
            return Err(LmError::InvalidOption(
                "max_new_tokens must be at least 1".into(),
            ));
        }
        if self.min_new_tokens > self.max_new_tokens {
            return Err(LmError::InvalidOption(format!(
                "min_new_tokens ({}) must not exceed max_new_tokens ({})",
                self.min_new_tokens, self.max_new_tokens
            )));
        }
        if !(self.temperature.is_finite() && self.temperature >= 0.0) {
            return Err(LmError::InvalidOption(format!(
                "temperature must be finite and >= 0 (0 is greedy), got {}",
                self.temperature
            )));
        }
        if self.top_k == Some(0) {
            return Err(LmError::InvalidOption("top_k must be at least 1".into()));
        }
        if let Some(p) = self.top_p {
            if !(p > 0.0 && p <= 1.0) {
                return Err(LmError::InvalidOption(format!(
                    "top_p must be in (0, 1], got {p}"
                )));
            }
        }
        Ok(())
    }
}

/// Draws tokens from logits for one answer, with its own random stream.
#[derive(Debug, Clone)]
pub struct Sampler {
    rng: ChaCha20Rng,
    temperature: f32,
    top_k: Option<usize>,
    top_p: Option<f32>,
    /// Scratch: (probability, token) of the candidates.
    candidates: Vec<(f32, u32)>,
}

impl Sampler {
    /// The sampler of answer `index` under `options` (stream `index` of the seed).
    pub fn new(options: &GenerateOptions, index: u64) -> Sampler {
        let mut rng = ChaCha20Rng::seed_from_u64(options.seed);
        rng.set_stream(index);
        Sampler {
            rng,
            temperature: options.temperature,
            top_k: options.top_k,
            top_p: options.top_p,
            candidates: Vec::new(),
        }
    }

    /// Draws the next token from `logits` (NaN logits are never drawn; a row of only NaN or
    /// -inf gives token 0 rather than a panic).
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        let best = argmax(logits);
        if self.temperature == 0.0 || !logits[best as usize].is_finite() {
            return best;
        }
        self.filter(logits, logits[best as usize]);
        let total: f32 = self.candidates.iter().map(|c| c.0).sum();
        let mut u = self.rng.gen::<f32>() * total;
        for &(weight, token) in &self.candidates {
            u -= weight;
            if u < 0.0 {
                return token;
            }
        }
        self.candidates.last().map_or(best, |c| c.1)
    }

    /// Draws the next token of a Gumbel-watermarked request: where `request` watermarks the
    /// position, the Gumbel-max rule over the row after temperature, top-k and top-p (as vLLM
    /// applies it), with this sampler's stream giving the dual-key routing draw; elsewhere
    /// (repeated contexts, greedy decoding) the ordinary draw of [`Sampler::sample`]. The
    /// token is appended to `request`.
    pub fn sample_gumbel(
        &mut self,
        logits: &[f32],
        request: &mut greenmark::gumbel::GumbelRequest<'_>,
        scratch: &mut Vec<f32>,
    ) -> Result<u32> {
        let best = argmax(logits);
        // Decided first in every case: the position's context enters the dedup history.
        let eligible = request.next_is_watermarked();
        let watermark = eligible && self.temperature != 0.0 && logits[best as usize].is_finite();
        let token = if watermark {
            self.filter(logits, logits[best as usize]);
            scratch.clear();
            scratch.resize(logits.len(), f32::NEG_INFINITY);
            for &(_, t) in &self.candidates {
                scratch[t as usize] = logits[t as usize] / self.temperature;
            }
            let route_u = self.rng.gen::<f32>();
            request.sample_watermarked(scratch, route_u)?
        } else {
            self.sample(logits)
        };
        request.push(token);
        Ok(token)
    }

    /// Draws the next token of a SynthID-watermarked request, in transformers' order: the
    /// temperature / top-k / top-p row (`-inf` outside the kept tokens) gets SynthID's tournament
    /// update, then a draw from its softmax with this sampler's stream (or its argmax when
    /// greedy). The token is appended to `request`.
    pub fn sample_synthid(
        &mut self,
        logits: &[f32],
        request: &mut greenmark::synthid::SynthIdRequest<'_>,
        scratch: &mut Vec<f32>,
    ) -> Result<u32> {
        let best = argmax(logits);
        scratch.clear();
        if self.temperature == 0.0 || !logits[best as usize].is_finite() {
            scratch.extend_from_slice(logits);
        } else {
            self.filter(logits, logits[best as usize]);
            scratch.resize(logits.len(), f32::NEG_INFINITY);
            for &(_, t) in &self.candidates {
                scratch[t as usize] = logits[t as usize] / self.temperature;
            }
        }
        request.watermark(scratch)?;
        let token = if self.temperature == 0.0 {
            argmax(scratch)
        } else {
            let max = scratch[argmax(scratch) as usize];
            let total: f32 = scratch.iter().map(|&l| (l - max).exp()).sum();
            let mut u = self.rng.gen::<f32>() * total;
            let mut token = argmax(scratch);
            for (t, &l) in scratch.iter().enumerate() {
                u -= (l - max).exp();
                if u < 0.0 {
                    token = t as u32;
                    break;
                }
            }
            token
        };
        request.push(token);
        Ok(token)
    }

    /// Fills `candidates` with the (unnormalized probability, token) of the tokens that
    /// temperature, top-k and top-p keep; `max` is the row's largest (finite) logit.
    fn filter(&mut self, logits: &[f32], max: f32) {
        self.candidates.clear();
        self.candidates.extend(
            logits
                .iter()
                .enumerate()
                .filter(|(_, l)| !l.is_nan())
                .map(|(t, &l)| (((l - max) / self.temperature).exp(), t as u32)),
        );
        let needs_order =
            self.top_k.is_some_and(|k| k < self.candidates.len()) || self.top_p.is_some();
        if needs_order {
            self.candidates
                .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            if let Some(k) = self.top_k {
                self.candidates.truncate(k);
            }
            if let Some(p) = self.top_p {
                let total: f32 = self.candidates.iter().map(|c| c.0).sum();
                let mut mass = 0.0;
                let keep = self
                    .candidates
                    .iter()
                    .position(|c| {
                        mass += c.0;
                        mass >= p * total
                    })
                    .map_or(self.candidates.len(), |i| i + 1);
                self.candidates.truncate(keep);
            }
        }
    }
}

/// The index of the largest logit, NaN ignored, ties to the lower index.
fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    let mut best_value = f32::NEG_INFINITY;
    for (i, &l) in logits.iter().enumerate() {
        if l > best_value {
            best = i;
            best_value = l;
        }
    }
    best as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(temperature: f32, top_k: Option<usize>, top_p: Option<f32>) -> GenerateOptions {
        GenerateOptions {
            temperature,
            top_k,
            top_p,
            seed: 9,
            ..GenerateOptions::default()
        }
    }

    fn frequencies(options: &GenerateOptions, logits: &[f32], n: usize) -> Vec<f64> {
        let mut sampler = Sampler::new(options, 0);
        let mut counts = vec![0usize; logits.len()];
        for _ in 0..n {
            counts[sampler.sample(logits) as usize] += 1;
        }
        counts.iter().map(|&c| c as f64 / n as f64).collect()
    }

    #[test]
    fn temperature_one_draws_the_softmax() {
        let logits = [0.0f32, 1.0, 2.0, -1.0];
        let z: f64 = logits.iter().map(|&l| f64::from(l).exp()).sum();
        let f = frequencies(&options(1.0, None, None), &logits, 200_000);
        for (t, &l) in logits.iter().enumerate() {
            let p = f64::from(l).exp() / z;
            // 5 standard errors at n = 200k.
            assert!(
                (f[t] - p).abs() < 5.0 * (p * (1.0 - p) / 200_000.0).sqrt(),
                "{t}: {f:?}"
            );
        }
    }

    #[test]
    fn greedy_top_k_and_top_p_restrict_the_support() {
        let logits = [0.0f32, 3.0, 2.9, f32::NAN, -5.0];
        assert!(frequencies(&options(0.0, None, None), &logits, 100)[1] == 1.0);
        let f = frequencies(&options(1.0, Some(2), None), &logits, 20_000);
        assert_eq!(f[0] + f[3] + f[4], 0.0);
        assert!(f[1] > 0.4 && f[2] > 0.4);
        // p(1) ~ 0.50, p(2) ~ 0.45: top_p 0.5 keeps token 1 only.
        let f = frequencies(&options(1.0, None, Some(0.3)), &logits, 1000);
        assert_eq!(f[1], 1.0);
        assert_eq!(
            frequencies(&options(1.0, None, None), &logits, 20_000)[3],
            0.0
        );
    }

    #[test]
    fn streams_differ_by_index_and_repeat_by_seed() {
        let logits = vec![0.0f32; 1000];
        let draw = |index| {
            let mut s = Sampler::new(&options(1.0, None, None), index);
            (0..20).map(|_| s.sample(&logits)).collect::<Vec<_>>()
        };
        assert_eq!(draw(0), draw(0));
        assert_ne!(draw(0), draw(1));
    }

    #[test]
    fn degenerate_rows_do_not_panic() {
        let mut s = Sampler::new(&options(1.0, Some(3), Some(0.9)), 0);
        assert_eq!(s.sample(&[f32::NAN, f32::NAN]), 0);
        assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
        assert_eq!(s.sample(&[f32::NEG_INFINITY, f32::INFINITY]), 1);
    }

    #[test]
    fn invalid_options_say_what_is_wrong() {
        for (o, needle) in [
            (options(-1.0, None, None), "temperature"),
            (options(f32::NAN, None, None), "temperature"),
            (options(1.0, Some(0), None), "top_k"),
            (options(1.0, None, Some(0.0)), "top_p"),
            (options(1.0, None, Some(1.5)), "top_p"),
            (
                GenerateOptions {
                    max_new_tokens: 10,
                    min_new_tokens: 11,
                    ..GenerateOptions::default()
                },
                "min_new_tokens",
            ),
            (
                GenerateOptions {
                    max_new_tokens: 0,
                    ..GenerateOptions::default()
                },
                "max_new_tokens",
            ),
        ] {
            let message = o.validate().unwrap_err().to_string();
            assert!(message.contains(needle), "{message}");
        }
    }
}
