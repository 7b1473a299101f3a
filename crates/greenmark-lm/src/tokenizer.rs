//! The HF tokenizer of a GGUF model, built from the file's metadata.
//!
//! For `tokenizer.ggml.model = "gpt2"` (byte-level BPE, as SmolLM2 and most llama-family
//! models): the BPE model from `tokenizer.ggml.tokens` and `tokenizer.ggml.merges`, the
//! pre-tokenizer named by `tokenizer.ggml.pre` (`smollm` splits every digit, then the GPT-2
//! byte-level split; others use the GPT-2 split alone), the byte-level decoder, and every
//! token whose `tokenizer.ggml.token_type` is control (3) or user-defined (4) as an added,
//! special token (so `<|im_start|>` is one id, never split).

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// Why a tokenizer could not be built or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// A metadata key is missing or has the wrong type.
    #[error("the GGUF metadata has no usable `{key}`: {message}")]
    Metadata {
        /// The key.
        key: &'static str,
        /// What is wrong with it.
        message: String,
    },
    /// The GGUF's tokenizer is of a kind this crate does not build.
    #[error(
        "the GGUF's tokenizer model is `{0}`; only byte-level BPE (`gpt2`) is supported, \
         pass a tokenizer.json instead"
    )]
    Unsupported(String),
    /// The tokenizers library refused the vocabulary or merges.
    #[error("could not build the tokenizer: {0}")]
    Build(String),
    /// A tokenizer or model file could not be read.
    #[error("could not read the tokenizer from {}: {message}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

type Result<T> = std::result::Result<T, TokenizerError>;

fn get<'a>(content: &'a Content, key: &'static str) -> Result<&'a Value> {
    content.metadata.get(key).ok_or(TokenizerError::Metadata {
        key,
        message: "missing".into(),
    })
}

fn strings(content: &Content, key: &'static str) -> Result<Vec<String>> {
    let bad = |message: String| TokenizerError::Metadata { key, message };
    get(content, key)?
        .to_vec()
        .map_err(|e| bad(e.to_string()))?
        .iter()
        .map(|v| v.to_string().cloned().map_err(|e| bad(e.to_string())))
        .collect()
}

/// Builds the tokenizer described by a GGUF file's metadata (see the module docs).
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer> {
    let model = get(content, "tokenizer.ggml.model")?
        .to_string()
        .map_err(|e| TokenizerError::Metadata {
            key: "tokenizer.ggml.model",
            message: e.to_string(),
        })?;
    if model != "gpt2" {
        return Err(TokenizerError::Unsupported(model.clone()));
    }
    let tokens = strings(content, "tokenizer.ggml.tokens")?;
    let merges = strings(content, "tokenizer.ggml.merges")?
        .into_iter()
        .map(|m| match m.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => Err(TokenizerError::Metadata {
                key: "tokenizer.ggml.merges",
                message: format!("merge {m:?} is not two tokens separated by a space"),
            }),
        })
        .collect::<Result<Vec<_>>>()?;
    let types: Vec<i32> = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(v) => v
            .to_vec()
            .and_then(|vs| vs.iter().map(|t| t.to_i32()).collect())
            .map_err(|e| TokenizerError::Metadata {
                key: "tokenizer.ggml.token_type",
                message: e.to_string(),
            })?,
        None => Vec::new(),
    };
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(bpe);
    let byte_level = ByteLevel::new(false, true, true);
    let pre = content
        .metadata
        .get("tokenizer.ggml.pre")
        .and_then(|v| v.to_string().ok())
        .map(String::as_str);
    let pre_tokenizer: PreTokenizerWrapper = match pre {
        Some("smollm") => Sequence::new(vec![Digits::new(true).into(), byte_level.into()]).into(),
        _ => byte_level.into(),
    };
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));
    let special: Vec<AddedToken> = types
        .iter()
        .enumerate()
        .filter(|(_, &t)| t == 3 || t == 4)
        .filter_map(|(i, _)| tokens.get(i))
        .map(|t| AddedToken::from(t.clone(), true))
        .collect();
    tokenizer.add_special_tokens(&special);
    Ok(tokenizer)
}

/// Reads a tokenizer from a `.gguf` model (its metadata only) or from a `tokenizer.json`.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer> {
    let file_error = |message: String| TokenizerError::File {
        path: path.to_path_buf(),
        message,
    };
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
    {
        let file = std::fs::File::open(path).map_err(|e| file_error(e.to_string()))?;
        let mut reader = std::io::BufReader::new(file);
        let content = Content::read(&mut reader).map_err(|e| file_error(e.to_string()))?;
        tokenizer_from_gguf(&content)
    } else {
        Tokenizer::from_file(path).map_err(|e| file_error(e.to_string()))
    }
}
