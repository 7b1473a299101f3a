//! The Gumbel tape: an exact-context oracle with an independent tail, calibration under many
//! keys, and the errors of its constructor.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::tests::{ks_p_value, random_texts};
use super::*;
use crate::gumbel::philox::PhiloxPrf;
use crate::synthetic::ZipfLm;

fn width(w: usize) -> GumbelConfig {
    GumbelConfig {
        context_width: w,
        ..GumbelConfig::default()
    }
}

/// `ln Q(n, x)` for integer `n`, independently of the gamma code: `Q(n, x) = P(Poisson(x) <
/// n) = sum_{k < n} e^-x x^k / k!`, summed in log space.
fn poisson_cdf_ln(n: u64, x: f64) -> f64 {
    let mut ln_fact = 0.0;
    let terms: Vec<f64> = (0..n)
        .map(|k| {
            if k > 0 {
                ln_fact += (k as f64).ln();
            }
            -x + k as f64 * x.ln() - ln_fact
        })
        .collect();
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// The tape against the obvious computation: tuples as exact `(context, token)` pairs in a std
/// `HashSet`, uniforms from the PRF, scores summed, the tail from the Poisson sum.
#[test]
fn the_gumbel_tape_matches_an_exact_context_oracle() {
    let mut rng = ChaCha8Rng::seed_from_u64(21);
    for round in 0..30u64 {
        let w = 1 + (round % 3) as usize;
        let vocab = 25;
        let key = GumbelKey::vllm(round * 7919);
        let prf = PhiloxPrf::new(round * 7919);
        let budget = (round % 2 == 1).then(|| rng.gen_range(1..150));
        let options = match budget {
            Some(b) => TestOptions::default().max_tuples(b),
            None => TestOptions::default(),
        };
        let mut test = RadioactivityTest::gumbel(&[key], width(w), vocab, options).unwrap();
        let prompt = random_texts(&mut rng, vocab, 1).remove(0);
        test.exclude_prompt(&prompt).unwrap();
        let excluded: HashSet<Vec<u32>> = prompt.windows(w).map(<[u32]>::to_vec).collect();
        let mut seen = HashSet::new();
        let (mut n, mut score) = (0u64, 0.0f64);
        for text in random_texts(&mut rng, vocab, 12) {
            test.score_text(&text, &[]).unwrap();
            for p in w..text.len() {
                let context = &text[p - w..p];
                if excluded.contains(context) || seen.contains(&(context.to_vec(), text[p])) {
                    continue;
                }
                if budget.is_some_and(|b| n >= b) {
                    continue;
                }
                seen.insert((context.to_vec(), text[p]));
                let u = prf.uniform(&prf.compress(context), text[p]);
                n += 1;
                score += -(-f64::from(u)).ln_1p();
            }
        }
        let r = test.finish();
        let k = &r.keys[0];
        assert_eq!(k.n_scored, n, "round {round}");
        assert!(
            (k.score - score).abs() <= 1e-12 * score.max(1.0),
            "round {round}"
        );
        assert_eq!(k.expected_score, n as f64);
        assert_eq!((k.n_green, k.green_fraction), (0, 0.0));
        if n > 0 {
            let want = poisson_cdf_ln(n, score);
            assert!(
                (k.ln_p_value - want).abs() <= 1e-9 * want.abs().max(1.0),
                "round {round}: {} vs {want}",
                k.ln_p_value
            );
        }
        assert_eq!(r.scheme, "greenmark/gumbel-vllm/v1");
    }
}

/// Calibration: unwatermarked corpora under 200 keys give uniform p-values (KS), and a
/// repetitive suspect makes the test cry wolf without dedup.
#[test]
fn unwatermarked_corpora_give_uniform_gumbel_p_values() {
    let lm = ZipfLm::new(2000, 1.3).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(22);
    let run = |i: u64, texts: &[Vec<u32>], dedup: bool| {
        let options = TestOptions::default().dedup(dedup);
        let mut t =
            RadioactivityTest::gumbel(&[GumbelKey::vllm(i)], width(2), 2000, options).unwrap();
        for text in texts {
            t.score_text(text, &[]).unwrap();
        }
        t.finish().keys[0].ln_p_value.exp()
    };
    let (mut p, mut p_raw) = (Vec::new(), Vec::new());
    for i in 0..200 {
        let texts: Vec<Vec<u32>> = (0..10)
            .map(|_| lm.generate_plain(rng.gen_range(0..2000), 100, &mut rng))
            .collect();
        let repeated = [&texts[..], &texts[..], &texts[..]].concat();
        p.push(run(i, &repeated, true));
        p_raw.push(run(i, &repeated, false));
    }
    let ks = ks_p_value(p.clone());
    assert!(ks > 0.01, "dedup on: KS p {ks}");
    assert!(p.iter().filter(|&&x| x < 0.01).count() <= 8);
    let small = p_raw.iter().filter(|&&x| x < 0.01).count();
    assert!(small > 10, "without dedup only {small}/200 below 0.01");
}

#[test]
fn gumbel_tests_refuse_what_they_cannot_test() {
    let keys = [GumbelKey::vllm(1)];
    let options = TestOptions::default;
    let mut dual = GumbelConfig::new(Algorithm::DualKeyGumbel);
    dual.alpha = 0.3;
    let e = RadioactivityTest::gumbel(&keys, dual, 100, options()).unwrap_err();
    assert!(e.to_string().contains("`gumbel` only"), "{e}");
    let e = RadioactivityTest::gumbel(&keys, width(2), 0, options()).unwrap_err();
    assert!(e.to_string().contains("vocab_size"), "{e}");
    let e = RadioactivityTest::gumbel(&[], width(2), 10, options()).unwrap_err();
    assert!(e.to_string().contains("at least one key"), "{e}");
    let twice = [GumbelKey::vllm(5), GumbelKey::vllm(5)];
    let e = RadioactivityTest::gumbel(&twice, width(2), 10, options()).unwrap_err();
    assert!(e.to_string().contains("twice"), "{e}");
    let mixed = [
        GumbelKey::vllm(5),
        GumbelKey::from_key(&Key::from_bytes([5; 32])),
    ];
    let e = RadioactivityTest::gumbel(&mixed, width(2), 10, options()).unwrap_err();
    assert!(e.to_string().contains("mixed"), "{e}");
    let e = RadioactivityTest::gumbel(&keys, width(0), 10, options()).unwrap_err();
    assert!(e.to_string().contains("context_width"), "{e}");
    let mut t = RadioactivityTest::gumbel(&keys, width(2), 10, options()).unwrap();
    let e = t.score_text(&[1, 2, 10], &[]).unwrap_err();
    assert!(e.to_string().contains("10"), "{e}");
    // The key ids differ between kinds and keys, and say nothing of the key.
    assert_ne!(GumbelKey::vllm(5).id(), GumbelKey::vllm(6).id());
    assert_eq!(t.window(), 2);
    assert!(t.config().is_none());
}
