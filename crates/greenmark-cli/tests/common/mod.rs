//! Shared helpers of the CLI tests: the binary, the real SmolLM2 tokenizer, key files, and
//! watermarked text made without a model.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use greenmark::{KeyFile, Watermarker};
use tokenizers::Tokenizer;

/// The real tokenizer of the default model (vocab 49152), committed as test data.
pub fn tokenizer_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../greenmark/tests/data/smollm2-tokenizer.json")
}

/// The `greenmark` binary, with progress bars and the model cache pointed nowhere surprising.
pub fn greenmark() -> Command {
    let mut cmd = Command::cargo_bin("greenmark").expect("the greenmark binary is built");
    cmd.env_remove("GREENMARK_MODEL");
    cmd
}

/// Writes a key file with `greenmark keygen --out DIR/NAME EXTRA...` and returns its path.
pub fn keygen(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    greenmark()
        .arg("keygen")
        .arg("--out")
        .arg(&path)
        .args(extra)
        .assert()
        .success();
    path
}

/// Common English words that the SmolLM2 tokenizer encodes as one token each (with a leading
/// space), so that text made of them re-tokenizes to the same ids.
pub fn single_token_words(tokenizer: &Tokenizer) -> Vec<(String, u32)> {
    const WORDS: &str = "the of and to in is was that for on with as by at from his her they \
        this which have had not are but were one all been their has there we can would more \
        when will who what about out up so them some could him into than then other time only \
        new these two may first any like now my such over our even most after also made many \
        did before must through back years where much your way well down should because each \
        just those people how too little state good very make world still own see men work \
        long here get both between life being under never day same another know while last \
        might us great old year off come since against go came right used take three small \
        large place water house light river stone green red blue city music paper story \
        garden morning evening winter summer letter window table market friend mountain";
    WORDS
        .split_whitespace()
        .filter_map(|w| {
            let spaced = format!(" {w}");
            let encoding = tokenizer.encode(spaced.as_str(), false).ok()?;
            (encoding.get_ids().len() == 1).then(|| (spaced, encoding.get_ids()[0]))
        })
        .collect()
}

/// A tiny deterministic generator for test text.
pub struct Lcg(pub u64);

impl Lcg {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// `words` words of text that carries the watermark of the key file at `key`: each word is
/// picked among the candidates that are green after the previous token (a "model" that always
/// follows the bias). Starts with "Once".
pub fn watermarked_text(key: &Path, words: usize, seed: u64) -> String {
    let tokenizer = Tokenizer::from_file(tokenizer_path()).expect("the test tokenizer loads");
    let key_file = KeyFile::load(key).expect("the key file loads");
    let config = key_file.config.clone().expect("keygen writes a config");
    let watermarker = Watermarker::new(&key_file.key, config.clone());
    let candidates = single_token_words(&tokenizer);
    assert!(
        candidates.len() > 50,
        "only {} candidates",
        candidates.len()
    );
    let first = tokenizer.encode("Once", false).unwrap().get_ids().to_vec();
    let mut context = first;
    let mut text = String::from("Once");
    let mut rng = Lcg(seed);
    let mut logits = vec![0.0f32; config.vocab_size() as usize];
    for _ in 0..words {
        logits.iter_mut().for_each(|l| *l = 0.0);
        watermarker.bias(&mut logits, &context).expect("bias");
        let green: Vec<&(String, u32)> = candidates
            .iter()
            .filter(|(_, id)| logits[*id as usize] > 0.0)
            .collect();
        let pool: Vec<&(String, u32)> = if green.is_empty() {
            candidates.iter().collect()
        } else {
            green
        };
        let (word, id) = pool[rng.next() as usize % pool.len()];
        text.push_str(word);
        context.push(*id);
    }
    text.push_str(".\n");
    text
}

/// `words` words of unwatermarked text from the same word list, in lines of 12 words.
pub fn plain_text(words: usize, seed: u64) -> String {
    let tokenizer = Tokenizer::from_file(tokenizer_path()).expect("the test tokenizer loads");
    let candidates = single_token_words(&tokenizer);
    let mut rng = Lcg(seed);
    let mut text = String::from("Once");
    for i in 0..words {
        text.push_str(&candidates[rng.next() as usize % candidates.len()].0);
        if i % 12 == 11 {
            text.push_str(".\n");
        }
    }
    text.push_str(".\n");
    text
}
