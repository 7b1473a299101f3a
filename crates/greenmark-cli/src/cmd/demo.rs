//! `greenmark demo`: the whole job on the embedded model. Fetch it, generate watermarked and
//! plain answers to built-in prompts, detect every answer through the text path (decode, then
//! re-tokenize and score as a stranger holding only the text would), print a table and write
//! the HTML report.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use greenmark::text::{TextAnnotation, TextDetector};
use greenmark::{Key, WatermarkConfig, Watermarker};
use greenmark_lm::{GenerateOptions, GenerateTimings, Generation, Request};
use sha2::{Digest, Sha256};

use super::load_model;
use crate::progress;
use crate::report::{render_report, Report, Section};
use crate::table::{format_threshold, truncate, Align, Table};
use crate::verdict::Facts;

/// What the demo key is derived from. The key is public: anyone can derive it.
const DEMO_KEY_LABEL: &str = "greenmark demo key v1 (public; never use it to protect real text)";

/// The verdict threshold of the demo.
const THRESHOLD: f64 = crate::table::DEFAULT_THRESHOLD;

/// The built-in prompts: open questions that ask for a few paragraphs. Each is 10 tokens
/// (40 with the chat template) for the default model's tokenizer, so that every answer runs in
/// one batch: candle's quantized llama has no padding mask, so only prompts of one length
/// share a forward pass (see `Lm::generate`). A test pins the lengths.
const PROMPTS: [&str; 10] = [
    "Why is the sky blue? Explain it simply.",
    "Write a short story about a lonely lighthouse keeper.",
    "What are the main causes of the French Revolution?",
    "Give me some advice for my first job interview.",
    "Describe how a bicycle works, part by part.",
    "What is photosynthesis, and why does it matter?",
    "Describe a trip to the mountains in a letter.",
    "What should I think about before adopting a dog?",
    "How do vaccines teach the immune system to fight?",
    "Describe a busy morning market in a small town.",
];

/// The most answers generated together (one forward pass per step for all of them).
///
/// Performance notes (`cargo run --release -p greenmark-lm --example batch_speed`, 2 cores):
/// a decode step costs far less than linearly more per extra row, because each step reads
/// all the weights once whatever the batch; measured per-token step times are in the
/// commit that set this. Batching every watermarked and plain answer of the default demo
/// (20 rows) in one batch is what brings `make demo` under 3 minutes on 2 cores.
const MAX_BATCH: usize = 20;

/// Arguments of `greenmark demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the HTML report.
    #[arg(
        short = 'o',
        long = "output",
        alias = "out",
        default_value = "greenmark-report.html",
        value_name = "OUT.html"
    )]
    out: PathBuf,
    /// Answers of each kind (watermarked and plain); the 10 built-in prompts are reused beyond 10.
    #[arg(long, default_value_t = 10)]
    answers: usize,
    /// Most new tokens per answer.
    #[arg(long, default_value_t = 200)]
    max_new_tokens: usize,
    /// Sampler seed (the same seed gives the same answers).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// A llama-architecture GGUF model instead of the embedded default.
    #[arg(long, value_name = "FILE.gguf")]
    model: Option<PathBuf>,
}

/// The fixed demo key: SHA-256 of a public label.
pub fn demo_key() -> Key {
    Key::from_bytes(Sha256::digest(DEMO_KEY_LABEL.as_bytes()).into())
}

/// One answer and its detection.
struct Row {
    kind: &'static str,
    index: usize,
    prompt: &'static str,
    generation: Generation,
    annotation: TextAnnotation,
}

/// Runs `greenmark demo`.
pub fn run(args: Args) -> Result<()> {
    if args.answers == 0 {
        bail!("--answers must be at least 1");
    }
    let (path, mut lm) = load_model(args.model.as_ref())?;
    let key = demo_key();
    let config = WatermarkConfig::new(u64::from(lm.vocab_size()))?;
    let watermarker = Watermarker::new(&key, config.clone());
    println!("model     {} (vocab {})", path.display(), lm.vocab_size());
    println!(
        "key       {} — the fixed DEMO key, derived from a public label: anyone can detect or \
         forge this watermark; make your own with `greenmark keygen`",
        key.id()
    );
    println!(
        "watermark {}  gamma {}  delta {}",
        config.scheme().id(),
        config.gamma(),
        config.delta()
    );
    println!(
        "sampling  temperature 1, {} new tokens per answer (end of turn masked until then), \
         seed {}; {} watermarked and {} plain answers",
        args.max_new_tokens, args.seed, args.answers, args.answers
    );

    let prompts: Vec<&'static str> = (0..args.answers)
        .map(|i| PROMPTS[i % PROMPTS.len()])
        .collect();
    let ids: Vec<Vec<u32>> = prompts
        .iter()
        .map(|p| lm.chat_prompt(p))
        .collect::<Result<_, _>>()?;
    // Every answer runs to max_new_tokens: the end-of-turn token is masked until then, so
    // each detection sees the same number of tokens.
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.max_new_tokens,
        seed: args.seed,
        max_batch: MAX_BATCH,
        ..GenerateOptions::default()
    };
    // Watermarked and plain answers share batches (one forward pass per step for all rows
    // whose prompts have one length).
    let requests: Vec<Request<'_>> = ids
        .iter()
        .flat_map(|p| {
            [
                Request::new(p.clone(), Some(&watermarker)),
                Request::new(p.clone(), None),
            ]
        })
        .collect();
    let total = 2 * args.answers as u64 * args.max_new_tokens as u64;
    let bar = progress::bar(total, "generating", "tokens");
    let start = Instant::now();
    let (answers, timings) = lm.generate(&requests, &options, &mut |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let elapsed = start.elapsed();
    let generated: usize = answers.iter().map(|g| g.tokens.len()).sum();
    let mut answers = answers.into_iter();
    let (mut marked, mut plain) = (Vec::new(), Vec::new());
    while let (Some(m), Some(p)) = (answers.next(), answers.next()) {
        marked.push(m);
        plain.push(p);
    }

    // Detection sees only the text: decode, re-tokenize, score.
    let detector = TextDetector::new(lm.tokenizer().clone(), &key, config.clone())?;
    let mut rows = Vec::with_capacity(2 * args.answers);
    for (i, (m, p)) in marked.into_iter().zip(plain).enumerate() {
        for (kind, generation) in [("watermarked", m), ("plain", p)] {
            if generation.text.trim().is_empty() {
                println!(
                    "note: the {kind} answer to prompt {} is empty; it is left out",
                    i + 1
                );
                continue;
            }
            let annotation = detector
                .annotate(&generation.text)
                .with_context(|| format!("cannot detect the {kind} answer to prompt {}", i + 1))?;
            rows.push(Row {
                kind,
                index: i,
                prompt: prompts[i],
                generation,
                annotation,
            });
        }
    }

    println!(
        "generated {generated} tokens in {:.1} s ({:.1} tokens/s); {}",
        elapsed.as_secs_f64(),
        generated as f64 / elapsed.as_secs_f64().max(1e-9),
        watermark_cost(&timings, &batch_sizes(&ids, 2, MAX_BATCH))
    );
    println!();
    let mut table = Table::new(&[
        ("kind", Align::Left),
        ("prompt", Align::Left),
        ("tokens", Align::Right),
        ("scored", Align::Right),
        ("green", Align::Right),
        ("z", Align::Right),
        ("log10 p", Align::Right),
        (
            &*format!("verdict (p < {})", format_threshold(THRESHOLD)),
            Align::Left,
        ),
    ]);
    for row in &rows {
        let d = &row.annotation.detection;
        table.row(vec![
            row.kind.to_string(),
            truncate(row.prompt, 32),
            row.generation.tokens.len().to_string(),
            d.n_scored.to_string(),
            format!("{:.3}", d.green_fraction),
            format!("{:.2}", d.z_score),
            format!("{:.2}", d.log10_p_value),
            Facts::of(d, THRESHOLD, config.delta()).short(),
        ]);
    }
    print!("{}", table.render());
    println!();
    for kind in ["watermarked", "plain"] {
        let of_kind: Vec<&Row> = rows.iter().filter(|r| r.kind == kind).collect();
        let found = of_kind
            .iter()
            .filter(|r| r.annotation.detection.is_significant(THRESHOLD))
            .count();
        let mut log10s: Vec<f64> = of_kind
            .iter()
            .map(|r| r.annotation.detection.log10_p_value)
            .collect();
        log10s.sort_by(f64::total_cmp);
        let median = log10s.get(log10s.len() / 2).copied().unwrap_or(0.0);
        println!(
            "{kind:<11}  {found}/{} detected at p < {}; log10 p from {:.2} to {:.2} (median {:.2})",
            of_kind.len(),
            format_threshold(THRESHOLD),
            log10s.first().copied().unwrap_or(0.0),
            log10s.last().copied().unwrap_or(0.0),
            median
        );
    }

    let html = render_report(&Report {
        title: "greenmark demo".into(),
        config: &config,
        threshold: THRESHOLD,
        notes: vec![
            format!(
                "Generated by the embedded model {} at temperature 1 (seed {}), {} new \
                 tokens per answer (end of turn masked until then). Each answer was detected \
                 from its text alone: decoded, normalized, re-tokenized and scored.",
                path.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                args.seed,
                args.max_new_tokens
            ),
            format!(
                "Key {} is the fixed demo key, derived from a public label: anyone can detect \
                 or forge this watermark. Make your own key with `greenmark keygen`.",
                key.id()
            ),
        ],
        sections: rows
            .iter()
            .map(|row| Section {
                title: format!("{} answer {}", row.kind, row.index + 1),
                subtitle: Some(format!("Prompt: {}", row.prompt)),
                annotation: &row.annotation,
                whole: None,
            })
            .collect(),
    });
    std::fs::write(&args.out, html)
        .with_context(|| format!("cannot write the report to {}", args.out.display()))?;
    let shown = std::fs::canonicalize(&args.out).unwrap_or_else(|_| args.out.clone());
    println!("report    {}", shown.display());
    Ok(())
}

/// The batches `Lm::generate` runs for `prompts`, each asked `copies` times: one per prompt
/// length, cut at `max_batch` rows.
fn batch_sizes(prompts: &[Vec<u32>], copies: usize, max_batch: usize) -> Vec<usize> {
    let mut per_length = std::collections::BTreeMap::<usize, usize>::new();
    for p in prompts {
        *per_length.entry(p.len()).or_default() += copies;
    }
    let mut sizes = Vec::new();
    for rows in per_length.into_values() {
        sizes.extend(std::iter::repeat_n(max_batch, rows / max_batch));
        if rows % max_batch > 0 {
            sizes.push(rows % max_batch);
        }
    }
    sizes
}

/// The decode step's time and the watermark's share of it, measured in the run; `batches`
/// are the batch sizes that ran.
fn watermark_cost(t: &GenerateTimings, batches: &[usize]) -> String {
    let steps = t.steps.max(1) as f64;
    let step = (t.forward + t.watermark + t.sampling).as_secs_f64() / steps;
    let bias = t.watermark.as_secs_f64() / steps;
    let batches = match batches {
        [one] => format!("one batch of {one}"),
        more => format!(
            "batches of {}",
            more.iter()
                .map(|b| b.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    format!(
        "decode step {:.1} ms ({batches}); the watermark's bias {:.3} ms of it ({:.2}%)",
        step * 1e3,
        bias * 1e3,
        100.0 * bias / step.max(1e-12)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every built-in prompt has the same length with the chat template, for the default
    /// model's tokenizer (the committed copy): the whole demo runs in one batch.
    #[test]
    fn the_prompts_share_one_length_so_they_share_one_batch() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../greenmark/tests/data/smollm2-tokenizer.json"
        );
        let tokenizer = tokenizers::Tokenizer::from_file(path).unwrap();
        let ids: Vec<Vec<u32>> = PROMPTS
            .iter()
            .map(|p| {
                let chat = greenmark_lm::chat_text(&[greenmark_lm::ChatMessage::new(
                    greenmark_lm::ChatRole::User,
                    *p,
                )]);
                tokenizer.encode(chat, false).unwrap().get_ids().to_vec()
            })
            .collect();
        let lengths: Vec<usize> = ids.iter().map(Vec::len).collect();
        assert!(lengths.iter().all(|&l| l == lengths[0]), "{lengths:?}");
        assert_eq!(batch_sizes(&ids, 2, MAX_BATCH), [20]);
    }

    #[test]
    fn batches_are_per_length_and_capped() {
        let ids = vec![vec![1; 3], vec![2; 3], vec![3; 5]];
        assert_eq!(batch_sizes(&ids, 2, 20), [4, 2]);
        assert_eq!(batch_sizes(&ids, 2, 3), [3, 1, 2]);
    }
}
