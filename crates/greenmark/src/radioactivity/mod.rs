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
//!   [`Radioactivity::budget_reached`] says whether the corpus had enough eligible tuples to
//!   spend the budget.
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
//! **Scale-out.** A corpus spread over machines is sifted where it lies
//! ([`RadioactivityTest::pool`]: per key, each distinct tuple with its first place and its
//! occurrences), the [`Pool`]s are merged in any order and cut at the budget, and the driver
//! records the result ([`RadioactivityTest::record_pool`]): exactly the single-machine tape.
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
#[cfg(test)]
mod tests_gumbel;
#[cfg(test)]
mod tests_pool;
#[cfg(test)]
mod tests_sift;

#[cfg(feature = "tokenizers")]
pub use closed::ClosedTest;

use std::hash::BuildHasherDefault;

use crate::config::WatermarkConfig;
use crate::error::{Error, Result};
use crate::gumbel::{Algorithm, GumbelConfig, GumbelKey};
use crate::key::{Key, KeyId};
use crate::stats;
use crate::tuple::PassThrough;

mod pool;
mod scorer;
mod sift;

pub use pool::{Doc, Place, Pool, PooledTuple};
use scorer::Scorer;
pub use sift::Sifted;

type FingerprintSet = hashbrown::HashSet<u64, BuildHasherDefault<PassThrough>>;

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
    /// Of which green (KGW; 0 for Gumbel).
    pub n_green: u64,
    /// The test statistic so far: `n_green` (KGW) or the sum of `-ln(1 - u)` (Gumbel).
    pub score: f64,
    /// `log10` of the p-value so far (see [`KeyResult::ln_p_value`]).
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
    /// Whether the budget fixed up front was reached: `n_scored` equals
    /// [`TestOptions::max_tuples`] (false without a budget). When not, the corpus had fewer
    /// eligible tuples than planned and the test is weaker than the budget promised.
    pub budget_reached: bool,
    /// Scored tuples that were green (KGW; 0 for Gumbel).
    pub n_green: u64,
    /// `n_green / n_scored` (0 when nothing was scored; KGW only).
    pub green_fraction: f64,
    /// The green fraction expected under the null hypothesis (`threshold / 2^32`; KGW only, 0
    /// for Gumbel).
    pub expected_green_fraction: f64,
    /// The test statistic: `n_green` (KGW) or `S`, the sum of the scored tuples'
    /// `-ln(1 - u)` (Gumbel).
    pub score: f64,
    /// The statistic's mean under the null hypothesis: `gamma n_scored` (KGW) or `n_scored`
    /// (Gumbel, one `Exp(1)` per tuple).
    pub expected_score: f64,
    /// The exact p-value, natural log: `P(X >= n_green)`, `X ~ Binomial(n_scored, gamma)`
    /// (KGW), or `P(G >= S)`, `G ~ Gamma(n_scored, 1)` (Gumbel).
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
    /// Whether every key's tape reached the budget ([`KeyResult::budget_reached`]; false
    /// without a budget).
    pub budget_reached: bool,
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

pub use crate::stats::{bonferroni_ln, sidak_ln};

/// A corpus-level radioactivity test for one or more keys (see the module docs).
#[derive(Debug, Clone)]
pub struct RadioactivityTest {
    family: Family,
    options: TestOptions,
    tapes: Vec<Tape>,
    /// Whether a filter was given: then only windows in it are scored.
    filtering: bool,
    /// Whether scoring has begun (prompts and filters must come first).
    started: bool,
}

/// The watermark family under test.
#[derive(Debug, Clone)]
enum Family {
    Kgw(WatermarkConfig),
    Gumbel {
        config: GumbelConfig,
        vocab_size: u32,
        scheme: &'static str,
    },
}

/// One key's tape: its [`Sieve`] (what is scored, and how) and its [`Ledger`] (what was).
#[derive(Debug, Clone)]
struct Tape {
    key_id: KeyId,
    sieve: Sieve,
    ledger: Ledger,
}

/// The per-occurrence half of a tape: the key's scorer, the excluded (prompt) windows and the
/// filter. Fixed once scoring begins.
#[derive(Debug, Clone)]
struct Sieve {
    scorer: Scorer,
    excluded: FingerprintSet,
    filter: FingerprintSet,
}

/// The corpus-wide half: the tuples scored so far (dedup), the counts, the curve.
#[derive(Debug, Clone)]
struct Ledger {
    seen: FingerprintSet,
    counts: Counts,
    curve: Vec<(u64, u64, f64)>,
    next_checkpoint: u64,
}

/// What the sieve says of one occurrence of a tuple.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Offer {
    Excluded,
    Filtered,
    Copied,
    /// To the ledger: the tuple's fingerprint and its score (1 or 0 for a green or red KGW
    /// tuple, `-ln(1 - u)` for Gumbel).
    Eligible {
        fingerprint: u64,
        score: f64,
    },
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
    score: f64,
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

/// Refuses an empty key list and repeated keys.
fn check_keys(ids: &[KeyId]) -> Result<()> {
    if ids.is_empty() {
        return Err(Error::InvalidKeys(
            "a radioactivity test needs at least one key".into(),
        ));
    }
    let mut sorted = ids.to_vec();
    sorted.sort_by_key(|id| *id.as_bytes());
    if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
        return Err(Error::InvalidKeys(format!(
            "key {} is given twice: give each key once",
            w[0]
        )));
    }
    Ok(())
}

impl RadioactivityTest {
    /// A test of `config`'s watermark under each of `keys` (at least one, all distinct).
    pub fn new(keys: &[Key], config: WatermarkConfig, options: TestOptions) -> Result<Self> {
        check_keys(&keys.iter().map(Key::id).collect::<Vec<_>>())?;
        let tapes = keys
            .iter()
            .map(|key| Tape::new(key.id(), Scorer::kgw(key, &config)))
            .collect();
        Self::with_tapes(Family::Kgw(config), tapes, options)
    }

    /// A test of a Gumbel watermark (vLLM's `gumbel`, or greenmark's native one) under each of
    /// `keys`: a tuple is a context of `config.context_width` tokens and the token after it,
    /// scored `-ln(1 - u)` with the key's uniform `u`; under the null hypothesis the scores of
    /// distinct tuples are independent `Exp(1)`, so the pooled `S` of `n` tuples is
    /// `Gamma(n, 1)` and the p-value `Q(n, S)` is exact. Token ids are checked against
    /// `vocab_size`.
    ///
    /// Only `algorithm = gumbel`: the dual-key variant's pooled tail is a moment match, not
    /// exact. The generation-time dedup settings of `config` do not matter here (the tape
    /// dedups tuples corpus-wide).
    ///
    /// ```
    /// use greenmark::gumbel::{GumbelConfig, GumbelKey};
    /// use greenmark::radioactivity::{RadioactivityTest, TestOptions};
    /// let options = TestOptions::default().max_tuples(1_000);
    /// let mut test = RadioactivityTest::gumbel(&[GumbelKey::vllm(42)], GumbelConfig::default(), 50_000, options)?;
    /// test.score_text(&(0..2_000).map(|i| (i * 7919) % 50_000).collect::<Vec<u32>>(), &[])?;
    /// let result = test.finish();
    /// assert_eq!(result.keys[0].n_scored, 1_000);
    /// assert!(result.log10_p_value > -6.0);
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn gumbel(
        keys: &[GumbelKey],
        config: GumbelConfig,
        vocab_size: u32,
        options: TestOptions,
    ) -> Result<Self> {
        config.validate()?;
        if config.algorithm != Algorithm::Gumbel {
            return Err(Error::Unsupported(
                "the radioactivity tape supports algorithm `gumbel` only: the pooled tail of \
                 `dual_key_gumbel` is a moment match, not an exact p-value"
                    .into(),
            ));
        }
        if vocab_size == 0 {
            return Err(Error::option(
                "vocab_size",
                "vocab_size must be at least 1: give the watermarked model's vocabulary size",
            ));
        }
        check_keys(&keys.iter().map(GumbelKey::id).collect::<Vec<_>>())?;
        let scheme = keys[0].scheme_id(config.algorithm);
        if keys.iter().any(|k| k.scheme_id(config.algorithm) != scheme) {
            return Err(Error::InvalidKeys(
                "mixed vLLM and greenmark-derived Gumbel keys: test each kind on its own".into(),
            ));
        }
        let tapes = keys
            .iter()
            .map(|key| Tape::new(key.id(), Scorer::gumbel(key, &config)))
            .collect();
        let family = Family::Gumbel {
            config,
            vocab_size,
            scheme,
        };
        Self::with_tapes(family, tapes, options)
    }

    fn with_tapes(family: Family, tapes: Vec<Tape>, options: TestOptions) -> Result<Self> {
        if options.max_tuples == Some(0) {
            return Err(Error::option(
                "max_tuples",
                "max_tuples must be at least 1 (or unset to score everything, exploratory)",
            ));
        }
        Ok(RadioactivityTest {
            family,
            options,
            tapes,
            filtering: false,
            started: false,
        })
    }

    /// The KGW watermark config under test (`None` for a Gumbel test).
    pub fn config(&self) -> Option<&WatermarkConfig> {
        match &self.family {
            Family::Kgw(config) => Some(config),
            Family::Gumbel { .. } => None,
        }
    }

    /// The vocabulary size token ids are checked against.
    pub fn vocab_size(&self) -> u32 {
        match &self.family {
            Family::Kgw(config) => config.vocab_size(),
            Family::Gumbel { vocab_size, .. } => *vocab_size,
        }
    }

    /// The window: tokens before a scored token that key it (the KGW scheme's context, or
    /// the Gumbel context width).
    pub fn window(&self) -> usize {
        match &self.family {
            Family::Kgw(config) => config.scheme().context_len(),
            Family::Gumbel { config, .. } => config.context_width,
        }
    }

    /// The scheme's versioned id.
    pub fn scheme(&self) -> &'static str {
        match &self.family {
            Family::Kgw(config) => config.scheme().id(),
            Family::Gumbel { scheme, .. } => scheme,
        }
    }

    /// The options.
    pub fn options(&self) -> &TestOptions {
        &self.options
    }

    /// Excludes every window that occurs in `prompt` (all its full windows, including the one
    /// at its end). Call for every prompt before the first scored text.
    pub fn exclude_prompt(&mut self, prompt: &[u32]) -> Result<()> {
        self.add_windows(prompt, "prompt", |sieve| &mut sieve.excluded)
    }

    /// Adds the windows of one text of the watermarked corpus to the filter: once any filter
    /// text is added, only windows in the filter are scored. Call before the first scored
    /// text.
    pub fn add_filter_text(&mut self, text: &[u32]) -> Result<()> {
        self.add_windows(text, "filter text", |sieve| &mut sieve.filter)?;
        self.filtering = true;
        Ok(())
    }

    fn add_windows(
        &mut self,
        tokens: &[u32],
        what: &'static str,
        set: impl Fn(&mut Sieve) -> &mut FingerprintSet,
    ) -> Result<()> {
        if self.started {
            return Err(Error::CallOrder(format!(
                "a {what} was added after scoring began: add every prompt and filter text before \
                 the first scored text (a window excluded later would make the result depend on \
                 the order)"
            )));
        }
        let h = self.window();
        if h == 0 {
            return Err(Error::Unsupported(format!(
                "the {} scheme has no window, so a {what} would exclude or admit every tuple: \
                 use a scheme with a window",
                self.scheme()
            )));
        }
        self.check_tokens(tokens, what)?;
        for tape in &mut self.tapes {
            let scorer = tape.sieve.scorer.clone();
            let set = set(&mut tape.sieve);
            set.reserve(tokens.len().saturating_sub(h) + 1);
            for window in tokens.windows(h) {
                set.insert(scorer.window_id(window));
            }
        }
        Ok(())
    }

    /// Closed mode: scores the suspect's text `tokens` (ids of the watermarking tokenizer).
    /// `prefix` (possibly empty) is what preceded them, e.g. the prompt: it gives the windows
    /// of the first tokens and is not scored itself.
    pub fn score_text(&mut self, tokens: &[u32], prefix: &[u32]) -> Result<()> {
        let walk = self.text_walk(tokens, prefix)?;
        self.score_walk(&walk);
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
        let walk = self.reading_walk(input, predictions)?;
        self.score_walk(&walk);
        Ok(())
    }

    /// The result so far (the test can keep scoring).
    pub fn result(&self) -> Radioactivity {
        let keys: Vec<KeyResult> = self
            .tapes
            .iter()
            .map(|t| t.summary(&self.family, &self.options))
            .collect();
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
            budget_reached: keys.iter().all(|k| k.budget_reached),
            exploratory: self.options.max_tuples.is_none(),
            scheme: self.scheme(),
            memory_bytes: self
                .tapes
                .iter()
                .map(|t| {
                    t.ledger.seen.allocation_size()
                        + t.sieve.excluded.allocation_size()
                        + t.sieve.filter.allocation_size()
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
        let vocab = self.vocab_size();
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

    /// The tuples of a closed-mode text, checked.
    fn text_walk<'a>(&self, tokens: &[u32], prefix: &[u32]) -> Result<Walk<'a>> {
        self.check_tokens(prefix, "prompt")?;
        self.check_tokens(tokens, "text")?;
        let keep = prefix.len().min(self.window());
        let mut all = Vec::with_capacity(keep + tokens.len());
        all.extend_from_slice(&prefix[prefix.len() - keep..]);
        all.extend_from_slice(tokens);
        Ok(Walk::Text { all, start: keep })
    }

    /// The tuples of an open-mode reading, checked.
    fn reading_walk<'a>(&self, input: &'a [u32], predictions: &'a [u32]) -> Result<Walk<'a>> {
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
        Ok(Walk::Reading { input, predictions })
    }

    /// Offers every tuple of `walk` to every key's tape.
    fn score_walk(&mut self, walk: &Walk<'_>) {
        self.started = true;
        let (h, filtering, options) = (self.window(), self.filtering, &self.options);
        let run = |tape: &mut Tape| {
            if options.dedup {
                tape.ledger.seen.reserve(walk.len());
            }
            let Tape { sieve, ledger, .. } = tape;
            walk.sift(sieve, h, filtering, |offer| ledger.take(offer, options));
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

/// The tuples of one text, in order.
#[derive(Debug, Clone)]
enum Walk<'a> {
    /// Closed mode: each token of `all` from `start` on, keyed by the `h` tokens before it.
    Text { all: Vec<u32>, start: usize },
    /// Open mode: the prediction after each prefix of the input, keyed by the prefix's last
    /// `h` tokens; the input's own tuples are noted as they pass (in-context copies).
    Reading {
        input: &'a [u32],
        predictions: &'a [u32],
    },
}

impl Walk<'_> {
    /// Tuples offered (at most).
    fn len(&self) -> usize {
        match self {
            Walk::Text { all, start } => all.len() - start,
            Walk::Reading { input, .. } => input.len(),
        }
    }

    /// Passes `sieve`'s verdict on each tuple with a full window, in order, to `verdict`.
    fn sift(&self, sieve: &Sieve, h: usize, filtering: bool, mut verdict: impl FnMut(Offer)) {
        match self {
            Walk::Text { all, start } => {
                for p in (*start).max(h)..all.len() {
                    verdict(sieve.offer(&all[p - h..p], all[p], filtering, None));
                }
            }
            Walk::Reading { input, predictions } => {
                let mut in_text = FingerprintSet::default();
                for j in 0..input.len() {
                    if j >= h {
                        in_text.insert(sieve.scorer.fingerprint(&input[j - h..j], input[j]));
                    }
                    if j + 1 >= h {
                        let window = &input[j + 1 - h..=j];
                        verdict(sieve.offer(window, predictions[j], filtering, Some(&in_text)));
                    }
                }
            }
        }
    }
}

impl Tape {
    fn new(key_id: KeyId, scorer: Scorer) -> Tape {
        Tape {
            key_id,
            sieve: Sieve {
                scorer,
                excluded: FingerprintSet::default(),
                filter: FingerprintSet::default(),
            },
            ledger: Ledger {
                seen: FingerprintSet::default(),
                counts: Counts::default(),
                curve: Vec::new(),
                next_checkpoint: 1,
            },
        }
    }

    fn summary(&self, family: &Family, options: &TestOptions) -> KeyResult {
        let c = self.ledger.counts;
        let ln_p = |n: u64, green: u64, score: f64| match family {
            Family::Kgw(config) => stats::binomial_tail_ln(green, n, config.effective_gamma()),
            Family::Gumbel { .. } => crate::gumbel::gamma_tail_ln(n as f64, score),
        };
        let kgw = matches!(family, Family::Kgw(_));
        let point = |(n, g, score): (u64, u64, f64)| CurvePoint {
            n_scored: n,
            n_green: if kgw { g } else { 0 },
            score,
            log10_p_value: stats::ln_to_log10(ln_p(n, g, score)),
        };
        let mut curve: Vec<CurvePoint> = self.ledger.curve.iter().copied().map(point).collect();
        if c.scored > 0 && self.ledger.curve.last().map(|p| p.0) != Some(c.scored) {
            curve.push(point((c.scored, c.green, c.score)));
        }
        let ln_p = ln_p(c.scored, c.green, c.score);
        let gamma = match family {
            Family::Kgw(config) => config.effective_gamma(),
            Family::Gumbel { .. } => 0.0,
        };
        KeyResult {
            key_id: self.key_id,
            n_seen: c.seen,
            n_excluded: c.excluded,
            n_filtered: c.filtered,
            n_copied: c.copied,
            n_repeated: c.repeated,
            n_over_budget: c.over_budget,
            n_scored: c.scored,
            budget_reached: options.max_tuples.is_some_and(|m| c.scored >= m),
            n_green: if kgw { c.green } else { 0 },
            green_fraction: if c.scored == 0 || !kgw {
                0.0
            } else {
                c.green as f64 / c.scored as f64
            },
            expected_green_fraction: gamma,
            score: c.score,
            expected_score: if kgw {
                gamma * c.scored as f64
            } else {
                c.scored as f64
            },
            ln_p_value: ln_p,
            log10_p_value: stats::ln_to_log10(ln_p),
            curve,
        }
    }
}

impl Sieve {
    /// The verdict on one occurrence of `(window, token)`: excluded (a prompt window),
    /// filtered out, an in-context copy (`copies`, open mode), or eligible.
    #[inline]
    fn offer(
        &self,
        window: &[u32],
        token: u32,
        filtering: bool,
        copies: Option<&FingerprintSet>,
    ) -> Offer {
        let at = self.scorer.window(window);
        if self.excluded.contains(&at.id) {
            return Offer::Excluded;
        }
        if filtering && !self.filter.contains(&at.id) {
            return Offer::Filtered;
        }
        let (fingerprint, score) = self.scorer.tuple(&at, window, token);
        if copies.is_some_and(|set| set.contains(&fingerprint)) {
            return Offer::Copied;
        }
        Offer::Eligible { fingerprint, score }
    }
}

impl Ledger {
    /// Counts one verdict; an eligible tuple is scored unless it was before (dedup) or the
    /// budget is spent.
    #[inline]
    fn take(&mut self, offer: Offer, options: &TestOptions) {
        let c = &mut self.counts;
        c.seen += 1;
        let (fp, score) = match offer {
            Offer::Excluded => return c.excluded += 1,
            Offer::Filtered => return c.filtered += 1,
            Offer::Copied => return c.copied += 1,
            Offer::Eligible { fingerprint, score } => (fingerprint, score),
        };
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
        c.green += u64::from(score == 1.0);
        c.score += score;
        if c.scored == self.next_checkpoint {
            self.curve.push((c.scored, c.green, c.score));
            self.next_checkpoint = next_checkpoint(c.scored);
        }
    }
}
