//! `greenmark eval`: how robust a watermark is. Watermarked and plain texts (read from JSON
//! Lines, or generated on the embedded model) go through seeded attacks; each attack's TPR at
//! FPR 1e-3 and 1e-6, ROC AUC and watermark size are printed as a table and written as JSON
//! and an HTML report with ROC plots. The attacks and metrics are the core's
//! ([`greenmark::eval`]); this command adds what needs a model: generation, the paraphrase
//! attack and the perplexity of the texts under an oracle model.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use greenmark::eval::{
    Attack, AttackRow, Attacked, EvalOptions, Evaluator, PlainRow, Reading, Sample, Scorer,
    SynthIdStatistic,
};
use greenmark::gumbel::{GumbelDetector, GumbelWatermarker, VllmWatermarkConfig};
use greenmark::synthid::{SynthIdConfig, SynthIdDetector, SynthIdWatermarker};
use greenmark::{Detector, SpanOptions, Watermarker};
use greenmark_lm::{GenerateOptions, Lm, ReadingOptions, Request};
use serde_json::json;
use tokenizers::Tokenizer;

use super::{load_key_file, load_model, usage, TokenizerArgs};
use crate::progress;
use crate::report::{escape, Frame, CSS};
use crate::table::{Align, Table};

/// Prompt templates of `--generate` (as the radioactivity experiment's): each is filled with a
/// subject below, template `i % 12` with subject `(i / 12 + 5 i) % 24`.
const TEMPLATES: [&str; 12] = [
    "Write a short paragraph about {s}.",
    "Explain {s} to a ten-year-old.",
    "What are three interesting facts about {s}?",
    "Describe the history of {s} in a few sentences.",
    "Why do people care about {s}? Answer briefly.",
    "Write a short story that involves {s}.",
    "Give some practical advice related to {s}.",
    "What would the world look like without {s}?",
    "Compare {s} with something from everyday life.",
    "Write a short poem about {s}.",
    "List the pros and cons of {s}.",
    "How would you teach a beginner about {s}?",
];

const SUBJECTS: [&str; 24] = [
    "the ocean",
    "volcanoes",
    "honey bees",
    "the moon",
    "rainforests",
    "bicycles",
    "bread baking",
    "chess",
    "the internet",
    "electric cars",
    "coffee",
    "the Roman Empire",
    "photosynthesis",
    "black holes",
    "recycling",
    "jazz music",
    "mountain climbing",
    "libraries",
    "the human heart",
    "earthquakes",
    "gardening",
    "robots",
    "vaccines",
    "trains",
];

/// The instruction of the paraphrase attack.
const PARAPHRASE: &str = "Rewrite the following text in your own words. Keep its meaning and \
its length. Answer with the rewritten text only.\n\nText: ";

/// Arguments of `greenmark eval`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file of the watermark under test (from `greenmark keygen`).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present_any = ["vllm_config", "synthid_config"],
        conflicts_with_all = ["vllm_config", "synthid_config"]
    )]
    key_file: Option<PathBuf>,
    /// Evaluate vLLM's native Gumbel watermark with this config (`--watermark-config` JSON).
    #[arg(long, value_name = "FILE", conflicts_with = "synthid_config")]
    vllm_config: Option<PathBuf>,
    /// Evaluate SynthID Text with this config (the JSON of transformers'
    /// `SynthIDTextWatermarkingConfig(...).to_dict()`).
    #[arg(long, value_name = "FILE")]
    synthid_config: Option<PathBuf>,
    /// SynthID's score that decides: `weighted` (synthid-text's weighted mean, as `detect`
    /// reports) or `mean`.
    #[arg(long, value_name = "SCORE", default_value = "weighted", value_parser = ["weighted", "mean"])]
    synthid_score: String,
    /// Score KGW texts by the span search (`detect --span`) with windows of at least this many
    /// tokens, instead of the whole text: a WinMax-style detector for watermarked text pasted
    /// into human writing.
    #[arg(long, value_name = "MIN_TOKENS", conflicts_with_all = ["vllm_config", "synthid_config"])]
    span: Option<usize>,
    /// Watermarked texts, JSON Lines: objects with the generated ids (`--ids-field`) and/or
    /// the `text`, and optionally `prompt_ids` (for perplexity); or bare arrays of ids.
    #[arg(
        long,
        value_name = "W.jsonl",
        requires = "plain",
        conflicts_with = "generate"
    )]
    watermarked: Option<String>,
    /// Plain (unwatermarked) texts, in the same format. With `--generate`, only the watermarked
    /// answers are generated and these are the plain ones (generate them once with
    /// `--save-texts`, then compare several watermarks against the same plain answers).
    #[arg(long, value_name = "P.jsonl")]
    plain: Option<String>,
    /// The field holding the token ids in the input lines.
    #[arg(long, default_value = "ids", value_name = "NAME")]
    ids_field: String,
    /// Use at most this many texts of each input.
    #[arg(long, value_name = "N")]
    max_texts: Option<usize>,
    /// Generate N watermarked and N plain answers on the model instead of reading them.
    #[arg(long, value_name = "N", required_unless_present = "watermarked")]
    generate: Option<usize>,
    /// New tokens per generated answer (the end of turn is masked until then, so every answer
    /// has exactly this many).
    #[arg(long, default_value_t = 100, value_name = "T")]
    max_new_tokens: usize,
    /// Sampling temperature of generation.
    #[arg(long, default_value_t = 0.7)]
    temperature: f32,
    /// Write the generated texts to DIR/watermarked.jsonl and DIR/plain.jsonl.
    #[arg(long, value_name = "DIR")]
    save_texts: Option<PathBuf>,
    /// Attacks, comma-separated (`clean, retokenize, sub-tokens:RATE, del-tokens:RATE,
    /// ins-tokens:RATE, sub-words:RATE, upper, lower, title, homoglyphs:RATE, invisible:RATE,
    /// truncate:TOKENS, copy-paste:FRACTION, paraphrase`) [default: all, at rates 10-50%].
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    attacks: Vec<String>,
    /// Seed of the attacks (and of generation).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Watermarked texts the paraphrase attack rewrites (the model is slow: ~10 s each).
    #[arg(long, default_value_t = 16, value_name = "N")]
    paraphrase_texts: usize,
    /// Texts of each kind scored by the oracle model for perplexity (0: skip).
    #[arg(long, default_value_t = 32, value_name = "N")]
    perplexity_texts: usize,
    /// Write the results as JSON to this file (`-`: stdout, instead of the table).
    #[arg(long, value_name = "OUT.json")]
    json: Option<String>,
    /// Write an HTML report with ROC plots to this file.
    #[arg(short = 'o', long = "output", alias = "html", value_name = "OUT.html")]
    html: Option<PathBuf>,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
}

/// One input text: ids, text, and the prompt it answered (when known).
struct Text {
    sample: Sample,
    prompt: Option<Vec<u32>>,
}

/// The watermark under test: its scorer and (for generation) its watermarker.
enum Mark {
    Kgw(Watermarker),
    Gumbel(GumbelWatermarker),
    SynthId(SynthIdWatermarker),
}

/// Runs `greenmark eval`.
pub fn run(args: Args) -> Result<()> {
    let started = Instant::now();
    let attacks: Vec<Attack> = if args.attacks.is_empty() {
        Attack::standard()
    } else {
        args.attacks
            .iter()
            .map(|a| {
                a.parse::<Attack>()
                    .map_err(|e| usage(format!("--attacks: {e}")))
            })
            .collect::<Result<_>>()?
    };
    if args.generate == Some(0) {
        return Err(usage("--generate must be at least 1"));
    }
    if args.generate.is_some() && args.temperature <= 0.0 {
        return Err(usage(
            "--temperature must be above 0: greedy answers to the same prompt are all alike",
        ));
    }
    let needs_model = args.generate.is_some()
        || args.perplexity_texts > 0
        || attacks.contains(&Attack::Paraphrase);
    let (model_path, mut lm) = if needs_model {
        let (path, lm) = load_model(args.tokenizer.model.as_ref())?;
        (Some(path), Some(lm))
    } else {
        (None, None)
    };
    let (tokenizer, tokenizer_source) = match (&lm, args.tokenizer.tokenizer.is_some()) {
        (Some(lm), false) => (lm.tokenizer().clone(), "the model".to_string()),
        _ => args.tokenizer.load()?,
    };
    let vocab = tokenizer.get_vocab_size(true) as u32;
    let vocab = lm.as_ref().map_or(vocab, |lm| lm.vocab_size());

    // The watermark.
    let (scorer, mark, watermark_json) = if let Some(path) = &args.synthid_config {
        let config = SynthIdConfig::load(path)
            .with_context(|| format!("cannot use SynthID config {}", path.display()))?;
        let statistic = match args.synthid_score.as_str() {
            "mean" => SynthIdStatistic::Mean,
            _ => SynthIdStatistic::Weighted,
        };
        let detector = SynthIdDetector::new(config.clone())?
            .with_eos(lm.as_ref().and_then(|lm| lm.stop_ids().first().copied()));
        let described = json!({
            "scheme": greenmark::synthid::SCHEME_ID,
            "ngram_len": config.ngram_len,
            "depth": config.keys.len(),
            "sampling_table_size": config.sampling_table_size,
            "score": args.synthid_score,
        });
        (
            Scorer::SynthId(detector, statistic),
            Mark::SynthId(SynthIdWatermarker::new(config)?),
            described,
        )
    } else if let Some(path) = &args.vllm_config {
        if !path.is_file() {
            bail!(
                "vLLM watermark config {} does not exist: give the JSON passed to `vllm serve \
                 --watermark-config`, e.g. {{\"key\": 42, \"algorithm\": \"gumbel\"}}",
                path.display()
            );
        }
        let vllm = VllmWatermarkConfig::load(path)
            .with_context(|| format!("cannot use vLLM watermark config {}", path.display()))?;
        let detector = GumbelDetector::new(vllm.key, vllm.config)?;
        let wm = GumbelWatermarker::new(vllm.key, vllm.config)?;
        let described = json!({
            "scheme": vllm.scheme_id(),
            "context_width": vllm.config.context_width,
            "alpha": vllm.config.alpha,
        });
        (Scorer::Gumbel(detector), Mark::Gumbel(wm), described)
    } else {
        let path = args.key_file.as_ref().expect("clap requires a key file");
        let key_file = load_key_file(path)?;
        let config = key_file
            .config_for_tokenizer(vocab as usize)
            .with_context(|| {
                format!(
                    "key file {} does not fit the tokenizer of {tokenizer_source}",
                    path.display()
                )
            })?;
        let described = json!({
            "scheme": config.scheme().id(),
            "window": config.scheme().window(),
            "gamma": config.gamma(),
            "delta": config.delta(),
            "key_id": key_file.key.id().to_string(),
        });
        let detector = Detector::new(&key_file.key, config.clone());
        let scorer = match args.span {
            Some(min) => Scorer::KgwSpan(detector, SpanOptions::with_min_tokens(min)),
            None => Scorer::Kgw(detector),
        };
        (
            scorer,
            Mark::Kgw(Watermarker::new(&key_file.key, config)),
            described,
        )
    };

    // The texts.
    let (watermarked, plain, source) = match (&args.watermarked, &args.plain, args.generate) {
        (Some(w), Some(p), _) => (
            read_texts(w, &args, &tokenizer)?,
            read_texts(p, &args, &tokenizer)?,
            json!({"watermarked": w, "plain": p}),
        ),
        (_, plain_file, Some(n)) => {
            let lm = lm.as_mut().expect("generation loads the model");
            let given = match plain_file {
                Some(p) => Some(read_texts(p, &args, &tokenizer)?),
                None => None,
            };
            let (w, p, seconds) = generate(lm, &mark, n, given.is_none(), &args)?;
            if let Some(dir) = &args.save_texts {
                save_texts(dir, "watermarked.jsonl", &w)?;
                if given.is_none() {
                    save_texts(dir, "plain.jsonl", &p)?;
                }
            }
            (
                w,
                given.unwrap_or(p),
                json!({
                    "generated": n, "max_new_tokens": args.max_new_tokens,
                    "temperature": args.temperature, "seed": args.seed,
                    "seconds": seconds, "plain": plain_file,
                }),
            )
        }
        _ => return Err(usage("give --watermarked and --plain, or --generate N")),
    };
    if watermarked.is_empty() || plain.is_empty() {
        bail!(
            "no texts to evaluate: the watermarked and the plain inputs need a line each at least"
        );
    }
    let samples = |texts: &[Text]| texts.iter().map(|t| t.sample.clone()).collect::<Vec<_>>();
    let (w_samples, p_samples) = (samples(&watermarked), samples(&plain));

    let options = EvalOptions::seeded(args.seed);
    let evaluator = Evaluator::new(&scorer, &tokenizer, &p_samples, options)?;
    let mut rows: Vec<AttackRow> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for attack in &attacks {
        if *attack == Attack::Paraphrase {
            let lm = lm.as_mut().expect("paraphrase loads the model");
            let n = args.paraphrase_texts.min(w_samples.len());
            if n == 0 {
                notes.push("paraphrase skipped: --paraphrase-texts 0".into());
                continue;
            }
            let rewrites = paraphrase(lm, &w_samples[..n], &args)?;
            let mut got = evaluator.rows_for(&format!("paraphrase (first {n})"), &rewrites)?;
            rows.append(&mut got);
            notes.push(format!(
                "paraphrase: the embedded SmolLM2-135M-Instruct rewrites the first {n} \
                 watermarked texts (temperature {}, unwatermarked); it is a weak paraphraser \
                 that often copies or drifts, so this row is a lower bound on what a real \
                 paraphraser does",
                args.temperature.max(0.7)
            ));
        } else {
            rows.append(&mut evaluator.run(attack, &w_samples, &p_samples)?);
        }
    }
    let perplexity = match lm.as_mut() {
        Some(lm) if args.perplexity_texts > 0 => perplexity(lm, &watermarked, &plain, &args)?,
        _ => serde_json::Value::Null,
    };

    let report = json!({
        "greenmark_eval": 1,
        "watermark": watermark_json,
        "scored_by": scorer.method(),
        "texts": source,
        "model": model_path.map(|p| p.display().to_string()),
        "n_watermarked": w_samples.len(),
        "n_plain": p_samples.len(),
        "seed": args.seed,
        "size_threshold": 1e-3,
        "plain": evaluator.plain_rows(),
        "attacks": rows,
        "perplexity": perplexity,
        "notes": notes,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if let Some(out) = &args.json {
        let text = serde_json::to_string_pretty(&report)?;
        if out == "-" {
            println!("{text}");
        } else {
            std::fs::write(out, text + "\n").with_context(|| format!("cannot write {out}"))?;
        }
    }
    if args.json.as_deref() != Some("-") {
        print!(
            "{}",
            render_table(&scorer, evaluator.plain_rows(), &rows, &report)
        );
    }
    if let Some(out) = &args.html {
        std::fs::write(
            out,
            render_html(&scorer, evaluator.plain_rows(), &rows, &report),
        )
        .with_context(|| format!("cannot write the report {}", out.display()))?;
        eprintln!("report written to {}", out.display());
    }
    Ok(())
}

/// Reads one JSON Lines input of texts.
fn read_texts(input: &str, args: &Args, tokenizer: &Tokenizer) -> Result<Vec<Text>> {
    let mut file = crate::input::open(input)?;
    let mut line_no = 0;
    let max = args.max_texts.unwrap_or(usize::MAX);
    let mut out = Vec::new();
    // Once: `get_vocab_size(true)` builds the whole vocabulary map.
    let vocab = tokenizer.get_vocab_size(true) as u32;
    for (line, value) in crate::input::read_json_lines(&mut file, &mut line_no, max)? {
        let at = || format!("{} line {line}", file.name);
        let value = value.map_err(anyhow::Error::msg).with_context(at)?;
        let ids = match &value {
            serde_json::Value::Array(_) => Some(crate::input::token_ids(&value, "", "")?),
            _ if value.get(&args.ids_field).is_some() => {
                Some(crate::input::token_ids_field(&value, &args.ids_field, "").with_context(at)?)
            }
            _ => None,
        };
        let text = value.get("text").and_then(|t| t.as_str());
        let sample = match (ids, text) {
            (Some(ids), Some(text)) => Sample {
                ids,
                text: text.to_string(),
            },
            (Some(ids), None) => Sample::from_ids(tokenizer, ids).with_context(at)?,
            (None, Some(text)) => Sample {
                ids: tokenizer
                    .encode(text, false)
                    .map_err(|e| anyhow::anyhow!("cannot tokenize: {e}"))
                    .with_context(at)?
                    .get_ids()
                    .to_vec(),
                text: text.to_string(),
            },
            (None, None) => bail!(
                "{}: no token ids (field {:?}, see --ids-field) and no \"text\"",
                at(),
                args.ids_field
            ),
        };
        if let Some(&bad) = sample.ids.iter().find(|&&t| t >= vocab) {
            bail!(
                "{}: token id {bad} is outside the tokenizer's vocabulary; the ids must come from \
                 the watermarking tokenizer",
                at()
            );
        }
        let prompt = match value.get("prompt_ids") {
            Some(_) => {
                Some(crate::input::token_ids_field(&value, "prompt_ids", "").with_context(at)?)
            }
            None => None,
        };
        out.push(Text { sample, prompt });
    }
    Ok(out)
}

/// The prompt of answer `i` of `--generate`.
fn prompt(i: usize) -> String {
    let t = TEMPLATES[i % TEMPLATES.len()];
    let s = SUBJECTS[(i / TEMPLATES.len() + 5 * i) % SUBJECTS.len()];
    t.replace("{s}", s)
}

/// Generates `n` watermarked answers, and `n` plain ones when `with_plain` (a prompt's two
/// answers share a batch).
fn generate(
    lm: &mut Lm,
    mark: &Mark,
    n: usize,
    with_plain: bool,
    args: &Args,
) -> Result<(Vec<Text>, Vec<Text>, f64)> {
    let started = Instant::now();
    let prompts: Vec<Vec<u32>> = (0..n)
        .map(|i| lm.chat_prompt(&prompt(i)))
        .collect::<Result<_, _>>()?;
    let requests: Vec<Request<'_>> = prompts
        .iter()
        .flat_map(|p| {
            let marked = match mark {
                Mark::Kgw(wm) => Request::new(p.clone(), Some(wm)),
                Mark::Gumbel(wm) => Request::gumbel(p.clone(), wm),
                Mark::SynthId(wm) => Request::synthid(p.clone(), wm),
            };
            let plain = with_plain.then(|| Request::new(p.clone(), None));
            std::iter::once(marked).chain(plain)
        })
        .collect();
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: args.max_new_tokens,
        temperature: args.temperature,
        seed: args.seed,
        ..GenerateOptions::default()
    };
    let bar = progress::bar(
        (requests.len() * args.max_new_tokens) as u64,
        "generating",
        "tokens",
    );
    let (answers, _) = lm.generate(&requests, &options, &mut |k| bar.inc(k as u64))?;
    bar.finish_and_clear();
    let (mut w, mut p) = (Vec::new(), Vec::new());
    for (i, g) in answers.into_iter().enumerate() {
        let text = Text {
            prompt: Some(g.prompt),
            sample: Sample {
                ids: g.tokens,
                text: g.text,
            },
        };
        if !with_plain || i.is_multiple_of(2) {
            w.push(text)
        } else {
            p.push(text)
        }
    }
    Ok((w, p, started.elapsed().as_secs_f64()))
}

fn save_texts(dir: &Path, name: &str, texts: &[Text]) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut out = String::new();
    for t in texts {
        let line = json!({"prompt_ids": t.prompt, "ids": t.sample.ids, "text": t.sample.text});
        out.push_str(&line.to_string());
        out.push('\n');
    }
    let path = dir.join(name);
    std::fs::write(&path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// The paraphrase attack: the model rewrites each text, unwatermarked.
fn paraphrase(lm: &mut Lm, texts: &[Sample], args: &Args) -> Result<Vec<Attacked>> {
    let mut out = Vec::with_capacity(texts.len());
    let bar = progress::bar(texts.len() as u64, "paraphrasing", "texts");
    for (i, s) in texts.iter().enumerate() {
        let prompt = lm.chat_prompt(&format!("{PARAPHRASE}{}", s.text))?;
        let options = GenerateOptions {
            max_new_tokens: (s.ids.len() * 3 / 2).clamp(16, 400),
            temperature: args.temperature.max(0.7),
            seed: args.seed.wrapping_add(i as u64),
            ..GenerateOptions::default()
        };
        let (answers, _) = lm.generate(&[Request::new(prompt, None)], &options, &mut |_| {})?;
        out.push(Attacked::Text(
            answers
                .into_iter()
                .next()
                .map(|g| g.text)
                .unwrap_or_default(),
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();
    Ok(out)
}

/// Perplexity of the first texts of each kind under the model, given their prompts.
fn perplexity(
    lm: &mut Lm,
    watermarked: &[Text],
    plain: &[Text],
    args: &Args,
) -> Result<serde_json::Value> {
    let pick = |texts: &[Text]| -> Vec<(Vec<u32>, Vec<u32>)> {
        texts
            .iter()
            .filter_map(|t| t.prompt.clone().map(|p| (p, t.sample.ids.clone())))
            .filter(|(p, ids)| !p.is_empty() && !ids.is_empty())
            .take(args.perplexity_texts)
            .collect()
    };
    let (w, p) = (pick(watermarked), pick(plain));
    if w.is_empty() || p.is_empty() {
        return Ok(
            json!({"skipped": "the inputs carry no prompt_ids: perplexity is measured given the prompt"}),
        );
    }
    let options = ReadingOptions::default();
    let total: usize = w.iter().chain(&p).map(|(a, b)| a.len() + b.len()).sum();
    let bar = progress::bar(total as u64, "perplexity", "positions");
    let mut side = |texts: &[(Vec<u32>, Vec<u32>)]| -> Result<(serde_json::Value, Vec<f64>)> {
        let lps = lm.token_ln_probs(texts, &options, &mut |k| bar.inc(k as u64))?;
        let ppl: Vec<f64> = lps
            .iter()
            .filter_map(|l| greenmark::eval::metrics::perplexity(l))
            .collect();
        let all: Vec<f64> = lps.iter().flatten().copied().collect();
        let summary = json!({
            "n_texts": ppl.len(),
            "median": greenmark::eval::metrics::median(&ppl),
            "mean": ppl.iter().sum::<f64>() / ppl.len().max(1) as f64,
            "pooled": greenmark::eval::metrics::perplexity(&all),
            "per_text": ppl,
        });
        Ok((summary, ppl.iter().map(|p| p.ln()).collect()))
    };
    let ((wj, w_ln), (pj, p_ln)) = (side(&w)?, side(&p)?);
    bar.finish_and_clear();
    // Is the gap more than the draw of texts? Mean log-perplexity, permutation p, bootstrap CI.
    let gap = greenmark::eval::gap::mean_gap(&w_ln, &p_ln, GAP_RESAMPLES, args.seed);
    Ok(json!({
        "oracle": "the embedded model itself (the generator): it favours its own samples, so \
                   both figures are low and the gap is what the watermark's bias costs",
        "watermarked": wj,
        "plain": pj,
        "gap": gap.map(|g| json!({
            "statistic": "mean per-text log-perplexity, watermarked minus plain (nats per token)",
            "diff": g.diff,
            "ci95": [g.ci95.0, g.ci95.1],
            "ci95_method": "percentile bootstrap (approximate)",
            "p_value": g.p_value,
            "p_value_method": if g.exact { "exact permutation" } else { "Monte Carlo permutation, (1 + hits) / (1 + B): valid" },
            "resamples": g.resamples,
        })),
    }))
}

/// Permutations and bootstrap resamples of the perplexity gap (milliseconds for 100 texts).
const GAP_RESAMPLES: usize = 20_000;

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or("-".into(), |x| format!("{x:.digits$}"))
}

fn size(row: &AttackRow) -> String {
    row.watermark_size
        .map_or("inf".into(), |s| format!("{s:.0}"))
}

/// The table on stdout.
fn render_table(
    scorer: &Scorer,
    plain: &[PlainRow],
    rows: &[AttackRow],
    report: &serde_json::Value,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scheme {} ({})  {} watermarked / {} plain texts  seed {}",
        scorer.scheme(),
        scorer.method(),
        report["n_watermarked"],
        report["n_plain"],
        report["seed"]
    );
    let mut t = Table::new(&[
        ("plain texts read as", Align::Left),
        ("FPR@1e-3", Align::Right),
        ("FPR@1e-6", Align::Right),
        ("min log10 p", Align::Right),
    ]);
    for r in plain {
        t.row(vec![
            r.reading.label().into(),
            pct(r.fpr_at_1e3),
            pct(r.fpr_at_1e6),
            format!("{:.2}", r.min_log10_p),
        ]);
    }
    out.push_str(&t.render());
    out.push('\n');
    let mut t = Table::new(&[
        ("attack", Align::Left),
        ("read as", Align::Left),
        ("n", Align::Right),
        ("tokens", Align::Right),
        ("TPR@1e-3", Align::Right),
        ("TPR@1e-6", Align::Right),
        ("AUC", Align::Right),
        ("size", Align::Right),
        ("median log10 p", Align::Right),
    ]);
    for r in rows {
        t.row(vec![
            r.attack.clone(),
            r.reading.label().into(),
            r.n_texts.to_string(),
            format!("{:.0}", r.median_tokens),
            pct(r.tpr_at_1e3),
            pct(r.tpr_at_1e6),
            opt(r.auc, 3),
            size(r),
            format!("{:.2}", r.median_log10_p),
        ]);
    }
    out.push_str(&t.render());
    out.push_str(
        "size: median tokens until the first prefix with p < 1e-3 (MarkMyWords' watermark size; \
         inf: more than half never reach it)\n",
    );
    if let Some(ppl) = report["perplexity"].as_object() {
        if let (Some(w), Some(p)) = (ppl.get("watermarked"), ppl.get("plain")) {
            let _ = writeln!(
                out,
                "perplexity under the generator (median of {} / {} texts): watermarked {} plain {}",
                w["n_texts"],
                p["n_texts"],
                opt(w["median"].as_f64(), 2),
                opt(p["median"].as_f64(), 2)
            );
        }
        if let Some(g) = ppl.get("gap").filter(|g| !g.is_null()) {
            let _ = writeln!(
                out,
                "perplexity gap (mean log-perplexity, watermarked - plain): {:+.3} nats per token, \
                 95% CI [{:+.3}, {:+.3}], permutation p = {:.3}",
                g["diff"].as_f64().unwrap_or(f64::NAN),
                g["ci95"][0].as_f64().unwrap_or(f64::NAN),
                g["ci95"][1].as_f64().unwrap_or(f64::NAN),
                g["p_value"].as_f64().unwrap_or(f64::NAN),
            );
        }
    }
    for note in report["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(out, "note: {}", note.as_str().unwrap_or_default());
    }
    out
}

/// The HTML report: the tables and one ROC plot per attack (inline SVG, no scripts).
fn render_html(
    scorer: &Scorer,
    plain: &[PlainRow],
    rows: &[AttackRow],
    report: &serde_json::Value,
) -> String {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    out.push_str("<title>greenmark eval</title>\n<style>\n");
    out.push_str(CSS);
    out.push_str(
        ".grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(15em, 1fr)); gap: 0.8em; }\n\
         .grid figure { margin: 0; } .grid figcaption { font-size: 0.9em; color: #333; }\n\
         svg.plot .roc-ids, svg.plot .roc-text { fill: none; stroke: #2257c7; stroke-width: 1.6; }\n\
         svg.plot .roc-norm { fill: none; stroke: #1e7b34; stroke-width: 1.6; stroke-dasharray: 4 3; }\n\
         svg.plot .chance { stroke: #bbb; stroke-dasharray: 2 3; }\n",
    );
    out.push_str("</style>\n</head>\n<body>\n<header>\n<h1>greenmark eval</h1>\n");
    let _ = writeln!(
        out,
        "<p>Scheme <code>{}</code>; {} watermarked and {} plain texts; attack seed {}. \
         Watermark: <code>{}</code>. Texts: <code>{}</code>.</p>",
        escape(scorer.scheme()),
        report["n_watermarked"],
        report["n_plain"],
        report["seed"],
        escape(&report["watermark"].to_string()),
        escape(&report["texts"].to_string()),
    );
    for note in report["notes"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "<p class=\"note\">{}</p>",
            escape(note.as_str().unwrap_or_default())
        );
    }
    out.push_str("</header>\n<main>\n<h2>Plain texts (empirical false-positive rate)</h2>\n");
    out.push_str("<table class=\"summary\"><tr><th>read as</th><th class=\"num\">FPR@1e-3</th><th class=\"num\">FPR@1e-6</th><th class=\"num\">min log10 p</th></tr>\n");
    for r in plain {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{:.2}</td></tr>",
            r.reading.label(), pct(r.fpr_at_1e3), pct(r.fpr_at_1e6), r.min_log10_p
        );
    }
    out.push_str(
        "</table>\n<h2>Attacks</h2>\n<table class=\"summary\"><tr><th>attack</th><th>read as</th>\
        <th class=\"num\">n</th><th class=\"num\">tokens</th><th class=\"num\">TPR@1e-3</th>\
        <th class=\"num\">TPR@1e-6</th><th class=\"num\">AUC</th><th class=\"num\">size</th>\
        <th class=\"num\">median log10 p</th></tr>\n",
    );
    for r in rows {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{:.0}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td>\
             <td class=\"num\">{}</td><td class=\"num\">{:.2}</td></tr>",
            escape(&r.attack),
            r.reading.label(),
            r.n_texts,
            r.median_tokens,
            pct(r.tpr_at_1e3),
            pct(r.tpr_at_1e6),
            opt(r.auc, 3),
            size(r),
            r.median_log10_p
        );
    }
    out.push_str(
        "</table>\n<p>size: median tokens until the first prefix with p &lt; 1e-3 \
        (MarkMyWords' watermark size; inf: more than half never reach it).</p>\n",
    );
    if let Some(ppl) = report["perplexity"].as_object() {
        let _ = writeln!(
            out,
            "<h2>Perplexity</h2>\n<pre>{}</pre>",
            escape(&serde_json::to_string_pretty(ppl).unwrap_or_default())
        );
    }
    out.push_str(
        "<h2>ROC curves</h2>\n<p>True-positive rate (watermarked, attacked) against \
        false-positive rate (plain), log-scaled FPR from 1e-4; solid: ids or raw text, dashed: \
        text after greenmark's normalization.</p>\n<div class=\"grid\">\n",
    );
    let mut i = 0;
    while i < rows.len() {
        let mut j = i + 1;
        while j < rows.len() && rows[j].attack == rows[i].attack {
            j += 1;
        }
        write_roc(&mut out, &rows[i..j]);
        i = j;
    }
    out.push_str("</div>\n</main>\n</body>\n</html>\n");
    out
}

/// One ROC plot: the curves of one attack's rows, FPR on a log axis from 1e-4 to 1.
fn write_roc(out: &mut String, rows: &[AttackRow]) {
    let frame = Frame {
        width: 260.0,
        height: 200.0,
        left: 34.0,
        right: 8.0,
        top: 8.0,
        bottom: 28.0,
    };
    let (pw, ph) = (
        frame.width - frame.left - frame.right,
        frame.height - frame.top - frame.bottom,
    );
    let x = |fpr: f64| frame.left + pw * ((fpr.max(1e-4).log10() + 4.0) / 4.0);
    let y = |tpr: f64| frame.top + ph * (1.0 - tpr);
    let title = escape(&rows[0].attack);
    out.push_str("<figure>\n");
    frame.open(out, &format!("ROC curve of {}", rows[0].attack), &title);
    for (label, v) in [("0", 0.0), ("0.5", 0.5), ("1", 1.0)] {
        frame.y_tick(out, label, y(v));
    }
    for (label, e) in [
        ("1e-4", 1e-4),
        ("1e-3", 1e-3),
        ("1e-2", 1e-2),
        ("0.1", 0.1),
        ("1", 1.0),
    ] {
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            x(e),
            frame.height - frame.bottom + 14.0
        );
    }
    let _ = writeln!(
        out,
        "<line class=\"chance\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\"/>",
        x(1e-4),
        y(1e-4),
        x(1.0),
        y(1.0)
    );
    let mut caption = Vec::new();
    for r in rows {
        let class = match r.reading {
            Reading::NormalizedText => "roc-norm",
            Reading::Text => "roc-text",
            _ => "roc-ids",
        };
        // A step curve: each point's TPR holds from its FPR (clamped at the axis) on.
        let _ = write!(out, "<polyline class=\"{class}\" points=\"");
        let mut last = (1e-4, 0.0);
        for &(f, t) in &r.roc {
            let _ = write!(out, "{:.1},{:.1} {:.1},{:.1} ", x(f), y(last.1), x(f), y(t));
            last = (f, t);
        }
        out.push_str("\"/>\n");
        caption.push(format!("{} AUC {}", r.reading.label(), opt(r.auc, 3)));
    }
    out.push_str("</svg>\n");
    let _ = writeln!(
        out,
        "<figcaption>{title}: {}</figcaption>\n</figure>",
        escape(&caption.join(", "))
    );
}
