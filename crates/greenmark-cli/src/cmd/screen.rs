//! `greenmark screen`: check a key on reference human text before using it (and the
//! `--screen` of `keygen`). The statistics are the core's ([`greenmark::screen`]); this
//! module reads the corpus, tokenizes it as `detect` does, and prints.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use greenmark::screen::{ScreenCorpus, ScreenOptions, ScreenReport, DEFAULT_CHUNK_TOKENS};
use greenmark::text::TextDetector;
use greenmark::{Detector, Key, WatermarkConfig};
use rayon::prelude::*;

use super::{detection_config, load_key_file, TokenizerArgs};
use crate::table::{format_p_value, Align, Table};

/// The name that selects the reference corpus (fetched from Debian packages).
pub const REFERENCE: &str = "reference";

/// The corpus and test settings shared by `screen` and `keygen --screen`.
#[derive(Debug, Clone, clap::Args)]
pub struct ScreenSettings {
    /// Tokens per chunk: each document is cut into chunks of this many tokens, each detected
    /// as one text (the last partial chunk of a document is left out).
    #[arg(long = "screen-chunk", value_name = "N", default_value_t = DEFAULT_CHUNK_TOKENS)]
    pub chunk: usize,
    /// Family-wise level of the verdict: the key fails if any of its 2 tests per genre has a
    /// p-value below LEVEL / (2 x genres).
    #[arg(long = "screen-level", value_name = "LEVEL", default_value_t = greenmark::screen::DEFAULT_LEVEL)]
    pub level: f64,
    /// Score repeated tuples again, as a detector without dedup would (only for comparison:
    /// `detect` always deduplicates).
    #[arg(long = "screen-no-dedup")]
    pub no_dedup: bool,
}

impl ScreenSettings {
    fn options(&self) -> Result<ScreenOptions> {
        ScreenOptions::new(self.level, greenmark::screen::DEFAULT_TAIL_THRESHOLD)
            .context("invalid --screen-level")
    }
}

/// Arguments of `greenmark screen`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The key file to screen (from `greenmark keygen`).
    #[arg(long = "key-file", value_name = "FILE")]
    key_file: PathBuf,
    #[command(flatten)]
    tokenizer: TokenizerArgs,
    #[command(flatten)]
    settings: ScreenSettings,
    /// Print the report as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Human text to screen on: `reference` (four genres of public-domain English from
    /// Debian packages, fetched once), a directory (each subdirectory a genre, each file in
    /// it a document; files at the top form one genre), a `.jsonl` file (`{"text": ...,
    /// "genre": ...}` per line), or one text file.
    #[arg(value_name = "CORPUS", default_value = REFERENCE)]
    corpus: String,
}

/// Runs `greenmark screen`; `Ok(true)` when the key failed (exit status 11).
pub fn run(args: Args) -> Result<bool> {
    let options = args.settings.options()?;
    let key_file = load_key_file(&args.key_file)?;
    let (tokenizer, source) = args.tokenizer.load()?;
    let config = detection_config(
        &key_file,
        &args.key_file,
        tokenizer.get_vocab_size(true) as u32,
        &source,
    )?;
    let text = TextDetector::new(tokenizer, &key_file.key, config.clone())
        .with_context(|| format!("the tokenizer {source} does not fit the key file"))?;
    let corpus = build_corpus(&args.corpus, &text, args.settings.chunk)?;
    let detector = Detector::new(&key_file.key, config).with_dedup(!args.settings.no_dedup);
    let report = corpus.screen(&detector, &options)?;
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["corpus"] = args.corpus.clone().into();
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{}", render(&report, &args.corpus));
    }
    Ok(!report.passed)
}

/// Reads, tokenizes (as `detect` does: normalized, no special tokens) and chunks a corpus.
pub fn build_corpus(spec: &str, text: &TextDetector, chunk: usize) -> Result<ScreenCorpus> {
    let genres = read_corpus(spec)?;
    let spinner = crate::progress::spinner("tokenizing the screening corpus");
    let mut corpus = ScreenCorpus::new(chunk).context("invalid --screen-chunk")?;
    for (genre, documents) in genres {
        let ids: Vec<Vec<u32>> = documents
            .par_iter()
            .map(|(name, body)| match text.tokens(body) {
                Ok(tokens) => Ok(tokens.ids),
                Err(greenmark::Error::EmptyText) => Ok(Vec::new()),
                Err(e) => Err(e).with_context(|| format!("cannot tokenize {name}")),
            })
            .collect::<Result<_>>()?;
        corpus
            .add_genre(&genre, &ids)
            .with_context(|| format!("cannot screen on genre {genre:?} of {spec}"))?;
    }
    spinner.finish_and_clear();
    Ok(corpus)
}

/// `(genre, [(document name, text)])` of a corpus spec (see [`Args`]).
type Genres = Vec<(String, Vec<(String, String)>)>;

fn read_corpus(spec: &str) -> Result<Genres> {
    if spec == REFERENCE {
        let spinner = crate::progress::spinner("loading the reference corpus");
        let genres = greenmark_lm::corpus::reference_corpus(&mut |line| {
            spinner.set_message(line.to_string())
        })
        .context("cannot load the reference corpus")?;
        spinner.finish_and_clear();
        return Ok(genres
            .into_iter()
            .map(|g| (g.name.to_string(), g.documents))
            .collect());
    }
    let path = Path::new(spec);
    if path.is_dir() {
        return read_dir_corpus(path);
    }
    if !path.is_file() {
        bail!(
            "corpus {spec} is neither `{REFERENCE}` nor an existing directory or file: give a \
             directory of text files (one subdirectory per genre), a .jsonl file, or `{REFERENCE}`"
        );
    }
    if spec.ends_with(".jsonl") {
        return read_jsonl_corpus(path);
    }
    let genre = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "corpus".into());
    Ok(vec![(genre, vec![(spec.to_string(), read_text(path)?)])])
}

fn read_text(path: &Path) -> Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{} is not UTF-8 text (invalid byte at offset {}): the corpus must be text files",
            path.display(),
            e.utf8_error().valid_up_to()
        )
    })
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot list {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    entries.sort();
    Ok(entries)
}

fn read_dir_corpus(dir: &Path) -> Result<Genres> {
    let mut genres: Genres = Vec::new();
    let mut top = Vec::new();
    for entry in sorted_entries(dir)? {
        if entry.is_dir() {
            let mut documents = Vec::new();
            for file in sorted_entries(&entry)?.into_iter().filter(|p| p.is_file()) {
                documents.push((file.display().to_string(), read_text(&file)?));
            }
            let name = entry
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            genres.push((name, documents));
        } else if entry.is_file() {
            top.push((entry.display().to_string(), read_text(&entry)?));
        }
    }
    if !top.is_empty() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "corpus".into());
        genres.insert(0, (name, top));
    }
    if genres.is_empty() {
        bail!(
            "corpus directory {} has no files: put text files in it (one subdirectory per genre)",
            dir.display()
        );
    }
    Ok(genres)
}

fn read_jsonl_corpus(path: &Path) -> Result<Genres> {
    let text = read_text(path)?;
    let mut genres: Genres = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let where_ = || format!("{} line {}", path.display(), i + 1);
        let value: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("{} is not JSON", where_()))?;
        let Some(body) = value.get("text").and_then(|t| t.as_str()) else {
            bail!("{} has no string field \"text\"", where_());
        };
        let genre = match value.get("genre") {
            None => "corpus".to_string(),
            Some(serde_json::Value::String(g)) => g.clone(),
            Some(_) => bail!("{}: \"genre\" must be a string", where_()),
        };
        let document = (where_(), body.to_string());
        match genres.iter_mut().find(|(g, _)| *g == genre) {
            Some((_, docs)) => docs.push(document),
            None => genres.push((genre, vec![document])),
        }
    }
    if genres.is_empty() {
        bail!("{} has no lines of text", path.display());
    }
    Ok(genres)
}

/// The report as a table and a verdict line.
pub fn render(report: &ScreenReport, corpus: &str) -> String {
    let mut out = format!(
        "key {} ({}, gamma {}, dedup {}) on {corpus}: chunks of {} tokens\n",
        report.key_id,
        report.scheme,
        report.gamma,
        if report.dedup { "on" } else { "off" },
        report.chunk_tokens
    );
    let mut table = Table::new(&[
        ("genre", Align::Left),
        ("chunks", Align::Right),
        ("p<1e-2", Align::Right),
        ("p<1e-3 (expected)", Align::Right),
        ("p<1e-6", Align::Right),
        ("KS D+", Align::Right),
        ("KS p", Align::Right),
        ("tail p", Align::Right),
        ("verdict", Align::Left),
    ]);
    let rate = |count: u64, chunks: usize| {
        format!("{count} ({:.2}%)", 100.0 * count as f64 / chunks as f64)
    };
    for g in &report.genres {
        table.row(vec![
            g.genre.clone(),
            g.n_chunks.to_string(),
            rate(g.fpr[0].count, g.n_chunks),
            format!(
                "{} ({:.2})",
                rate(g.fpr[1].count, g.n_chunks),
                g.fpr[1].expected
            ),
            g.fpr[2].count.to_string(),
            format!("{:.4}", g.ks.d_plus),
            format_p_value(g.ks.ln_p_value.exp(), g.ks.log10_p_value),
            format_p_value(g.tail.ln_p_value.exp(), g.tail.log10_p_value),
            if g.passed { "pass" } else { "FAIL" }.into(),
        ]);
    }
    let chunks: usize = report.genres.iter().map(|g| g.n_chunks).sum();
    let o = &report.overall;
    table.row(vec![
        "all".into(),
        chunks.to_string(),
        rate(o[0].count, chunks),
        format!("{} ({:.2})", rate(o[1].count, chunks), o[1].expected),
        o[2].count.to_string(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
    ]);
    out.push_str(&table.render());
    out.push_str(&format!(
        "{}: {} tests, each at {:.2e} (level {} / {})\n",
        if report.passed { "PASSED" } else { "REJECTED" },
        report.n_tests,
        report.per_test_level,
        report.level,
        report.n_tests
    ));
    for line in report.failures() {
        out.push_str(&format!("  {line}\n"));
    }
    out
}

/// `keygen --screen`: draws up to `tries` keys, screening each on `corpus`, and returns the
/// first that passes (with every report), or `None` with the reports when none did.
pub fn screen_candidates(
    corpus_spec: &str,
    settings: &ScreenSettings,
    tokenizer: &TokenizerArgs,
    config: &WatermarkConfig,
    tries: u32,
) -> Result<(Option<Key>, Vec<ScreenReport>)> {
    let options = settings.options()?;
    let (tok, source) = tokenizer.load()?;
    let first = Key::generate()?;
    let text = TextDetector::new(tok, &first, config.clone()).with_context(|| {
        format!("the tokenizer {source} does not fit the key's config (--vocab-size)")
    })?;
    let corpus = build_corpus(corpus_spec, &text, settings.chunk)?;
    let mut reports = Vec::new();
    let mut key = first;
    for attempt in 1..=tries {
        if attempt > 1 {
            key = Key::generate()?;
        }
        let detector = Detector::new(&key, config.clone()).with_dedup(!settings.no_dedup);
        let report = corpus.screen(&detector, &options)?;
        let passed = report.passed;
        eprint!(
            "candidate {attempt} of {tries}: {}",
            render(&report, corpus_spec)
        );
        reports.push(report);
        if passed {
            return Ok((Some(key), reports));
        }
    }
    Ok((None, reports))
}
