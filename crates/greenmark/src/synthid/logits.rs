//! The watermarking step: transformers' `SynthIDTextWatermarkLogitsProcessor.__call__` on a
//! CPU `f32` logits row, with the per-row state it keeps between calls.

use super::config::SynthIdConfig;
use super::table::{accumulate_hash, hash_tokens, ContextHistory, SynthIdTable};
use crate::error::{Error, Result};

/// What one call did to a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
#[non_exhaustive]
pub enum SynthIdStep {
    /// The row now holds the watermarked log-probabilities.
    Watermarked,
    /// One of the first `ngram_len - 1` calls with `skip_first_ngram_calls`: row unchanged.
    SkippedFirstNgram,
    /// The context was among the remembered ones: row unchanged.
    RepeatedContext,
}

/// The state transformers keeps per batch row (`SynthIDTextWatermarkState`): the last
/// `ngram_len - 1` *generated* ids (zeros before the first one: the prompt is not used), the
/// recent context hashes, and the number of calls.
#[derive(Debug, Clone)]
pub struct SynthIdState {
    context: Vec<u32>,
    history: ContextHistory,
    calls: u64,
}

impl SynthIdState {
    /// The context of the next call's position would be these ids (oldest first) if the next
    /// call appends nothing, i.e. the current context.
    pub fn context(&self) -> &[u32] {
        &self.context
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls
    }
}

/// Reusable buffers of [`SynthIdWatermarker::apply`]: no allocation once grown to the vocab.
#[derive(Debug, Clone, Default)]
pub struct SynthIdScratch {
    probs: Vec<f32>,
    hashes: Vec<i64>,
    g: Vec<u8>,
}

impl SynthIdScratch {
    /// Empty buffers.
    pub fn new() -> SynthIdScratch {
        SynthIdScratch::default()
    }
}

/// Applies SynthID Text to logits rows as transformers 5.24's
/// `SynthIDTextWatermarkLogitsProcessor` does: build once from a [`SynthIdConfig`], then one
/// [`apply`](Self::apply) per row per generation step with that row's [`SynthIdState`].
///
/// Each call (after the first) appends the row's last input id to its context; then, unless
/// skipped, `probs = softmax(row)`, and for each depth `d`,
/// `probs *= 1 + g_d - sum(g_d * probs)`, where `g_d[v]` is the g-value of the ngram
/// (context, `v`); the row becomes `ln(probs)`, with non-finite values set to `f32::MIN`
/// (torch's `finfo(float32).min`). A context whose hash is among the last
/// `context_history_size` ones is left as it is.
///
/// Numerics: the same `f32` operations in the same order per element; sums are accumulated in
/// `f64` (torch sums `f32` in vectorized partial sums), so results agree with torch to a few
/// `f32` ulps of the probabilities, not bit for bit.
///
/// ```
/// use greenmark::synthid::{SynthIdConfig, SynthIdScratch, SynthIdStep, SynthIdWatermarker};
/// let wm = SynthIdWatermarker::new(SynthIdConfig::new(3, vec![11, 22, 33])?)?;
/// let (mut state, mut scratch) = (wm.state(), SynthIdScratch::new());
/// let mut row = vec![0.0f32; 100];
/// // First call: the prompt's last id (here 7) is not used; the context is [0, 0].
/// assert_eq!(wm.apply(&mut state, 7, &mut row, &mut scratch)?, SynthIdStep::Watermarked);
/// let total: f32 = row.iter().map(|l| l.exp()).sum();
/// assert!((total - 1.0).abs() < 1e-5); // log-probabilities
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SynthIdWatermarker {
    table: SynthIdTable,
}

impl SynthIdWatermarker {
    /// The watermarker of `config` (validated; builds the sampling table).
    pub fn new(config: SynthIdConfig) -> Result<SynthIdWatermarker> {
        Ok(SynthIdWatermarker {
            table: SynthIdTable::new(config)?,
        })
    }

    /// The table, keys and hash.
    pub fn table(&self) -> &SynthIdTable {
        &self.table
    }

    /// The config.
    pub fn config(&self) -> &SynthIdConfig {
        self.table.config()
    }

    /// The state of a new batch row (before its first call).
    pub fn state(&self) -> SynthIdState {
        let config = self.table.config();
        SynthIdState {
            context: vec![0; config.ngram_len - 1],
            history: ContextHistory::new(config.context_history_size),
            calls: 0,
        }
    }

    /// One processor call on one row: `last_input_id` is the row's last input id (ignored on
    /// the first call, as transformers ignores the prompt), `row` the full logits row
    /// (modified in place). Errors on an empty row.
    pub fn apply(
        &self,
        state: &mut SynthIdState,
        last_input_id: u32,
        row: &mut [f32],
        scratch: &mut SynthIdScratch,
    ) -> Result<SynthIdStep> {
        if row.is_empty() {
            return Err(Error::option(
                "logits",
                "the logits row is empty: pass one entry per vocabulary token",
            ));
        }
        let config = self.table.config();
        if state.calls > 0 && !state.context.is_empty() {
            state.context.rotate_left(1);
            *state.context.last_mut().expect("non-empty") = last_input_id;
        }
        state.calls += 1;
        if config.debug_mode {
            row.fill(1.0);
        }
        if config.skip_first_ngram_calls && state.calls < config.ngram_len as u64 {
            return Ok(SynthIdStep::SkippedFirstNgram);
        }
        let context_hash = hash_tokens(&state.context);
        let repeated = state.history.contains(context_hash);
        state.history.push(context_hash);
        if repeated {
            return Ok(SynthIdStep::RepeatedContext);
        }
        self.update_scores(row, context_hash, scratch);
        Ok(SynthIdStep::Watermarked)
    }

    /// [`apply`](Self::apply) on each row of `logits` (`states.len()` rows, row-major), in
    /// parallel with the `rayon` feature.
    pub fn apply_batch(
        &self,
        states: &mut [SynthIdState],
        last_input_ids: &[u32],
        logits: &mut [f32],
    ) -> Result<Vec<SynthIdStep>> {
        let b = states.len();
        if b == 0 || last_input_ids.len() != b || !logits.len().is_multiple_of(b) {
            return Err(Error::BatchShape(format!(
                "{} states, {} last input ids and {} logits: need one state and one id per row \
                 and a whole number of rows",
                b,
                last_input_ids.len(),
                logits.len()
            )));
        }
        let vocab = logits.len() / b;
        #[cfg(feature = "rayon")]
        {
            use rayon::prelude::*;
            logits
                .par_chunks_mut(vocab)
                .zip(states.par_iter_mut())
                .zip(last_input_ids.par_iter())
                .map_init(SynthIdScratch::new, |scratch, ((row, state), &id)| {
                    self.apply(state, id, row, scratch)
                })
                .collect()
        }
        #[cfg(not(feature = "rayon"))]
        {
            let mut scratch = SynthIdScratch::new();
            logits
                .chunks_mut(vocab)
                .zip(states.iter_mut())
                .zip(last_input_ids)
                .map(|((row, state), &id)| self.apply(state, id, row, &mut scratch))
                .collect()
        }
    }

    /// transformers' `update_scores` for one row whose context hashes to `context_hash`.
    fn update_scores(&self, row: &mut [f32], context_hash: i64, scratch: &mut SynthIdScratch) {
        let v = row.len();
        let SynthIdScratch { probs, hashes, g } = scratch;
        // softmax
        let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        probs.clear();
        probs.extend(row.iter().map(|&l| (l - max).exp()));
        let total: f64 = probs.iter().map(|&p| f64::from(p)).sum();
        let total = total as f32;
        for p in probs.iter_mut() {
            *p /= total;
        }
        hashes.clear();
        hashes.extend((0..v as i64).map(|t| accumulate_hash(context_hash, t)));
        g.resize(v, 0);
        let table = self.table.table();
        for &key in &self.table.config().keys {
            let mut mass = 0.0f64;
            for ((gv, &h), &p) in g.iter_mut().zip(hashes.iter()).zip(probs.iter()) {
                *gv = table[self.table.index(accumulate_hash(h, key))];
                if *gv != 0 {
                    mass += f64::from(p);
                }
            }
            let mass = mass as f32;
            let factors = [1.0 - mass, 2.0 - mass];
            for (p, &gv) in probs.iter_mut().zip(g.iter()) {
                *p *= factors[gv as usize];
            }
        }
        for (l, &p) in row.iter_mut().zip(probs.iter()) {
            let lp = p.ln();
            *l = if lp.is_finite() { lp } else { f32::MIN };
        }
    }

    /// A generation request for greenmark's own samplers: the state, buffers and generated ids
    /// of one answer.
    pub fn request(&self) -> SynthIdRequest<'_> {
        SynthIdRequest {
            watermarker: self,
            state: self.state(),
            scratch: SynthIdScratch::new(),
            generated: Vec::new(),
        }
    }
}

/// One answer being generated with SynthID Text: [`watermark`](Self::watermark) each step's
/// filtered logits row, sample from it, then [`push`](Self::push) the token.
///
/// ```
/// use greenmark::synthid::{SynthIdConfig, SynthIdDetector, SynthIdWatermarker};
/// let config = SynthIdConfig::new(4, vec![5, 6, 7, 8, 9, 10])?;
/// let wm = SynthIdWatermarker::new(config.clone())?;
/// let mut request = wm.request();
/// for step in 0..200u32 {
///     // A flat toy model over 1000 tokens; greedy on the watermarked scores.
///     let mut row: Vec<f32> = (0..1000u32).map(|t| ((t ^ step).wrapping_mul(2654435761) >> 29) as f32 / 8.0).collect();
///     request.watermark(&mut row)?;
///     let next = (0..1000).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32;
///     request.push(next);
/// }
/// let detection = SynthIdDetector::new(config)?.detect(request.generated())?;
/// assert!(detection.weighted.log10_p_value < -6.0);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct SynthIdRequest<'a> {
    watermarker: &'a SynthIdWatermarker,
    state: SynthIdState,
    scratch: SynthIdScratch,
    generated: Vec<u32>,
}

impl SynthIdRequest<'_> {
    /// Watermarks the next position's logits row in place (after any temperature / top-k /
    /// top-p, as transformers orders its processors).
    pub fn watermark(&mut self, row: &mut [f32]) -> Result<SynthIdStep> {
        let last = self.generated.last().copied().unwrap_or(0);
        self.watermarker
            .apply(&mut self.state, last, row, &mut self.scratch)
    }

    /// Records the token drawn for the position just watermarked.
    pub fn push(&mut self, token: u32) {
        self.generated.push(token);
    }

    /// The ids generated so far.
    pub fn generated(&self) -> &[u32] {
        &self.generated
    }
}

impl SynthIdWatermarker {
    /// A watermarker built from an already-built table (no second MT19937 pass).
    pub fn from_table(table: SynthIdTable) -> SynthIdWatermarker {
        SynthIdWatermarker { table }
    }
}
