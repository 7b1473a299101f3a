//! False-positive rate of SynthID detection on real, unwatermarked text with random keys.
//!
//! The text is human-written English (this repository's README and docs), tokenized with the
//! real SmolLM2 tokenizer; each trial takes a random stretch of 50 to 400 tokens, a random
//! config (ngram_len 2 to 5, 1 to 12 distinct random int64 keys, one of four sampling tables)
//! and detects. The keys are the only randomness the null has here (the text is fixed), which
//! is exactly the situation of a detector asked about a text written without its keys; it also
//! exercises transformers' LCG hash, whose g-values are not truly independent draws, against
//! the idealised independent-Bernoulli(`p0`) null the p-values assume.
//!
//! The rejections at level 1e-2 among 7,100 trials must stay at or below the upper bound of
//! Binomial(7,100, 1e-2) (`common/rate.rs`: a correct detector fails with probability at most
//! 1e-6; power 0.99 against a doubled rate, asserted). Exact discrete tests may reject less
//! often than their level; that is allowed (conservative) and printed. On a table of 32 entries
//! with 22 ones (`p0 = 0.69`), testing against 1/2 instead of the table's `p0` is shown to be far
//! off, which is why `p0` is the table's realized fraction.
//! Run with `--nocapture` to see the rates.

#[path = "common/rate.rs"]
mod rate;
#[path = "common/trials.rs"]
mod trials;

use greenmark::stats::{binomial_tail_ln, TailMethod};
use greenmark::synthid::{SynthIdConfig, SynthIdDetector, SynthIdTable};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rate::{RateTest, MIN_POWER};
use trials::trials;

const TOKENIZER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/smollm2-tokenizer.json"
);
const TRIALS: u64 = 7_100;
const LEVEL: f64 = 1e-2;

fn human_tokens() -> Vec<u32> {
    let text = [
        include_str!("../../../README.md"),
        include_str!("../../../docs/statistics.md"),
        include_str!("../../../docs/detection.md"),
        include_str!("../../../docs/radioactivity.md"),
    ]
    .join("\n\n");
    let tokenizer = greenmark::text::load_tokenizer_json(std::path::Path::new(TOKENIZER)).unwrap();
    let ids = tokenizer
        .encode(text.as_str(), false)
        .unwrap()
        .get_ids()
        .to_vec();
    assert!(ids.len() > 10_000, "{}", ids.len());
    ids
}

fn tables() -> Vec<SynthIdTable> {
    [(1usize << 16, 0u64), (1 << 16, 1), (1000, 3), (32, 24)]
        .into_iter()
        .map(|(size, seed)| {
            let mut c = SynthIdConfig::new(2, vec![1]).unwrap();
            c.sampling_table_size = size;
            c.sampling_table_seed = seed;
            SynthIdTable::new(c).unwrap()
        })
        .collect()
}

#[derive(Clone, Copy)]
struct Outcome {
    ln_mean: f64,
    ln_weighted: f64,
    chernoff: bool,
    /// The mean score's p-value against 1/2 instead of p0 (small table only).
    ln_half: Option<f64>,
}

fn trial(ids: &[u32], tables: &[SynthIdTable], rng: &mut ChaCha8Rng) -> Outcome {
    let len = rng.gen_range(50..=400);
    let start = rng.gen_range(0..ids.len() - len);
    let text = &ids[start..start + len];
    let which = rng.gen_range(0..tables.len());
    let depth = rng.gen_range(1..=12);
    let mut keys: Vec<i64> = Vec::new();
    while keys.len() < depth {
        let k: i64 = rng.gen();
        if !keys.contains(&k) {
            keys.push(k);
        }
    }
    let mut config = tables[which].config().clone();
    config.ngram_len = rng.gen_range(2..=5);
    let table = SynthIdTable::new(config).unwrap().with_keys(keys).unwrap();
    let d = SynthIdDetector::from_table(table)
        .unwrap()
        .with_threshold(LEVEL)
        .unwrap()
        .detect(text)
        .unwrap();
    assert_eq!(d.is_watermarked, d.weighted.ln_p_value <= LEVEL.ln());
    let ones: u64 = d.ones_per_depth.iter().sum();
    Outcome {
        ln_mean: d.mean.ln_p_value,
        ln_weighted: d.weighted.ln_p_value,
        chernoff: d.weighted.method == TailMethod::Chernoff,
        ln_half: (which == 3).then(|| binomial_tail_ln(ones, d.n_g_values, 0.5)),
    }
}

#[test]
fn p_values_are_uniform_or_conservative_on_human_text() {
    let ids = human_tokens();
    let tables = tables();
    assert_eq!(tables[3].ones(), 22);
    let test = RateTest::new(TRIALS, LEVEL);
    let power = test.rejects_with(2.0 * LEVEL);
    assert!(power >= MIN_POWER, "power {power}");
    let outcomes: Vec<Outcome> = trials(TRIALS as usize, 2024, |_, rng| trial(&ids, &tables, rng));
    let ln_level = LEVEL.ln();
    let mean = outcomes.iter().filter(|o| o.ln_mean <= ln_level).count() as u64;
    let weighted = outcomes
        .iter()
        .filter(|o| o.ln_weighted <= ln_level)
        .count() as u64;
    let chernoff = outcomes.iter().filter(|o| o.chernoff).count();
    let small: Vec<&Outcome> = outcomes.iter().filter(|o| o.ln_half.is_some()).collect();
    let small_p0 = small.iter().filter(|o| o.ln_mean <= ln_level).count();
    let small_half = small
        .iter()
        .filter(|o| o.ln_half.unwrap() <= ln_level)
        .count();
    eprintln!(
        "{TRIALS} trials at level {LEVEL}: pass range [.., {}] (expected {:.0}, power vs doubled \
         rate {power:.4}); mean score {mean} (rate {:.2e}); weighted {weighted} (rate {:.2e}; \
         {chernoff} trials used the Chernoff bound); 32-entry table (p0 = 22/32): {small_p0}/{} \
         with p0, {small_half} with 1/2",
        test.hi,
        TRIALS as f64 * LEVEL,
        mean as f64 / TRIALS as f64,
        weighted as f64 / TRIALS as f64,
        small.len(),
    );
    assert!(
        mean <= test.hi,
        "mean score: {mean} rejections > {}",
        test.hi
    );
    assert!(
        weighted <= test.hi,
        "weighted: {weighted} rejections > {}",
        test.hi
    );
    // Testing the small table against 1/2 would flag unwatermarked text far above the level.
    let small_test = RateTest::new(small.len() as u64, LEVEL);
    assert!(small_p0 as u64 <= small_test.hi);
    assert!(
        small_half as u64 > small_test.hi,
        "p = 1/2 on a 22/32 table gave only {small_half} of {}",
        small.len()
    );
}
