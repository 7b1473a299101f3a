//! Radioactivity: was a suspect model trained on our watermarked text?
//!
//! A model distilled from watermarked outputs inherits a faint preference for the green tokens
//! of the windows it saw (Sander et al. 2024, "Watermarking Makes Language Models
//! Radioactive"). One text carries too little of it; a [`RadioactivityTest`] pools the evidence
//! of a whole corpus into one *tape* and one exact p-value:
//!
//! - **Tuples.** Each position with a full window contributes the tuple `(window, token)`: in
//!   *closed* mode ([`RadioactivityTest::score_text`]) the token the suspect wrote after the
//!   window; in *open* or "reading" mode ([`RadioactivityTest::score_predictions`]) the
//!   suspect's top-1 prediction after a window of a watermarked text fed to it.
//! - **Dedup across the corpus.** A tuple is scored at most once on the whole tape, with the
//!   detector's semantics ([`crate::detect`]): tuples are identified by a 64-bit fingerprint of
//!   `(seed, token)`, so two windows that share a seed (possible for `minhash`, `sumhash`) count
//!   once. Without dedup, a suspect that repeats one green n-gram looks radioactive.
//! - **Prompt-window exclusion** ([`RadioactivityTest::exclude_prompt`]). Windows that occur in
//!   the prompts are never scored: prompts may themselves be watermarked text that the suspect
//!   merely copies. Windows are compared by their effect: two windows are the same when they
//!   give every candidate the same seed.
//! - **Filter** ([`RadioactivityTest::add_filter_text`]). Optionally score only windows that
//!   occur in a given watermarked corpus: the data the suspect may have been trained on, where
//!   the trace is concentrated.
//! - **Budget** ([`TestOptions::max_tuples`]). Scoring stops exactly at the fixed number of
//!   tuples; later tuples are counted as over budget. Watching the p-value and stopping when it
//!   is small (optional stopping) is not a valid test: without a fixed budget the result and
//!   its curve of log10 p against tuples scored are marked [`Radioactivity::exploratory`].
//! - **Several keys** (one per customer or release): each key keeps its own tape; the result
//!   names the key with the smallest p-value and corrects for the number of keys
//!   ([`bonferroni_ln`], [`sidak_ln`]).
//!
//! **Statistics.** Under the null hypothesis (the suspect never saw text watermarked with the
//! key) the tokens do not depend on the key, so each distinct `(seed, token)` is green with
//! probability `gamma` independently, and the number of green tuples among `n` is
//! Binomial(n, gamma): the p-value `P(X >= g)` is exact ([`crate::stats::binomial_tail_ln`]),
//! in log space. Prompt windows and the filter are fixed before the first tuple is scored (a
//! window excluded later would make the result depend on the order), and the budget cut is
//! made on the order of the tape, not on the colours, so neither breaks the null.
//!
//! **Memory.** Each key's tape holds one 8-byte fingerprint per distinct scored tuple (plus the
//! excluded and filter windows) in a `hashbrown` set: between 10.3 and 20.6 bytes per entry
//! depending on where the table is in its doubling; measured 18.9 bytes per tuple at one
//! million tuples ([`Radioactivity::memory_bytes`], test `memory_per_million_tuples`), so 10
//! million tuples fit in about 190 MB per key.
//!
//! # Example
//! ```
//! use greenmark::radioactivity::{RadioactivityTest, TestOptions};
//! use greenmark::{Key, WatermarkConfig};
//!
//! let config = WatermarkConfig::new(1000)?;
//! let options = TestOptions::default().max_tuples(5_000);
//! let mut test = RadioactivityTest::new(&[Key::from_bytes([1; 32])], config, options)?;
//! test.exclude_prompt(&[1, 2, 3])?; // prompt windows first
//! // A "suspect" that never saw the key: its text is independent of it.
//! for t in 0..100u32 {
//!     let text: Vec<u32> = (0..80).map(|i| (i * 7 + t * 13) % 1000).collect();
//!     test.score_text(&text, &[])?;
//! }
//! let result = test.finish();
//! assert!(!result.exploratory); // the budget was fixed up front
//! assert!(result.keys[0].n_scored <= 5_000);
//! assert!(result.log10_p_value > -6.0);
//! # Ok::<(), greenmark::Error>(())
//! ```

#[cfg(feature = "tokenizers")]
mod closed;
#[cfg(test)]
mod tests;

#[cfg(feature = "tokenizers")]
pub use closed::ClosedTest;

use std::hash::BuildHasherDefault;

use crate::config::{Scheme, WatermarkConfig};
use crate::detect::{fingerprint, PassThrough};
use crate::error::{Error, Result};
use crate::key::{Key, KeyId};
use crate::scheme::{mix32, Seeder};
use crate::stats;

type FingerprintSet = hashbrown::HashSet<u64, BuildHasherDefault<PassThrough>>;

/// The tuple at a position (`None`: no full window there).
type TupleAt<'a> = dyn Fn(usize) -> Option<(&'a [u32], u32)> + Sync + 'a;

/// What every tape of a test applies to each tuple.
struct Rules<'o> {
    options: &'o TestOptions,
    threshold: u32,
    filtering: bool,
    selfhash: bool,
}

/// Options of a [`RadioactivityTest`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TestOptions {
    /// Stop scoring exactly at this many tuples per key (`None`: score everything, and the
    /// result is exploratory).
    pub max_tuples: Option<u64>,
    /// Score each distinct tuple once on the whole tape (default on). Off exists only to show
    /// what goes wrong without it.
    pub dedup: bool,
}

impl Default for TestOptions {
    fn default() -> Self {
        TestOptions {
            max_tuples: None,
            dedup: true,
        }
    }
}

impl TestOptions {
    /// Fixes the number of tuples up front (at least 1).
    pub fn max_tuples(mut self, n: u64) -> Self {
        self.max_tuples = Some(n);
        self
    }

    /// Turns corpus-wide deduplication on (default) or off.
    pub fn dedup(mut self, on: bool) -> Self {
        self.dedup = on;
        self
    }
}

/// One point of the curve of the p-value against tuples scored.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CurvePoint {
    /// Tuples scored so far.
    pub n_scored: u64,
    /// Of which green.
    pub n_green: u64,
    /// `log10 P(X >= n_green)`, `X ~ Binomial(n_scored, gamma)`.
    pub log10_p_value: f64,
}

/// One key's tape, summarized.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct KeyResult {
    /// The key's public id.
    pub key_id: KeyId,
    /// Tuples offered: positions with a full window.
    pub n_seen: u64,
    /// Not scored: the window occurs in a prompt.
    pub n_excluded: u64,
    /// Not scored: a filter is set and the window is not in it.
    pub n_filtered: u64,
    /// Not scored (open mode): the predicted tuple occurs in the input text up to the
    /// prediction, so the suspect could copy its colour from its context.
    pub n_copied: u64,
    /// Not scored: the tuple was scored before (dedup).
    pub n_repeated: u64,
    /// Not scored: the budget was already spent.
    pub n_over_budget: u64,
    /// Tuples scored.
    pub n_scored: u64,
    /// Scored tuples that were green.
    pub n_green: u64,
    /// `n_green / n_scored` (0 when nothing was scored).
    pub green_fraction: f64,
    /// The green fraction expected under the null hypothesis (`threshold / 2^32`).
    pub expected_green_fraction: f64,
    /// The exact p-value `P(X >= n_green)`, `X ~ Binomial(n_scored, gamma)`, natural log.
    pub ln_p_value: f64,
    /// The same in base 10.
    pub log10_p_value: f64,
    /// The p-value after 1, 2, 5, 10, 20, 50, ... tuples, and at the end.
    pub curve: Vec<CurvePoint>,
}

/// The result of a [`RadioactivityTest`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Radioactivity {
    /// One result per key, in the order the keys were given.
    pub keys: Vec<KeyResult>,
    /// Index of the key with the smallest p-value (the first on ties): the key that fired, if
    /// the corrected p-value is below the chosen threshold.
    pub strongest_key: usize,
    /// The smallest p-value, uncorrected (natural log).
    pub ln_p_min: f64,
    /// The Bonferroni-corrected p-value `min(1, K p_min)` (natural log): valid for any
    /// dependence between the keys' tests.
    pub ln_p_bonferroni: f64,
    /// The Šidák-corrected p-value `1 - (1 - p_min)^K` (natural log): exact for independent
    /// keys (independent secrets), never above Bonferroni.
    pub ln_p_sidak: f64,
    /// The p-value to report: Bonferroni-corrected, `log10` (equals the key's own p-value for
    /// one key).
    pub log10_p_value: f64,
    /// Whether dedup was on.
    pub dedup: bool,
    /// The budget fixed up front, if any.
    pub max_tuples: Option<u64>,
    /// True when no budget was fixed: the p-value and the curve are exploratory.
    pub exploratory: bool,
    /// The scheme's versioned id.
    pub scheme: &'static str,
    /// Bytes held by the tapes' hash sets when the test finished.
    pub memory_bytes: usize,
}

impl Radioactivity {
    /// Bytes held by the tapes' hash sets when the test finished.
    pub fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

/// `ln min(1, K p)`: the Bonferroni correction of the smallest of `k` p-values, in log space.
///
/// ```
/// use greenmark::radioactivity::bonferroni_ln;
/// assert!((bonferroni_ln(1e-8f64.ln(), 10) - 1e-7f64.ln()).abs() < 1e-12);
/// assert_eq!(bonferroni_ln(0.5f64.ln(), 4), 0.0);
/// ```
pub fn bonferroni_ln(ln_p_min: f64, k: usize) -> f64 {
    (ln_p_min + (k.max(1) as f64).ln()).min(0.0)
}

/// `ln(1 - (1 - p)^K)`: the Šidák correction of the smallest of `k` independent p-values, in
/// log space, accurate for `p` far below `f64`'s range (where it tends to `ln K + ln p`).
///
/// ```
/// use greenmark::radioactivity::sidak_ln;
/// let exact = (1.0f64 - 0.99f64.powi(3)).ln();
/// assert!((sidak_ln(0.01f64.ln(), 3) - exact).abs() < 1e-12);
/// assert!((sidak_ln(-2000.0, 10) - (-2000.0 + 10f64.ln())).abs() < 1e-9);
/// ```
pub fn sidak_ln(ln_p_min: f64, k: usize) -> f64 {
    let k = k.max(1) as f64;
    if ln_p_min.is_nan() {
        return f64::NAN;
    }
    if ln_p_min + k.ln() < -30.0 {
        // 1 - (1 - p)^K = K p (1 - (K - 1) p / 2 + O((K p)^2)), K p < 1e-13.
        return ln_p_min + k.ln() + (-(k - 1.0) * ln_p_min.exp() / 2.0).ln_1p();
    }
    // ln (1 - p)^K = K ln(1 - p) = K log1mexp(ln p); then ln(1 - e^that).
    let ln_keep = k * stats::special::log1mexp(ln_p_min);
    stats::special::log1mexp(ln_keep).min(0.0)
}

/// A corpus-level radioactivity test for one or more keys (see the module docs).
#[derive(Debug, Clone)]
pub struct RadioactivityTest {
    config: WatermarkConfig,
    options: TestOptions,
    threshold: u32,
    tapes: Vec<Tape>,
    /// Whether a filter was given: then only windows in it are scored.
    filtering: bool,
    /// Whether scoring has begun (prompts and filters must come first).
    started: bool,
}

#[derive(Debug, Clone)]
struct Tape {
    seeder: Seeder,
    key_id: KeyId,
    seen: FingerprintSet,
    excluded: FingerprintSet,
    filter: FingerprintSet,
    counts: Counts,
    curve: Vec<(u64, u64)>,
    next_checkpoint: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    seen: u64,
    excluded: u64,
    filtered: u64,
    copied: u64,
    repeated: u64,
    over_budget: u64,
    scored: u64,
    green: u64,
}

/// 1, 2, 5, 10, 20, 50, ...: the next checkpoint after `n`.
fn next_checkpoint(n: u64) -> u64 {
    let mut decade = 1u64;
    loop {
        for m in [1, 2, 5] {
            let c = decade.saturating_mul(m);
            if c > n {
                return c;
            }
        }
        decade = decade.saturating_mul(10);
    }
}

impl RadioactivityTest {
    /// A test of `config`'s watermark under each of `keys` (at least one, all distinct).
    pub fn new(keys: &[Key], config: WatermarkConfig, options: TestOptions) -> Result<Self> {
        if keys.is_empty() {
            return Err(Error::InvalidOption(
                "a radioactivity test needs at least one key".into(),
            ));
        }
        if options.max_tuples == Some(0) {
            return Err(Error::InvalidOption(
                "max_tuples must be at least 1 (or unset to score everything, exploratory)".into(),
            ));
        }
        let mut ids: Vec<KeyId> = keys.iter().map(Key::id).collect();
        ids.sort_by_key(|id| *id.as_bytes());
        if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::InvalidOption(format!(
                "key {} is given twice: give each key once",
                w[0]
            )));
        }
        let tapes = keys
            .iter()
            .map(|key| Tape {
                seeder: Seeder::new(key, config.scheme()),
                key_id: key.id(),
                seen: FingerprintSet::default(),
                excluded: FingerprintSet::default(),
                filter: FingerprintSet::default(),
                counts: Counts::default(),
                curve: Vec::new(),
                next_checkpoint: 1,
            })
            .collect();
        Ok(RadioactivityTest {
            threshold: config.threshold(),
            config,
            options,
            tapes,
            filtering: false,
            started: false,
        })
    }

    /// The watermark config under test.
    pub fn config(&self) -> &WatermarkConfig {
        &self.config
    }

    /// The options.
    pub fn options(&self) -> &TestOptions {
        &self.options
    }

    /// Excludes every window that occurs in `prompt` (all its full windows, including the one
    /// at its end). Call for every prompt before the first scored text.
    pub fn exclude_prompt(&mut self, prompt: &[u32]) -> Result<()> {
        self.add_windows(prompt, "prompt", |tape| &mut tape.excluded)
    }

    /// Adds the windows of one text of the watermarked corpus to the filter: once any filter
    /// text is added, only windows in the filter are scored. Call before the first scored
    /// text.
    pub fn add_filter_text(&mut self, text: &[u32]) -> Result<()> {
        self.add_windows(text, "filter text", |tape| &mut tape.filter)?;
        self.filtering = true;
        Ok(())
    }

    fn add_windows(
        &mut self,
        tokens: &[u32],
        what: &'static str,
        set: impl Fn(&mut Tape) -> &mut FingerprintSet,
    ) -> Result<()> {
        if self.started {
            return Err(Error::InvalidOption(format!(
                "a {what} was added after scoring began: add every prompt and filter text before \
                 the first scored text (a window excluded later would make the result depend on \
                 the order)"
            )));
        }
        let h = self.config.scheme().context_len();
        if h == 0 {
            return Err(Error::InvalidOption(format!(
                "the {} scheme has no window, so a {what} would exclude or admit every tuple: \
                 use a scheme with a window",
                self.config.scheme().name()
            )));
        }
        self.check_tokens(tokens, what)?;
        for tape in &mut self.tapes {
            let seeder = tape.seeder.clone();
            let set = set(tape);
            set.reserve(tokens.len().saturating_sub(h) + 1);
            for window in tokens.windows(h) {
                set.insert(seeder.window_id(window));
            }
        }
        Ok(())
    }

    /// Closed mode: scores the suspect's text `tokens` (ids of the watermarking tokenizer).
    /// `prefix` (possibly empty) is what preceded them, e.g. the prompt: it gives the windows
    /// of the first tokens and is not scored itself.
    pub fn score_text(&mut self, tokens: &[u32], prefix: &[u32]) -> Result<()> {
        self.check_tokens(prefix, "prompt")?;
        self.check_tokens(tokens, "text")?;
        let h = self.config.scheme().context_len();
        let keep = prefix.len().min(h);
        let mut all = Vec::with_capacity(keep + tokens.len());
        all.extend_from_slice(&prefix[prefix.len() - keep..]);
        all.extend_from_slice(tokens);
        self.score_pairs(
            tokens.len(),
            |i| {
                let p = all.len() - tokens.len() + i;
                (p >= h).then(|| (&all[p - h..p], tokens[i]))
            },
            None,
        );
        Ok(())
    }

    /// Open ("reading") mode: `input` is a watermarked text fed to the suspect and
    /// `predictions[j]` the suspect's top-1 prediction for the token after `input[..=j]`
    /// (one per input position, as a model's logits come). The tuple scored at `j` is the
    /// prediction with the window taken from the input (its last `h` tokens up to `j`).
    ///
    /// A prediction that equals a tuple of the input itself up to `j` (`input[i]` after its
    /// window, `i <= j`) is not scored ([`KeyResult::n_copied`]): the input is watermarked,
    /// and a model that never saw the key can still copy a watermarked continuation from its
    /// context (in-context copying), which would make any model look radioactive.
    pub fn score_predictions(&mut self, input: &[u32], predictions: &[u32]) -> Result<()> {
        if input.len() != predictions.len() {
            return Err(Error::BatchShape(format!(
                "{} predictions for {} input tokens: give one prediction per input position \
                 (the suspect's top-1 next token after each prefix)",
                predictions.len(),
                input.len()
            )));
        }
        self.check_tokens(input, "text")?;
        self.check_tokens(predictions, "prediction")?;
        let h = self.config.scheme().context_len();
        let actual = |j: usize| (j >= h).then(|| (&input[j - h..j], input[j]));
        self.score_pairs(
            input.len(),
            |j| (j + 1 >= h).then(|| (&input[j + 1 - h..=j], predictions[j])),
            Some(&actual),
        );
        Ok(())
    }

    /// The result so far (the test can keep scoring).
    pub fn result(&self) -> Radioactivity {
        let gamma = self.config.effective_gamma();
        let keys: Vec<KeyResult> = self.tapes.iter().map(|t| t.summary(gamma)).collect();
        let (strongest, ln_p_min) =
            keys.iter()
                .enumerate()
                .fold((0, f64::INFINITY), |(bi, bp), (i, k)| {
                    if k.ln_p_value < bp {
                        (i, k.ln_p_value)
                    } else {
                        (bi, bp)
                    }
                });
        let bonferroni = bonferroni_ln(ln_p_min, keys.len());
        Radioactivity {
            strongest_key: strongest,
            ln_p_min,
            ln_p_bonferroni: bonferroni,
            ln_p_sidak: sidak_ln(ln_p_min, keys.len()),
            log10_p_value: stats::ln_to_log10(bonferroni),
            dedup: self.options.dedup,
            max_tuples: self.options.max_tuples,
            exploratory: self.options.max_tuples.is_none(),
            scheme: self.config.scheme().id(),
            memory_bytes: self
                .tapes
                .iter()
                .map(|t| {
                    t.seen.allocation_size()
                        + t.excluded.allocation_size()
                        + t.filter.allocation_size()
                })
                .sum(),
            keys,
        }
    }

    /// The result.
    pub fn finish(self) -> Radioactivity {
        self.result()
    }

    fn check_tokens(&self, tokens: &[u32], sequence: &'static str) -> Result<()> {
        let vocab = self.config.vocab_size();
        match tokens.iter().position(|&t| t >= vocab) {
            Some(position) => Err(Error::TokenOutOfRange {
                position,
                token: tokens[position],
                vocab_size: vocab,
                sequence,
            }),
            None => Ok(()),
        }
    }

    /// Scores the tuples `tuple(0..n)` (`None`: no full window) on every key's tape.
    /// With `actual` (open mode), the input's own tuple at `i` is noted before the prediction
    /// at `i` is offered, and a prediction equal to a tuple of its input is not scored.
    fn score_pairs<'a>(
        &mut self,
        n: usize,
        tuple: impl Fn(usize) -> Option<(&'a [u32], u32)> + Sync,
        actual: Option<&TupleAt<'a>>,
    ) {
        self.started = true;
        let rules = Rules {
            options: &self.options,
            threshold: self.threshold,
            filtering: self.filtering,
            selfhash: matches!(self.config.scheme(), Scheme::SelfHash { .. }),
        };
        let run = |tape: &mut Tape| {
            if rules.options.dedup {
                tape.seen.reserve(n);
            }
            let mut in_text = FingerprintSet::default();
            for i in 0..n {
                if let Some((window, token)) = actual.and_then(|f| f(i)) {
                    in_text.insert(fingerprint(tape.seeder.seed(window, token), token));
                }
                if let Some((window, token)) = tuple(i) {
                    let copies = actual.map(|_| &in_text);
                    tape.offer(window, token, &rules, copies);
                }
            }
        };
        #[cfg(feature = "rayon")]
        if self.tapes.len() > 1 {
            use rayon::prelude::*;
            self.tapes.par_iter_mut().for_each(run);
            return;
        }
        self.tapes.iter_mut().for_each(run);
    }
}

impl Tape {
    #[inline]
    fn offer(
        &mut self,
        window: &[u32],
        token: u32,
        rules: &Rules<'_>,
        copies: Option<&FingerprintSet>,
    ) {
        let options = rules.options;
        let c = &mut self.counts;
        c.seen += 1;
        let id = self.seeder.window_id(window);
        if self.excluded.contains(&id) {
            c.excluded += 1;
            return;
        }
        if rules.filtering && !self.filter.contains(&id) {
            c.filtered += 1;
            return;
        }
        let seed = if rules.selfhash {
            self.seeder.seed(window, token)
        } else {
            id
        };
        let fp = fingerprint(seed, token);
        if copies.is_some_and(|set| set.contains(&fp)) {
            c.copied += 1;
            return;
        }
        if options.dedup && self.seen.contains(&fp) {
            c.repeated += 1;
            return;
        }
        if options.max_tuples.is_some_and(|m| c.scored >= m) {
            c.over_budget += 1;
            return;
        }
        if options.dedup {
            self.seen.insert(fp);
        }
        c.scored += 1;
        c.green += u64::from(mix32(seed, token) < rules.threshold);
        if c.scored == self.next_checkpoint {
            self.curve.push((c.scored, c.green));
            self.next_checkpoint = next_checkpoint(c.scored);
        }
    }

    fn summary(&self, gamma: f64) -> KeyResult {
        let c = self.counts;
        let point = |(n, g): (u64, u64)| CurvePoint {
            n_scored: n,
            n_green: g,
            log10_p_value: stats::ln_to_log10(stats::binomial_tail_ln(g, n, gamma)),
        };
        let mut curve: Vec<CurvePoint> = self.curve.iter().copied().map(point).collect();
        if c.scored > 0 && self.curve.last().map(|p| p.0) != Some(c.scored) {
            curve.push(point((c.scored, c.green)));
        }
        let ln_p = stats::binomial_tail_ln(c.green, c.scored, gamma);
        KeyResult {
            key_id: self.key_id,
            n_seen: c.seen,
            n_excluded: c.excluded,
            n_filtered: c.filtered,
            n_copied: c.copied,
            n_repeated: c.repeated,
            n_over_budget: c.over_budget,
            n_scored: c.scored,
            n_green: c.green,
            green_fraction: if c.scored == 0 {
                0.0
            } else {
                c.green as f64 / c.scored as f64
            },
            expected_green_fraction: gamma,
            ln_p_value: ln_p,
            log10_p_value: stats::ln_to_log10(ln_p),
            curve,
        }
    }
}
