//! Robustness evaluation: seeded attacks on watermarked text and the metrics that say how
//! much of the watermark survives them.
//!
//! - [`attack`] holds the attacks as pure functions of token ids or text and a random
//!   generator: token substitution, deletion and insertion, word substitution, case changes,
//!   homoglyphs, invisible characters, truncation, copy-paste into human text.
//! - [`metrics`] holds TPR at a p-value threshold, the exact Mann–Whitney ROC AUC, the ROC
//!   curve, the median tokens to detection ("watermark size") and perplexity.
//! - [`Attack`] names one attack with its parameter (`sub-tokens:0.3`, `upper`, ...);
//!   [`Evaluator`] applies it to every watermarked text and scores the result against the plain
//!   texts, giving one [`AttackRow`] per way of reading the attacked text.
//!
//! **How attacked texts are read.** Token-level attacks (and `clean`, `truncate`,
//! `copy-paste`) edit the generated ids and are scored as ids. Text-level attacks edit the
//! decoded text, which is then re-tokenized twice: as it is, and after greenmark's detection
//! normalization ([`crate::text::normalize`]: invisible characters removed, odd spaces folded,
//! NFC) — so a row says what an attack does to a detector with and without that defence. The
//! negatives (plain texts) are read the same way as the positives of the row, never attacked:
//! the p-value is valid for any text written without the key, attacked or not.
//!
//! **Thresholds.** The p-values are exact (or conservative), so the TPR at FPR `alpha` is the
//! fraction of watermarked texts with `p < alpha`; the plain texts' empirical rate is reported
//! beside it ([`PlainRow`]), and is at most `alpha` up to sampling error.
//!
//! # Example
//! ```
//! use greenmark::eval::{Attack, EvalOptions, Evaluator, Sample, Scorer};
//! use greenmark::synthetic::ZipfLm;
//! use greenmark::{Detector, Key, WatermarkConfig, Watermarker};
//! use rand::SeedableRng;
//!
//! let tokenizer = greenmark::text::load_tokenizer_json(
//!     "tests/data/smollm2-tokenizer.json".as_ref())?;
//! let config = WatermarkConfig::new(49152)?;
//! let key = Key::from_bytes([5; 32]);
//! let wm = Watermarker::new(&key, config.clone());
//! // A synthetic model (Zipf next-token distributions) over the tokenizer's vocabulary.
//! let lm = ZipfLm::new(49152, 1.1)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let mut marked = Vec::new();
//! let mut plain = Vec::new();
//! for _ in 0..6 {
//!     marked.push(Sample::from_ids(&tokenizer, lm.generate(&[1], 80, Some(&wm), &mut rng)?)?);
//!     plain.push(Sample::from_ids(&tokenizer, lm.generate(&[1], 80, None, &mut rng)?)?);
//! }
//! let scorer = Scorer::Kgw(Detector::new(&key, config));
//! let evaluator = Evaluator::new(&scorer, &tokenizer, &plain, EvalOptions::default())?;
//! let clean = &evaluator.run(&Attack::Clean, &marked, &plain)?[0];
//! assert_eq!(clean.tpr_at_1e3, 1.0);
//! let deleted = &evaluator.run(&"del-tokens:0.5".parse()?, &marked, &plain)?[0];
//! assert!(deleted.n_texts == 6 && deleted.median_tokens < clean.median_tokens);
//! # Ok::<(), greenmark::Error>(())
//! ```

pub mod attack;
pub mod gap;
pub mod metrics;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tokenizers::Tokenizer;

use crate::detect::{Detector, SpanOptions, TokenScore};
use crate::error::{Error, Result};
use crate::gumbel::GumbelDetector;
use crate::synthid::SynthIdDetector;
use attack::Case;

/// The significance levels (false-positive rates) the TPR is reported at.
pub const FPRS: [f64; 2] = [1e-3, 1e-6];

/// One attack and its parameter. Written and parsed as `name` or `name:param`
/// (`sub-tokens:0.3`, `truncate:50`, `upper`); see [`Attack::NAMES`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum Attack {
    /// No attack: the generated ids as they are.
    Clean,
    /// No edit, but through text: the ids decoded and re-tokenized (the baseline of the
    /// text-level attacks).
    Retokenize,
    /// Token substitution at a rate ([`attack::substitute_tokens`]).
    SubstituteTokens(f64),
    /// Token deletion at a rate ([`attack::delete_tokens`]).
    DeleteTokens(f64),
    /// Token insertion at a rate ([`attack::insert_tokens`]).
    InsertTokens(f64),
    /// Word substitution at a rate, donors from the plain texts ([`attack::substitute_words`]).
    SubstituteWords(f64),
    /// A change of letter case ([`attack::change_case`]).
    Case(Case),
    /// Homoglyphs at a rate of the eligible letters ([`attack::homoglyphs`]).
    Homoglyphs(f64),
    /// Invisible characters at a rate of the characters ([`attack::insert_invisible`]).
    Invisible(f64),
    /// The first n tokens ([`attack::truncate`]).
    Truncate(usize),
    /// A watermarked fraction pasted into a plain text ([`attack::copy_paste`]).
    CopyPaste(f64),
    /// A rewrite by a language model. Not a pure function: the caller runs the model and
    /// hands the texts to [`Evaluator::rows_for`]; [`Attack::apply`] refuses it.
    Paraphrase,
}

/// What an attack edits, and so how its output is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Level {
    /// Token ids, scored as they are.
    Tokens,
    /// Text, re-tokenized (with and without normalization) before scoring.
    Text,
}

/// An attacked text: ids or text, by the attack's [`Level`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attacked {
    /// Token ids.
    Tokens(Vec<u32>),
    /// Text.
    Text(String),
}

impl Attack {
    /// The attack names [`Attack::from_str`] accepts, with their parameter.
    pub const NAMES: &'static str = "clean, retokenize, sub-tokens:RATE, del-tokens:RATE, \
        ins-tokens:RATE, sub-words:RATE, upper, lower, title, homoglyphs:RATE, invisible:RATE, \
        truncate:TOKENS, copy-paste:FRACTION, paraphrase";

    /// The standard set of `greenmark eval`: every attack of the issue at rates that span it.
    pub fn standard() -> Vec<Attack> {
        use Attack::*;
        vec![
            Clean,
            Retokenize,
            Truncate(25),
            Truncate(50),
            SubstituteTokens(0.1),
            SubstituteTokens(0.3),
            SubstituteTokens(0.5),
            DeleteTokens(0.1),
            DeleteTokens(0.3),
            DeleteTokens(0.5),
            InsertTokens(0.1),
            InsertTokens(0.3),
            InsertTokens(0.5),
            SubstituteWords(0.1),
            SubstituteWords(0.3),
            Case(attack::Case::Upper),
            Case(attack::Case::Lower),
            Case(attack::Case::Title),
            Homoglyphs(0.1),
            Homoglyphs(0.5),
            Invisible(0.1),
            CopyPaste(0.03),
            CopyPaste(0.1),
            CopyPaste(0.25),
            Paraphrase,
        ]
    }

    /// Token-level or text-level.
    pub fn level(&self) -> Level {
        match self {
            Attack::Clean
            | Attack::SubstituteTokens(_)
            | Attack::DeleteTokens(_)
            | Attack::InsertTokens(_)
            | Attack::Truncate(_)
            | Attack::CopyPaste(_) => Level::Tokens,
            _ => Level::Text,
        }
    }

    /// Applies the attack to `sample`, drawing from `rng`. `host` is the human text of
    /// copy-paste; `env` has the vocabulary size and the donor words.
    pub fn apply(
        &self,
        sample: &Sample,
        host: &Sample,
        env: &AttackEnv,
        rng: &mut ChaCha8Rng,
    ) -> Result<Attacked> {
        use Attacked::{Text, Tokens};
        let ids = &sample.ids;
        Ok(match *self {
            Attack::Clean => Tokens(ids.clone()),
            Attack::Retokenize => Text(sample.text.clone()),
            Attack::SubstituteTokens(r) => {
                Tokens(attack::substitute_tokens(ids, r, env.vocab_size, rng)?)
            }
            Attack::DeleteTokens(r) => Tokens(attack::delete_tokens(ids, r, rng)?),
            Attack::InsertTokens(r) => Tokens(attack::insert_tokens(ids, r, env.vocab_size, rng)?),
            Attack::SubstituteWords(r) => {
                Text(attack::substitute_words(&sample.text, r, &env.donors, rng)?)
            }
            Attack::Case(case) => Text(attack::change_case(&sample.text, case)),
            Attack::Homoglyphs(r) => Text(attack::homoglyphs(&sample.text, r, rng)?),
            Attack::Invisible(r) => Text(attack::insert_invisible(&sample.text, r, rng)?),
            Attack::Truncate(n) => Tokens(attack::truncate(ids, n)),
            Attack::CopyPaste(f) => Tokens(attack::copy_paste(ids, &host.ids, f, rng)?),
            Attack::Paraphrase => {
                return Err(Error::Unsupported(
                    "paraphrase needs a language model: generate the rewrites and score them \
                     with Evaluator::rows_for"
                        .into(),
                ))
            }
        })
    }
}

impl fmt::Display for Attack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Attack::Clean => f.write_str("clean"),
            Attack::Retokenize => f.write_str("retokenize"),
            Attack::SubstituteTokens(r) => write!(f, "sub-tokens:{r}"),
            Attack::DeleteTokens(r) => write!(f, "del-tokens:{r}"),
            Attack::InsertTokens(r) => write!(f, "ins-tokens:{r}"),
            Attack::SubstituteWords(r) => write!(f, "sub-words:{r}"),
            Attack::Case(Case::Upper) => f.write_str("upper"),
            Attack::Case(Case::Lower) => f.write_str("lower"),
            Attack::Case(Case::Title) => f.write_str("title"),
            Attack::Homoglyphs(r) => write!(f, "homoglyphs:{r}"),
            Attack::Invisible(r) => write!(f, "invisible:{r}"),
            Attack::Truncate(n) => write!(f, "truncate:{n}"),
            Attack::CopyPaste(r) => write!(f, "copy-paste:{r}"),
            Attack::Paraphrase => f.write_str("paraphrase"),
        }
    }
}

impl FromStr for Attack {
    type Err = Error;

    /// Parses `name` or `name:param` (see [`Attack::NAMES`]); rates must be in `[0, 1]`.
    ///
    /// ```
    /// use greenmark::eval::Attack;
    /// let a: Attack = "sub-tokens:0.3".parse()?;
    /// assert_eq!(a, Attack::SubstituteTokens(0.3));
    /// assert_eq!(a.to_string(), "sub-tokens:0.3");
    /// assert!("sub-tokens:1.5".parse::<Attack>().is_err());
    /// assert!("rot13".parse::<Attack>().is_err());
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    fn from_str(text: &str) -> Result<Attack> {
        let bad = |reason: String| Error::InvalidOption {
            option: "attack",
            reason,
        };
        let (name, param) = match text.trim().split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (text.trim(), None),
        };
        let rate = || -> Result<f64> {
            let p = param.ok_or_else(|| bad(format!("{name} needs a rate, e.g. {name}:0.3")))?;
            match p.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(bad(format!(
                    "{name}: the rate must be a number between 0 and 1, got {p:?}"
                ))),
            }
        };
        let none = |a: Attack| -> Result<Attack> {
            match param {
                None => Ok(a),
                Some(p) => Err(bad(format!("{name} takes no parameter, got {p:?}"))),
            }
        };
        match name {
            "clean" => none(Attack::Clean),
            "retokenize" => none(Attack::Retokenize),
            "upper" => none(Attack::Case(Case::Upper)),
            "lower" => none(Attack::Case(Case::Lower)),
            "title" => none(Attack::Case(Case::Title)),
            "paraphrase" => none(Attack::Paraphrase),
            "sub-tokens" => Ok(Attack::SubstituteTokens(rate()?)),
            "del-tokens" => Ok(Attack::DeleteTokens(rate()?)),
            "ins-tokens" => Ok(Attack::InsertTokens(rate()?)),
            "sub-words" => Ok(Attack::SubstituteWords(rate()?)),
            "homoglyphs" => Ok(Attack::Homoglyphs(rate()?)),
            "invisible" => Ok(Attack::Invisible(rate()?)),
            "copy-paste" => Ok(Attack::CopyPaste(rate()?)),
            "truncate" => match param.map(str::parse::<usize>) {
                Some(Ok(n)) if n > 0 => Ok(Attack::Truncate(n)),
                _ => Err(bad(format!(
                    "truncate needs a positive number of tokens, e.g. truncate:50, got {text:?}"
                ))),
            },
            _ => Err(bad(format!(
                "unknown attack {name:?}: expected one of {}",
                Attack::NAMES
            ))),
        }
    }
}

/// What the attacks need besides the text: the vocabulary (token attacks) and the donor
/// words (word substitution).
#[derive(Debug, Clone)]
pub struct AttackEnv {
    /// Token ids are drawn from `0..vocab_size`.
    pub vocab_size: u32,
    /// The substitutes of word substitution.
    pub donors: Vec<String>,
}

/// The random generator of text `index` under `seed`: one ChaCha8 stream per text, so a
/// text's edit does not depend on the others.
pub fn text_rng(seed: u64, index: usize) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index as u64);
    rng
}

/// One text of an evaluation: its token ids and their decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The generated token ids (without the prompt).
    pub ids: Vec<u32>,
    /// The ids decoded.
    pub text: String,
}

impl Sample {
    /// A sample from ids, decoding them with `tokenizer` (special tokens skipped).
    pub fn from_ids(tokenizer: &Tokenizer, ids: Vec<u32>) -> Result<Sample> {
        let text = tokenizer
            .decode(&ids, true)
            .map_err(|e| Error::Tokenizer(format!("could not decode the ids: {e}")))?;
        Ok(Sample { ids, text })
    }
}

/// The detector of the watermark under test.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Scorer {
    /// A green-list (KGW) watermark, scored over the whole text.
    Kgw(Detector),
    /// A green-list watermark scored by the span search ([`Detector::find_span`]): the best
    /// window's exact p-value times the windows tried (a WinMax-style detector, Kirchenbauer et
    /// al. 2024, with a Bonferroni correction instead of a simulated threshold). It gives up a
    /// little power on wholly watermarked text for much more on a watermarked paste in human
    /// text.
    KgwSpan(Detector, SpanOptions),
    /// A Gumbel-max (vLLM) watermark; decisions use its exact-or-conservative p-value.
    Gumbel(GumbelDetector),
    /// SynthID Text (transformers' tournament watermark), scored by the mean or the weighted
    /// mean of its g-values with the exact null over keys ([`crate::synthid`]).
    SynthId(SynthIdDetector, SynthIdStatistic),
}

/// Which of SynthID's two classifier-free scores [`Scorer::SynthId`] decides with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SynthIdStatistic {
    /// synthid-text's `mean_score`: every depth's g-values count alike.
    Mean,
    /// synthid-text's `weighted_mean_score` (early depths weigh more); the one
    /// [`crate::synthid::SynthIdDetection::is_watermarked`] uses.
    Weighted,
}

/// The score of one text.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// Tokens in the text.
    pub n_tokens: usize,
    /// Tokens that counted.
    pub n_scored: u64,
    /// Base-10 log of the p-value (exact, or conservative for an approximate Gumbel variant).
    pub log10_p: f64,
}

impl Scorer {
    /// The scheme's versioned id.
    pub fn scheme(&self) -> &'static str {
        match self {
            Scorer::Kgw(d) | Scorer::KgwSpan(d, _) => d.config().scheme().id(),
            Scorer::Gumbel(d) => d.scheme(),
            Scorer::SynthId(..) => crate::synthid::SCHEME_ID,
        }
    }

    /// A short name of how texts are scored: `whole text`, `span search`, `mean score`, ...
    pub fn method(&self) -> &'static str {
        match self {
            Scorer::Kgw(_) | Scorer::Gumbel(_) => "whole text",
            Scorer::KgwSpan(..) => "span search",
            Scorer::SynthId(_, SynthIdStatistic::Mean) => "mean score",
            Scorer::SynthId(_, SynthIdStatistic::Weighted) => "weighted mean score",
        }
    }

    /// Scores `ids` (no prompt: the scorer holds only the text).
    pub fn score(&self, ids: &[u32]) -> Result<Score> {
        Ok(match self {
            Scorer::Kgw(d) => {
                let r = d.detect(ids, &[])?;
                Score {
                    n_tokens: ids.len(),
                    n_scored: r.n_scored,
                    log10_p: r.log10_p_value,
                }
            }
            Scorer::KgwSpan(d, options) => {
                let r = d.find_span(ids, &[], *options)?;
                Score {
                    n_tokens: ids.len(),
                    n_scored: r.span.n_scored,
                    log10_p: r.log10_p_value,
                }
            }
            Scorer::Gumbel(d) => {
                let r = d.detect(ids)?;
                Score {
                    n_tokens: ids.len(),
                    n_scored: r.n_scored,
                    log10_p: crate::stats::ln_to_log10(r.ln_p_value_bound),
                }
            }
            Scorer::SynthId(d, which) => {
                let r = d.detect(ids)?;
                let score = match which {
                    SynthIdStatistic::Mean => &r.mean,
                    SynthIdStatistic::Weighted => &r.weighted,
                };
                Score {
                    n_tokens: ids.len(),
                    n_scored: r.n_scored,
                    log10_p: score.log10_p_value,
                }
            }
        })
    }

    /// The natural-log p-value of every prefix of `ids`: `out[i]` is that of `ids[..=i]`, the
    /// same number [`Scorer::score`] gives the prefix (the scored tuples of a prefix are the
    /// first ones of the whole text). Green-list and Gumbel scores are updated token by token;
    /// the span search and SynthID's null are recomputed for each prefix.
    pub fn prefix_ln_p(&self, ids: &[u32]) -> Result<Vec<f64>> {
        let mut out = Vec::with_capacity(ids.len());
        match self {
            Scorer::Kgw(d) => {
                let (_, scores) = d.annotate(ids, &[])?;
                let (mut n, mut g) = (0u64, 0u64);
                for (i, s) in scores.iter().enumerate() {
                    n += u64::from(s.is_scored());
                    g += u64::from(*s == TokenScore::Green);
                    out.push(d.summarize(i + 1, n, g).ln_p_value);
                }
            }
            Scorer::Gumbel(d) => {
                let (_, scores) = d.annotate(ids)?;
                let (mut n, mut sum) = (0u64, 0.0f64);
                for (i, s) in scores.iter().enumerate() {
                    if let Some(s) = s {
                        n += 1;
                        sum += s;
                    }
                    out.push(d.summarize(i + 1, n, sum).ln_p_value_bound);
                }
            }
            Scorer::KgwSpan(..) | Scorer::SynthId(..) => {
                for end in 1..=ids.len() {
                    out.push(self.score(&ids[..end])?.log10_p / std::f64::consts::LOG10_E);
                }
            }
        }
        Ok(out)
    }

    /// The first prefix length of `ids` whose p-value is below `threshold`
    /// ([`metrics::first_significant`] of [`Scorer::prefix_ln_p`]), without scoring the
    /// prefixes after it.
    pub fn first_significant(&self, ids: &[u32], threshold: f64) -> Result<Option<usize>> {
        match self {
            Scorer::Kgw(_) | Scorer::Gumbel(_) => Ok(metrics::first_significant(
                &self.prefix_ln_p(ids)?,
                threshold,
            )),
            Scorer::KgwSpan(..) | Scorer::SynthId(..) => {
                let cut = threshold.log10();
                for end in 1..=ids.len() {
                    if self.score(&ids[..end])?.log10_p < cut {
                        return Ok(Some(end));
                    }
                }
                Ok(None)
            }
        }
    }
}

/// Options of an [`Evaluator`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct EvalOptions {
    /// Seed of the attacks' random edits (text `i` draws from [`text_rng`]`(seed, i)`).
    pub seed: u64,
    /// The p-value a prefix must beat to count as detected, for the watermark size.
    pub size_threshold: f64,
    /// Most points kept of each ROC curve.
    pub roc_points: usize,
}

impl EvalOptions {
    /// The defaults with the attacks' seed set.
    pub fn seeded(seed: u64) -> EvalOptions {
        EvalOptions {
            seed,
            ..EvalOptions::default()
        }
    }
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            seed: 0,
            size_threshold: 1e-3,
            roc_points: 100,
        }
    }
}

/// How attacked texts are turned into ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum Reading {
    /// The ids as the attack left them.
    Ids,
    /// The text re-tokenized as it is.
    Text,
    /// The text normalized ([`crate::text::normalize`]) and then re-tokenized, as greenmark's
    /// text detector does.
    NormalizedText,
}

impl Reading {
    /// A short label: `ids`, `text`, `text+norm`.
    pub fn label(self) -> &'static str {
        match self {
            Reading::Ids => "ids",
            Reading::Text => "text",
            Reading::NormalizedText => "text+norm",
        }
    }
}

/// The plain texts' empirical false-positive rates, for one way of reading them.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct PlainRow {
    /// How the plain texts were read.
    pub reading: Reading,
    /// Plain texts.
    pub n_texts: usize,
    /// Fraction with p < 1e-3.
    pub fpr_at_1e3: f64,
    /// Fraction with p < 1e-6.
    pub fpr_at_1e6: f64,
    /// The smallest p-value among them (base-10 log).
    pub min_log10_p: f64,
}

/// The result of one attack, read one way.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct AttackRow {
    /// The attack ([`Attack`]'s written form, or the caller's label).
    pub attack: String,
    /// How the attacked texts (and the plain ones they are compared with) were read.
    pub reading: Reading,
    /// Watermarked texts attacked.
    pub n_texts: usize,
    /// Median tokens of the attacked texts (after re-tokenizing).
    pub median_tokens: f64,
    /// Median tokens scored.
    pub median_scored: f64,
    /// Fraction of attacked texts with p < 1e-3 (the TPR at FPR 1e-3).
    pub tpr_at_1e3: f64,
    /// Fraction with p < 1e-6.
    pub tpr_at_1e6: f64,
    /// ROC AUC against the plain texts read the same way ([`metrics::roc_auc`]).
    pub auc: Option<f64>,
    /// Median over the attacked texts of the first prefix length with p below the size
    /// threshold ([`metrics::first_significant`]), a text never detected counting as infinite;
    /// `None` when more than half are never detected (the size is infinite).
    pub watermark_size: Option<f64>,
    /// Fraction of attacked texts with no significant prefix at all.
    pub never_detected: f64,
    /// Median base-10 log p-value.
    pub median_log10_p: f64,
    /// The ROC curve, `(fpr, tpr)` points, thinned.
    pub roc: Vec<(f64, f64)>,
}

/// Applies attacks to watermarked texts and scores them against plain ones.
#[derive(Debug)]
pub struct Evaluator<'a> {
    scorer: &'a Scorer,
    tokenizer: &'a Tokenizer,
    options: EvalOptions,
    env: AttackEnv,
    /// `-log10 p` of the plain texts, per reading (Ids, Text, NormalizedText).
    plain_scores: [Vec<f64>; 3],
    plain_rows: Vec<PlainRow>,
}

fn reading_index(reading: Reading) -> usize {
    match reading {
        Reading::Ids => 0,
        Reading::Text => 1,
        Reading::NormalizedText => 2,
    }
}

impl<'a> Evaluator<'a> {
    /// Scores the plain texts (each way of reading them) and collects the donor words of word
    /// substitution from them. At least one plain text is needed.
    pub fn new(
        scorer: &'a Scorer,
        tokenizer: &'a Tokenizer,
        plain: &[Sample],
        options: EvalOptions,
    ) -> Result<Evaluator<'a>> {
        if plain.is_empty() {
            return Err(Error::InvalidOption {
                option: "plain texts",
                reason: "an evaluation needs at least one plain (unwatermarked) text".into(),
            });
        }
        crate::stats::check_threshold(options.size_threshold)?;
        let vocab_size = match scorer {
            Scorer::Kgw(d) | Scorer::KgwSpan(d, _) => d.config().vocab_size(),
            Scorer::Gumbel(_) | Scorer::SynthId(..) => tokenizer.get_vocab_size(true) as u32,
        };
        let mut donors: Vec<String> = plain
            .iter()
            .flat_map(|s| {
                attack::word_spans(&s.text)
                    .into_iter()
                    .map(|(a, b)| s.text[a..b].to_string())
            })
            .collect();
        donors.sort_unstable();
        donors.dedup();
        let mut evaluator = Evaluator {
            scorer,
            tokenizer,
            options,
            env: AttackEnv { vocab_size, donors },
            plain_scores: [Vec::new(), Vec::new(), Vec::new()],
            plain_rows: Vec::new(),
        };
        for reading in [Reading::Ids, Reading::Text, Reading::NormalizedText] {
            let mut log10_p = Vec::with_capacity(plain.len());
            for s in plain {
                let ids = match reading {
                    Reading::Ids => s.ids.clone(),
                    _ => evaluator.encode(&s.text, reading)?,
                };
                log10_p.push(scorer.score(&ids)?.log10_p);
            }
            evaluator.plain_rows.push(PlainRow {
                reading,
                n_texts: plain.len(),
                fpr_at_1e3: metrics::rate_below(&log10_p, FPRS[0]),
                fpr_at_1e6: metrics::rate_below(&log10_p, FPRS[1]),
                min_log10_p: log10_p.iter().copied().fold(0.0, f64::min),
            });
            evaluator.plain_scores[reading_index(reading)] = log10_p.iter().map(|l| -l).collect();
        }
        Ok(evaluator)
    }

    /// The plain texts' empirical false-positive rates, one row per reading.
    pub fn plain_rows(&self) -> &[PlainRow] {
        &self.plain_rows
    }

    /// What the attacks draw from (vocabulary size, donor words).
    pub fn env(&self) -> &AttackEnv {
        &self.env
    }

    /// Token ids of `text` read as `reading` (`Text` or `NormalizedText`).
    pub fn encode(&self, text: &str, reading: Reading) -> Result<Vec<u32>> {
        let normalized;
        let text = if reading == Reading::NormalizedText {
            normalized = crate::text::normalize(text).text;
            normalized.as_str()
        } else {
            text
        };
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| Error::Tokenizer(format!("could not tokenize the text: {e}")))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Applies `attack` to each watermarked text (copy-paste hosts: plain text `i mod n`) and
    /// scores the results: one row for token-level attacks, two (text, normalized text) for
    /// text-level ones.
    pub fn run(
        &self,
        attack: &Attack,
        watermarked: &[Sample],
        plain: &[Sample],
    ) -> Result<Vec<AttackRow>> {
        if plain.is_empty() {
            return Err(Error::InvalidOption {
                option: "plain texts",
                reason: "copy-paste needs plain texts to paste into".into(),
            });
        }
        let attacked = watermarked
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut rng = text_rng(self.options.seed, i);
                attack.apply(s, &plain[i % plain.len()], &self.env, &mut rng)
            })
            .collect::<Result<Vec<_>>>()?;
        self.rows_for(&attack.to_string(), &attacked)
    }

    /// [`Evaluator::run`] for each attack in turn, the rows concatenated. [`Attack::Paraphrase`]
    /// is refused: it needs a model (the CLI's `greenmark eval` runs it).
    pub fn run_all(
        &self,
        attacks: &[Attack],
        watermarked: &[Sample],
        plain: &[Sample],
    ) -> Result<Vec<AttackRow>> {
        let mut rows = Vec::new();
        for attack in attacks {
            rows.append(&mut self.run(attack, watermarked, plain)?);
        }
        Ok(rows)
    }

    /// Scores texts attacked by the caller (e.g. paraphrased by a model) under `label`.
    pub fn rows_for(&self, label: &str, attacked: &[Attacked]) -> Result<Vec<AttackRow>> {
        if attacked.is_empty() {
            return Err(Error::InvalidOption {
                option: "watermarked texts",
                reason: "an evaluation needs at least one watermarked text".into(),
            });
        }
        let readings: &[Reading] = match attacked[0] {
            Attacked::Tokens(_) => &[Reading::Ids],
            Attacked::Text(_) => &[Reading::Text, Reading::NormalizedText],
        };
        readings
            .iter()
            .map(|&reading| {
                let ids = attacked
                    .iter()
                    .map(|a| match (a, reading) {
                        (Attacked::Tokens(ids), Reading::Ids) => Ok(ids.clone()),
                        (Attacked::Text(t), Reading::Text | Reading::NormalizedText) => {
                            self.encode(t, reading)
                        }
                        _ => Err(Error::InvalidOption {
                            option: "attacked texts",
                            reason: "all attacked texts of one row must be ids, or all text".into(),
                        }),
                    })
                    .collect::<Result<Vec<_>>>()?;
                self.row(label, reading, &ids)
            })
            .collect()
    }

    fn row(&self, label: &str, reading: Reading, texts: &[Vec<u32>]) -> Result<AttackRow> {
        let mut log10_p = Vec::with_capacity(texts.len());
        let mut sizes = Vec::with_capacity(texts.len());
        let mut tokens = Vec::with_capacity(texts.len());
        let mut scored = Vec::with_capacity(texts.len());
        for ids in texts {
            let s = self.scorer.score(ids)?;
            log10_p.push(s.log10_p);
            tokens.push(s.n_tokens as f64);
            scored.push(s.n_scored as f64);
            let size = self
                .scorer
                .first_significant(ids, self.options.size_threshold)?;
            sizes.push(size.map_or(f64::INFINITY, |n| n as f64));
        }
        let positive: Vec<f64> = log10_p.iter().map(|l| -l).collect();
        let negative = &self.plain_scores[reading_index(reading)];
        let roc = metrics::roc_curve(&positive, negative);
        let size = metrics::median(&sizes).filter(|s| s.is_finite());
        Ok(AttackRow {
            attack: label.to_string(),
            reading,
            n_texts: texts.len(),
            median_tokens: metrics::median(&tokens).unwrap_or(0.0),
            median_scored: metrics::median(&scored).unwrap_or(0.0),
            tpr_at_1e3: metrics::rate_below(&log10_p, FPRS[0]),
            tpr_at_1e6: metrics::rate_below(&log10_p, FPRS[1]),
            auc: metrics::roc_auc(&positive, negative),
            watermark_size: size,
            never_detected: sizes.iter().filter(|s| s.is_infinite()).count() as f64
                / texts.len() as f64,
            median_log10_p: metrics::median(&log10_p).unwrap_or(0.0),
            roc: metrics::thin(&roc, self.options.roc_points),
        })
    }
}
