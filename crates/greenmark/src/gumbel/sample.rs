//! Generation: the Gumbel-max rule over a logits row, dual-key routing, and the per-request
//! context dedup of vLLM's sampler.

use std::borrow::Cow;

use hashbrown::HashTable;

use super::config::{Algorithm, ContextDedup, GumbelConfig, GumbelKey, PartialContexts};
use super::philox::{word_to_uniform, PhiloxPrf, PAD};
use crate::error::{Error, Result};

/// Which of the two keys of `dual_key_gumbel` a step uses (always `A` for `gumbel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyChoice {
    /// Key A (the only key of `gumbel`).
    A,
    /// Key B (dual-key, with probability `alpha`).
    B,
}

/// The Gumbel-max sampling rule for one key and config: build once, share across threads.
///
/// `argmax(logits - ln(-ln u))` over the row, with `u` the keyed uniform of each token for the
/// row's context: distortion-free (a token wins with exactly its softmax probability over
/// random keys) and deterministic given the key and context, which is what detection tests.
/// Apply temperature, min-p, top-k and top-p to the row first (masked tokens at `-inf`);
/// greedy decoding (temperature 0) is not watermarked by vLLM, and should not be here.
///
/// ```
/// use greenmark::gumbel::{GumbelConfig, GumbelDetector, GumbelKey, GumbelWatermarker};
/// let key = GumbelKey::vllm(42);
/// let wm = GumbelWatermarker::new(key, GumbelConfig::default())?;
/// let mut request = wm.request(&[]);
/// for step in 0..64u32 {
///     // A toy model: logits that change with the step.
///     let logits: Vec<f32> = (0..128u32).map(|t| ((t * 37 + step * 17) % 131) as f32 / 16.0).collect();
///     request.next(&logits, 0.5, |row| greenmark::gumbel::argmax(row))?;
/// }
/// let detection = GumbelDetector::new(key, GumbelConfig::default())?.detect(request.generated())?;
/// assert!(detection.log10_p_value < -10.0);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GumbelWatermarker {
    prfs: [PhiloxPrf; 2],
    config: GumbelConfig,
    scheme: &'static str,
    /// `ln(1 - alpha)` and `ln(alpha)` rounded to `f32`, as vLLM's routing logits.
    routing: (f32, f32),
}

impl GumbelWatermarker {
    /// The watermarker of `key` under `config` (validated).
    pub fn new(key: GumbelKey, config: GumbelConfig) -> Result<GumbelWatermarker> {
        config.validate()?;
        let alpha = config.alpha as f32;
        Ok(GumbelWatermarker {
            prfs: key.prfs(config.algorithm),
            scheme: key.scheme_id(config.algorithm),
            routing: (
                ((1.0 - alpha) as f64).ln() as f32,
                (alpha as f64).ln() as f32,
            ),
            config,
        })
    }

    /// The config.
    pub fn config(&self) -> &GumbelConfig {
        &self.config
    }

    /// The scheme id.
    pub fn scheme(&self) -> &'static str {
        self.scheme
    }

    /// The key a step uses given a uniform `u` in `[0, 1)` from the caller's sampler:
    /// `gumbel` and `alpha == 0` always A, `alpha == 1` always B, otherwise B when
    /// `P(A) = 1 / (1 + exp(ln α - ln(1 - α))) <= u`, so B with probability `alpha`.
    pub fn route(&self, u: f32) -> KeyChoice {
        if self.config.algorithm == Algorithm::Gumbel || self.config.alpha == 0.0 {
            return KeyChoice::A;
        }
        if self.config.alpha == 1.0 {
            return KeyChoice::B;
        }
        let (la, lb) = self.routing;
        let p_a = 1.0 / (1.0 + f64::from(lb - la).exp());
        if p_a <= f64::from(u) {
            KeyChoice::B
        } else {
            KeyChoice::A
        }
    }

    /// The watermarked token for `logits` (after temperature / top-k / top-p) at a position
    /// whose context is `context`: the `context_width` generated tokens before it, oldest
    /// first, [`PAD`] before the first generated token. NaN logits count as `-inf`; ties go
    /// to the lowest id; a row of only `-inf`/NaN gives token 0, as vLLM's argmax does.
    ///
    /// Errors on an empty row or a context of the wrong width.
    pub fn sample(&self, logits: &[f32], context: &[u32], choice: KeyChoice) -> Result<u32> {
        if logits.is_empty() {
            return Err(Error::option(
                "logits",
                "the logits row is empty: pass one logit per vocabulary token",
            ));
        }
        if context.len() != self.config.context_width {
            return Err(Error::BatchShape(format!(
                "the context has {} tokens but context_width is {}: pass the last {} generated tokens, padded with greenmark::gumbel::PAD",
                context.len(),
                self.config.context_width,
                self.config.context_width
            )));
        }
        let prf = &self.prfs[choice as usize];
        Ok(gumbel_argmax(prf, &prf.compress(context), logits))
    }
}

/// `f32(-ln(-ln u))`, rounding to `f32` after each log as vLLM's float32 path does. The logs
/// are taken in `f64` and rounded once, so the result is the correctly rounded `f32` and the
/// same on every platform.
#[inline(always)]
fn gumbel_noise(u: f32) -> f32 {
    let inner = f64::from(u).ln() as f32;
    -((-f64::from(inner)).ln() as f32)
}

/// Whether a logit can be chosen: finite or `+inf` (not `-inf`, not NaN).
#[inline(always)]
fn can_win(logit: f32) -> bool {
    logit > f32::NEG_INFINITY
}

/// `argmax_t f32(logits[t] + noise(u_t))` over a row.
fn gumbel_argmax(prf: &PhiloxPrf, state: &[u32; 4], logits: &[f32]) -> u32 {
    let mut best = f32::NEG_INFINITY;
    let mut best_token = 0u32;
    for (b, chunk) in logits.chunks(4).enumerate() {
        // Masked tokens (top-k / top-p) cannot win; skip their Philox block when all are.
        if !chunk.iter().any(|&l| can_win(l)) {
            continue;
        }
        let words = prf.block(state, b as u32);
        for (i, &logit) in chunk.iter().enumerate() {
            if !can_win(logit) {
                continue;
            }
            let value = logit + gumbel_noise(word_to_uniform(words[i]));
            if value > best {
                best = value;
                best_token = (b * 4 + i) as u32;
            }
        }
    }
    best_token
}

/// The plain argmax of a row (NaN as `-inf`, ties to the lowest id, token 0 for a row with
/// nothing finite): greedy decoding, and the stand-in for the ordinary sampler in tests.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = f32::NEG_INFINITY;
    let mut best_token = 0u32;
    for (t, &l) in logits.iter().enumerate() {
        if l > best {
            best = l;
            best_token = t as u32;
        }
    }
    best_token
}

/// Positions of earlier contexts, found by the content of the context (an exact map: hashes
/// only pick the bucket, equality compares the tokens).
#[derive(Debug, Clone, Default)]
pub(crate) struct ContextIndex {
    table: HashTable<usize>,
}

#[inline]
pub(crate) fn hash_context(context: &[u32]) -> u64 {
    let mut h = 0x243f_6a88_85a3_08d3u64;
    for &t in context {
        h = (h ^ u64::from(t)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}

impl ContextIndex {
    pub(crate) fn clear(&mut self) {
        self.table.clear();
    }

    /// Makes room for `n` more contexts of `padded` (width `w`) without rehashing.
    pub(crate) fn reserve(&mut self, n: usize, padded: &[u32], w: usize) {
        self.table.reserve(n, |&p| hash_context(&padded[p..p + w]));
    }

    /// Records that the context at `padded[pos..pos + w]` occurs at `pos`, returning the
    /// latest earlier position of the same context, if any. `padded` is the scope's tokens
    /// behind `w` pads, so position `pos`'s context is `padded[pos..pos + w]`.
    pub(crate) fn insert(&mut self, padded: &[u32], w: usize, pos: usize) -> Option<usize> {
        self.insert_hashed(hash_context(&padded[pos..pos + w]), padded, w, pos)
    }

    /// [`ContextIndex::insert`] with the context's [`hash_context`] already computed.
    #[inline]
    pub(crate) fn insert_hashed(
        &mut self,
        hash: u64,
        padded: &[u32],
        w: usize,
        pos: usize,
    ) -> Option<usize> {
        let context = &padded[pos..pos + w];
        let entry = self.table.entry(
            hash,
            |&p| &padded[p..p + w] == context,
            |&p| hash_context(&padded[p..p + w]),
        );
        match entry {
            hashbrown::hash_table::Entry::Occupied(mut e) => {
                let previous = *e.get();
                *e.get_mut() = pos;
                Some(previous)
            }
            hashbrown::hash_table::Entry::Vacant(e) => {
                e.insert(pos);
                None
            }
        }
    }
}

/// One request's generation state: its tokens so far and the dedup history, deciding per
/// position whether to watermark (vLLM's skip mask: `repeated_context_mask` and, from vLLM
/// 0.34, `contexts < 0`).
///
/// * The first `w` generated positions (contexts holding padding) are sampled normally
///   under [`PartialContexts::Skip`] (the default, vLLM 0.34) and under `all`.
/// * `none`: no other position is skipped.
/// * `single_turn`: a position whose context (the `w` generated tokens before it, padded)
///   occurred at one of the `max_history` previous generated positions is sampled normally.
/// * `all`: the prompt is searched too.
#[derive(Debug, Clone)]
pub struct GumbelRequest<'a> {
    /// Borrowed ([`GumbelWatermarker::request`]) or owned
    /// ([`GumbelWatermarker::into_request`], for a request that outlives its scope).
    watermarker: Cow<'a, GumbelWatermarker>,
    /// The dedup scope behind `w` pads: the prompt (for `all`) then the generated tokens.
    padded: Vec<u32>,
    /// Where the generated tokens start in `padded`.
    start: usize,
    index: ContextIndex,
    /// Whether the next position is watermarked, once decided.
    next: Option<bool>,
    watermarked: usize,
}

impl GumbelWatermarker {
    /// A fresh request after `prompt` (the prompt matters only for `deduplicate_contexts =
    /// all`; the watermark's contexts are always the generated tokens).
    pub fn request(&self, prompt: &[u32]) -> GumbelRequest<'_> {
        GumbelRequest::after(Cow::Borrowed(self), prompt)
    }

    /// [`GumbelWatermarker::request`] owning its watermarker (e.g. held by a Python object
    /// across generation steps).
    pub fn into_request(self, prompt: &[u32]) -> GumbelRequest<'static> {
        GumbelRequest::after(Cow::Owned(self), prompt)
    }
}

impl<'a> GumbelRequest<'a> {
    fn after(watermarker: Cow<'a, GumbelWatermarker>, prompt: &[u32]) -> GumbelRequest<'a> {
        let w = watermarker.config.context_width;
        let mut padded = vec![PAD; w];
        let mut index = ContextIndex::default();
        if watermarker.config.dedup == ContextDedup::All {
            padded.extend_from_slice(prompt);
            for pos in 0..prompt.len() {
                index.insert(&padded, w, pos);
            }
        }
        GumbelRequest {
            watermarker,
            start: padded.len(),
            padded,
            index,
            next: None,
            watermarked: 0,
        }
    }
}

impl GumbelRequest<'_> {
    /// The generated tokens so far.
    pub fn generated(&self) -> &[u32] {
        &self.padded[self.start..]
    }

    /// How many generated positions the dedup rule left watermarkable (not skipped as a
    /// repeated context).
    pub fn n_watermarked(&self) -> usize {
        self.watermarked
    }

    /// The context of the next position: the last `w` generated tokens, oldest first,
    /// [`PAD`] before the first.
    pub fn context(&self) -> Vec<u32> {
        let mut out = vec![PAD; self.watermarker.config.context_width];
        self.prf_context(&mut out);
        out
    }

    fn prf_context(&self, out: &mut [u32]) {
        let w = out.len();
        let generated = self.generated();
        let have = generated.len().min(w);
        out[..w - have].fill(PAD);
        out[w - have..].copy_from_slice(&generated[generated.len() - have..]);
    }

    /// Whether the next position is watermarked (decides once per position; call before
    /// [`GumbelRequest::push`]).
    pub fn next_is_watermarked(&mut self) -> bool {
        if let Some(decided) = self.next {
            return decided;
        }
        let config = &self.watermarker.config;
        let w = config.context_width;
        // Position of the next token in the dedup scope; its context is padded[pos..pos + w].
        let pos = self.padded.len() - w;
        let partial = self.padded.len() - self.start < w
            && (config.partial_contexts == PartialContexts::Skip
                || config.dedup == ContextDedup::All);
        let repeated = match config.dedup {
            ContextDedup::None => false,
            _ => {
                // Every position enters the history, skipped or not, as in vLLM.
                let earlier = self.index.insert(&self.padded, w, pos);
                // vLLM searches the last `max_history` of the `pos` earlier positions.
                let window_start = config.max_history.map_or(0, |h| pos.saturating_sub(h));
                earlier.is_some_and(|p| p >= window_start)
            }
        };
        let decided = !(repeated || partial);
        self.next = Some(decided);
        decided
    }

    /// The watermarked token for the next position from `logits` and the routing uniform
    /// `route_u` (used by `dual_key_gumbel` only).
    pub fn sample_watermarked(&self, logits: &[f32], route_u: f32) -> Result<u32> {
        let wm = &*self.watermarker;
        let mut context = vec![0u32; wm.config.context_width];
        self.prf_context(&mut context);
        wm.sample(logits, &context, wm.route(route_u))
    }

    /// Appends the token chosen for the next position.
    pub fn push(&mut self, token: u32) {
        if self.next_is_watermarked() {
            self.watermarked += 1;
        }
        self.padded.push(token);
        self.next = None;
    }

    /// One step: the watermarked token when the position is watermarked, otherwise
    /// `plain(logits)` (the caller's ordinary sampler); the token is appended and returned.
    pub fn next(
        &mut self,
        logits: &[f32],
        route_u: f32,
        plain: impl FnOnce(&[f32]) -> u32,
    ) -> Result<u32> {
        let token = if self.next_is_watermarked() {
            self.sample_watermarked(logits, route_u)?
        } else {
            plain(logits)
        };
        self.push(token);
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distortion-free: over random keys, the Gumbel-max token is a draw from the softmax.
    #[test]
    fn over_random_keys_the_rule_samples_the_softmax() {
        let logits = [0.5f32, 2.0, -1.0, 1.0, f32::NEG_INFINITY, f32::NAN];
        let z: f64 = logits[..4].iter().map(|&l| f64::from(l).exp()).sum();
        let n = 40_000u64;
        let mut counts = [0u64; 6];
        for seed in 0..n {
            let key = GumbelKey::vllm(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let wm = GumbelWatermarker::new(key, GumbelConfig::default()).unwrap();
            counts[wm.sample(&logits, &[1, 2, 3, 4], KeyChoice::A).unwrap() as usize] += 1;
        }
        assert_eq!(counts[4] + counts[5], 0, "masked and NaN tokens never win");
        for t in 0..4 {
            let p = f64::from(logits[t]).exp() / z;
            let f = counts[t] as f64 / n as f64;
            let se = (p * (1.0 - p) / n as f64).sqrt();
            assert!((f - p).abs() < 5.0 * se, "token {t}: {f} vs {p}");
        }
    }

    #[test]
    fn bad_rows_and_contexts_are_errors() {
        let wm = GumbelWatermarker::new(GumbelKey::vllm(1), GumbelConfig::default()).unwrap();
        assert!(wm.sample(&[], &[1, 2, 3, 4], KeyChoice::A).is_err());
        let e = wm.sample(&[0.0; 8], &[1, 2], KeyChoice::A).unwrap_err();
        assert!(e.to_string().contains("context_width is 4"), "{e}");
        assert_eq!(
            wm.sample(&[f32::NEG_INFINITY; 8], &[1, 2, 3, 4], KeyChoice::A)
                .unwrap(),
            0
        );
    }

    /// single_turn with max_history 2: a context repeated 3 positions later is watermarked
    /// again, one repeated at the next position is not.
    #[test]
    fn dedup_window_is_the_last_max_history_positions() {
        let config = GumbelConfig {
            context_width: 1,
            max_history: Some(2),
            partial_contexts: PartialContexts::Watermark,
            ..GumbelConfig::default()
        };
        let wm = GumbelWatermarker::new(GumbelKey::vllm(1), config).unwrap();
        let mut r = wm.request(&[]);
        let mut marks = Vec::new();
        for t in [7, 7, 7, 1, 2, 7] {
            marks.push(r.next_is_watermarked());
            r.push(t);
        }
        // Contexts: PAD, 7, 7, 7, 1, 2; the 3rd and 4th repeat context 7 within 2 positions.
        assert_eq!(marks, [true, true, false, false, true, true]);
        assert_eq!(r.n_watermarked(), 4);
        let mut r = wm.request(&[]);
        for t in [7, 1, 2] {
            r.push(t);
        }
        // Context 7 was last at position 1, three positions back: outside the window of 2.
        r.push(7);
        assert!(r.next_is_watermarked());
    }

    /// vLLM 0.34 skips the first `w` positions (their contexts hold padding) in every dedup
    /// mode; 0.33 only under `all`.
    #[test]
    fn partial_contexts_are_skipped_unless_asked_for() {
        for dedup in [
            ContextDedup::None,
            ContextDedup::SingleTurn,
            ContextDedup::All,
        ] {
            for partial in [PartialContexts::Skip, PartialContexts::Watermark] {
                let config = GumbelConfig {
                    context_width: 3,
                    dedup,
                    partial_contexts: partial,
                    ..GumbelConfig::default()
                };
                let wm = GumbelWatermarker::new(GumbelKey::vllm(1), config).unwrap();
                let mut r = wm.request(&[9, 9, 9]);
                let mut marks = Vec::new();
                for t in [1, 2, 3, 4, 5] {
                    marks.push(r.next_is_watermarked());
                    r.push(t);
                }
                let skip_first = partial == PartialContexts::Skip || dedup == ContextDedup::All;
                let want = if skip_first {
                    [false, false, false, true, true]
                } else {
                    [true; 5]
                };
                assert_eq!(marks, want, "{dedup:?} {partial:?}");
                assert_eq!(r.n_watermarked(), if skip_first { 2 } else { 5 });
            }
        }
    }
}
