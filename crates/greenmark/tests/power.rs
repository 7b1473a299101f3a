//! Power: text generated with the watermark is detected, quickly and reliably, on a synthetic
//! model of realistic entropy; and the span search finds a watermarked paragraph inside longer
//! unwatermarked text without exceeding its nominal false-positive rate.
//!
//! The model is `ZipfLm` over 4096 tokens with exponent 1.5: about 3.05 nats a token (printed),
//! in the range of real LLM output at temperature 1. Run with `--nocapture` for the figures.

use greenmark::synthetic::ZipfLm;
use greenmark::{Detector, Key, Scheme, SpanOptions, WatermarkConfig, Watermarker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[path = "common/trials.rs"]
mod trials;
use trials::trials;

const VOCAB: u32 = 4096;
const EXPONENT: f64 = 1.5;
/// The detection threshold of the power tests.
const LOG10_THRESHOLD: f64 = -6.0;

/// A few keys, drawn from a seeded RNG: trial `i` uses key `i % KEYS`.
const KEYS: usize = 8;
fn keys(seed: u64) -> Vec<Key> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..KEYS).map(|_| Key::from_bytes(rng.gen())).collect()
}

fn model() -> ZipfLm {
    let lm = ZipfLm::new(VOCAB, EXPONENT).unwrap();
    assert!(
        (2.5..=3.5).contains(&lm.entropy()),
        "entropy {} nats",
        lm.entropy()
    );
    lm
}

/// min / median / max.
fn spread(values: &[f64]) -> (f64, f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[0], v[v.len() / 2], v[v.len() - 1])
}

fn describe(label: &str, log10_p: &[f64]) {
    let (min, median, max) = spread(log10_p);
    let hits = log10_p.iter().filter(|&&l| l < LOG10_THRESHOLD).count();
    eprintln!(
        "{label:<44} p < 1e-6 in {hits:>4}/{:<4} ({:>5.1}%)  log10 p min {min:>8.2} median {median:>8.2} max {max:>8.2}",
        log10_p.len(),
        100.0 * hits as f64 / log10_p.len() as f64,
    );
}

/// Generates `n_trials` texts of `len` tokens with (or without) the watermark of `scheme`,
/// each after its own random one-token prompt, and returns their log10 p-values.
fn generate_and_detect(
    lm: &ZipfLm,
    scheme: Scheme,
    watermark: bool,
    n_trials: usize,
    len: usize,
    seed: u64,
) -> Vec<f64> {
    let config = WatermarkConfig::builder(u64::from(VOCAB))
        .scheme(scheme)
        .build()
        .unwrap();
    let keys = keys(seed);
    let watermarkers: Vec<Watermarker> = keys
        .iter()
        .map(|k| Watermarker::new(k, config.clone()))
        .collect();
    let detectors: Vec<Detector> = keys
        .iter()
        .map(|k| Detector::new(k, config.clone()))
        .collect();
    trials(n_trials, seed, |i, rng| {
        let prompt = [rng.gen_range(0..VOCAB)];
        let wm = watermark.then_some(&watermarkers[i % KEYS]);
        let text = lm.generate(&prompt, len, wm, rng).unwrap();
        detectors[i % KEYS]
            .detect(&text, &prompt)
            .unwrap()
            .log10_p_value
    })
}

/// The default config (gamma 0.25, delta 2, lefthash h=1, every position biased) at
/// temperature 1: p < 1e-6 within 200 tokens in >= 99% of 1000 trials; never on plain text.
#[test]
fn lefthash_default_is_detected_within_200_tokens() {
    let lm = model();
    eprintln!(
        "ZipfLm V={VOCAB} s={EXPONENT}: entropy {:.3} nats/token",
        lm.entropy()
    );
    let scheme = WatermarkConfig::new(u64::from(VOCAB)).unwrap().scheme();
    assert_eq!(scheme, Scheme::LeftHash { window: 1 });
    let marked = generate_and_detect(&lm, scheme, true, 1000, 200, 11);
    let plain = generate_and_detect(&lm, scheme, false, 1000, 200, 12);
    describe("lefthash h=1, watermarked, 200 tokens", &marked);
    describe("lefthash h=1, plain, 200 tokens", &plain);
    let hits = marked.iter().filter(|&&l| l < LOG10_THRESHOLD).count();
    assert!(hits >= 990, "detected {hits}/1000");
    let false_hits = plain.iter().filter(|&&l| l < LOG10_THRESHOLD).count();
    assert_eq!(false_hits, 0, "plain text flagged at 1e-6");
}

/// selfhash (window 4, top 40) and minhash (window 4): same model, 200 trials each.
#[test]
fn selfhash_and_minhash_are_detected_within_200_tokens() {
    let lm = model();
    for (label, scheme, seed) in [
        ("selfhash h=4 top 40", Scheme::SELFHASH_DEFAULT, 21),
        ("minhash h=4", Scheme::MinHash { window: 4 }, 22),
    ] {
        let marked = generate_and_detect(&lm, scheme, true, 200, 200, seed);
        describe(&format!("{label}, watermarked, 200 tokens"), &marked);
        let hits = marked.iter().filter(|&&l| l < LOG10_THRESHOLD).count();
        assert!(hits >= 190, "{label}: detected {hits}/200");
    }
}

// ---------------------------------------------------------------------------------------
// Span search
// ---------------------------------------------------------------------------------------

const TEXT_LEN: usize = 2000;
const SPAN_LEN: usize = 200;

/// 200 watermarked tokens at a random offset in 2000 tokens, 200 trials.
///
/// Found = corrected p < 1e-6 and at least 50% of the span inside the reported window.
///
/// With every position biased (the default) it is found in >= 95% of trials.
/// With `skip_repeated_windows` on the power is lower, and this is measured, not a search
/// failure: the span continues a prefix of up to 1800 tokens, and at 4096 tokens
/// and ~3 nats a token, 30-40% of the span's h=1 windows (the previous token) already occurred
/// in that prefix, so biasing leaves those positions alone. The span's own log10 p falls from
/// about -25 (short prefix) to about -8 (1500-token prefix). The skipping config's true rate here is
/// close to 95% (measured 192/200 with these seeds, 93 of the first 100), so it is asserted
/// at >= 90% to leave room for reseeding; the search itself is held to 95% above.
#[test]
fn find_span_locates_an_embedded_watermark() {
    let lm = model();
    let keys = keys(31);
    let n_trials = 200;
    for (label, skip, min_found) in [
        ("bias every window (default)", false, 0.95),
        ("skip repeated windows", true, 0.90),
    ] {
        let config = WatermarkConfig::builder(u64::from(VOCAB))
            .skip_repeated_windows(skip)
            .build()
            .unwrap();
        let results = trials(n_trials, 31, |i, rng| {
            let key = &keys[i % KEYS];
            let prompt = rng.gen_range(0..VOCAB);
            let offset = rng.gen_range(0..=TEXT_LEN - SPAN_LEN);
            let mut text = vec![prompt];
            text.extend(lm.generate_plain(prompt, offset, rng));
            let wm = Watermarker::new(key, config.clone());
            let marked = lm.generate(&text, SPAN_LEN, Some(&wm), rng).unwrap();
            text.extend(marked);
            let last = *text.last().unwrap();
            text.extend(lm.generate_plain(last, TEXT_LEN - SPAN_LEN - offset, rng));
            let tokens = &text[1..];
            assert_eq!(tokens.len(), TEXT_LEN);
            let found = Detector::new(key, config.clone())
                .find_span(tokens, &text[..1], SpanOptions::default())
                .unwrap();
            let inter = found
                .end
                .min(offset + SPAN_LEN)
                .saturating_sub(found.start.max(offset));
            let recall = inter as f64 / SPAN_LEN as f64;
            let precision = inter as f64 / (found.end - found.start).max(1) as f64;
            (found.log10_p_value, recall, precision, found.windows_tried)
        });
        let log10_p: Vec<f64> = results.iter().map(|r| r.0).collect();
        let recall: Vec<f64> = results.iter().map(|r| r.1).collect();
        let precision: Vec<f64> = results.iter().map(|r| r.2).collect();
        describe(&format!("find_span, {label}"), &log10_p);
        let (rmin, rmed, _) = spread(&recall);
        let (pmin, pmed, _) = spread(&precision);
        let found = results
            .iter()
            .filter(|r| r.0 < LOG10_THRESHOLD && r.1 >= 0.5)
            .count();
        eprintln!(
            "find_span, {label}: found {found}/{n_trials}; windows tried {}; share of the span \
             found min {rmin:.2} median {rmed:.2}; share of the window watermarked min {pmin:.2} \
             median {pmed:.2}",
            results[0].3
        );
        assert!(
            found as f64 >= min_found * n_trials as f64,
            "{label}: found {found}/{n_trials}, expected >= {min_found}"
        );
    }
}

/// On 1000 plain 2000-token texts the Bonferroni-corrected p < 1e-2 at most 1% of the time,
/// plus the slack of a one-sided 99.9% binomial bound.
#[test]
fn find_span_respects_its_level_on_plain_text() {
    let lm = model();
    let config = WatermarkConfig::new(u64::from(VOCAB)).unwrap();
    let keys = keys(41);
    let n = 1000u64;
    let log10_p = trials(n as usize, 41, |i, rng| {
        let prompt = rng.gen_range(0..VOCAB);
        let tokens = lm.generate_plain(prompt, TEXT_LEN, rng);
        Detector::new(&keys[i % KEYS], config.clone())
            .find_span(&tokens, &[prompt], SpanOptions::default())
            .unwrap()
            .log10_p_value
    });
    let hits = log10_p.iter().filter(|&&l| l < -2.0).count() as u64;
    // The smallest c with P(Binomial(n, 0.01) > c) <= 0.001.
    let bound = (0..=n)
        .find(|&c| binomial_upper_tail(c + 1, n, 0.01) <= 1e-3)
        .unwrap();
    let (min, median, _) = spread(&log10_p);
    eprintln!(
        "find_span on plain text: corrected p < 1e-2 in {hits}/{n} (nominal 1%, bound {bound}); \
         log10 p min {min:.2} median {median:.2}"
    );
    assert!(hits <= bound, "{hits}/{n} above the bound {bound}");
}

/// `P(X >= k)` for `X ~ Binomial(n, p)`, by summing the pmf (independent of the crate).
fn binomial_upper_tail(k: u64, n: u64, p: f64) -> f64 {
    let mut ln_fact = vec![0.0f64; n as usize + 1];
    for i in 1..=n as usize {
        ln_fact[i] = ln_fact[i - 1] + (i as f64).ln();
    }
    (k..=n)
        .map(|j| {
            let (j, n) = (j as usize, n as usize);
            (ln_fact[n] - ln_fact[j] - ln_fact[n - j]
                + j as f64 * p.ln()
                + (n - j) as f64 * (-p).ln_1p())
            .exp()
        })
        .sum()
}
