//! `greenmark detect`: is this text watermarked? Plain text (streamed) or JSON Lines of text or
//! of token ids, with optional prompt context, span search and several keys; with
//! `--vllm-config`, vLLM's native Gumbel watermark on token ids (see [`gumbel`]); with
//! `--synthid-config`, transformers' SynthID Text (see [`synthid`]).
//!
//! Every rule (scheme, vocabulary checks, verdict, correction for several keys or windows)
//! is the core's: this module reads inputs, picks the mode and prints.

mod gumbel;
mod output;
mod synthid;

use std::io::{self, Read, Write};
use std::path::PathBuf;

use anyhow::{Context, Result};
use greenmark::text::{Applied, Query, Source, TextDetector};
use greenmark::{Detector, Keyring, SpanOptions, WatermarkConfig};
use rayon::prelude::*;

use super::{detection_config, load_key_file, parse_threshold, usage, TokenizerArgs};
use crate::input::{self, Input};
use greenmark::detect::Scored;
use output::Scoring;

/// Lines scored together (in parallel) before their results are printed: memory stays
/// bounded by one chunk of lines (at most this many, and about twice the line limit in bytes:
/// [`input::read_json_chunk`]).
const LINES_PER_CHUNK: usize = 256;

/// Arguments of `greenmark detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file (from `greenmark keygen`). Repeat it to detect under several keys at once:
    /// the p-value is then corrected for the number of keys and the key that fired is named.
    #[arg(
        long = "key-file",
        value_name = "FILE",
        required_unless_present_any = ["vllm_config", "synthid_config"]
    )]
    key_files: Vec<PathBuf>,
    /// Detect vLLM's native watermark instead: the JSON given to `vllm serve
    /// --watermark-config` (key, algorithm, context width). Input: token-id JSON Lines (the
    /// served ids), or text with --tokenizer/--model (re-tokenized text can differ from the
    /// served ids).
    #[arg(long, value_name = "FILE", conflicts_with = "key_files")]
    vllm_config: Option<PathBuf>,
    /// Detect SynthID Text instead: the JSON of transformers'
    /// `SynthIDTextWatermarkingConfig(...).to_dict()` (ngram_len, keys, sampling table). Input
    /// as with --vllm-config: the generated token ids as JSON Lines, or text with
    /// --tokenizer/--model. The verdict is on the weighted mean score's p-value.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["key_files", "vllm_config"])]
    synthid_config: Option<PathBuf>,
    /// With --synthid-config: the model's end-of-sequence token id. As transformers' detector
    /// masks them, ngrams from the first EOS on are not scored (padding after an answer is not
    /// evidence).
    #[arg(long, value_name = "ID")]
    eos_id: Option<u32>,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    /// Read JSON Lines: one object per line, the text in --field (or the token ids in
    /// --ids-field). Gzip input (`.jsonl.gz`) is read as is.
    #[arg(long)]
    jsonl: bool,
    /// The field of each JSON line that holds the text [default: text].
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Score token ids instead of text: the field of each JSON line that holds them (a line
    /// may also be a bare JSON array). Implies --jsonl. [default with --vllm-config: token_ids]
    #[arg(long, value_name = "NAME")]
    ids_field: Option<String>,
    /// The field of each JSON line that holds the prompt's text: tokenized, it supplies the
    /// windows of the first tokens and is not scored.
    #[arg(long, value_name = "NAME", conflicts_with = "prompt_ids_field")]
    prompt_field: Option<String>,
    /// The field of each JSON line that holds the prompt's token ids (as generated): context
    /// for the first windows, not scored.
    #[arg(long, value_name = "NAME")]
    prompt_ids_field: Option<String>,
    /// Search for a watermarked span inside longer text (a watermarked paste in human
    /// writing): windows of several lengths, the p-value corrected for every window tried.
    #[arg(long)]
    span: bool,
    /// The shortest window of --span, in tokens.
    #[arg(long, value_name = "N", requires = "span", default_value_t = SpanOptions::default().min_tokens as u64,
          value_parser = clap::value_parser!(u64).range(greenmark::detect::MIN_SPAN_TOKENS as u64..))]
    min_span_tokens: u64,
    /// Print JSON (one object; with --jsonl, one object per input line) instead of a table.
    #[arg(long)]
    json: bool,
    /// The p-value below which a text is called watermarked.
    #[arg(long, default_value = "1e-6", value_parser = parse_threshold, value_name = "P")]
    threshold: f64,
    /// Exit with status 10 when a watermark is detected (with --jsonl: in any line).
    #[arg(long)]
    exit_code: bool,
    /// The text to check; `-` reads stdin.
    #[arg(value_name = "FILE", default_value = "-")]
    input: String,
}

impl Args {
    /// Whether ids (not text) are scored.
    fn ids_mode(&self) -> bool {
        self.ids_field.is_some()
    }

    /// Whether the input is JSON Lines.
    fn jsonl(&self) -> bool {
        self.jsonl || self.ids_mode()
    }

    /// The text field of each JSON line.
    fn text_field(&self) -> &str {
        self.field.as_deref().unwrap_or("text")
    }

    /// Refuses flags that do not apply to the chosen mode (exit status 2): a flag that would
    /// be silently ignored gives a confident wrong answer.
    fn check_mode(&self) -> Result<()> {
        if self.eos_id.is_some() && self.synthid_config.is_none() {
            return Err(usage(
                "--eos-id applies to --synthid-config only: the other detectors score every \
                 token they are given",
            ));
        }
        let ids_flag = if self.synthid_config.is_some() {
            Some("--synthid-config")
        } else if self.vllm_config.is_some() {
            Some("--vllm-config")
        } else {
            None
        };
        if let Some(mode) = ids_flag {
            let not_for_vllm = [
                ("--prompt-field", self.prompt_field.is_some()),
                ("--prompt-ids-field", self.prompt_ids_field.is_some()),
                ("--span", self.span),
            ];
            if let Some((flag, _)) = not_for_vllm.iter().find(|(_, given)| *given) {
                return Err(usage(format!(
                    "{flag} does not apply to {mode}: its detector scores the generated ids \
                     alone; leave it out"
                )));
            }
            let text_mode = self.tokenizer.is_given();
            if text_mode && self.ids_field.is_some() {
                return Err(usage(format!(
                    "--ids-field and --tokenizer/--model exclude each other with {mode}: \
                     score the served ids (--ids-field) or re-tokenized text (--tokenizer)"
                )));
            }
            if !text_mode && self.field.is_some() {
                return Err(usage(format!(
                    "--field names a text field, but without --tokenizer/--model \
                     {mode} scores token ids: use --ids-field, or add --tokenizer"
                )));
            }
            return Ok(());
        }
        if self.ids_mode() {
            if self.field.is_some() {
                return Err(usage(
                    "--field names the text, but --ids-field scores token ids: give one of them",
                ));
            }
            if self.prompt_field.is_some() {
                return Err(usage(
                    "--prompt-field is prompt text, but --ids-field scores token ids: give the \
                     prompt's ids with --prompt-ids-field",
                ));
            }
        } else if !self.jsonl {
            let needs_jsonl = [
                ("--field", self.field.is_some()),
                ("--prompt-field", self.prompt_field.is_some()),
                ("--prompt-ids-field", self.prompt_ids_field.is_some()),
            ];
            if let Some((flag, _)) = needs_jsonl.iter().find(|(_, given)| *given) {
                return Err(usage(format!(
                    "{flag} reads a field of JSON Lines input: add --jsonl (plain text input \
                     has no fields)"
                )));
            }
        }
        Ok(())
    }
}

/// Runs `greenmark detect`; returns whether a watermark was found (and `--exit-code` was given).
pub fn run(args: Args) -> Result<bool> {
    args.check_mode()?;
    if let Some(config) = &args.vllm_config {
        return gumbel::run(&args, config);
    }
    if let Some(config) = &args.synthid_config {
        return synthid::run(&args, config);
    }
    let setup = Setup::load(&args)?;
    let mut input = input::open(&args.input)?;
    let scoring = Scoring {
        threshold: args.threshold,
        several_keys: setup.keyring.detectors().len() > 1,
        span: args.span,
        json: args.json,
    };
    let found = if args.jsonl() {
        detect_jsonl(&setup, &mut input, &args, &scoring)?
    } else {
        detect_text(&setup, input, &scoring, args.min_span_tokens)?
    };
    Ok(found && args.exit_code)
}

/// What detection needs, loaded once: the keys and, for text, the tokenizer.
struct Setup {
    keyring: Keyring,
    /// The text detector (tokenizer and first key) when text is scored, or when a key file
    /// without a config needs the tokenizer's vocabulary.
    text: Option<TextDetector>,
}

impl Setup {
    fn load(args: &Args) -> Result<Setup> {
        let key_files = args
            .key_files
            .iter()
            .map(|path| Ok((load_key_file(path)?, path)))
            .collect::<Result<Vec<_>>>()?;
        // Ids need no tokenizer, unless one is named or a key file has no config to give the
        // vocabulary.
        let need_tokenizer = !args.ids_mode()
            || args.tokenizer.is_given()
            || key_files.iter().any(|(file, _)| file.config.is_none());
        let tokenizer = if need_tokenizer {
            Some(args.tokenizer.load()?)
        } else {
            None
        };
        let mut detectors = Vec::with_capacity(key_files.len());
        let mut configs: Vec<WatermarkConfig> = Vec::with_capacity(key_files.len());
        for (file, path) in &key_files {
            let config = match &tokenizer {
                Some((tokenizer, source)) => {
                    detection_config(file, path, tokenizer.get_vocab_size(true) as u32, source)?
                }
                None => file
                    .config
                    .clone()
                    .expect("checked: every key file has a config"),
            };
            detectors.push(Detector::new(&file.key, config.clone()));
            configs.push(config);
        }
        let keyring = Keyring::new(detectors)?;
        let text = match tokenizer {
            Some((tokenizer, _)) => {
                let (file, _) = &key_files[0];
                Some(TextDetector::new(tokenizer, &file.key, configs[0].clone())?)
            }
            None => None,
        };
        Ok(Setup { keyring, text })
    }

    fn text(&self) -> &TextDetector {
        self.text.as_ref().expect("text mode loads the tokenizer")
    }
}

/// A plain text input: streamed in bounded memory for one key without span search; read
/// whole otherwise (span search needs every token's colour).
fn detect_text(setup: &Setup, input: Input, scoring: &Scoring, min_span: u64) -> Result<bool> {
    let Input {
        mut reader, name, ..
    } = input;
    let detector = setup.text();
    let (scored, n_tokens, normalizations) = if !scoring.several_keys && !scoring.span {
        let result = detector
            .detect_reader(reader)
            .map_err(|e| text_error(e, &name))?;
        let n = result.detection.n_tokens;
        let keys = vec![result.detection];
        (
            Scored::Whole(greenmark::KeyringDetection::from_detections(keys)),
            n,
            result.normalizations,
        )
    } else {
        let mut bytes = Vec::new();
        reader
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {name}"))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            text_error(
                greenmark::Error::InvalidUtf8 {
                    offset: e.utf8_error().valid_up_to() as u64,
                },
                &name,
            )
        })?;
        let tokens = detector.tokens(&text).map_err(|e| text_error(e, &name))?;
        let scored = score_ids(setup, &tokens.ids, &[], scoring.span, min_span)?;
        (scored, tokens.ids.len(), tokens.normalizations)
    };
    let found = scored.is_significant(scoring.threshold);
    let mut out = io::stdout().lock();
    if scoring.json {
        let value = scoring.json_record(&scored, n_tokens, Some(&normalizations), None)?;
        writeln!(out, "{value}")?;
    } else {
        scoring.print_one(&mut out, &name, &scored, n_tokens, &normalizations, setup)?;
    }
    Ok(found)
}

/// Scores ids under every key, over the whole text or searching for a span.
fn score_ids(
    setup: &Setup,
    ids: &[u32],
    prompt: &[u32],
    span: bool,
    min_span: u64,
) -> greenmark::Result<Scored> {
    let options = span.then(|| SpanOptions::with_min_tokens(min_span as usize));
    setup.keyring.score(ids, prompt, options)
}

/// One JSON line's outcome: what was scored, or why it could not be.
type LineOutcome = (usize, Result<(Scored, usize, Option<Vec<Applied>>)>);

/// JSON Lines: each line scored on its own (in parallel, chunk by chunk, printed in input
/// order). A line that cannot be scored gets an error record and the rest go on; the command
/// then fails at the end.
fn detect_jsonl(setup: &Setup, input: &mut Input, args: &Args, scoring: &Scoring) -> Result<bool> {
    let mut out = io::stdout().lock();
    if !scoring.json {
        scoring.print_header(&mut out)?;
    }
    let (mut line_no, mut texts, mut found, mut errors) = (0usize, 0usize, 0usize, 0usize);
    loop {
        let lines = input::read_json_chunk(input, &mut line_no, LINES_PER_CHUNK)?;
        if lines.is_empty() {
            break;
        }
        let outcomes: Vec<LineOutcome> = lines
            .into_par_iter()
            .map(|(line, value)| {
                let outcome = value
                    .map_err(anyhow::Error::msg)
                    .and_then(|value| score_line(setup, &value, args));
                (line, outcome)
            })
            .collect();
        for (line, outcome) in outcomes {
            match outcome {
                Ok((scored, n_tokens, normalizations)) => {
                    texts += 1;
                    found += usize::from(scored.is_significant(scoring.threshold));
                    if scoring.json {
                        let value = scoring.json_record(
                            &scored,
                            n_tokens,
                            normalizations.as_deref(),
                            Some(line),
                        )?;
                        writeln!(out, "{value}")?;
                    } else {
                        scoring.print_row(&mut out, line, &scored, n_tokens, setup)?;
                    }
                }
                Err(error) => {
                    errors += 1;
                    let message = format!("{error:#}").replace(['\n', '\r'], " ");
                    if scoring.json {
                        let record = serde_json::json!({"line": line, "error": message});
                        writeln!(out, "{record}")?;
                    } else {
                        writeln!(out, "{line:>7}  error: {message}")?;
                    }
                }
            }
        }
    }
    if texts + errors == 0 {
        anyhow::bail!(
            "{} has no JSON lines (it is empty or blank): give one JSON object per line, with \
             the {} in field {:?}",
            input.name,
            if args.ids_mode() { "token ids" } else { "text" },
            args.ids_field.as_deref().unwrap_or(args.text_field())
        );
    }
    if !scoring.json {
        writeln!(
            out,
            "{found} of {texts} {} watermarked at p < {}",
            if args.ids_mode() { "answers" } else { "texts" },
            crate::table::format_threshold(scoring.threshold)
        )?;
    }
    out.flush()?;
    if errors > 0 {
        anyhow::bail!(
            "{errors} of {} lines of {} could not be scored (see their error records); the \
             other {texts} were scored",
            texts + errors,
            input.name
        );
    }
    Ok(found > 0)
}

/// Scores one JSON line: its text (or ids) after its prompt, if a prompt field is given.
fn score_line(
    setup: &Setup,
    value: &serde_json::Value,
    args: &Args,
) -> Result<(Scored, usize, Option<Vec<Applied>>)> {
    let prompt = match (&args.prompt_field, &args.prompt_ids_field) {
        (Some(field), _) => Some(Prompt::Text(input::string_field(
            value,
            field,
            "--prompt-field",
        )?)),
        (None, Some(field)) => Some(Prompt::Ids(input::token_ids_field(
            value,
            field,
            "name the field holding the prompt's ids with --prompt-ids-field",
        )?)),
        (None, None) => None,
    };
    let ids;
    let source = match &args.ids_field {
        Some(field) => {
            ids = input::token_ids(
                value,
                field,
                "name the field holding the ids with --ids-field (or give a plain JSON array)",
            )?;
            Source::Ids(&ids)
        }
        None => Source::Text(input::string_field(value, args.text_field(), "--field")?),
    };
    let mut query = Query::new(source);
    query.prompt = prompt.as_ref().map(Prompt::source);
    query.span = args
        .span
        .then(|| SpanOptions::with_min_tokens(args.min_span_tokens as usize));
    let answer = query
        .score(&setup.keyring, setup.text.as_ref())
        .map_err(|e| match e {
            greenmark::Error::EmptyText => text_error(e, "the text"),
            other => anyhow::Error::new(other),
        })?;
    let n_tokens = answer.ids.len();
    Ok((answer.scored, n_tokens, answer.normalizations))
}

/// A line's prompt: its text, or its ids.
enum Prompt<'a> {
    Text(&'a str),
    Ids(Vec<u32>),
}

impl Prompt<'_> {
    fn source(&self) -> Source<'_> {
        match self {
            Prompt::Text(text) => Source::Text(text),
            Prompt::Ids(ids) => Source::Ids(ids),
        }
    }
}

/// A text-detection error as a one-line message naming the input.
pub fn text_error(error: greenmark::Error, name: &str) -> anyhow::Error {
    match error {
        greenmark::Error::EmptyText => anyhow::anyhow!(
            "{name} is empty (no text after normalization): nothing to detect; give a text"
        ),
        other => anyhow::Error::new(other).context(format!("cannot detect in {name}")),
    }
}
