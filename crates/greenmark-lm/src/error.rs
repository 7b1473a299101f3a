//! Errors of the model crate: each says what went wrong and what to do about it.

use std::path::{Path, PathBuf};

/// What can go wrong fetching, loading or running a model.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LmError {
    /// A file could not be read or written.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The model file is not where it should be.
    #[error("no model at {}: {hint}", path.display())]
    MissingModel {
        /// Where it was looked for.
        path: PathBuf,
        /// What to do.
        hint: String,
    },
    /// Fetching the default model failed.
    #[error("fetching the default model failed: {what}; {fix}")]
    Fetch {
        /// What failed.
        what: String,
        /// What to run or set.
        fix: String,
    },
    /// Fetching the screening reference corpus failed.
    #[error("fetching the reference corpus failed: {what}; {fix}")]
    CorpusFetch {
        /// What failed.
        what: String,
        /// What to run or install.
        fix: String,
    },
    /// A reference-corpus file is not in the format expected.
    #[error("{} is not a usable corpus file: {message}", path.display())]
    CorpusFormat {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A downloaded file does not hash to the pinned value.
    #[error(
        "{} is corrupt: SHA-256 {got}, expected {expected}; delete {} and run again to fetch \
         it anew",
        path.display(),
        path.display()
    )]
    Checksum {
        /// The file.
        path: PathBuf,
        /// The pinned hash.
        expected: String,
        /// What it hashed to.
        got: String,
    },
    /// A file is not a valid archive or GGUF model.
    #[error("{} is not a usable model file: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A generation option is out of range.
    #[error("invalid generation option: {0}")]
    InvalidOption(String),
    /// Token ids or training data a model cannot use (empty, or outside its vocabulary).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The tokenizer could not be built.
    #[error(transparent)]
    Tokenizer(#[from] crate::tokenizer::TokenizerError),
    /// The tokenizer failed on a text or on token ids.
    #[error("could not {action} with the model's tokenizer: {message}")]
    Text {
        /// `encode` or `decode`.
        action: &'static str,
        /// The tokenizer's message.
        message: String,
    },
    /// The watermark refused the logits or the context.
    #[error(transparent)]
    Watermark(#[from] greenmark::Error),
    /// The model failed while running.
    #[error("the model failed: {0}")]
    Model(#[from] candle_core::Error),
}

impl LmError {
    pub(crate) fn io(action: &'static str, path: &Path, source: std::io::Error) -> LmError {
        LmError::Io {
            action,
            path: path.to_path_buf(),
            source,
        }
    }
}

/// `Result` with [`LmError`].
pub type Result<T, E = LmError> = std::result::Result<T, E>;
