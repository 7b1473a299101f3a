//! The reduced radioactivity experiment that CI runs (the real-model one is
//! `scripts/radioactivity/`, results in `docs/radioactivity.md`): a synthetic teacher
//! ([`ZipfLm`]) answers prompts with and without the watermark (gamma 0.25, delta 3, lefthash
//! window 1 and 2); token n-gram students are trained only on its answers. Students of the
//! watermarked teacher are detected at p < 1e-6 in closed mode (their generated text) and
//! open mode (their top-1 predictions on the teacher's texts); control students, trained on
//! the unwatermarked answers to the same prompts, are not (p > 1e-2). The same holds for a
//! teacher watermarked with vLLM's Gumbel scheme (context width 1 and 2), tested on the
//! Gumbel tape (the pooled `Gamma(n, 1)` tail).

use std::collections::HashMap;

use greenmark::gumbel::{GumbelConfig, GumbelKey, GumbelWatermarker};
use greenmark::radioactivity::{RadioactivityTest, TestOptions};
use greenmark::synthetic::{self, ZipfLm};
use greenmark::{Key, Scheme, WatermarkConfig, Watermarker};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: u32 = 3000;
const BUDGET: u64 = 4000;
const GUMBEL_BUDGET: u64 = 1000;

/// A count-based n-gram model of order `n` (context of `n - 1` tokens), backing off to the
/// unigram counts for contexts never seen.
struct NGram {
    n: usize,
    next: HashMap<Vec<u32>, HashMap<u32, u32>>,
    unigram: Vec<u32>,
}

impl NGram {
    fn train(n: usize, texts: &[Vec<u32>]) -> NGram {
        let mut next: HashMap<Vec<u32>, HashMap<u32, u32>> = HashMap::new();
        let mut unigram = Vec::new();
        for t in texts {
            unigram.extend_from_slice(t);
            for w in t.windows(n) {
                *next
                    .entry(w[..n - 1].to_vec())
                    .or_default()
                    .entry(w[n - 1])
                    .or_default() += 1;
            }
        }
        NGram { n, next, unigram }
    }

    fn sample(&self, context: &[u32], rng: &mut impl Rng) -> u32 {
        let ctx = &context[context.len() + 1 - self.n..];
        match self.next.get(ctx) {
            Some(counts) => {
                let mut items: Vec<(u32, u32)> = counts.iter().map(|(&t, &c)| (t, c)).collect();
                items.sort_unstable();
                let total: u32 = items.iter().map(|x| x.1).sum();
                let mut u = rng.gen_range(0..total);
                for (t, c) in items {
                    if u < c {
                        return t;
                    }
                    u -= c;
                }
                unreachable!()
            }
            None => self.unigram[rng.gen_range(0..self.unigram.len())],
        }
    }

    fn generate(&self, start: &[u32], len: usize, rng: &mut impl Rng) -> Vec<u32> {
        let mut out = start.to_vec();
        for _ in 0..len {
            let t = self.sample(&out, rng);
            out.push(t);
        }
        out.split_off(start.len())
    }

    /// The most frequent continuation (smallest id on ties), or the most frequent token.
    fn top1(&self, context: &[u32]) -> u32 {
        let best = |counts: &HashMap<u32, u32>| {
            counts
                .iter()
                .max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0)))
                .map(|(&t, _)| t)
                .unwrap()
        };
        if context.len() + 1 >= self.n {
            if let Some(counts) = self.next.get(&context[context.len() + 1 - self.n..]) {
                return best(counts);
            }
        }
        0
    }
}

struct Outcome {
    closed: f64,
    open: f64,
}

/// The teacher's 300 prompts of 4 random tokens.
fn random_prompts(rng: &mut ChaCha8Rng) -> Vec<Vec<u32>> {
    (0..300)
        .map(|_| (0..4).map(|_| rng.gen_range(0..VOCAB)).collect())
        .collect()
}

/// Trains a student of order `window + 1` on the teacher's answers and tests it.
fn student(
    window: usize,
    watermarked: bool,
    lm: &ZipfLm,
    key: &Key,
    config: &WatermarkConfig,
    rng: &mut ChaCha8Rng,
) -> Outcome {
    let wm = Watermarker::new(key, config.clone());
    let prompts = random_prompts(rng);
    let answers: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            lm.generate(p, 120, watermarked.then_some(&wm), rng)
                .unwrap()
        })
        .collect();
    let model = NGram::train(window + 1, &answers);
    let options = TestOptions::default().max_tuples(BUDGET);

    // Closed: the student's own text, with the prompts' windows excluded.
    let mut closed =
        RadioactivityTest::new(std::slice::from_ref(key), config.clone(), options.clone()).unwrap();
    for p in &prompts {
        closed.exclude_prompt(p).unwrap();
    }
    for p in prompts.iter().cycle().take(600) {
        let text = model.generate(p, 60, rng);
        closed.score_text(&text, p).unwrap();
    }
    // Open: the student's top-1 predictions while reading the watermarked teacher's texts.
    let mut open =
        RadioactivityTest::new(std::slice::from_ref(key), config.clone(), options).unwrap();
    let wm_texts: Vec<Vec<u32>> = prompts
        .iter()
        .take(100)
        .map(|p| lm.generate(p, 120, Some(&wm), rng).unwrap())
        .collect();
    for t in &wm_texts {
        let preds: Vec<u32> = (0..t.len()).map(|j| model.top1(&t[..=j])).collect();
        open.score_predictions(t, &preds).unwrap();
    }
    let (c, o) = (closed.finish(), open.finish());
    assert_eq!(c.keys[0].n_scored, BUDGET, "closed mode fills its budget");
    assert!(!c.exploratory && !o.exploratory);
    Outcome {
        closed: c.log10_p_value,
        open: o.log10_p_value,
    }
}

#[test]
fn radioactive_students_are_detected_and_controls_are_not() {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    let key = Key::from_bytes([0x5a; 32]);
    for window in [1usize, 2] {
        let config = WatermarkConfig::builder(u64::from(VOCAB))
            .gamma(0.25)
            .delta(3.0)
            .scheme(Scheme::LeftHash { window })
            .build()
            .unwrap();
        let mut rng = ChaCha8Rng::seed_from_u64(window as u64);
        let hot = student(window, true, &lm, &key, &config, &mut rng);
        let control = student(window, false, &lm, &key, &config, &mut rng);
        eprintln!(
            "window {window}: radioactive closed {:.1} open {:.1}; control closed {:.2} open {:.2}",
            hot.closed, hot.open, control.closed, control.open
        );
        assert!(hot.closed < -6.0, "window {window} closed: {}", hot.closed);
        assert!(hot.open < -6.0, "window {window} open: {}", hot.open);
        assert!(
            control.closed > -2.0,
            "window {window} control closed: {}",
            control.closed
        );
        assert!(
            control.open > -2.0,
            "window {window} control open: {}",
            control.open
        );
    }
}

/// The teacher's answer with vLLM's Gumbel rule (generation dedup `single_turn`: a repeated
/// context is sampled normally).
fn gumbel_answer(
    lm: &ZipfLm,
    wm: &GumbelWatermarker,
    prompt: &[u32],
    n: usize,
    rng: &mut ChaCha8Rng,
) -> Vec<u32> {
    let mut context = prompt.to_vec();
    let mut request = wm.request(prompt);
    let mut logits = vec![0.0f32; VOCAB as usize];
    let mut probs = vec![0.0f64; VOCAB as usize];
    for _ in 0..n {
        lm.logits(&context, &mut logits);
        let t = request
            .next(&logits, 0.0, |l| synthetic::sample(l, &mut probs, rng))
            .unwrap();
        context.push(t);
    }
    request.generated().to_vec()
}

/// Students of a Gumbel-watermarked teacher (order `width + 1`), closed mode on their text.
fn gumbel_student(width: usize, watermarked: bool, lm: &ZipfLm, rng: &mut ChaCha8Rng) -> f64 {
    let key = GumbelKey::vllm(0x5eed);
    let mut config = GumbelConfig::default();
    config.context_width = width;
    let wm = GumbelWatermarker::new(key, config).unwrap();
    let prompts = random_prompts(rng);
    let answers: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| {
            if watermarked {
                gumbel_answer(lm, &wm, p, 120, rng)
            } else {
                lm.generate(p, 120, None, rng).unwrap()
            }
        })
        .collect();
    let model = NGram::train(width + 1, &answers);
    // A Gumbel teacher repeats itself across answers (the same context gives the same
    // watermarked token in every answer), so its window-1 students write fewer distinct
    // tuples.
    let budget = if width == 1 { GUMBEL_BUDGET } else { BUDGET };
    let options = TestOptions::default().max_tuples(budget);
    let mut test = RadioactivityTest::gumbel(&[key], config, VOCAB, options).unwrap();
    for p in &prompts {
        test.exclude_prompt(p).unwrap();
    }
    for p in prompts.iter().cycle().take(600) {
        let text = model.generate(p, 60, rng);
        test.score_text(&text, p).unwrap();
    }
    let r = test.finish();
    assert_eq!(r.keys[0].n_scored, budget, "the student fills its budget");
    r.log10_p_value
}

#[test]
fn gumbel_students_are_detected_and_controls_are_not() {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    for width in [1usize, 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(10 + width as u64);
        let hot = gumbel_student(width, true, &lm, &mut rng);
        let control = gumbel_student(width, false, &lm, &mut rng);
        eprintln!("gumbel width {width}: radioactive closed {hot:.1}; control closed {control:.2}");
        assert!(hot < -6.0, "width {width}: {hot}");
        assert!(control > -2.0, "width {width} control: {control}");
    }
}
