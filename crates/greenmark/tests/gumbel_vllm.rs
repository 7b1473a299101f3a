//! vLLM 0.33 / 0.34 compatibility of the Gumbel family: every case of vLLM's own known answers
//! (`tests/vectors/vllm-watermarking-goldens.json`) reproduces — generated tokens exact on
//! vLLM's synthetic fixture logits, scored counts exact, score and p-value within rtol 1e-9 —
//! plus the Philox PRF vectors, and the log-space gamma tail against an independent
//! computation where vLLM's float p-value underflows to 0.

use greenmark::gumbel::{
    argmax, philox::PhiloxPrf, Algorithm, ContextDedup, GumbelConfig, GumbelDetector, GumbelKey,
    GumbelWatermarker, PartialContexts, PAD,
};
use proptest::prelude::*;
use serde_json::Value;

const PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/vectors/vllm-watermarking-goldens.json"
);

fn goldens() -> Value {
    let text = std::fs::read_to_string(PATH).expect("read the goldens");
    serde_json::from_str(&text).expect("goldens are JSON")
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|t| t.as_u64().expect("id") as u32)
        .collect()
}

/// vLLM's fixture: `f32((((t*37 + pos*17) % 131) - 56 + bias) / 16)`, the bias on the
/// dominant token only.
fn fixture_logits(vocab: u32, pos: u32, dominant: Option<u32>, bias: f64) -> Vec<f32> {
    (0..vocab)
        .map(|t| {
            let bias = if Some(t) == dominant { bias } else { 0.0 };
            ((f64::from((t * 37 + pos * 17) % 131) - 56.0 + bias) / 16.0) as f32
        })
        .collect()
}

fn config(case: &Value, alpha_field: &str) -> GumbelConfig {
    let algorithm = match case["scheme"].as_str().unwrap() {
        "gumbel" => Algorithm::Gumbel,
        "dual_key_gumbel" => Algorithm::DualKeyGumbel,
        other => panic!("unknown scheme {other}"),
    };
    let mut config = GumbelConfig::new(algorithm);
    config.alpha = case[alpha_field].as_f64().unwrap();
    config.context_width = case["context_width"].as_u64().unwrap() as usize;
    config.dedup = match case["gen_dedup"].as_str().unwrap() {
        "none" => ContextDedup::None,
        "single_turn" => ContextDedup::SingleTurn,
        "all" => ContextDedup::All,
        other => panic!("unknown dedup {other}"),
    };
    config.max_history = case["max_history"].as_u64().map(|h| h as usize);
    // vLLM's goldens are written by its CPU reference path, which watermarks the first
    // positions as vLLM 0.33 served them (0.34's server skips them).
    config.partial_contexts = PartialContexts::Watermark;
    config
}

fn assert_close(what: &str, got: f64, want: f64) {
    let rel = ((got - want) / want).abs();
    assert!(
        rel <= 1e-9,
        "{what}: got {got:e}, want {want:e} (rel {rel:e})"
    );
}

#[test]
fn prf_vectors_key42() {
    let g = goldens();
    let prf = PhiloxPrf::new(42);
    let vectors = g["prf_vectors_key42"].as_array().unwrap();
    assert_eq!(vectors.len(), 4);
    for v in vectors {
        let context = ids(&v["context"]);
        let token = v["token"].as_u64().unwrap() as u32;
        let word = v["word"].as_u64().unwrap() as u32;
        assert_eq!(prf.word(&prf.compress(&context), token), word, "{v}");
    }
}

#[test]
fn all_golden_cases_reproduce() {
    let g = goldens();
    let routing: Vec<f32> = g["extra"]["ROUTING"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_f64().unwrap() as f32)
        .collect();
    let cases = g["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 23);
    let mut wrong_key_cases = 0;
    for case in cases {
        let id = case["id"].as_str().unwrap();
        let vocab = case["vocab_size"].as_u64().unwrap() as u32;
        let steps = case["n_steps"].as_u64().unwrap() as u32;
        let dominant = case["dominant_token"].as_u64().map(|t| t as u32);
        let bias = case["dominant_bias"].as_f64().unwrap();
        let prompt = ids(&case["prompt"]);
        let want = ids(&case["generated"]);

        // Generation on the fixture logits; positions skipped by dedup take the plain argmax.
        let key = GumbelKey::vllm(case["key"].as_u64().unwrap());
        let wm = GumbelWatermarker::new(key, config(case, "gen_alpha")).unwrap();
        let mut request = wm.request(&prompt);
        for pos in 0..steps {
            let logits = fixture_logits(vocab, pos, dominant, bias);
            let u = routing[pos as usize % routing.len()];
            request.next(&logits, u, argmax).unwrap();
        }
        assert_eq!(request.generated(), &want[..], "{id}: generated tokens");

        // Detection on the golden tokens.
        let det_key = GumbelKey::vllm(case["det_key"].as_u64().unwrap());
        let detector = GumbelDetector::new(det_key, config(case, "det_alpha"))
            .unwrap()
            .with_dedup(case["det_dedup"].as_bool().unwrap())
            .with_threshold(case["threshold"].as_f64().unwrap())
            .unwrap();
        let d = detector.detect(&want).unwrap();
        assert_eq!(
            d.n_scored,
            case["n_scored"].as_u64().unwrap(),
            "{id}: n_scored"
        );
        assert_close(
            &format!("{id}: score"),
            d.score,
            case["score"].as_f64().unwrap(),
        );
        let p = case["p_value"].as_f64().unwrap();
        assert_close(&format!("{id}: p_value"), d.p_value, p);
        assert!(
            (d.ln_p_value - p.ln()).abs() <= 1e-9 * p.ln().abs().max(1.0),
            "{id}"
        );
        assert!(
            d.ln_p_value_bound >= d.ln_p_value - 1e-12,
            "{id}: bound below p"
        );
        // vLLM's verdict is its p-value against the threshold: greenmark's `p_value` gives
        // the same verdict. greenmark's own verdict is on the exact-or-conservative p-value,
        // the same thing whenever the p-value is exact.
        let threshold = case["threshold"].as_f64().unwrap();
        assert_eq!(
            d.p_value <= threshold,
            p <= threshold,
            "{id}: vLLM's verdict"
        );
        assert_eq!(
            d.is_watermarked,
            d.ln_p_value_bound.exp() <= threshold,
            "{id}: verdict"
        );
        if d.exact {
            assert_eq!(d.is_watermarked, p <= threshold, "{id}: exact verdict");
        }
        if case["key"] != case["det_key"] {
            wrong_key_cases += 1;
            assert!(
                d.p_value > 0.05,
                "{id}: a wrong key must not be significant"
            );
        }
    }
    assert_eq!(wrong_key_cases, 1);
}

/// The generation contexts are the generated tokens, `-1`-padded: the first position of a
/// request uses the all-pad context whatever the prompt.
#[test]
fn first_context_is_all_padding() {
    let wm = GumbelWatermarker::new(GumbelKey::vllm(42), GumbelConfig::default()).unwrap();
    let request = wm.request(&[5, 6, 7, 8, 9]);
    assert_eq!(request.context(), vec![PAD; 4]);
}

/// `ln Q(n, x)` for integer `n` by vLLM's own formula, `e^{-x} Σ_{k<n} x^k / k!`, summed in log
/// space with log-sum-exp: an independent algorithm from the continued fraction / series in
/// `greenmark::stats`.
fn vllm_formula_ln(n: u64, x: f64) -> f64 {
    let ln_x = x.ln();
    let mut terms = Vec::with_capacity(n as usize);
    let mut term = 0.0;
    terms.push(term);
    for k in 1..n {
        term += ln_x - (k as f64).ln();
        terms.push(term);
    }
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    -x + max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

#[test]
fn log_p_is_finite_where_vllms_float_underflows() {
    // 64 tokens with S = 1000: vLLM's exp(-S + log_sum) is 0.0 in f64.
    let det = GumbelDetector::new(GumbelKey::vllm(1), GumbelConfig::default()).unwrap();
    let d = det.summarize(64, 64, 1000.0);
    assert_eq!(d.p_value, 0.0);
    let want = vllm_formula_ln(64, 1000.0);
    assert!(want < -700.0);
    assert!((d.ln_p_value - want).abs() < 1e-10 * want.abs());
    assert!((d.log10_p_value - want / std::f64::consts::LN_10).abs() < 1e-9);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    /// The detector's Gamma(n, 1) tail equals the independent log-sum-exp sum, deep into
    /// the region where a float p-value is 0.
    #[test]
    fn gamma_tail_matches_the_log_sum_exp_formula(n in 1u64..3000, ratio in 0.05f64..6.0) {
        let x = (n as f64) * ratio + 1.0;
        let det = GumbelDetector::new(GumbelKey::vllm(1), GumbelConfig::default()).unwrap();
        let got = det.summarize(n as usize, n, x).ln_p_value;
        let want = vllm_formula_ln(n, x);
        // Below the mean the sum is near 1: compare p there, ln p in the tail.
        let tolerance = 1e-11 * want.abs().max(1.0) + 1e-13 * n as f64;
        prop_assert!((got - want).abs() <= tolerance, "n={} x={}: {} vs {}", n, x, got, want);
    }
}

/// The batch API gives what one call per sequence gives.
#[test]
fn detect_batch_matches_detect() {
    let g = goldens();
    let texts: Vec<Vec<u32>> = g["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| ids(&c["generated"]))
        .collect();
    let det = GumbelDetector::new(GumbelKey::vllm(42), GumbelConfig::default()).unwrap();
    let batch = det.detect_batch(&texts).unwrap();
    for (t, d) in texts.iter().zip(batch) {
        assert_eq!(d, det.detect(t).unwrap());
    }
}

/// Bad configs are typed errors that name the field and the allowed range.
#[test]
fn bad_configs_say_what_to_fix() {
    use greenmark::gumbel::VllmWatermarkConfig;
    for (json, needle) in [
        (r#"{"key": 18446744073709551616}"#, "key must be an integer"),
        (r#"{"key": 1.5}"#, "key must be an integer"),
        (r#"{}"#, "key is missing"),
        (r#"{"key": 1, "algorithm": "sbw"}"#, "sbw"),
        (r#"{"key": 1, "algorithm": "kgw"}"#, "algorithm must be"),
        (
            r#"{"key": 1, "alpha": -0.1}"#,
            "alpha must be a number from 0 to 1",
        ),
        (
            r#"{"key": 1, "context_width": 0}"#,
            "context_width must be an integer from 1 to 1024",
        ),
        (
            r#"{"key": 1, "context_width": 5000}"#,
            "context_width must be an integer from 1 to 1024",
        ),
        (
            r#"{"key": 1, "deduplicate_contexts": "sometimes"}"#,
            "deduplicate_contexts must be",
        ),
        (
            r#"{"key": 1, "deduplicate_contexts_max_history": 0}"#,
            "max_history",
        ),
        (r#"{"key": 1, "prf": "hmac"}"#, "prf must be"),
        (r#"{"key": 1, "colour": "green"}"#, "unknown field `colour`"),
        (r#"{"key": 1, "enforce": "yes"}"#, "enforce"),
    ] {
        let e = VllmWatermarkConfig::from_json(json)
            .unwrap_err()
            .to_string();
        assert!(e.contains(needle), "{json}: {e}");
    }
    let ok = VllmWatermarkConfig::from_json(
        r#"{"key": 18446744073709551615, "context_width": null,
            "deduplicate_contexts_max_history": null, "allow_target_only_watermarking": true}"#,
    )
    .unwrap();
    assert_eq!(ok.config.context_width, 4);
    assert_eq!(ok.config.max_history, None);
    // vLLM 0.34's config, as its docs write it: `enforce` is a server setting, read and unused.
    let v034 = VllmWatermarkConfig::from_json(
        r#"{"key": 7, "algorithm": "gumbel", "context_width": 4, "enforce": true,
            "deduplicate_contexts": "single_turn", "deduplicate_contexts_max_history": 8192}"#,
    )
    .unwrap();
    assert_eq!(v034.config, GumbelConfig::default());
    assert_eq!(v034.config.partial_contexts, PartialContexts::Skip);
    let mut config = GumbelConfig::default();
    config.max_history = Some(0);
    assert!(GumbelWatermarker::new(GumbelKey::vllm(1), config).is_err());
    let det = GumbelDetector::new(GumbelKey::vllm(1), GumbelConfig::default()).unwrap();
    assert!(det
        .detect(&[1, u32::MAX])
        .unwrap_err()
        .to_string()
        .contains("reserved"));
    assert!(det.clone().with_threshold(0.0).is_err());
}

/// Per-token annotations (one `log1p` a token) sum to the detection's score (one log per
/// group of 8, the fast path), and mark exactly the scored positions.
#[test]
fn annotations_sum_to_the_score() {
    let g = goldens();
    for case in g["cases"].as_array().unwrap() {
        let tokens = ids(&case["generated"]);
        let key = GumbelKey::vllm(case["det_key"].as_u64().unwrap());
        let det = GumbelDetector::new(key, config(case, "det_alpha"))
            .unwrap()
            .with_dedup(case["det_dedup"].as_bool().unwrap());
        let (d, scores) = det.annotate(&tokens).unwrap();
        let fast = det.detect(&tokens).unwrap();
        assert_eq!(d.n_scored, fast.n_scored);
        // The two summations round differently, by a few ulps.
        assert!(
            (d.score - fast.score).abs() <= 1e-13 * d.score,
            "{}",
            case["id"]
        );
        let scored: Vec<f64> = scores.iter().flatten().copied().collect();
        assert_eq!(scored.len() as u64, d.n_scored);
        let sum: f64 = scored.iter().sum();
        assert!(
            (sum - d.score).abs() <= 1e-12 * d.score,
            "{}: {sum} vs {}",
            case["id"],
            d.score
        );
    }
}
