//! The reduced neural-student experiment that CI runs (the real-model one is
//! `scripts/radioactivity/students.py --students neural`, results in `docs/radioactivity.md`):
//! a synthetic teacher ([`ZipfLm`], V = 512) answers 200 prompts with and without the
//! watermark (gamma 0.25, delta 3, lefthash window 1); a tiny transformer
//! ([`greenmark_experiments::student`]) is trained on each set of answers. The student of the
//! watermarked teacher is detected at p < 1e-6 in closed mode (its sampled text) and in open
//! mode (its top-1 predictions reading watermarked texts), each with a budget of tuples fixed
//! in advance; the control student, trained on the unwatermarked answers to the same prompts,
//! is not detected at p < 1e-2 in either mode.

use greenmark::radioactivity::{RadioactivityTest, TestOptions};
use greenmark::synthetic::ZipfLm;
use greenmark::{Key, Scheme, WatermarkConfig, Watermarker};
use greenmark_experiments::student::{Student, StudentConfig};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const VOCAB: u32 = 512;
/// Tuples scored per closed test, fixed before looking.
const CLOSED_BUDGET: u64 = 2000;
/// Tuples scored per open test: a top-1 prediction depends mostly on the window, so reading
/// yields at most about one distinct tuple per window (V = 512 with window 1).
const OPEN_BUDGET: u64 = 400;

fn student_config() -> StudentConfig {
    let mut c = StudentConfig::default();
    c.base_vocab_size = VOCAB;
    c.context = 64;
    c.mlp = 128;
    c.batch = 8;
    c.epochs = 8;
    c.learning_rate = 1e-2;
    c.seed = 1;
    c
}

struct Outcome {
    closed: f64,
    open: f64,
    first_loss: f32,
    last_loss: f32,
}

fn experiment(
    watermarked: bool,
    lm: &ZipfLm,
    key: &Key,
    config: &WatermarkConfig,
    rng: &mut ChaCha8Rng,
) -> Outcome {
    let wm = Watermarker::new(key, config.clone());
    let prompts: Vec<Vec<u32>> = (0..200)
        .map(|_| (0..4).map(|_| rng.gen_range(0..VOCAB)).collect())
        .collect();
    let answers: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| lm.generate(p, 60, watermarked.then_some(&wm), rng).unwrap())
        .collect();
    let mut losses = Vec::new();
    let student =
        Student::train(&answers, &student_config(), &mut |p| losses.push(p.loss)).unwrap();

    // Closed: the student's own text. It writes from the text boundary, never from a
    // prompt, so no prompt window needs excluding (with V = 512 the teacher's 1,200 prompt
    // windows would cover nearly every window anyway).
    let options = TestOptions::default().max_tuples(CLOSED_BUDGET);
    let mut closed =
        RadioactivityTest::new(std::slice::from_ref(key), config.clone(), options).unwrap();
    for text in student.generate(300, 60, 1.0, 7).unwrap() {
        closed.score_text(&text, &[]).unwrap();
    }
    // Open: its top-1 predictions while reading fresh watermarked texts of the teacher.
    let options = TestOptions::default().max_tuples(OPEN_BUDGET);
    let mut open =
        RadioactivityTest::new(std::slice::from_ref(key), config.clone(), options).unwrap();
    for _ in 0..150 {
        let prompt: Vec<u32> = (0..4).map(|_| rng.gen_range(0..VOCAB)).collect();
        let text = lm.generate(&prompt, 60, Some(&wm), rng).unwrap();
        let predictions = student.top1_predictions(&text).unwrap();
        open.score_predictions(&text, &predictions).unwrap();
    }
    let (c, o) = (closed.finish(), open.finish());
    assert_eq!(
        c.keys[0].n_scored, CLOSED_BUDGET,
        "closed mode fills its budget"
    );
    assert_eq!(
        o.keys[0].n_scored, OPEN_BUDGET,
        "open mode fills its budget"
    );
    let n = losses.len();
    Outcome {
        closed: c.log10_p_value,
        open: o.log10_p_value,
        first_loss: losses[0],
        last_loss: losses[n - 10..].iter().sum::<f32>() / 10.0,
    }
}

#[test]
fn a_neural_student_of_the_watermarked_teacher_is_detected_and_its_control_is_not() {
    let lm = ZipfLm::new(VOCAB, 1.1).unwrap();
    let key = Key::from_bytes([0x6b; 32]);
    let config = WatermarkConfig::builder(u64::from(VOCAB))
        .gamma(0.25)
        .delta(3.0)
        .scheme(Scheme::LeftHash { window: 1 })
        .build()
        .unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let hot = experiment(true, &lm, &key, &config, &mut rng);
    let control = experiment(false, &lm, &key, &config, &mut rng);
    eprintln!(
        "radioactive: closed log10 p {:.1}, open {:.1} (loss {:.2} -> {:.2}); \
         control: closed {:.2}, open {:.2} (loss {:.2} -> {:.2})",
        hot.closed,
        hot.open,
        hot.first_loss,
        hot.last_loss,
        control.closed,
        control.open,
        control.first_loss,
        control.last_loss
    );
    // The students learned something beyond the unigram distribution: the teacher's
    // next-token entropy is ln-uniform 6.24 nats at the start, the Zipf model's 4.5 at best.
    assert!(hot.last_loss < hot.first_loss - 1.0 && control.last_loss < control.first_loss - 1.0);
    assert!(
        hot.closed < -6.0,
        "radioactive student, closed: {}",
        hot.closed
    );
    assert!(hot.open < -6.0, "radioactive student, open: {}", hot.open);
    assert!(control.closed > -2.0, "control, closed: {}", control.closed);
    assert!(control.open > -2.0, "control, open: {}", control.open);
}
