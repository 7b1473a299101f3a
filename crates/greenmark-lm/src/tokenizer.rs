//! The model's HF tokenizer, built from a GGUF file's metadata or read from a `tokenizer.json`.
//!
//! A GGUF file carries its tokenizer as metadata: `tokenizer.ggml.model` (the algorithm),
//! `tokenizer.ggml.tokens` (the vocabulary, in id order), `tokenizer.ggml.merges` (BPE merge
//! rules, by rank), `tokenizer.ggml.token_type` (1 normal, 3 control, 4 user-defined) and
//! `tokenizer.ggml.pre`, the name llama.cpp gives the pre-tokenization (the regex that cuts text
//! into words before BPE). [`tokenizer_from_gguf`] turns these into a [`tokenizers::Tokenizer`]
//! that gives the same ids as the model's original `tokenizer.json`.
//!
//! Only byte-level BPE (`tokenizer.ggml.model = "gpt2"`, as GPT-2, SmolLM, Llama 3 and Qwen 2
//! use) is built; SentencePiece GGUFs are refused with an error that says to pass the model's
//! `tokenizer.json` instead.
//!
//! **Pre-tokenization.** `tokenizer.ggml.pre` is mapped to the split the original tokenizer
//! used, as llama.cpp does:
//!
//! | `tokenizer.ggml.pre`                            | split                                     |
//! |-------------------------------------------------|-------------------------------------------|
//! | `gpt2` (or absent, as in older files)           | the GPT-2 regex                           |
//! | `smollm`, `starcoder`, `refact`, `codeshell`    | every digit alone, then the GPT-2 regex   |
//! | `llama-bpe`, `llama3`                           | the Llama 3 regex (digits in runs of 1-3) |
//! | `qwen2`                                         | the Llama 3 regex with single digits      |
//!
//! Any other name is refused ([`TokenizerError::UnsupportedPreTokenizer`]): guessing the split
//! would give different ids for some texts, and a watermark detector fed different ids than the
//! generator used silently loses its signal.
//!
//! Transformers' own GGUF loader ignores `tokenizer.ggml.pre` and always uses the GPT-2 regex;
//! for SmolLM2 that differs from the original tokenizer on whitespace runs before digits
//! (`"a   1"`), where this module follows the original.
//!
//! # Example
//! ```no_run
//! use greenmark_lm::tokenizer::{load_tokenizer, special_token_id};
//! let tok = load_tokenizer("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref())?;
//! let ids = tok.encode("Hello world", false).map_err(|e| e.to_string())?.get_ids().to_vec();
//! assert_eq!(special_token_id(&tok, "<|im_end|>"), Some(2));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, SplitDelimiterBehavior, Tokenizer};

/// The special tokens of the ChatML template SmolLM2-Instruct (and many others) use; added as
/// special tokens when the vocabulary has them, whatever their `token_type` says.
pub const CHAT_SPECIAL_TOKENS: [&str; 3] = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"];

/// `tokenizer.ggml.token_type` of a control token (`<|im_end|>`): added as a special token.
const TOKEN_TYPE_CONTROL: i64 = 3;
/// `tokenizer.ggml.token_type` of a user-defined token: added as a (non-special) added token.
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

/// Llama 3's pre-tokenization regex (digits in runs of up to three).
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2's pre-tokenization regex (single digits).
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// What can go wrong building or loading a tokenizer. Every message names the file or the
/// metadata key at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenizerError {
    /// The file could not be opened or read.
    #[error("cannot read tokenizer from {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file is neither a readable GGUF nor a valid `tokenizer.json`.
    #[error("{} is not a valid {format}: {message}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it was read as: `GGUF file` or `tokenizer.json`.
        format: &'static str,
        /// The parser's message.
        message: String,
    },
    /// A metadata key the tokenizer needs is absent.
    #[error("the GGUF metadata has no `{key}`: the file carries no tokenizer; pass the model's tokenizer.json instead")]
    MissingMetadata {
        /// The key, e.g. `tokenizer.ggml.tokens`.
        key: &'static str,
    },
    /// A metadata value has the wrong type or an invalid entry.
    #[error("invalid GGUF metadata `{key}`: {message}")]
    BadMetadata {
        /// The key.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The GGUF's tokenizer is not byte-level BPE.
    #[error("the GGUF tokenizer model is `{model}`, but only byte-level BPE (`gpt2`) can be built from GGUF metadata; pass the model's tokenizer.json instead")]
    UnsupportedModel {
        /// `tokenizer.ggml.model`.
        model: String,
    },
    /// The GGUF's pre-tokenization is not one this module knows.
    #[error("unknown GGUF pre-tokenizer `{pre}` (known: gpt2, smollm, starcoder, refact, codeshell, llama-bpe, llama3, qwen2); pass the model's tokenizer.json instead, as guessing the split would change token ids")]
    UnsupportedPreTokenizer {
        /// `tokenizer.ggml.pre`.
        pre: String,
    },
    /// The `tokenizers` crate refused the vocabulary, merges or regex.
    #[error("cannot build the tokenizer: {0}")]
    Build(String),
}

/// Builds the byte-level BPE tokenizer described by a GGUF file's metadata.
///
/// The tokenizer has no normalizer, the pre-tokenization named by `tokenizer.ggml.pre` (see the
/// [module docs](self)), a BPE model over `tokenizer.ggml.tokens` and `.merges`, the byte-level
/// decoder, and as added tokens: every control token (special), every user-defined token
/// (not special), and the ChatML tokens [`CHAT_SPECIAL_TOKENS`] found in the vocabulary
/// (special). It adds no BOS/EOS when encoding (SmolLM2 sets `add_bos_token = false`; callers
/// that need a BOS add it themselves).
///
/// If a token string occurs twice in the vocabulary, its first id is the one encoding gives.
pub fn tokenizer_from_gguf(content: &Content) -> Result<Tokenizer, TokenizerError> {
    let meta = &content.metadata;
    let model = match meta.get("tokenizer.ggml.model") {
        None => {
            return Err(TokenizerError::MissingMetadata {
                key: "tokenizer.ggml.model",
            })
        }
        Some(v) => string_value(v, "tokenizer.ggml.model")?,
    };
    if model != "gpt2" {
        return Err(TokenizerError::UnsupportedModel {
            model: model.to_string(),
        });
    }
    let pre = match meta.get("tokenizer.ggml.pre") {
        None => None,
        Some(v) => Some(string_value(v, "tokenizer.ggml.pre")?),
    };
    let pre_tokenizer = pre_tokenizer_for(pre)?;

    let tokens = array_value(meta, "tokenizer.ggml.tokens")?;
    let merges = array_value(meta, "tokenizer.ggml.merges")?;
    let mut vocab = Vocab::with_capacity(tokens.len());
    let mut names = Vec::with_capacity(tokens.len());
    for (id, token) in tokens.iter().enumerate() {
        let token = string_value(token, "tokenizer.ggml.tokens")?;
        let id = u32::try_from(id).map_err(|_| TokenizerError::BadMetadata {
            key: "tokenizer.ggml.tokens",
            message: "more than 2^32 tokens".into(),
        })?;
        vocab.entry(token.to_string()).or_insert(id);
        names.push(token);
    }
    let mut merge_pairs = Vec::with_capacity(merges.len());
    for (rank, merge) in merges.iter().enumerate() {
        let merge = string_value(merge, "tokenizer.ggml.merges")?;
        let (left, right) = merge
            .split_once(' ')
            .ok_or_else(|| TokenizerError::BadMetadata {
                key: "tokenizer.ggml.merges",
                message: format!("merge {rank} ({merge:?}) is not two tokens separated by a space"),
            })?;
        merge_pairs.push((left.to_string(), right.to_string()));
    }
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merge_pairs)
        .build()
        .map_err(|e| TokenizerError::Build(e.to_string()))?;

    let mut tokenizer = Tokenizer::new(bpe);
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

    let mut special = Vec::new();
    let mut user = Vec::new();
    if let Some(types) = meta.get("tokenizer.ggml.token_type") {
        let types = types.to_vec().map_err(|_| TokenizerError::BadMetadata {
            key: "tokenizer.ggml.token_type",
            message: "expected an array of integers".into(),
        })?;
        if types.len() != names.len() {
            return Err(TokenizerError::BadMetadata {
                key: "tokenizer.ggml.token_type",
                message: format!(
                    "{} entries for {} tokens in tokenizer.ggml.tokens",
                    types.len(),
                    names.len()
                ),
            });
        }
        for (id, (kind, name)) in types.iter().zip(&names).enumerate() {
            let kind = int_value(kind).ok_or_else(|| TokenizerError::BadMetadata {
                key: "tokenizer.ggml.token_type",
                message: format!("entry {id} is not an integer"),
            })?;
            match kind {
                TOKEN_TYPE_CONTROL => special.push(AddedToken::from(name.to_string(), true)),
                TOKEN_TYPE_USER_DEFINED => {
                    user.push(AddedToken::from(name.to_string(), false).normalized(false))
                }
                _ => {}
            }
        }
    }
    for chat in CHAT_SPECIAL_TOKENS {
        if names.contains(&chat) && !special.iter().any(|t| t.content == chat) {
            special.push(AddedToken::from(chat.to_string(), true));
        }
    }
    tokenizer.add_special_tokens(&special);
    tokenizer.add_tokens(&user);
    Ok(tokenizer)
}

/// Loads a tokenizer from a `.gguf` model (its metadata only; the weights are not read) or a
/// `tokenizer.json`, told apart by the file's first bytes (`GGUF` magic), not its name.
pub fn load_tokenizer(path: &Path) -> Result<Tokenizer, TokenizerError> {
    let io = |source| TokenizerError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut magic = [0u8; 4];
    let mut got = 0;
    while got < magic.len() {
        match file.read(&mut magic[got..]).map_err(io)? {
            0 => break,
            n => got += n,
        }
    }
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    if got == 4 && &magic == b"GGUF" {
        let content =
            Content::read(&mut BufReader::new(file)).map_err(|e| TokenizerError::Corrupt {
                path: path.to_path_buf(),
                format: "GGUF file",
                message: e.to_string(),
            })?;
        return tokenizer_from_gguf(&content);
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io)?;
    Tokenizer::from_bytes(&bytes).map_err(|e| TokenizerError::Corrupt {
        path: path.to_path_buf(),
        format: "tokenizer.json",
        message: e.to_string(),
    })
}

/// The id of `token` if the tokenizer has it as a *special* added token (e.g. `<|im_end|>`),
/// `None` if it is absent or an ordinary token.
pub fn special_token_id(tokenizer: &Tokenizer, token: &str) -> Option<u32> {
    let id = tokenizer.token_to_id(token)?;
    tokenizer
        .get_added_vocabulary()
        .get_added_tokens_decoder()
        .get(&id)
        .filter(|t| t.special && t.content == token)
        .map(|_| id)
}

/// The pre-tokenizer for a `tokenizer.ggml.pre` name (see the module docs).
fn pre_tokenizer_for(pre: Option<&str>) -> Result<PreTokenizerWrapper, TokenizerError> {
    // trim_offsets only matters to post-processing; the split is the same either way.
    let gpt2 = || ByteLevel::new(false, true, true);
    let regex_then_bytes = |regex: &str| -> Result<PreTokenizerWrapper, TokenizerError> {
        let split = Split::new(
            SplitPattern::Regex(regex.to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|e| TokenizerError::Build(e.to_string()))?;
        Ok(Sequence::new(vec![
            split.into(),
            ByteLevel::new(false, true, false).into(),
        ])
        .into())
    };
    Ok(match pre.unwrap_or("gpt2") {
        "gpt2" => gpt2().into(),
        "smollm" | "starcoder" | "refact" | "codeshell" => {
            Sequence::new(vec![Digits::new(true).into(), gpt2().into()]).into()
        }
        "llama-bpe" | "llama3" => regex_then_bytes(LLAMA3_REGEX)?,
        "qwen2" => regex_then_bytes(QWEN2_REGEX)?,
        other => {
            return Err(TokenizerError::UnsupportedPreTokenizer {
                pre: other.to_string(),
            })
        }
    })
}

fn string_value<'a>(v: &'a Value, key: &'static str) -> Result<&'a str, TokenizerError> {
    match v {
        Value::String(s) => Ok(s),
        other => Err(TokenizerError::BadMetadata {
            key,
            message: format!("expected a string, got {:?}", other.value_type()),
        }),
    }
}

fn array_value<'a>(
    meta: &'a std::collections::HashMap<String, Value>,
    key: &'static str,
) -> Result<&'a Vec<Value>, TokenizerError> {
    meta.get(key)
        .ok_or(TokenizerError::MissingMetadata { key })?
        .to_vec()
        .map_err(|_| TokenizerError::BadMetadata {
            key,
            message: "expected an array".into(),
        })
}

fn int_value(v: &Value) -> Option<i64> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => i64::try_from(x).ok()?,
        Value::I64(x) => x,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn content(meta: Vec<(&str, Value)>) -> Content {
        Content {
            magic: candle_core::quantized::gguf_file::VersionedMagic::GgufV3,
            metadata: meta
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<HashMap<_, _>>(),
            tensor_infos: HashMap::new(),
            tensor_data_offset: 0,
        }
    }

    fn strings(items: &[&str]) -> Value {
        Value::Array(items.iter().map(|s| Value::String(s.to_string())).collect())
    }

    /// A tiny byte-level vocabulary: enough to check merges, added tokens and errors.
    fn tiny(pre: Option<&str>) -> Vec<(&'static str, Value)> {
        let tokens = ["<|im_end|>", "<x>", "a", "b", "ab", "Ġ", "Ġab", "1", "Ċ"];
        let mut meta = vec![
            ("tokenizer.ggml.model", Value::String("gpt2".into())),
            ("tokenizer.ggml.tokens", strings(&tokens)),
            ("tokenizer.ggml.merges", strings(&["a b", "Ġ ab"])),
            (
                "tokenizer.ggml.token_type",
                Value::Array([3, 4, 1, 1, 1, 1, 1, 1, 1].map(Value::I32).to_vec()),
            ),
        ];
        if let Some(pre) = pre {
            meta.push(("tokenizer.ggml.pre", Value::String(pre.into())));
        }
        meta
    }

    #[test]
    fn builds_merges_and_added_tokens() {
        let tok = tokenizer_from_gguf(&content(tiny(Some("smollm")))).unwrap();
        let enc = tok.encode("ab ab<|im_end|><x>1", false).unwrap();
        assert_eq!(enc.get_ids(), &[4, 6, 0, 1, 7]);
        assert_eq!(special_token_id(&tok, "<|im_end|>"), Some(0));
        assert_eq!(special_token_id(&tok, "<x>"), None); // user-defined, not special
        assert_eq!(special_token_id(&tok, "ab"), None);
        assert_eq!(tok.decode(&[4, 6, 8], false).unwrap(), "ab ab\n");
        assert_eq!(tok.decode(&[4, 0], true).unwrap(), "ab");
    }

    #[test]
    fn refuses_what_it_cannot_build_faithfully() {
        let mut meta = tiny(None);
        meta[0].1 = Value::String("llama".into());
        let err = tokenizer_from_gguf(&content(meta)).unwrap_err();
        assert!(
            matches!(err, TokenizerError::UnsupportedModel { .. }),
            "{err}"
        );
        assert!(err.to_string().contains("tokenizer.json"), "{err}");

        let err = tokenizer_from_gguf(&content(tiny(Some("deepseek-coder")))).unwrap_err();
        assert!(err.to_string().contains("`deepseek-coder`"), "{err}");

        let mut meta = tiny(None);
        meta.retain(|(k, _)| *k != "tokenizer.ggml.merges");
        let err = tokenizer_from_gguf(&content(meta)).unwrap_err();
        assert!(err.to_string().contains("tokenizer.ggml.merges"), "{err}");

        let mut meta = tiny(None);
        meta[2].1 = strings(&["ab"]);
        let err = tokenizer_from_gguf(&content(meta)).unwrap_err();
        assert!(err.to_string().contains("merge 0"), "{err}");

        let mut meta = tiny(None);
        meta[2].1 = strings(&["a zz"]);
        assert!(matches!(
            tokenizer_from_gguf(&content(meta)),
            Err(TokenizerError::Build(_))
        ));

        let mut meta = tiny(None);
        meta[3].1 = Value::Array(vec![Value::I32(1)]);
        let err = tokenizer_from_gguf(&content(meta)).unwrap_err();
        assert!(err.to_string().contains("1 entries for 9 tokens"), "{err}");
    }

    #[test]
    fn every_known_pre_tokenizer_builds() {
        for pre in [
            "gpt2",
            "smollm",
            "starcoder",
            "llama-bpe",
            "llama3",
            "qwen2",
        ] {
            let tok = tokenizer_from_gguf(&content(tiny(Some(pre)))).unwrap();
            assert_eq!(
                tok.encode("ab ab", false).unwrap().get_ids(),
                &[4, 6],
                "{pre}"
            );
        }
    }

    #[test]
    fn load_names_the_path_of_bad_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.json");
        let err = load_tokenizer(&missing).unwrap_err();
        assert!(matches!(err, TokenizerError::Io { .. }));
        assert!(err.to_string().contains("missing.json"), "{err}");

        let junk = dir.path().join("junk.json");
        std::fs::write(&junk, b"{ not json").unwrap();
        let err = load_tokenizer(&junk).unwrap_err();
        assert!(err.to_string().contains("junk.json"), "{err}");
        assert!(err.to_string().contains("tokenizer.json"), "{err}");

        let gguf = dir.path().join("cut.gguf");
        std::fs::write(&gguf, b"GGUF\x03\x00\x00\x00\x01").unwrap();
        let err = load_tokenizer(&gguf).unwrap_err();
        assert!(
            matches!(
                err,
                TokenizerError::Corrupt {
                    format: "GGUF file",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("cut.gguf"), "{err}");
    }

    #[test]
    fn a_saved_tokenizer_loads_back_the_same() {
        let tok = tokenizer_from_gguf(&content(tiny(Some("smollm")))).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        tok.save(&path, false).unwrap();
        let back = load_tokenizer(&path).unwrap();
        let text = "ab ab<|im_end|><x>1 b";
        assert_eq!(
            back.encode(text, false).unwrap().get_ids(),
            tok.encode(text, false).unwrap().get_ids()
        );
        assert_eq!(special_token_id(&back, "<|im_end|>"), Some(0));
    }
}
