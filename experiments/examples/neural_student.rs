//! The neural student of the radioactivity experiment, from the command line
//! (`scripts/radioactivity/students.py` drives it): train a tiny transformer on token ids,
//! sample texts from it, or write its top-1 predictions while it reads texts.
//!
//! ```text
//! cargo run --release -p greenmark-experiments --example neural_student -- train \
//!     --corpus train.jsonl --out student.safetensors [--epochs 40] [--seed 0] [--d-model 64]
//!     [--heads 4] [--layers 2] [--mlp 256] [--context 128] [--batch 4] [--lr 2e-2]
//!     [--weight-decay 0.01] [--grad-clip 1] [--tie-embeddings true] [--base-vocab 49152] [--log loss.jsonl]
//! ... -- generate --model student.safetensors --n 3000 --len 100 [--temperature 1] [--seed 0]
//!     --out texts.jsonl
//! ... -- predict --model student.safetensors --texts wm.jsonl --out predictions.jsonl
//! ```
//!
//! Inputs are JSON Lines with the token ids (of the teacher's tokenizer) in the field `ids`.
//! `generate` writes `{"ids": [...]}` lines; `predict` writes `{"ids": [...], "predictions":
//! [...]}` lines, what `greenmark radioactivity open --predictions` reads. `train` prints one
//! JSON summary line (tokens, steps, seconds, tokens/s, loss at the start and over the last
//! epoch); `--log` writes every step's loss.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use greenmark_experiments::student::{Student, StudentConfig, TrainProgress};
use serde_json::json;

type Error = Box<dyn std::error::Error>;

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Error> {
    keep_freed_memory();
    let mut args = std::env::args().skip(1);
    let command = args.next().unwrap_or_default();
    let flags = Flags::parse(args.collect())?;
    match command.as_str() {
        "train" => train(flags),
        "generate" => generate(flags),
        "predict" => predict(flags),
        other => Err(format!(
            "unknown command {other:?}: use train, generate or predict (see the file's docs)"
        )
        .into()),
    }
}

/// Performance note: candle allocates fresh buffers for every tensor of every step, many above
/// glibc's mmap threshold (128 KiB at first), so each one is mapped, faulted in and unmapped
/// again. Training on one core spent 40% of its time in the kernel that way (4.3 s system of
/// 10.5 s for one epoch of 21k tokens); with the thresholds raised, 0.4 s. Equivalent to
/// `GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...:glibc.malloc.trim_threshold=...`.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        const M_TRIM_THRESHOLD: std::ffi::c_int = -1;
        const M_MMAP_THRESHOLD: std::ffi::c_int = -3;
        // SAFETY: mallopt only sets allocator parameters; called before any thread starts.
        unsafe {
            mallopt(M_MMAP_THRESHOLD, 1 << 30);
            mallopt(M_TRIM_THRESHOLD, i32::MAX);
        }
    }
}

/// `--name value` pairs; `--corpus` may repeat.
struct Flags(HashMap<String, Vec<String>>);

impl Flags {
    fn parse(args: Vec<String>) -> Result<Flags, Error> {
        let mut map: HashMap<String, Vec<String>> = HashMap::new();
        let mut it = args.into_iter();
        while let Some(flag) = it.next() {
            let name = flag
                .strip_prefix("--")
                .ok_or_else(|| format!("expected a --flag, got {flag:?}"))?;
            let value = it.next().ok_or_else(|| format!("--{name} needs a value"))?;
            map.entry(name.to_string()).or_default().push(value);
        }
        Ok(Flags(map))
    }

    fn all(&self, name: &str) -> Vec<String> {
        self.0.get(name).cloned().unwrap_or_default()
    }

    fn path(&self, name: &str) -> Result<PathBuf, Error> {
        self.0
            .get(name)
            .and_then(|v| v.last())
            .map(PathBuf::from)
            .ok_or_else(|| format!("--{name} is required").into())
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> Result<T, Error>
    where
        T::Err: std::fmt::Display,
    {
        match self.0.get(name).and_then(|v| v.last()) {
            None => Ok(default),
            Some(s) => s.parse().map_err(|e| format!("--{name} {s:?}: {e}").into()),
        }
    }
}

/// The `ids` arrays of a JSON Lines file.
fn read_ids(path: &Path) -> Result<Vec<Vec<u32>>, Error> {
    let file = File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut out = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| format!("{}:{}: not JSON: {e}", path.display(), n + 1))?;
        let ids = value["ids"]
            .as_array()
            .and_then(|a| {
                a.iter()
                    .map(|x| x.as_u64().and_then(|v| u32::try_from(v).ok()))
                    .collect::<Option<Vec<u32>>>()
            })
            .ok_or_else(|| {
                format!(
                    "{}:{}: no \"ids\" array of token ids",
                    path.display(),
                    n + 1
                )
            })?;
        out.push(ids);
    }
    Ok(out)
}

fn writer(path: &Path) -> Result<BufWriter<File>, Error> {
    Ok(BufWriter::new(File::create(path).map_err(|e| {
        format!("cannot write {}: {e}", path.display())
    })?))
}

fn train(flags: Flags) -> Result<(), Error> {
    let mut corpus = Vec::new();
    let files = flags.all("corpus");
    if files.is_empty() {
        return Err("--corpus FILE.jsonl is required (repeat it for several files)".into());
    }
    for f in files {
        corpus.extend(read_ids(Path::new(&f))?);
    }
    let out = flags.path("out")?;
    let mut config = StudentConfig::default();
    // Each flag overrides one field of the default config.
    macro_rules! set {
        ($($flag:literal => $field:ident),* $(,)?) => {
            $(config.$field = flags.num($flag, config.$field)?;)*
        };
    }
    set!(
        "base-vocab" => base_vocab_size,
        "context" => context,
        "d-model" => d_model,
        "heads" => heads,
        "layers" => layers,
        "mlp" => mlp,
        "batch" => batch,
        "tie-embeddings" => tie_embeddings,
        "epochs" => epochs,
        "lr" => learning_rate,
        "weight-decay" => weight_decay,
        "grad-clip" => grad_clip,
        "seed" => seed,
    );
    let mut log = match flags.0.contains_key("log") {
        true => Some(writer(&flags.path("log")?)?),
        false => None,
    };
    let mut steps: Vec<TrainProgress> = Vec::new();
    let mut log_error = None;
    let student = Student::train(&corpus, &config, &mut |p| {
        if let Some(w) = log.as_mut() {
            let line = json!({"step": p.step, "epoch": p.epoch, "loss": p.loss,
                              "seconds": p.elapsed.as_secs_f64()});
            if let Err(e) = writeln!(w, "{line}") {
                log_error.get_or_insert(e);
            }
        }
        if p.step == 1 || p.step % 50 == 0 || p.step == p.steps {
            eprintln!(
                "step {}/{} epoch {} loss {:.3} ({:.0} tokens/s)",
                p.step,
                p.steps,
                p.epoch,
                p.loss,
                p.tokens as f64 / p.elapsed.as_secs_f64()
            );
        }
        steps.push(p);
    })?;
    if let Some(e) = log_error {
        return Err(format!("writing the loss log: {e}").into());
    }
    if let Some(mut w) = log {
        w.flush()?;
    }
    student.save(&out)?;
    let last = steps.last().expect("training takes at least one step");
    let epoch_mean = |e: usize| {
        let xs: Vec<f64> = steps
            .iter()
            .filter(|p| p.epoch == e)
            .map(|p| f64::from(p.loss))
            .collect();
        xs.iter().sum::<f64>() / xs.len() as f64
    };
    let summary = json!({
        "texts": corpus.len(),
        "corpus_tokens": corpus.iter().map(Vec::len).sum::<usize>(),
        "vocab": student.vocab().len(),
        "parameters": student.parameter_count(),
        "steps": last.steps,
        "tokens": last.tokens,
        "seconds": last.elapsed.as_secs_f64(),
        "tokens_per_second": last.tokens as f64 / last.elapsed.as_secs_f64(),
        "loss_first_step": steps[0].loss,
        "loss_first_epoch": epoch_mean(0),
        "loss_last_epoch": epoch_mean(last.epoch),
        "config": student.config(),
    });
    println!("{summary}");
    Ok(())
}

fn generate(flags: Flags) -> Result<(), Error> {
    let student = Student::load(&flags.path("model")?)?;
    let n: usize = flags.num("n", 100)?;
    let len: usize = flags.num("len", 100)?;
    let temperature: f64 = flags.num("temperature", 1.0)?;
    let seed: u64 = flags.num("seed", 0)?;
    let start = Instant::now();
    let texts = student.generate(n, len, temperature, seed)?;
    let mut w = writer(&flags.path("out")?)?;
    for t in &texts {
        writeln!(w, "{}", json!({ "ids": t }))?;
    }
    w.flush()?;
    let tokens: usize = texts.iter().map(Vec::len).sum();
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"texts": n, "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens as f64 / seconds})
    );
    Ok(())
}

fn predict(flags: Flags) -> Result<(), Error> {
    let student = Student::load(&flags.path("model")?)?;
    let texts = read_ids(&flags.path("texts")?)?;
    let start = Instant::now();
    let mut w = writer(&flags.path("out")?)?;
    let mut tokens = 0;
    for ids in &texts {
        let predictions = student.top1_predictions(ids)?;
        tokens += ids.len();
        writeln!(w, "{}", json!({ "ids": ids, "predictions": predictions }))?;
    }
    w.flush()?;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"texts": texts.len(), "tokens": tokens, "seconds": seconds, "tokens_per_second": tokens as f64 / seconds})
    );
    Ok(())
}
