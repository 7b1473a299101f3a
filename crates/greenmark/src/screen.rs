//! Key screening: how a *fixed* key's detector behaves on human text it never watermarked.
//!
//! The detector's p-value is exact over a **random key**: for any text written without the
//! key, `P(p < t) <= t` when the key is drawn at random. For one fixed key on one genre of
//! text it is not: the same frequent tuples (`("of", "the")` under `lefthash`) occur in
//! almost every text of a genre, their colours are fixed once the key is, and if a few
//! hundred of them happen to be green more often than `gamma`, every text of that genre is
//! pushed toward small p-values. The realized false-positive rate of that key on that genre
//! is then above nominal (the issue that motivated this module measured 7x at 1e-3).
//!
//! Screening scores a candidate key on a reference corpus of human text in several genres,
//! cut into chunks of `chunk_tokens` tokens, each chunk detected exactly as
//! [`Detector::detect`] would (same scheme, window, dedup), and asks per genre whether the
//! chunks' p-values look like valid p-values:
//!
//! * **KS `D+`**: the one-sided Kolmogorov–Smirnov statistic against Uniform(0, 1), which only
//!   grows when p-values are *too small*. Exact binomial p-values are discrete and
//!   super-uniform (`P(p <= t) <= t`), so a two-sided test would flag every key on short
//!   chunks for being conservative; the one-sided tail ([`stats::ks_plus_tail_ln`]) is a
//!   valid, conservative p-value for super-uniform values.
//! * **Tail count**: the number of chunks with `p < tail_threshold` (1e-3), against its
//!   exact null distribution: chunk `i` with `n_i` scored tuples crosses the threshold with
//!   probability `π_i = P(X >= g*(n_i))` over random keys (`g*` the critical value,
//!   [`stats::binomial_critical_value`]; `π_i <= 1e-3`, smaller on short chunks), so the
//!   count is Poisson-binomial and its upper tail is exact
//!   ([`stats::poisson_binomial_tail_ln`]).
//!
//! Both tests treat the chunks of a genre as independent, the hypothesis "this key colours
//! the genre's tuples like a fresh random colouring would". Under random keys the chunks
//! are *not* independent (they share the genre's common tuples), which is exactly the
//! effect screened for; so a screen rejects some random keys as well (measured in
//! `docs/keys.md`), and a key that passes is one whose realized rates on the reference
//! genres are in line with nominal. The verdict corrects for the `2 × genres` tests
//! (Bonferroni): the key fails if any test's p-value is below `level / (2 genres)`.
//! The report also gives the realized false-positive rate at 1e-2, 1e-3 and 1e-6 per genre
//! beside its exact expectation `Σ π_i`.
//!
//! Screening guarantees nothing about genres that are not in the corpus, nor about
//! watermarked text; it is a check that this key is not unlucky on the text you have.
//!
//! # Example
//! ```
//! use greenmark::screen::{ScreenCorpus, ScreenOptions};
//! use greenmark::synthetic::ZipfLm;
//! use greenmark::{Detector, Key, WatermarkConfig};
//! use rand::SeedableRng;
//!
//! let lm = ZipfLm::new(1000, 1.1)?;
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
//! let documents: Vec<Vec<u32>> = (0..4).map(|i| lm.generate_plain(i, 2000, &mut rng)).collect();
//! let mut corpus = ScreenCorpus::new(200)?; // chunks of 200 tokens, built once
//! corpus.add_genre("zipf", &documents)?;
//!
//! let detector = Detector::new(&Key::from_bytes([7; 32]), WatermarkConfig::new(1000)?);
//! let report = corpus.screen(&detector, &ScreenOptions::default())?; // run per key
//! assert_eq!(report.genres[0].n_chunks, 40);
//! println!("passed: {}, KS p = {:.3}", report.passed, report.genres[0].ks.ln_p_value.exp());
//! # Ok::<(), greenmark::Error>(())
//! ```

use std::collections::HashMap;

use crate::detect::{Detection, Detector};
use crate::error::{Error, Result};
use crate::key::KeyId;
use crate::stats;

/// The thresholds at which a report gives the realized false-positive rate.
pub const FPR_THRESHOLDS: [f64; 3] = [1e-2, 1e-3, 1e-6];
/// The default chunk length in tokens.
pub const DEFAULT_CHUNK_TOKENS: usize = 800;
/// The default family-wise level of a screen's verdict.
pub const DEFAULT_LEVEL: f64 = 0.01;
/// The default threshold of the tail-count test.
pub const DEFAULT_TAIL_THRESHOLD: f64 = 1e-3;

/// Options of [`ScreenCorpus::screen`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScreenOptions {
    level: f64,
    tail_threshold: f64,
}

impl Default for ScreenOptions {
    fn default() -> Self {
        ScreenOptions {
            level: DEFAULT_LEVEL,
            tail_threshold: DEFAULT_TAIL_THRESHOLD,
        }
    }
}

impl ScreenOptions {
    /// `level`: the family-wise level of the verdict (a key fails when any of its
    /// `2 × genres` tests has a p-value below `level / (2 × genres)`); `tail_threshold`: the
    /// p-value threshold whose exceedances the tail test counts. Both strictly between 0
    /// and 1.
    ///
    /// ```
    /// use greenmark::screen::ScreenOptions;
    /// assert!(ScreenOptions::new(0.05, 1e-3).is_ok());
    /// assert!(ScreenOptions::new(0.0, 1e-3).is_err());
    /// ```
    pub fn new(level: f64, tail_threshold: f64) -> Result<ScreenOptions> {
        for (option, value) in [("level", level), ("tail_threshold", tail_threshold)] {
            if !(value > 0.0 && value < 1.0) {
                return Err(Error::option(
                    option,
                    format!("must be strictly between 0 and 1, got {value}"),
                ));
            }
        }
        Ok(ScreenOptions {
            level,
            tail_threshold,
        })
    }

    /// The family-wise level of the verdict.
    pub fn level(&self) -> f64 {
        self.level
    }

    /// The threshold of the tail-count test.
    pub fn tail_threshold(&self) -> f64 {
        self.tail_threshold
    }
}

/// One genre's chunks: the documents' whole chunks, concatenated.
#[derive(Debug, Clone)]
struct Genre {
    name: String,
    tokens: Vec<u32>,
    n_documents: usize,
    n_dropped: usize,
}

/// A reference corpus cut into equal chunks, per genre: built once, then screens any number
/// of keys ([`ScreenCorpus::screen`]).
///
/// Each document is cut into consecutive, non-overlapping chunks of `chunk_tokens` tokens;
/// a document's last partial chunk is dropped (all chunks have the same length, so the
/// chunks of a genre are comparable), and counted in [`ScreenCorpus::dropped_tokens`].
#[derive(Debug, Clone)]
pub struct ScreenCorpus {
    chunk_tokens: usize,
    genres: Vec<Genre>,
}

impl ScreenCorpus {
    /// An empty corpus whose documents will be cut into chunks of `chunk_tokens` (>= 2).
    pub fn new(chunk_tokens: usize) -> Result<ScreenCorpus> {
        if chunk_tokens < 2 {
            return Err(Error::option(
                "chunk_tokens",
                format!("a chunk needs at least 2 tokens (e.g. 200 or 800), got {chunk_tokens}"),
            ));
        }
        Ok(ScreenCorpus {
            chunk_tokens,
            genres: Vec::new(),
        })
    }

    /// Adds a genre: its name (unique, not empty) and documents of token ids. Fails if no
    /// document has a whole chunk.
    pub fn add_genre<D: AsRef<[u32]>>(&mut self, name: &str, documents: &[D]) -> Result<()> {
        if name.trim().is_empty() {
            return Err(Error::option("genre", "a genre needs a name"));
        }
        if self.genres.iter().any(|g| g.name == name) {
            return Err(Error::option(
                "genre",
                format!(
                    "genre {name:?} was added twice; give each genre once, with all its documents"
                ),
            ));
        }
        let mut tokens = Vec::new();
        let mut n_dropped = 0;
        for document in documents {
            let document = document.as_ref();
            let whole = document.len() / self.chunk_tokens * self.chunk_tokens;
            tokens.extend_from_slice(&document[..whole]);
            n_dropped += document.len() - whole;
        }
        if tokens.is_empty() {
            let longest = documents.iter().map(|d| d.as_ref().len()).max();
            return Err(Error::option(
                "corpus",
                format!(
                    "genre {name:?} has no document of at least {} tokens ({}): add text or use shorter chunks",
                    self.chunk_tokens,
                    match longest {
                        None => "it has no documents".to_string(),
                        Some(n) => format!("the longest has {n}"),
                    }
                ),
            ));
        }
        self.genres.push(Genre {
            name: name.to_string(),
            tokens,
            n_documents: documents.len(),
            n_dropped,
        });
        Ok(())
    }

    /// The chunk length in tokens.
    pub fn chunk_tokens(&self) -> usize {
        self.chunk_tokens
    }

    /// The genres' names and chunk counts, in the order they were added.
    pub fn genres(&self) -> Vec<(&str, usize)> {
        self.genres
            .iter()
            .map(|g| (g.name.as_str(), g.tokens.len() / self.chunk_tokens))
            .collect()
    }

    /// Tokens left out as the documents' last partial chunks.
    pub fn dropped_tokens(&self) -> usize {
        self.genres.iter().map(|g| g.n_dropped).sum()
    }

    /// Screens the key of `detector` (its scheme, window, gamma and dedup setting as given)
    /// on every chunk; see the module docs. Chunks are detected in parallel (rayon).
    pub fn screen(&self, detector: &Detector, options: &ScreenOptions) -> Result<ScreenReport> {
        if self.genres.is_empty() {
            return Err(Error::option(
                "corpus",
                "the screening corpus has no genre; add at least one with add_genre",
            ));
        }
        let vocab = detector.config().vocab_size();
        for genre in &self.genres {
            if let Some(position) = genre.tokens.iter().position(|&t| t >= vocab) {
                return Err(Error::TokenOutOfRange {
                    position,
                    token: genre.tokens[position],
                    vocab_size: vocab,
                    sequence: "corpus",
                });
            }
        }
        let gamma = detector.config().effective_gamma();
        let n_tests = 2 * self.genres.len();
        let per_test_level = options.level / n_tests as f64;
        let mut null = NullRates::new(gamma);
        let mut genres = Vec::with_capacity(self.genres.len());
        for genre in &self.genres {
            let chunks: Vec<&[u32]> = genre.tokens.chunks_exact(self.chunk_tokens).collect();
            let detections = detector.detect_batch(&chunks)?;
            genres.push(screen_genre(
                genre,
                &detections,
                &mut null,
                options,
                per_test_level,
            ));
        }
        let overall = FPR_THRESHOLDS
            .iter()
            .enumerate()
            .map(|(i, &threshold)| {
                let count = genres.iter().map(|g| g.fpr[i].count).sum();
                let chunks: usize = genres.iter().map(|g| g.n_chunks).sum();
                FprAt {
                    threshold,
                    count,
                    rate: count as f64 / chunks as f64,
                    expected: genres.iter().map(|g| g.fpr[i].expected).sum(),
                }
            })
            .collect();
        Ok(ScreenReport {
            key_id: detector.key_id(),
            scheme: detector.config().scheme().id(),
            gamma,
            dedup: detector.dedups(),
            chunk_tokens: self.chunk_tokens,
            level: options.level,
            n_tests,
            per_test_level,
            passed: genres.iter().all(|g| g.passed),
            genres,
            overall,
        })
    }
}

/// `π(n, t) = P(p < t)` over random keys for a chunk of `n` scored tuples, memoized by `n`.
struct NullRates {
    gamma: f64,
    memo: HashMap<(u64, u64), f64>,
}

impl NullRates {
    fn new(gamma: f64) -> NullRates {
        NullRates {
            gamma,
            memo: HashMap::new(),
        }
    }

    /// `P(p < threshold)`: the tail at the critical value (0 when `n` cannot reach it).
    fn rate(&mut self, n: u64, threshold: f64) -> f64 {
        let gamma = self.gamma;
        *self
            .memo
            .entry((n, threshold.to_bits()))
            .or_insert_with(
                || match stats::binomial_critical_value(n, gamma, threshold.ln()) {
                    Some(g) => stats::binomial_tail_ln(g, n, gamma).exp(),
                    None => 0.0,
                },
            )
    }
}

fn screen_genre(
    genre: &Genre,
    detections: &[Detection],
    null: &mut NullRates,
    options: &ScreenOptions,
    per_test_level: f64,
) -> GenreScreen {
    let m = detections.len();
    let count_below = |t: f64| detections.iter().filter(|d| d.is_significant(t)).count() as u64;
    let fpr = FPR_THRESHOLDS
        .iter()
        .map(|&threshold| {
            let count = count_below(threshold);
            FprAt {
                threshold,
                count,
                rate: count as f64 / m as f64,
                expected: detections
                    .iter()
                    .map(|d| null.rate(d.n_scored, threshold))
                    .sum(),
            }
        })
        .collect();
    let ln_level = per_test_level.ln();

    let p_values: Vec<f64> = detections.iter().map(|d| d.p_value).collect();
    let d_plus = stats::ks_plus_statistic(&p_values);
    let ln_p = stats::ks_plus_tail_ln(d_plus, m as u64);
    let ks = KsTest {
        d_plus,
        ln_p_value: ln_p,
        log10_p_value: stats::ln_to_log10(ln_p),
        passed: ln_p >= ln_level,
    };

    let threshold = options.tail_threshold;
    let probabilities: Vec<f64> = detections
        .iter()
        .map(|d| null.rate(d.n_scored, threshold))
        .collect();
    let count = count_below(threshold);
    let ln_p = stats::poisson_binomial_tail_ln(&probabilities, count);
    let tail = TailTest {
        threshold,
        count,
        expected: probabilities.iter().sum(),
        ln_p_value: ln_p,
        log10_p_value: stats::ln_to_log10(ln_p),
        passed: ln_p >= ln_level,
    };
    GenreScreen {
        genre: genre.name.clone(),
        n_documents: genre.n_documents,
        n_chunks: m,
        mean_scored: detections.iter().map(|d| d.n_scored as f64).sum::<f64>() / m as f64,
        passed: ks.passed && tail.passed,
        fpr,
        ks,
        tail,
        ln_p_values: detections.iter().map(|d| d.ln_p_value).collect(),
    }
}

/// The result of screening one key ([`ScreenCorpus::screen`]).
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ScreenReport {
    /// The screened key's public id.
    pub key_id: KeyId,
    /// The scheme's versioned id.
    pub scheme: &'static str,
    /// The exact null probability of green.
    pub gamma: f64,
    /// Whether repeated tuples were scored once (the detector's setting).
    pub dedup: bool,
    /// Tokens per chunk.
    pub chunk_tokens: usize,
    /// The family-wise level of the verdict.
    pub level: f64,
    /// Tests behind the verdict: two per genre.
    pub n_tests: usize,
    /// `level / n_tests`: the Bonferroni level each test is held to.
    pub per_test_level: f64,
    /// Per genre, in the corpus's order.
    pub genres: Vec<GenreScreen>,
    /// The realized false-positive rates over all chunks, at [`FPR_THRESHOLDS`].
    pub overall: Vec<FprAt>,
    /// Whether every test of every genre passed.
    pub passed: bool,
}

impl ScreenReport {
    /// One line per failed test, saying which genre and test and by how much (empty when
    /// the key passed).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        for g in &self.genres {
            if !g.ks.passed {
                out.push(format!(
                    "{}: KS D+ = {:.4} over {} chunks, p = 10^{:.2} < {:.2e}",
                    g.genre, g.ks.d_plus, g.n_chunks, g.ks.log10_p_value, self.per_test_level
                ));
            }
            if !g.tail.passed {
                out.push(format!(
                    "{}: {} of {} chunks at p < {:e} (expected {:.2}), p = 10^{:.2} < {:.2e}",
                    g.genre,
                    g.tail.count,
                    g.n_chunks,
                    g.tail.threshold,
                    g.tail.expected,
                    g.tail.log10_p_value,
                    self.per_test_level
                ));
            }
        }
        out
    }
}

/// One genre's part of a [`ScreenReport`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct GenreScreen {
    /// The genre's name.
    pub genre: String,
    /// Documents given for it.
    pub n_documents: usize,
    /// Chunks scored.
    pub n_chunks: usize,
    /// Mean scored tuples per chunk (below the chunk length with dedup).
    pub mean_scored: f64,
    /// Realized false-positive rates at [`FPR_THRESHOLDS`].
    pub fpr: Vec<FprAt>,
    /// The one-sided KS test.
    pub ks: KsTest,
    /// The tail-count test.
    pub tail: TailTest,
    /// Whether both tests passed.
    pub passed: bool,
    /// Every chunk's natural-log p-value, in order (not serialized).
    #[cfg_attr(feature = "serde", serde(skip))]
    pub ln_p_values: Vec<f64>,
}

/// The realized false-positive rate at one threshold.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct FprAt {
    /// The p-value threshold `t`.
    pub threshold: f64,
    /// Chunks with `p < t` ([`Detection::is_significant`]).
    pub count: u64,
    /// `count / chunks`.
    pub rate: f64,
    /// The exact expected count over random keys, `Σ P(p_i < t)`: at most `t × chunks`,
    /// less on short chunks, where the discrete test is conservative.
    pub expected: f64,
}

/// The one-sided Kolmogorov–Smirnov test of a genre's p-values.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct KsTest {
    /// `sup_t (F(t) - t)` ([`stats::ks_plus_statistic`]).
    pub d_plus: f64,
    /// `ln P(D+ >= d_plus)` ([`stats::ks_plus_tail_ln`]).
    pub ln_p_value: f64,
    /// Its base-10 log.
    pub log10_p_value: f64,
    /// Whether the p-value is at or above the per-test level.
    pub passed: bool,
}

/// The tail-count test of a genre's p-values.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct TailTest {
    /// The p-value threshold counted.
    pub threshold: f64,
    /// Chunks below it.
    pub count: u64,
    /// The exact expected count over random keys.
    pub expected: f64,
    /// `ln P(S >= count)`, `S` Poisson-binomial ([`stats::poisson_binomial_tail_ln`]).
    pub ln_p_value: f64,
    /// Its base-10 log.
    pub log10_p_value: f64,
    /// Whether the p-value is at or above the per-test level.
    pub passed: bool,
}

#[cfg(test)]
mod tests;
