use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::config::Scheme;
use crate::scheme::{mix32, Seeder};
use crate::synthetic::ZipfLm;
use crate::Watermarker;

pub(super) fn key(b: u8) -> Key {
    Key::from_bytes([b; 32])
}

pub(super) fn config(vocab: u64, scheme: Scheme) -> WatermarkConfig {
    WatermarkConfig::builder(vocab)
        .scheme(scheme)
        .build()
        .unwrap()
}

/// The plain, obvious tape: tuples as `(seed, token)` pairs in a std `HashSet`, windows as
/// their seeds (non-selfhash schemes), no fingerprints, no checkpoints.
struct Oracle {
    seeder: Seeder,
    threshold: u32,
    h: usize,
    excluded: HashSet<u64>,
    filter: Option<HashSet<u64>>,
    seen: HashSet<(u64, u32)>,
    max: Option<u64>,
    dedup: bool,
    scored: u64,
    green: u64,
}

impl Oracle {
    fn new(key: &Key, config: &WatermarkConfig, options: &TestOptions) -> Oracle {
        Oracle {
            seeder: Seeder::new(key, config.scheme()),
            threshold: config.threshold(),
            h: config.scheme().context_len(),
            excluded: HashSet::new(),
            filter: None,
            seen: HashSet::new(),
            max: options.max_tuples,
            dedup: options.dedup,
            scored: 0,
            green: 0,
        }
    }
    fn windows(&self, text: &[u32]) -> Vec<u64> {
        text.windows(self.h)
            .map(|w| self.seeder.seed(w, 0))
            .collect()
    }
    fn offer(&mut self, window: &[u32], token: u32) {
        self.offer_unless(window, token, &HashSet::new());
    }
    fn offer_unless(&mut self, window: &[u32], token: u32, copies: &HashSet<(u64, u32)>) {
        let seed = self.seeder.seed(window, token);
        if self.excluded.contains(&seed) {
            return;
        }
        if let Some(f) = &self.filter {
            if !f.contains(&seed) {
                return;
            }
        }
        if copies.contains(&(seed, token)) {
            return;
        }
        if self.dedup && self.seen.contains(&(seed, token)) {
            return;
        }
        if self.max.is_some_and(|m| self.scored >= m) {
            return;
        }
        self.seen.insert((seed, token));
        self.scored += 1;
        self.green += u64::from(mix32(seed, token) < self.threshold);
    }
    fn text(&mut self, text: &[u32]) {
        for p in self.h..text.len() {
            self.offer(&text[p - self.h..p], text[p]);
        }
    }
    /// Open mode; with `copy_rule`, predictions equal to a tuple of the input so far are
    /// skipped (the tape's rule), without it every prediction is offered.
    fn predictions(&mut self, input: &[u32], preds: &[u32], copy_rule: bool) {
        let mut copies = HashSet::new();
        for j in 0..input.len() {
            if copy_rule && j >= self.h {
                let w = &input[j - self.h..j];
                copies.insert((self.seeder.seed(w, input[j]), input[j]));
            }
            if j + 1 >= self.h {
                self.offer_unless(&input[j + 1 - self.h..=j], preds[j], &copies);
            }
        }
    }
}

/// The `i`-th of many distinct keys.
fn numbered_key(i: usize) -> Key {
    let mut bytes = [3u8; 32];
    bytes[..8].copy_from_slice(&(i as u64).to_le_bytes());
    Key::from_bytes(bytes)
}

pub(super) fn random_texts(rng: &mut ChaCha8Rng, vocab: u32, n: usize) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            let len = rng.gen_range(0..60);
            (0..len).map(|_| rng.gen_range(0..vocab)).collect()
        })
        .collect()
}

/// The tape agrees with the naive oracle on every count, for prompts, filters, budgets, dedup
/// on and off, closed and open mode, over several schemes.
#[test]
fn the_tape_matches_a_naive_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    for scheme in [
        Scheme::LeftHash { window: 1 },
        Scheme::LeftHash { window: 2 },
        Scheme::MinHash { window: 3 },
        Scheme::SumHash { window: 2 },
    ] {
        for round in 0..12 {
            let vocab = 40;
            let cfg = config(vocab, scheme);
            let mut options = TestOptions::default().dedup(round % 3 != 0);
            if round % 2 == 1 {
                options = options.max_tuples(rng.gen_range(1..400));
            }
            let k = key(round as u8);
            let mut test =
                RadioactivityTest::new(std::slice::from_ref(&k), cfg.clone(), options.clone())
                    .unwrap();
            let mut oracle = Oracle::new(&k, &cfg, &options);
            for prompt in random_texts(&mut rng, vocab as u32, 3) {
                test.exclude_prompt(&prompt).unwrap();
                let w = oracle.windows(&prompt);
                oracle.excluded.extend(w);
            }
            if round % 4 == 2 {
                for text in random_texts(&mut rng, vocab as u32, 20) {
                    test.add_filter_text(&text).unwrap();
                    let w = oracle.windows(&text);
                    oracle.filter.get_or_insert_with(HashSet::new).extend(w);
                }
            }
            for text in random_texts(&mut rng, vocab as u32, 30) {
                if rng.gen_bool(0.5) {
                    test.score_text(&text, &[]).unwrap();
                    oracle.text(&text);
                } else {
                    let preds: Vec<u32> = text
                        .iter()
                        .map(|_| rng.gen_range(0..vocab as u32))
                        .collect();
                    test.score_predictions(&text, &preds).unwrap();
                    oracle.predictions(&text, &preds, true);
                }
            }
            let r = test.finish();
            let kr = &r.keys[0];
            assert_eq!(
                (kr.n_scored, kr.n_green),
                (oracle.scored, oracle.green),
                "{scheme:?} round {round}"
            );
            assert_eq!(
                kr.n_seen,
                kr.n_excluded
                    + kr.n_filtered
                    + kr.n_copied
                    + kr.n_repeated
                    + kr.n_over_budget
                    + kr.n_scored
            );
            let expected =
                stats::binomial_tail_ln(oracle.green, oracle.scored, cfg.effective_gamma());
            assert_eq!(kr.ln_p_value, expected);
        }
    }
}

/// Without a budget the pooled result does not depend on how the corpus is split into texts'
/// batches or in which order the texts come; the prefix of a text supplies its first windows
/// exactly as if joined.
#[test]
fn any_order_and_batching_gives_the_same_pooled_result() {
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let cfg = config(30, Scheme::LeftHash { window: 2 });
    let keys = [key(1), key(2)];
    let corpus = random_texts(&mut rng, 30, 80);
    let run = |order: &[usize]| {
        let mut t = RadioactivityTest::new(&keys, cfg.clone(), TestOptions::default()).unwrap();
        t.exclude_prompt(&[3, 4, 5, 6]).unwrap();
        for &i in order {
            t.score_text(&corpus[i], &[]).unwrap();
        }
        let r = t.finish();
        r.keys
            .iter()
            .map(|k| (k.n_seen, k.n_scored, k.n_green, k.n_repeated))
            .collect::<Vec<_>>()
    };
    let base: Vec<usize> = (0..corpus.len()).collect();
    let whole = run(&base);
    for _ in 0..10 {
        let mut order = base.clone();
        order.shuffle(&mut rng);
        assert_eq!(run(&order), whole);
    }
    // A prefix gives the windows of the first tokens, as if the texts were joined.
    let mut t = RadioactivityTest::new(&keys, cfg.clone(), TestOptions::default()).unwrap();
    t.score_text(&[7, 8, 9], &[1, 2, 3, 4]).unwrap();
    let mut u = RadioactivityTest::new(&keys, cfg, TestOptions::default()).unwrap();
    u.score_text(&[3, 4, 7, 8, 9], &[]).unwrap();
    assert_eq!(t.finish().keys, u.finish().keys);
}

#[test]
fn a_budget_stops_exactly_and_marks_the_result_confirmatory() {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let cfg = config(5000, Scheme::LeftHash { window: 1 });
    let corpus = random_texts(&mut rng, 5000, 100);
    let mut open = RadioactivityTest::new(&[key(9)], cfg.clone(), TestOptions::default()).unwrap();
    let mut fixed =
        RadioactivityTest::new(&[key(9)], cfg, TestOptions::default().max_tuples(1000)).unwrap();
    for t in &corpus {
        open.score_text(t, &[]).unwrap();
        fixed.score_text(t, &[]).unwrap();
    }
    let (open, fixed) = (open.finish(), fixed.finish());
    assert!(open.exploratory && !fixed.exploratory);
    assert!(open.keys[0].n_scored > 1000);
    let f = &fixed.keys[0];
    assert_eq!(f.n_scored, 1000);
    assert_eq!(f.n_over_budget, open.keys[0].n_scored - 1000);
    // The budgeted result is the unbudgeted curve's point at 1000 tuples.
    let at = open.keys[0]
        .curve
        .iter()
        .find(|p| p.n_scored == 1000)
        .unwrap();
    assert_eq!((at.n_green, at.log10_p_value), (f.n_green, f.log10_p_value));
    let ns: Vec<u64> = f.curve.iter().map(|p| p.n_scored).collect();
    assert_eq!(ns, [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000]);
}

/// Kolmogorov's limiting distribution: `P(sqrt(n) D > lambda)` with Stephens' correction.
pub(super) fn ks_p_value(mut p: Vec<f64>) -> f64 {
    p.sort_by(f64::total_cmp);
    let n = p.len() as f64;
    let d = p
        .iter()
        .enumerate()
        .map(|(i, &x)| ((i + 1) as f64 / n - x).max(x - i as f64 / n))
        .fold(0.0, f64::max);
    let lambda = (n.sqrt() + 0.12 + 0.11 / n.sqrt()) * d;
    let q: f64 = (1..100)
        .map(|k| {
            let k = k as f64;
            2.0 * (-1f64).powf(k - 1.0) * (-2.0 * k * k * lambda * lambda).exp()
        })
        .sum();
    q.clamp(0.0, 1.0)
}

/// A suspect's corpus: (prompts, outputs).
type Corpus = (Vec<Vec<u32>>, Vec<Vec<u32>>);

fn p_values(
    corpora: &[Corpus],
    cfg: &WatermarkConfig,
    options: &TestOptions,
    exclude: bool,
) -> Vec<f64> {
    corpora
        .iter()
        .enumerate()
        .map(|(i, (prompts, outputs))| {
            let k = numbered_key(i);
            let mut t = RadioactivityTest::new(&[k], cfg.clone(), options.clone()).unwrap();
            if exclude {
                for p in prompts {
                    t.exclude_prompt(p).unwrap();
                }
            }
            for o in outputs {
                t.score_text(o, &[]).unwrap();
            }
            t.finish().keys[0].ln_p_value.exp()
        })
        .collect()
}

/// Calibration: unwatermarked corpora under 200 random keys give uniform p-values (KS test);
/// without dedup, a repetitive corpus makes the test cry wolf.
#[test]
fn unwatermarked_corpora_give_uniform_p_values_and_dedup_is_needed() {
    let lm = ZipfLm::new(2000, 1.3).unwrap();
    let cfg = config(2000, Scheme::LeftHash { window: 1 });
    let mut rng = ChaCha8Rng::seed_from_u64(4);
    // One corpus per key: 20 texts of 100 tokens, each text repeated 3 times (a repetitive
    // suspect: the same answer given to several prompts).
    let corpora: Vec<Corpus> = (0..200)
        .map(|_| {
            let texts: Vec<Vec<u32>> = (0..20)
                .map(|_| lm.generate_plain(rng.gen_range(0..2000), 100, &mut rng))
                .collect();
            (Vec::new(), [&texts[..], &texts[..], &texts[..]].concat())
        })
        .collect();
    let p = p_values(&corpora, &cfg, &TestOptions::default(), false);
    let ks = ks_p_value(p.clone());
    assert!(ks > 0.01, "dedup on: KS p {ks}");
    // Without dedup each tuple counts three times: the statistic's variance triples and the
    // small p-values come far too often.
    let p_raw = p_values(&corpora, &cfg, &TestOptions::default().dedup(false), false);
    let small = p_raw.iter().filter(|&&p| p < 0.01).count();
    assert!(small > 10, "without dedup only {small}/200 below 0.01");
    assert!(ks_p_value(p_raw) < 1e-3);
    let small_dedup = p.iter().filter(|&&p| p < 0.01).count();
    // Binomial(200, 0.01) upper 99.9% bound is 8.
    assert!(small_dedup <= 8, "{small_dedup}");
}

/// A suspect that never saw the key but copies its (watermarked) prompts looks radioactive
/// unless the prompt windows are excluded.
#[test]
fn prompt_windows_must_be_excluded() {
    let lm = ZipfLm::new(2000, 1.3).unwrap();
    let cfg = WatermarkConfig::builder(2000).delta(3.0).build().unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let corpora: Vec<Corpus> = (0..60)
        .map(|i| {
            let k = numbered_key(i);
            let wm = Watermarker::new(&k, cfg.clone());
            // Watermarked prompts; the suspect's outputs quote them, then go on in its own words.
            let prompts: Vec<Vec<u32>> = (0..5)
                .map(|_| lm.generate(&[1], 40, Some(&wm), &mut rng).unwrap())
                .collect();
            let outputs = prompts
                .iter()
                .map(|p| {
                    let mut o = p.clone();
                    o.extend(lm.generate_plain(p[p.len() - 1], 60, &mut rng));
                    o
                })
                .collect();
            (prompts, outputs)
        })
        .collect();
    let with = p_values(&corpora, &cfg, &TestOptions::default(), true);
    let without = p_values(&corpora, &cfg, &TestOptions::default(), false);
    let false_alarms = without.iter().filter(|&&p| p < 1e-3).count();
    assert!(false_alarms > 30, "without exclusion: {false_alarms}/60");
    let alarms = with.iter().filter(|&&p| p < 1e-3).count();
    assert!(alarms <= 2, "with exclusion: {alarms}/60");
}

#[test]
fn several_keys_name_the_key_that_fired_and_correct() {
    let lm = ZipfLm::new(2000, 1.1).unwrap();
    let cfg = WatermarkConfig::builder(2000).delta(3.0).build().unwrap();
    let keys: Vec<Key> = (1..=5).map(key).collect();
    let wm = Watermarker::new(&keys[3], cfg.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(6);
    let mut test = RadioactivityTest::new(&keys, cfg, TestOptions::default()).unwrap();
    for _ in 0..5 {
        let text = lm.generate(&[1], 100, Some(&wm), &mut rng).unwrap();
        test.score_text(&text, &[]).unwrap();
    }
    let r = test.finish();
    assert_eq!(r.strongest_key, 3);
    assert_eq!(r.ln_p_min, r.keys[3].ln_p_value);
    assert!(r.keys[3].log10_p_value < -20.0);
    assert_eq!(r.ln_p_bonferroni, r.ln_p_min + 5f64.ln());
    assert!(r.ln_p_sidak <= r.ln_p_bonferroni);
    for (i, k) in r.keys.iter().enumerate() {
        if i != 3 {
            assert!(k.log10_p_value > -4.0, "key {i}: {}", k.log10_p_value);
        }
    }
}

#[test]
fn corrections_match_a_direct_computation() {
    for &p in &[0.9f64, 0.5, 0.1, 1e-3, 1e-6, 1e-9, 1e-12, 1e-15, 1e-20] {
        for k in [1usize, 2, 3, 10, 1000] {
            let direct = 1.0 - (1.0 - p).powi(k as i32);
            // (1 - p)^K loses digits for tiny p; the binomial series is exact there.
            let series = k as f64 * p * (1.0 - (k as f64 - 1.0) * p / 2.0);
            let reference = if p < 1e-6 { series } else { direct };
            let got = sidak_ln(p.ln(), k).exp();
            assert!(
                ((got - reference) / reference).abs() < 1e-9,
                "p {p} k {k}: {got} vs {reference}"
            );
            assert!(sidak_ln(p.ln(), k) <= bonferroni_ln(p.ln(), k) + 1e-15);
            assert!((bonferroni_ln(p.ln(), k) - (p * k as f64).min(1.0).ln()).abs() < 1e-12);
        }
    }
    assert_eq!(sidak_ln(0.0, 5), 0.0);
    assert!((sidak_ln(-1e6, 7) - (-1e6 + 7f64.ln())).abs() < 1e-9);
}

#[test]
fn bad_input_gives_errors_that_say_what_to_fix() {
    let cfg = config(100, Scheme::LeftHash { window: 1 });
    let e = RadioactivityTest::new(&[], cfg.clone(), TestOptions::default()).unwrap_err();
    assert!(e.to_string().contains("at least one key"), "{e}");
    let e =
        RadioactivityTest::new(&[key(1), key(1)], cfg.clone(), TestOptions::default()).unwrap_err();
    assert!(e.to_string().contains("given twice"), "{e}");
    let e = RadioactivityTest::new(&[key(1)], cfg.clone(), TestOptions::default().max_tuples(0))
        .unwrap_err();
    assert!(e.to_string().contains("max_tuples"), "{e}");
    let mut t = RadioactivityTest::new(&[key(1)], cfg.clone(), TestOptions::default()).unwrap();
    let e = t.score_text(&[1, 2, 300], &[]).unwrap_err();
    assert!(
        matches!(
            e,
            Error::TokenOutOfRange {
                position: 2,
                token: 300,
                ..
            }
        ),
        "{e}"
    );
    let e = t.score_predictions(&[1, 2, 3], &[1, 2]).unwrap_err();
    assert!(
        e.to_string().contains("one prediction per input position"),
        "{e}"
    );
    let e = t.score_predictions(&[1, 2], &[1, 200]).unwrap_err();
    assert!(e.to_string().contains("prediction position 1"), "{e}");
    t.score_text(&[1, 2, 3], &[]).unwrap();
    let e = t.exclude_prompt(&[1, 2]).unwrap_err();
    assert!(
        e.to_string().contains("before the first scored text"),
        "{e}"
    );
    let e = t.add_filter_text(&[1, 2]).unwrap_err();
    assert!(e.to_string().contains("filter text was added after"), "{e}");
    let mut u = RadioactivityTest::new(
        &[key(1)],
        config(100, Scheme::Unigram),
        TestOptions::default(),
    )
    .unwrap();
    let e = u.exclude_prompt(&[1, 2]).unwrap_err();
    assert!(e.to_string().contains("no window"), "{e}");
}

/// Bytes per million distinct tuples on one key's tape.
#[test]
fn memory_per_million_tuples() {
    let cfg = config(1 << 20, Scheme::LeftHash { window: 1 });
    let mut t = RadioactivityTest::new(&[key(5)], cfg, TestOptions::default()).unwrap();
    let input: Vec<u32> = (0..1_000_001u32).map(|i| (i * 7919) % (1 << 20)).collect();
    let preds: Vec<u32> = input.iter().map(|&x| (x * 31 + 7) % (1 << 20)).collect();
    t.score_predictions(&input, &preds).unwrap();
    let r = t.finish();
    assert_eq!(r.keys[0].n_scored, 1_000_001);
    let per = r.memory_bytes() as f64 / 1e6;
    // hashbrown: 2^21 buckets of 8 bytes + 1 control byte for 1M entries.
    assert!((18.0..20.0).contains(&per), "{per} bytes per tuple");
}

/// One text, no prompts, no filter: the tape scores exactly what the detector scores, for
/// every scheme (selfhash included), with dedup on and off.
#[test]
fn one_text_on_the_tape_is_one_detection() {
    let mut rng = ChaCha8Rng::seed_from_u64(8);
    for scheme in [
        Scheme::LeftHash { window: 1 },
        Scheme::MinHash { window: 4 },
        Scheme::SelfHash {
            window: 3,
            top_k: 8,
        },
        Scheme::Unigram,
    ] {
        for dedup in [true, false] {
            let cfg = config(60, scheme);
            let detector = crate::Detector::new(&key(4), cfg.clone()).with_dedup(dedup);
            for _ in 0..10 {
                let text: Vec<u32> = (0..rng.gen_range(0..200))
                    .map(|_| rng.gen_range(0..60))
                    .collect();
                let mut t = RadioactivityTest::new(
                    &[key(4)],
                    cfg.clone(),
                    TestOptions::default().dedup(dedup),
                )
                .unwrap();
                t.score_text(&text, &[]).unwrap();
                let r = t.finish();
                let d = detector.detect(&text, &[]).unwrap();
                assert_eq!(
                    (r.keys[0].n_scored, r.keys[0].n_green),
                    (d.n_scored, d.n_green),
                    "{scheme:?}"
                );
                assert_eq!(r.keys[0].ln_p_value, d.ln_p_value);
            }
        }
    }
}

/// A suspect that never saw the key but copies from its context (after a window it has seen
/// in the input, it predicts what followed it there) looks radioactive when it reads
/// watermarked text, unless predictions that copy a tuple of the input are left out.
#[test]
fn open_mode_leaves_out_in_context_copies() {
    let lm = ZipfLm::new(300, 1.5).unwrap();
    let cfg = WatermarkConfig::builder(300).delta(3.0).build().unwrap();
    let k = key(12);
    let wm = Watermarker::new(&k, cfg.clone());
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let mut test = RadioactivityTest::new(
        std::slice::from_ref(&k),
        cfg.clone(),
        TestOptions::default(),
    )
    .unwrap();
    let mut naive = Oracle::new(&k, &cfg, &TestOptions::default());
    for _ in 0..40 {
        let text = lm.generate(&[1], 200, Some(&wm), &mut rng).unwrap();
        let mut last: std::collections::HashMap<u32, u32> = std::collections::HashMap::new();
        let preds: Vec<u32> = (0..text.len())
            .map(|j| {
                if j > 0 {
                    last.insert(text[j - 1], text[j]);
                }
                *last.get(&text[j]).unwrap_or(&((text[j] * 7 + 3) % 300))
            })
            .collect();
        test.score_predictions(&text, &preds).unwrap();
        naive.predictions(&text, &preds, false);
    }
    let r = test.finish();
    let naive_p = stats::binomial_tail_ln(naive.green, naive.scored, cfg.effective_gamma());
    assert!(
        naive_p < (1e-6f64).ln(),
        "the copying suspect should fool the naive count"
    );
    assert!(r.keys[0].n_copied > 100, "{:?}", r.keys[0]);
    assert!(r.keys[0].log10_p_value > -3.0, "{:?}", r.keys[0]);
}
