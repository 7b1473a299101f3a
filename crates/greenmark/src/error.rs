//! Typed errors: one enum whose variants a caller can match, each with a message that says what
//! to fix. No variant ever carries key material.

use std::path::PathBuf;

/// The result type of every fallible greenmark call.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in greenmark.
///
/// Messages are one sentence that names the bad value and what is expected, so that a CLI or a
/// Python binding can show them as they are.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `gamma` (the green fraction) is not strictly between 0 and 1.
    #[error("gamma must be strictly between 0 and 1 (e.g. 0.25), got {0}")]
    InvalidGamma(f64),
    /// `delta` (the logit bias) is not above 0 and at most [`crate::config::MAX_DELTA`].
    #[error("delta must be above 0 and at most 20 (e.g. 2.0; see greenmark::config::MAX_DELTA), got {0}")]
    InvalidDelta(f64),
    /// The vocabulary size is too small to watermark.
    #[error("vocab size must be at least 2, got {0}")]
    InvalidVocabSize(u64),
    /// A scheme parameter (window or top-k) is out of range.
    #[error("invalid {scheme} parameter: {reason}")]
    InvalidScheme {
        /// The scheme's name, e.g. `minhash`.
        scheme: &'static str,
        /// What is wrong and what range is allowed.
        reason: String,
    },
    /// A scheme name that is not one of [`crate::Scheme::NAMES`].
    #[error(
        "unknown scheme {name:?}: expected one of lefthash, minhash, sumhash, selfhash, unigram"
    )]
    UnknownScheme {
        /// The name given.
        name: String,
    },
    /// A significance threshold (a p-value) is not strictly between 0 and 1.
    #[error("the p-value threshold must be strictly between 0 and 1 (e.g. 1e-6), got {0}")]
    InvalidThreshold(f64),
    /// A parameter of a detector, search, sampler or test is out of range.
    #[error("invalid {option}: {reason}")]
    InvalidOption {
        /// The parameter, by its name in the API (`min_tokens`, `max_tuples`, ...).
        option: &'static str,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// The keys given to a keyring or a test cannot be tested together: none, one given
    /// twice, or keys of different kinds.
    #[error("invalid keys: {0}")]
    InvalidKeys(String),
    /// A call came in an order the API does not allow (a prompt added after scoring began, a
    /// pool merged after it was folded).
    #[error("{0}")]
    CallOrder(String),
    /// Pooled or recorded tuples contradict each other (a count of 0, two scores for one
    /// tuple): they come from different tests or were corrupted.
    #[error("inconsistent tuples: {0}")]
    InconsistentTuples(String),
    /// What was asked is not supported for this scheme or setting.
    #[error("not supported: {0}")]
    Unsupported(String),
    /// A logits row does not have one entry per vocabulary token.
    #[error("logits row {row} has {got} entries but the watermark's vocab size is {expected}: pass the full, unpadded row or build the config with the model's vocab size")]
    RowLength {
        /// Index of the row in the batch (0 for a single row).
        row: usize,
        /// The configured vocabulary size.
        expected: usize,
        /// The row's length.
        got: usize,
    },
    /// A batch's shape is inconsistent (rows vs contexts).
    #[error("batch shape mismatch: {0}")]
    BatchShape(String),
    /// A green-mask buffer has the wrong number of 64-bit words.
    #[error("green mask needs {expected} u64 words (one bit per token of a {vocab_size}-token vocabulary), got {got}")]
    MaskLength {
        /// Words needed: `ceil(vocab_size / 64)`.
        expected: usize,
        /// Words given.
        got: usize,
        /// The configured vocabulary size.
        vocab_size: u32,
    },
    /// A token id is not below the vocabulary size.
    #[error("token id {token} at {sequence} position {position} is out of range for vocab size {vocab_size}: was it tokenized with a different tokenizer?")]
    TokenOutOfRange {
        /// Position of the bad token in the sequence it came from.
        position: usize,
        /// The bad token id.
        token: u32,
        /// The configured vocabulary size.
        vocab_size: u32,
        /// Which sequence holds it: `text`, `prompt` or `context`.
        sequence: &'static str,
    },
    /// A token id equal to `u32::MAX` (vLLM's `-1`), which the Gumbel family reserves for
    /// context padding.
    #[error("token id 4294967295 (-1) at position {position} is reserved for context padding; token ids must be below 2^32 - 1")]
    ReservedToken {
        /// Position of the token in the sequence given.
        position: usize,
    },
    /// A key's text is malformed (the message never repeats the key).
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// The OS random number generator failed while generating a key.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),
    /// A file could not be read or written.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done (`read key file`, `write key file`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A key or config file was not read: it is not a regular file, or it is too large
    /// ([`crate::files::read_limited`]).
    #[error("cannot {action} {}: {problem}", path.display())]
    FileRefused {
        /// What was being done (`read key file`, ...).
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it was refused.
        problem: FileProblem,
    },
    /// A config or key file is not valid JSON of the expected shape.
    #[error("invalid {what}: {message}")]
    Parse {
        /// What was being parsed.
        what: Document,
        /// The parser's message (never a value read from a key file).
        message: String,
    },
    /// A config given to a detector disagrees with the one stored beside the key.
    #[error("config mismatch on {field}: the key file says {stored}, but {given} was given; detect with the key file's config (or re-key)")]
    ConfigMismatch {
        /// The field that differs.
        field: &'static str,
        /// The key file's value.
        stored: String,
        /// The given value.
        given: String,
    },
    /// A model's logits rows are not as wide as the watermark config's vocabulary.
    #[error("the model's logits have {model} entries per row but the key's watermark config is for a vocabulary of {vocab_size}: use the model the key was made for, or a key made for this model (vocab size {model})")]
    ModelVocab {
        /// Entries per logits row of the model.
        model: u64,
        /// The config's vocab size.
        vocab_size: u32,
    },
    /// A text to detect in is empty or only whitespace.
    #[error("the text is empty (or only whitespace): there is nothing to detect")]
    EmptyText,
    /// Input that should be UTF-8 text is not.
    #[error(
        "the input is not UTF-8 text (invalid byte at offset {offset}); pass text, not binary data"
    )]
    InvalidUtf8 {
        /// Byte offset of the first invalid byte.
        offset: u64,
    },
    /// The tokenizer could not be loaded or failed on a text.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The tokenizer has more tokens than the watermark config's vocabulary.
    #[error("the tokenizer has {tokenizer} tokens but the key's watermark config is for a vocabulary of {vocab_size}: use the tokenizer of the model the key was made for, or a key made for this tokenizer's model (vocab size >= {tokenizer})")]
    TokenizerVocab {
        /// Tokens in the tokenizer, added tokens included.
        tokenizer: usize,
        /// The config's vocab size.
        vocab_size: u32,
    },
    /// One text of a batch failed (radioactivity pooling): which, and why.
    #[error("text {index} (doc id {doc}) of the batch: {source}")]
    InBatch {
        /// The text's index in the batch.
        index: usize,
        /// The text's doc id.
        doc: u64,
        /// What went wrong in it.
        source: Box<Error>,
    },
    /// Two texts of a corpus have the same doc id, which orders the corpus.
    #[error("doc id {doc} is given to texts {first} and {second}: doc ids order the corpus, so each text needs its own")]
    DuplicateDoc {
        /// The doc id.
        doc: u64,
        /// The first text that has it (index in the batch).
        first: usize,
        /// Another text that has it.
        second: usize,
    },
}

/// Why [`crate::files::read_limited`] refused a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileProblem {
    /// Not a regular file: a directory, FIFO, socket or device (`/dev/zero`).
    NotRegular {
        /// What it is instead (`a directory`, `a FIFO (named pipe)`, `a character device`, ...).
        kind: &'static str,
    },
    /// Larger than the limit for its kind of file.
    TooLarge {
        /// The limit in bytes.
        limit: u64,
    },
}

impl std::fmt::Display for FileProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileProblem::NotRegular { kind } => write!(
                f,
                "it is {kind}, not a regular file: pass the path of the file itself"
            ),
            FileProblem::TooLarge { limit } if limit % (1 << 20) == 0 => write!(
                f,
                "it is larger than {} MiB, far more than a key or config file holds: is it the \
                 right file?",
                limit >> 20
            ),
            FileProblem::TooLarge { limit } if limit % 1024 == 0 => write!(
                f,
                "it is larger than {} KiB, far more than a key or config file holds: is it the \
                 right file?",
                limit / 1024
            ),
            FileProblem::TooLarge { limit } => write!(
                f,
                "it is larger than {limit} bytes, far more than a key or config file holds: is it \
                 the right file?"
            ),
        }
    }
}

/// The kinds of document greenmark parses, so a caller can tell a bad config from a bad key
/// file without reading the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Document {
    /// A watermark config's JSON ([`crate::WatermarkConfig::from_json`]).
    Config,
    /// A key file ([`crate::KeyFile`]).
    KeyFile,
    /// vLLM's `--watermark-config` JSON ([`crate::VllmWatermarkConfig`]).
    VllmConfig,
    /// transformers' SynthID Text config JSON ([`crate::synthid::SynthIdConfig`]).
    SynthIdConfig,
}

impl std::fmt::Display for Document {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Document::Config => "config JSON",
            Document::KeyFile => "key file",
            Document::VllmConfig => "vLLM watermark config",
            Document::SynthIdConfig => "SynthID Text config",
        })
    }
}

impl Error {
    /// An [`Error::InvalidOption`] for the parameter `option`.
    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidOption {
            option,
            reason: reason.into(),
        }
    }

    pub(crate) fn scheme(scheme: &'static str, reason: impl Into<String>) -> Self {
        Error::InvalidScheme {
            scheme,
            reason: reason.into(),
        }
    }
}
