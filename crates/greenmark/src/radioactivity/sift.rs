//! The tape in two halves, for scale-out: workers *sift* texts (the per-occurrence rules:
//! windows, prompt exclusion, filter, in-context copies, scores) without touching the tape,
//! and the tape *records* the sifted tuples in corpus order (dedup, budget, counts, curve).
//! Sifting every text and recording the results in order gives exactly the result of scoring
//! the texts on the tape directly.

use super::pool::{bad_score, valid_score};
use super::{Ledger, Offer, RadioactivityTest};
use crate::error::{Error, Result};

/// One key's sifted tuples of one text (or of many, concatenated in order): the eligible
/// tuples in order, and how many occurrences the sieve left out.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Sifted {
    /// The eligible tuples' fingerprints (64-bit, what corpus-wide dedup compares), in order.
    pub fingerprints: Vec<u64>,
    /// Their scores: 1 or 0 (green or not) for KGW, `-ln(1 - u)` for Gumbel.
    pub scores: Vec<f64>,
    /// Occurrences whose window occurs in a prompt.
    pub n_excluded: u64,
    /// Occurrences whose window is not in the filter (when one is set).
    pub n_filtered: u64,
    /// Open mode: predictions that copy a tuple of their own input.
    pub n_copied: u64,
}

impl Sifted {
    /// Occurrences offered: positions with a full window.
    pub fn n_seen(&self) -> u64 {
        self.n_excluded + self.n_filtered + self.n_copied + self.fingerprints.len() as u64
    }

    /// Appends `other` (the tuples of a later text).
    pub fn extend(&mut self, other: &Sifted) {
        self.fingerprints.extend_from_slice(&other.fingerprints);
        self.scores.extend_from_slice(&other.scores);
        self.n_excluded += other.n_excluded;
        self.n_filtered += other.n_filtered;
        self.n_copied += other.n_copied;
    }

    fn push(&mut self, offer: Offer) {
        match offer {
            Offer::Excluded => self.n_excluded += 1,
            Offer::Filtered => self.n_filtered += 1,
            Offer::Copied => self.n_copied += 1,
            Offer::Eligible { fingerprint, score } => {
                self.fingerprints.push(fingerprint);
                self.scores.push(score);
            }
        }
    }
}

impl RadioactivityTest {
    /// Closed mode, first half: the tuples [`RadioactivityTest::score_text`] would offer, as
    /// each key's sieve sees them (one [`Sifted`] per key, in key order). The tape is not
    /// touched, so workers can sift in parallel from clones of a test whose prompts and
    /// filter are set.
    ///
    /// ```
    /// use greenmark::radioactivity::{RadioactivityTest, TestOptions};
    /// use greenmark::{Key, WatermarkConfig};
    /// let config = WatermarkConfig::new(1000)?;
    /// let texts: Vec<Vec<u32>> = (0..20u32).map(|t| (0..50).map(|i| (i * 31 + t * 7) % 1000).collect()).collect();
    /// let mut direct = RadioactivityTest::new(&[Key::from_bytes([3; 32])], config, TestOptions::default())?;
    /// let mut pooled = direct.clone();
    /// for t in &texts {
    ///     direct.score_text(t, &[])?;
    /// }
    /// let sifted: Vec<_> = texts.iter().map(|t| pooled.sift_text(t, &[])).collect::<Result<_, _>>()?;
    /// for s in &sifted {
    ///     pooled.record_sifted(0, &s[0])?;
    /// }
    /// assert_eq!(direct.finish().keys, pooled.finish().keys);
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn sift_text(&self, tokens: &[u32], prefix: &[u32]) -> Result<Vec<Sifted>> {
        let walk = self.text_walk(tokens, prefix)?;
        Ok(self.sift_walk(&walk))
    }

    /// Open mode, first half: the tuples [`RadioactivityTest::score_predictions`] would
    /// offer (see [`RadioactivityTest::sift_text`]).
    pub fn sift_predictions(&self, input: &[u32], predictions: &[u32]) -> Result<Vec<Sifted>> {
        let walk = self.reading_walk(input, predictions)?;
        Ok(self.sift_walk(&walk))
    }

    /// Second half: records key `key`'s sifted tuples on its tape, in order, with the
    /// tape's dedup and budget. Record the texts in corpus order to reproduce the direct
    /// result; the counts of left-out occurrences are added as they are.
    ///
    /// Scale-out can dedup before recording: a tuple's score depends only on its
    /// fingerprint, so recording each distinct tuple once in the order of its first
    /// occurrence, then the remaining occurrences in any order, gives the same result.
    pub fn record_sifted(&mut self, key: usize, sifted: &Sifted) -> Result<()> {
        self.check_sifted(key, sifted)?;
        self.started = true;
        let options = &self.options;
        let ledger = &mut self.tapes[key].ledger;
        add_left_out(ledger, sifted);
        if options.dedup {
            ledger.seen.reserve(sifted.fingerprints.len());
        }
        for (&fingerprint, &score) in sifted.fingerprints.iter().zip(&sifted.scores) {
            ledger.take(Offer::Eligible { fingerprint, score }, options);
        }
        Ok(())
    }

    /// Second half, deduplicated: `sifted` holds distinct tuples in the order of their first
    /// occurrence and `occurrences[i]` (at least 1) counts every occurrence of tuple `i`.
    /// Equal to [`RadioactivityTest::record_sifted`] with each tuple's occurrences recorded
    /// one after the other: the first is scored or over budget, the others are repeats of a
    /// scored tuple or over budget too (the budget, once spent, stays spent). The work and
    /// memory are per distinct tuple, not per occurrence; needs dedup on.
    ///
    /// ```
    /// use greenmark::radioactivity::{RadioactivityTest, Sifted, TestOptions};
    /// use greenmark::{Key, WatermarkConfig};
    /// let config = WatermarkConfig::new(1000)?;
    /// let text: Vec<u32> = (0..60).map(|i| i % 7).collect(); // 7 distinct tuples, repeated
    /// let options = TestOptions::default().max_tuples(5);
    /// let mut direct = RadioactivityTest::new(&[Key::from_bytes([3; 32])], config, options)?;
    /// let mut counted = direct.clone();
    /// let all = direct.sift_text(&text, &[])?.remove(0);
    /// direct.record_sifted(0, &all)?;
    /// // The first 7 occurrences are the 7 distinct tuples; occurrence i repeats i % 7.
    /// let mut distinct = all.clone();
    /// distinct.fingerprints.truncate(7);
    /// distinct.scores.truncate(7);
    /// let occurrences: Vec<u64> = (0..7).map(|i| (i..59).step_by(7).count() as u64).collect();
    /// counted.record_counted(0, &distinct, &occurrences)?;
    /// // Every count, the p-value and the curve (the tables' allocations differ).
    /// assert_eq!(direct.finish().keys, counted.finish().keys);
    /// # Ok::<(), greenmark::Error>(())
    /// ```
    pub fn record_counted(
        &mut self,
        key: usize,
        sifted: &Sifted,
        occurrences: &[u64],
    ) -> Result<()> {
        self.check_sifted(key, sifted)?;
        if !self.options.dedup {
            return Err(Error::Unsupported(
                "occurrence counts need dedup: without it every occurrence is scored in \
                 corpus order, so record them one by one with record_sifted"
                    .into(),
            ));
        }
        if occurrences.len() != sifted.fingerprints.len() {
            return Err(Error::BatchShape(format!(
                "{} occurrence counts for {} fingerprints: give one count per fingerprint",
                occurrences.len(),
                sifted.fingerprints.len()
            )));
        }
        if let Some(i) = occurrences.iter().position(|&c| c == 0) {
            return Err(Error::InconsistentTuples(format!(
                "occurrence count 0 at index {i}: each recorded tuple occurs at least once"
            )));
        }
        self.started = true;
        let options = &self.options;
        let ledger = &mut self.tapes[key].ledger;
        add_left_out(ledger, sifted);
        ledger.seen.reserve(sifted.fingerprints.len());
        let tuples = sifted.fingerprints.iter().zip(&sifted.scores);
        for ((&fingerprint, &score), &n) in tuples.zip(occurrences) {
            ledger.take_counted(fingerprint, score, n, options);
        }
        Ok(())
    }

    /// Checks that `key` is a key of the test and `sifted` holds one valid score per
    /// fingerprint.
    pub(super) fn check_sifted(&self, key: usize, sifted: &Sifted) -> Result<()> {
        let n_keys = self.tapes.len();
        if key >= n_keys {
            return Err(Error::option(
                "key",
                format!("key index {key} is out of range: the test has {n_keys} key(s)"),
            ));
        }
        if sifted.fingerprints.len() != sifted.scores.len() {
            return Err(Error::BatchShape(format!(
                "{} fingerprints and {} scores: give one score per fingerprint",
                sifted.fingerprints.len(),
                sifted.scores.len()
            )));
        }
        let kgw = self.config().is_some();
        if let Some(i) = sifted.scores.iter().position(|&s| !valid_score(kgw, s)) {
            return Err(bad_score(kgw, sifted.scores[i], &format!("index {i}")));
        }
        Ok(())
    }

    fn sift_walk(&self, walk: &super::Walk<'_>) -> Vec<Sifted> {
        let h = self.window();
        self.tapes
            .iter()
            .map(|tape| {
                let mut sifted = Sifted::default();
                walk.sift(&tape.sieve, h, self.filtering, |offer| sifted.push(offer));
                sifted
            })
            .collect()
    }
}

/// Adds `sifted`'s left-out occurrences (excluded, filtered, copied) to `ledger`'s counts.
pub(super) fn add_left_out(ledger: &mut Ledger, sifted: &Sifted) {
    let c = &mut ledger.counts;
    c.excluded += sifted.n_excluded;
    c.filtered += sifted.n_filtered;
    c.copied += sifted.n_copied;
    c.seen += sifted.n_excluded + sifted.n_filtered + sifted.n_copied;
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    use super::super::tests::{config, key, random_texts};
    use super::super::{RadioactivityTest, TestOptions};
    use super::Sifted;
    use crate::config::Scheme;

    /// Each distinct tuple once at its first occurrence, with its number of occurrences.
    fn counted(all: &Sifted) -> (Sifted, Vec<u64>) {
        let mut index: HashMap<u64, usize> = HashMap::new();
        let (mut distinct, mut counts) = (Sifted::default(), Vec::new());
        for (&fp, &score) in all.fingerprints.iter().zip(&all.scores) {
            let i = *index.entry(fp).or_insert_with(|| {
                distinct.fingerprints.push(fp);
                distinct.scores.push(score);
                counts.push(0);
                counts.len() - 1
            });
            counts[i] += 1;
        }
        (distinct, counts)
    }

    /// Recording distinct tuples with their occurrence counts gives the direct tape's
    /// result (every count, the p-value, the curve), with and without a budget, for
    /// several keys; a small vocabulary makes tuples repeat within and across texts.
    #[test]
    fn counted_recording_equals_the_direct_tape() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let texts = random_texts(&mut rng, 12, 300);
        let keys = [key(1), key(2), key(3)];
        for budget in [None, Some(1), Some(40), Some(100), Some(1_000_000)] {
            let options = budget.map_or(TestOptions::default(), |m| {
                TestOptions::default().max_tuples(m)
            });
            let mut direct =
                RadioactivityTest::new(&keys, config(12, Scheme::LeftHash { window: 1 }), options)
                    .unwrap();
            direct.exclude_prompt(&[3, 4, 5]).unwrap();
            let mut pooled = direct.clone();
            let mut all = vec![Sifted::default(); keys.len()];
            for t in &texts {
                direct.score_text(t, &[]).unwrap();
                for (k, s) in pooled.sift_text(t, &[]).unwrap().iter().enumerate() {
                    all[k].extend(s);
                }
            }
            for (k, s) in all.iter().enumerate() {
                let (mut distinct, counts) = counted(s);
                distinct.n_excluded = s.n_excluded;
                pooled.record_counted(k, &distinct, &counts).unwrap();
            }
            let (a, b) = (direct.finish(), pooled.finish());
            assert_eq!(a.keys, b.keys, "budget {budget:?}");
            assert!(a.keys.iter().all(|k| k.n_repeated > 0 && k.n_excluded > 0));
            if budget == Some(40) {
                assert!(a
                    .keys
                    .iter()
                    .all(|k| k.n_over_budget > 0 && k.n_scored == 40));
            }
        }
    }

    #[test]
    fn counted_recording_refuses_bad_counts() {
        let options = TestOptions::default();
        let mut test = RadioactivityTest::new(
            &[key(1)],
            config(12, Scheme::LeftHash { window: 1 }),
            options,
        )
        .unwrap();
        let (distinct, _) = counted(&test.sift_text(&[1, 2, 3, 1, 2, 3], &[]).unwrap()[0]);
        let err = test
            .record_counted(0, &distinct, &[1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("one count per fingerprint"), "{err}");
        let zeros = vec![0; distinct.fingerprints.len()];
        let err = test
            .record_counted(0, &distinct, &zeros)
            .unwrap_err()
            .to_string();
        assert!(err.contains("at least once"), "{err}");
        let mut no_dedup = RadioactivityTest::new(
            &[key(1)],
            config(12, Scheme::LeftHash { window: 1 }),
            TestOptions::default().dedup(false),
        )
        .unwrap();
        let err = no_dedup
            .record_counted(0, &distinct, &[1, 1, 1])
            .unwrap_err()
            .to_string();
        assert!(err.contains("need dedup"), "{err}");
    }
}
