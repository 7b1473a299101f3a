//! Pooling for scale-out: a corpus sifted on many machines, deduplicated and cut at the budget
//! without ever holding it in corpus order on one machine, with exactly the single-machine
//! result.
//!
//! **The rule.** The tape scores the texts in *corpus order*: by doc id, then by position in
//! the text. Each distinct tuple (fingerprint) counts once, at its first occurrence; with a
//! budget of `M` tuples, the first `M` distinct tuples in that order are scored, every other
//! occurrence of them is a repeat, and every occurrence of any other tuple is over budget. A
//! tuple's score depends only on its fingerprint, so all the tape needs from a corpus is, per
//! distinct tuple, its fingerprint, its score, its first [`Place`] and its number of
//! occurrences: a [`Pool`].
//!
//! **Merging.** [`Pool::merge`] is the union of two pools (earliest place, summed counts), so
//! it is commutative and associative: pools of any split of the corpus, merged in any order,
//! give the pool of the whole corpus, and [`RadioactivityTest::record_pool`] records it as the
//! direct tape would (every count, the p-value, the curve).
//!
//! **Budget.** [`Pool::fold_budget`] keeps the `M` distinct tuples with the earliest first
//! places and folds every occurrence of the others into [`Pool::n_over_budget`]: each of them
//! has `M` distinct tuples before it, so it is over budget in the whole corpus too. That
//! holds only once the pool has *every* occurrence of its fingerprints: a folded tuple seen
//! earlier in another pool could be scored after all. Scale-out therefore partitions the
//! tuples by fingerprint, merges all pools of one part, folds the part (at most `M` tuples
//! each, whatever the corpus size), and merges the folded parts, which share no fingerprint.
//! [`Pool::merge`] refuses a folded pool whose kept tuples meet the other's.

use std::hash::BuildHasherDefault;

use super::sift::{add_left_out, Sifted};
use super::{Offer, RadioactivityTest};
use crate::error::{Error, Result};
use crate::tuple::PassThrough;

/// Where an occurrence lies in the corpus: text `doc` (texts are in doc-id order), and
/// `position`, its index among the text's sifted tuples. Places compare in corpus order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Place {
    /// The text's doc id.
    pub doc: u64,
    /// The tuple's index among the text's eligible tuples.
    pub position: u64,
}

/// One distinct tuple of a [`Pool`].
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct PooledTuple {
    /// The tuple's 64-bit fingerprint (see [`Sifted::fingerprints`]).
    pub fingerprint: u64,
    /// Its score: 1 or 0 (KGW), `-ln(1 - u)` (Gumbel).
    pub score: f64,
    /// Its first occurrence.
    pub first: Place,
    /// Its occurrences (at least 1).
    pub count: u64,
}

impl PooledTuple {
    /// A tuple with its first occurrence and its number of occurrences.
    pub fn new(fingerprint: u64, score: f64, first: Place, count: u64) -> PooledTuple {
        PooledTuple {
            fingerprint,
            score,
            first,
            count,
        }
    }
}

type Index = hashbrown::HashMap<u64, usize, BuildHasherDefault<PassThrough>>;

/// One key's tuples of part of a corpus, each distinct fingerprint once with its first
/// occurrence and its number of occurrences, and the occurrences left out (see the module
/// docs of `pool`: the rule, merging, the budget).
///
/// Memory: 40 bytes per distinct tuple, plus its index entry (16 bytes and the hash table's
/// slack).
///
/// ```
/// use greenmark::radioactivity::{Doc, Pool, RadioactivityTest, TestOptions};
/// use greenmark::{Key, WatermarkConfig};
/// let config = WatermarkConfig::new(50)?;
/// let options = TestOptions::default().max_tuples(30);
/// let mut direct = RadioactivityTest::new(&[Key::from_bytes([3; 32])], config, options)?;
/// let mut pooled = direct.clone();
/// let texts: Vec<Vec<u32>> = (0..40u32).map(|t| (0..30).map(|i| (i * i + t) % 50).collect()).collect();
/// for t in &texts {
///     direct.score_text(t, &[])?;
/// }
/// // Two "machines" pool half the corpus each (doc ids keep the corpus order) ...
/// let docs: Vec<Doc> = texts.iter().enumerate().map(|(i, t)| Doc::text(i as u64, t, &[])).collect();
/// let mut late = pooled.pool(&docs[20..])?.remove(0);
/// let early = pooled.pool(&docs[..20])?.remove(0);
/// // ... merged in any order and cut at the budget, they give the direct tape.
/// late.merge(early)?;
/// late.fold_budget(30)?;
/// assert_eq!(late.len(), 30);
/// pooled.record_pool(0, &late)?;
/// assert_eq!(direct.finish().keys, pooled.finish().keys);
/// # Ok::<(), greenmark::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct Pool {
    tuples: Vec<PooledTuple>,
    index: Index,
    n_excluded: u64,
    n_filtered: u64,
    n_copied: u64,
    n_over_budget: u64,
    /// The budget the pool was folded to, if it was.
    folded: Option<u64>,
}

impl Pool {
    /// An empty pool.
    pub fn new() -> Pool {
        Pool::default()
    }

    /// Adds one text's sifted tuples (one key's [`Sifted`]), the text's doc id `doc`; the
    /// tuples' positions are their indices in `sifted`. A refused tuple (see [`Pool::add`])
    /// stops the call; the tuples before it stay added.
    pub fn add_text(&mut self, doc: u64, sifted: &Sifted) -> Result<()> {
        if sifted.fingerprints.len() != sifted.scores.len() {
            return Err(Error::BatchShape(format!(
                "{} fingerprints and {} scores: give one score per fingerprint",
                sifted.fingerprints.len(),
                sifted.scores.len()
            )));
        }
        self.add_left_out(sifted.n_excluded, sifted.n_filtered, sifted.n_copied);
        self.index.reserve(sifted.fingerprints.len());
        let tuples = sifted.fingerprints.iter().zip(&sifted.scores);
        for (position, (&fingerprint, &score)) in tuples.enumerate() {
            let first = Place {
                doc,
                position: position as u64,
            };
            self.add(PooledTuple::new(fingerprint, score, first, 1))?;
        }
        Ok(())
    }

    /// Adds `tuple.count` occurrences of a tuple, the earliest at `tuple.first`. Refuses a
    /// count of 0, and a fingerprint already pooled with another score (rows of another
    /// test).
    pub fn add(&mut self, tuple: PooledTuple) -> Result<()> {
        if tuple.count == 0 {
            return Err(Error::InconsistentTuples(format!(
                "tuple {:#018x} has count 0: each pooled tuple occurs at least once",
                tuple.fingerprint
            )));
        }
        if let Some(&i) = self.index.get(&tuple.fingerprint) {
            check_same(&self.tuples[i], &tuple)?;
        }
        self.insert(tuple);
        Ok(())
    }

    /// Adds a checked tuple (see [`check_same`]).
    fn insert(&mut self, tuple: PooledTuple) {
        let next = self.tuples.len();
        let i = *self.index.entry(tuple.fingerprint).or_insert(next);
        if i == next {
            self.tuples.push(tuple);
        } else {
            let have = &mut self.tuples[i];
            have.count += tuple.count;
            have.first = have.first.min(tuple.first);
        }
    }

    /// Adds occurrences the sieve left out: windows of a prompt, windows not in the filter,
    /// in-context copies (open mode).
    pub fn add_left_out(&mut self, n_excluded: u64, n_filtered: u64, n_copied: u64) {
        self.n_excluded += n_excluded;
        self.n_filtered += n_filtered;
        self.n_copied += n_copied;
    }

    /// Adds occurrences already known to be over budget (the fold of another pool of
    /// other fingerprints, as a scale-out run carries them between machines).
    pub fn add_over_budget(&mut self, n: u64) {
        self.n_over_budget += n;
    }

    /// Adds every tuple and count of `other`: the pool of both parts of the corpus. Refuses
    /// to merge a folded pool with one that shares a kept tuple with it (a folded pool may
    /// only meet pools of other fingerprints: see [`Pool::fold_budget`]).
    pub fn merge(&mut self, other: Pool) -> Result<()> {
        let (big, small) = if self.tuples.len() >= other.tuples.len() {
            (&*self, &other)
        } else {
            (&other, &*self)
        };
        // Check everything first, so that a refused merge leaves `self` as it was.
        let folded = big.folded.or(small.folded);
        for t in &small.tuples {
            let Some(&i) = big.index.get(&t.fingerprint) else {
                continue;
            };
            if let Some(m) = folded {
                return Err(Error::CallOrder(format!(
                    "tuple {:#018x} is in both pools, and one was folded to a budget of {m}: \
                     a folded pool may have dropped occurrences the other's would move, so \
                     merge every pool of a part before folding it",
                    t.fingerprint
                )));
            }
            check_same(&big.tuples[i], t)?;
        }
        let (mut big, small) = if self.tuples.len() >= other.tuples.len() {
            (std::mem::take(self), other)
        } else {
            (other, std::mem::take(self))
        };
        big.index.reserve(small.tuples.len());
        for tuple in small.tuples {
            big.insert(tuple);
        }
        big.add_left_out(small.n_excluded, small.n_filtered, small.n_copied);
        big.n_over_budget += small.n_over_budget;
        big.folded = match (big.folded, small.folded) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        *self = big;
        Ok(())
    }

    /// Cuts the pool at a budget of `max_tuples` distinct tuples: keeps the `max_tuples`
    /// tuples with the earliest first occurrences (all, if there are no more) and adds every
    /// occurrence of the others to [`Pool::n_over_budget`]. Linear time.
    ///
    /// Exact only when the pool holds every occurrence of its fingerprints (the whole
    /// corpus, or one fingerprint part of it, merged); a folded pool may then be merged with
    /// pools of other fingerprints.
    pub fn fold_budget(&mut self, max_tuples: u64) -> Result<()> {
        if max_tuples == 0 {
            return Err(Error::option(
                "max_tuples",
                "max_tuples must be at least 1 (or fold nothing to score everything)",
            ));
        }
        self.folded = Some(self.folded.map_or(max_tuples, |m| m.min(max_tuples)));
        let keep = usize::try_from(max_tuples).unwrap_or(usize::MAX);
        if self.tuples.len() <= keep {
            return Ok(());
        }
        self.tuples.select_nth_unstable_by_key(keep, |t| t.first);
        let dropped: u64 = self.tuples[keep..].iter().map(|t| t.count).sum();
        self.n_over_budget += dropped;
        self.tuples.truncate(keep);
        self.index.clear();
        self.index.shrink_to(keep);
        for (i, t) in self.tuples.iter().enumerate() {
            self.index.insert(t.fingerprint, i);
        }
        Ok(())
    }

    /// The distinct tuples, in no particular order.
    pub fn tuples(&self) -> &[PooledTuple] {
        &self.tuples
    }

    /// The distinct tuples, in corpus order of their first occurrences.
    pub fn sorted(&self) -> Vec<PooledTuple> {
        let mut out = self.tuples.clone();
        out.sort_unstable_by_key(|t| t.first);
        out
    }

    /// Distinct tuples held.
    pub fn len(&self) -> usize {
        self.tuples.len()
    }

    /// True when no tuple is held.
    pub fn is_empty(&self) -> bool {
        self.tuples.is_empty()
    }

    /// Occurrences whose window occurs in a prompt.
    pub fn n_excluded(&self) -> u64 {
        self.n_excluded
    }

    /// Occurrences whose window is not in the filter (when one is set).
    pub fn n_filtered(&self) -> u64 {
        self.n_filtered
    }

    /// Open mode: predictions that copy a tuple of their own input.
    pub fn n_copied(&self) -> u64 {
        self.n_copied
    }

    /// Occurrences folded away by [`Pool::fold_budget`]: over budget.
    pub fn n_over_budget(&self) -> u64 {
        self.n_over_budget
    }

    /// The budget the pool was folded to, if it was.
    pub fn folded(&self) -> Option<u64> {
        self.folded
    }
}

/// One text of a batch to pool ([`RadioactivityTest::pool`]): its doc id (unique in the
/// corpus; the corpus is in doc-id order) and its tuples' source.
#[derive(Debug, Clone, Copy)]
pub struct Doc<'a> {
    id: u64,
    tokens: &'a [u32],
    side: Side<'a>,
}

#[derive(Debug, Clone, Copy)]
enum Side<'a> {
    Prefix(&'a [u32]),
    Predictions(&'a [u32]),
}

impl<'a> Doc<'a> {
    /// Closed mode, as [`RadioactivityTest::score_text`]`(tokens, prefix)`.
    pub fn text(id: u64, tokens: &'a [u32], prefix: &'a [u32]) -> Doc<'a> {
        Doc {
            id,
            tokens,
            side: Side::Prefix(prefix),
        }
    }

    /// Open mode, as [`RadioactivityTest::score_predictions`]`(input, predictions)`.
    pub fn reading(id: u64, input: &'a [u32], predictions: &'a [u32]) -> Doc<'a> {
        Doc {
            id,
            tokens: input,
            side: Side::Predictions(predictions),
        }
    }

    /// The doc id.
    pub fn id(&self) -> u64 {
        self.id
    }
}

impl RadioactivityTest {
    /// Sifts a batch of texts (in parallel with the `rayon` feature) and pools them: one
    /// [`Pool`] per key, in key order. The tape is not touched. Doc ids must be distinct; an
    /// error in a text is reported as [`Error::InBatch`], naming it.
    pub fn pool(&self, docs: &[Doc<'_>]) -> Result<Vec<Pool>> {
        let mut order: Vec<usize> = (0..docs.len()).collect();
        order.sort_unstable_by_key(|&i| (docs[i].id, i));
        if let Some(w) = order.windows(2).find(|w| docs[w[0]].id == docs[w[1]].id) {
            return Err(Error::DuplicateDoc {
                doc: docs[w[0]].id,
                first: w[0],
                second: w[1],
            });
        }
        let sift = |(i, doc): (usize, &Doc<'_>)| {
            match doc.side {
                Side::Prefix(prefix) => self.sift_text(doc.tokens, prefix),
                Side::Predictions(predictions) => self.sift_predictions(doc.tokens, predictions),
            }
            .map_err(|source| Error::InBatch {
                index: i,
                doc: doc.id,
                source: Box::new(source),
            })
        };
        #[cfg(feature = "rayon")]
        let sifted: Vec<Vec<Sifted>> = {
            use rayon::prelude::*;
            docs.par_iter()
                .enumerate()
                .map(sift)
                .collect::<Result<_>>()?
        };
        #[cfg(not(feature = "rayon"))]
        let sifted: Vec<Vec<Sifted>> = docs.iter().enumerate().map(sift).collect::<Result<_>>()?;
        let pool_key = |k: usize| -> Result<Pool> {
            let mut pool = Pool::new();
            for &i in &order {
                pool.add_text(docs[i].id, &sifted[i][k])?;
            }
            Ok(pool)
        };
        #[cfg(feature = "rayon")]
        if self.tapes.len() > 1 {
            use rayon::prelude::*;
            return (0..self.tapes.len())
                .into_par_iter()
                .map(pool_key)
                .collect();
        }
        (0..self.tapes.len()).map(pool_key).collect()
    }

    /// Records key `key`'s pool of the corpus on its tape: the distinct tuples in the order
    /// of their first occurrences, each with its occurrences, then the left-out and folded
    /// counts. The same result as scoring the pooled texts in corpus order (see the module
    /// docs of `pool`); needs dedup on.
    pub fn record_pool(&mut self, key: usize, pool: &Pool) -> Result<()> {
        self.check_sifted(key, &Sifted::default())?;
        if !self.options.dedup {
            return Err(Error::Unsupported(
                "a pool counts distinct tuples, which needs dedup: without it every \
                 occurrence is scored in corpus order, so record them one by one with \
                 record_sifted"
                    .into(),
            ));
        }
        let kgw = self.config().is_some();
        if let Some(t) = pool.tuples.iter().find(|t| !valid_score(kgw, t.score)) {
            return Err(bad_score(
                kgw,
                t.score,
                &format!("tuple {:#018x}", t.fingerprint),
            ));
        }
        self.started = true;
        let options = &self.options;
        let ledger = &mut self.tapes[key].ledger;
        let left_out = Sifted {
            n_excluded: pool.n_excluded,
            n_filtered: pool.n_filtered,
            n_copied: pool.n_copied,
            ..Sifted::default()
        };
        add_left_out(ledger, &left_out);
        ledger.seen.reserve(pool.len());
        for t in pool.sorted() {
            ledger.take_counted(t.fingerprint, t.score, t.count, options);
        }
        ledger.counts.seen += pool.n_over_budget;
        ledger.counts.over_budget += pool.n_over_budget;
        Ok(())
    }
}

/// Checks that two rows of one fingerprint can be pooled: the same score, and counts whose
/// sum fits.
fn check_same(have: &PooledTuple, new: &PooledTuple) -> Result<()> {
    if have.score.to_bits() != new.score.to_bits() {
        return Err(Error::InconsistentTuples(format!(
            "tuple {:#018x} is pooled with scores {} and {}: a tuple's score depends only on \
             its fingerprint, so these rows come from different tests",
            new.fingerprint, have.score, new.score
        )));
    }
    if have.count.checked_add(new.count).is_none() {
        return Err(Error::InconsistentTuples(format!(
            "tuple {:#018x} occurs more than 2^64 - 1 times: the counts are wrong",
            new.fingerprint
        )));
    }
    Ok(())
}

/// Whether `s` is a score of a KGW (0 or 1) or Gumbel (finite, >= 0) test.
pub(super) fn valid_score(kgw: bool, s: f64) -> bool {
    if kgw {
        s == 0.0 || s == 1.0
    } else {
        s.is_finite() && s >= 0.0
    }
}

/// The error for a score that is not one of this test's.
pub(super) fn bad_score(kgw: bool, s: f64, at: &str) -> Error {
    let want = if kgw {
        "0 or 1 (a KGW tuple is green or not)"
    } else {
        "finite and >= 0 (a Gumbel score is -ln(1 - u))"
    };
    Error::InconsistentTuples(format!(
        "score {s} at {at} is not a score of this test: scores must be {want}"
    ))
}

impl super::Ledger {
    /// Takes `n` occurrences of one eligible tuple at once (its first, then `n - 1` more):
    /// the first is scored, a repeat or over budget; the others are repeats of a scored
    /// tuple or over budget too (the budget, once spent, stays spent).
    pub(super) fn take_counted(
        &mut self,
        fingerprint: u64,
        score: f64,
        n: u64,
        options: &super::TestOptions,
    ) {
        self.take(Offer::Eligible { fingerprint, score }, options);
        let c = &mut self.counts;
        c.seen += n - 1;
        if self.seen.contains(&fingerprint) {
            c.repeated += n - 1;
        } else {
            c.over_budget += n - 1;
        }
    }
}
