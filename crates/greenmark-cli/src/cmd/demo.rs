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

/// The built-in prompts: open questions that ask for a few paragraphs.
const PROMPTS: [&str; 10] = [
    "Why is the sky blue? Explain it to a curious teenager.",
    "Write a short story about a lighthouse keeper who finds a message in a bottle.",
    "What are the main causes of the French Revolution?",
    "Give me some advice for my first job interview.",
    "Describe how a bicycle works, part by part.",
    "Explain what photosynthesis is and why it matters.",
    "Write a letter to a friend describing a trip to the mountains.",
    "What should I consider before adopting a dog?",
    "How do vaccines train the immune system?",
    "Describe a busy morning market in a small town.",
];

/// Arguments of `greenmark demo`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where to write the HTML report.
    #[arg(long, default_value = "greenmark-report.html", value_name = "OUT.html")]
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
        ..GenerateOptions::default()
    };
    // A prompt's watermarked and plain answers share a batch (one forward pass per step).
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
        watermark_cost(&timings)
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

/// The watermark's share of the decode time, measured in the watermarked run.
fn watermark_cost(t: &GenerateTimings) -> String {
    let steps = t.steps.max(1) as f64;
    let step = (t.forward + t.watermark + t.sampling).as_secs_f64() / steps;
    let bias = t.watermark.as_secs_f64() / steps;
    format!(
        "decode step {:.1} ms (batch of 2); the watermark's bias {:.3} ms of it ({:.2}%)",
        step * 1e3,
        bias * 1e3,
        100.0 * bias / step.max(1e-12)
    )
}
