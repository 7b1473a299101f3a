//! The attacks: pure, seeded edits of token ids or of text.
//!
//! Every function takes the random generator it draws from, so the same seed gives the same
//! edit; [`super::Attack::apply`] seeds one per text. Rates are exact counts, not per-position
//! coin flips: `rate` 0.3 of 100 tokens edits exactly 30 (rounded to nearest), at positions
//! drawn without replacement.

use rand::seq::index;
use rand::Rng;

use crate::error::{Error, Result};

/// `round(rate * n)`, after checking `rate` is in `[0, 1]`.
pub(crate) fn count(rate: f64, n: usize, option: &'static str) -> Result<usize> {
    if !(0.0..=1.0).contains(&rate) {
        return Err(Error::InvalidOption {
            option,
            reason: format!("the rate must be between 0 and 1, got {rate}"),
        });
    }
    Ok(((rate * n as f64).round() as usize).min(n))
}

fn check_vocab(vocab_size: u32) -> Result<()> {
    if vocab_size < 2 {
        return Err(Error::InvalidVocabSize(vocab_size.into()));
    }
    Ok(())
}

/// A token drawn uniformly from the vocabulary, other than `not`.
fn other_token(rng: &mut impl Rng, vocab_size: u32, not: u32) -> u32 {
    loop {
        let t = rng.gen_range(0..vocab_size);
        if t != not {
            return t;
        }
    }
}

/// Replaces `round(rate * n)` tokens, at distinct random positions, each with a different
/// token drawn uniformly from `0..vocab_size` (special tokens included: the vocabulary is all
/// the attacker is assumed to know).
///
/// ```
/// use greenmark::eval::attack::substitute_tokens;
/// use rand::SeedableRng;
/// let ids: Vec<u32> = (0..100).collect();
/// let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
/// let out = substitute_tokens(&ids, 0.3, 1000, &mut rng)?;
/// assert_eq!(out.len(), 100);
/// assert_eq!(out.iter().zip(&ids).filter(|(a, b)| a != b).count(), 30);
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn substitute_tokens(
    ids: &[u32],
    rate: f64,
    vocab_size: u32,
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    check_vocab(vocab_size)?;
    let k = count(rate, ids.len(), "substitution rate")?;
    let mut out = ids.to_vec();
    for i in index::sample(rng, ids.len(), k) {
        out[i] = other_token(rng, vocab_size, ids[i]);
    }
    Ok(out)
}

/// Deletes `round(rate * n)` tokens at distinct random positions; the others keep their order.
pub fn delete_tokens(ids: &[u32], rate: f64, rng: &mut impl Rng) -> Result<Vec<u32>> {
    let k = count(rate, ids.len(), "deletion rate")?;
    let mut drop = vec![false; ids.len()];
    for i in index::sample(rng, ids.len(), k) {
        drop[i] = true;
    }
    Ok(ids
        .iter()
        .zip(drop)
        .filter(|(_, d)| !d)
        .map(|(&t, _)| t)
        .collect())
}

/// Inserts `round(rate * n)` tokens drawn uniformly from `0..vocab_size`, each before a
/// uniformly drawn original position (or at the end); the originals keep their order.
pub fn insert_tokens(
    ids: &[u32],
    rate: f64,
    vocab_size: u32,
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    check_vocab(vocab_size)?;
    let k = count(rate, ids.len(), "insertion rate")?;
    // before[i]: tokens inserted before original position i (i == n: at the end).
    let mut before = vec![0usize; ids.len() + 1];
    for _ in 0..k {
        before[rng.gen_range(0..=ids.len())] += 1;
    }
    let mut out = Vec::with_capacity(ids.len() + k);
    for (i, &n) in before.iter().enumerate() {
        for _ in 0..n {
            out.push(rng.gen_range(0..vocab_size));
        }
        if let Some(&t) = ids.get(i) {
            out.push(t);
        }
    }
    Ok(out)
}

/// The first `tokens` tokens (all of them when shorter).
pub fn truncate(ids: &[u32], tokens: usize) -> Vec<u32> {
    ids[..ids.len().min(tokens)].to_vec()
}

/// Copy-paste: a watermarked span inside human text. The result has the host's length; its
/// `round(fraction * host.len())` tokens starting at a random offset are replaced by the
/// watermarked text's first tokens (fewer when the watermarked text is shorter). Token-level:
/// the seams are not re-tokenized.
///
/// ```
/// use greenmark::eval::attack::copy_paste;
/// use rand::SeedableRng;
/// let (marked, host) = (vec![7u32; 50], vec![1u32; 100]);
/// let out = copy_paste(&marked, &host, 0.1, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!(out.len(), 100);
/// assert_eq!(out.iter().filter(|&&t| t == 7).count(), 10);
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn copy_paste(
    watermarked: &[u32],
    host: &[u32],
    fraction: f64,
    rng: &mut impl Rng,
) -> Result<Vec<u32>> {
    let k = count(fraction, host.len(), "copy-paste fraction")?.min(watermarked.len());
    let start = rng.gen_range(0..=host.len() - k);
    let mut out = host.to_vec();
    out[start..start + k].copy_from_slice(&watermarked[..k]);
    Ok(out)
}

/// Letter case applied to a whole text by [`change_case`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "lowercase"))]
pub enum Case {
    /// Every letter uppercase.
    Upper,
    /// Every letter lowercase.
    Lower,
    /// The first letter of each word uppercase, the others lowercase.
    Title,
}

/// The text in the given case (Unicode case mapping).
///
/// ```
/// use greenmark::eval::attack::{change_case, Case};
/// assert_eq!(change_case("the sky is BLUE.", Case::Title), "The Sky Is Blue.");
/// assert_eq!(change_case("the sky", Case::Upper), "THE SKY");
/// ```
pub fn change_case(text: &str, case: Case) -> String {
    match case {
        Case::Upper => text.to_uppercase(),
        Case::Lower => text.to_lowercase(),
        Case::Title => {
            let mut out = String::with_capacity(text.len());
            let mut start = true;
            for c in text.chars() {
                if c.is_alphabetic() {
                    if start {
                        out.extend(c.to_uppercase());
                    } else {
                        out.extend(c.to_lowercase());
                    }
                    start = false;
                } else {
                    out.push(c);
                    start = c.is_whitespace() || c == '-' || c == '"' || c == '(';
                }
            }
            out
        }
    }
}

/// The Cyrillic or Greek lookalike of an ASCII letter, if it has one.
pub fn homoglyph(c: char) -> Option<char> {
    Some(match c {
        'a' => 'а', // U+0430 Cyrillic
        'c' => 'с', // U+0441
        'e' => 'е', // U+0435
        'i' => 'і', // U+0456
        'j' => 'ј', // U+0458
        'o' => 'о', // U+043E
        'p' => 'р', // U+0440
        's' => 'ѕ', // U+0455
        'x' => 'х', // U+0445
        'y' => 'у', // U+0443
        'A' => 'А', // U+0410
        'B' => 'В', // U+0412
        'C' => 'С', // U+0421
        'E' => 'Е', // U+0415
        'H' => 'Н', // U+041D
        'I' => 'І', // U+0406
        'K' => 'К', // U+041A
        'M' => 'М', // U+041C
        'N' => 'Ν', // U+039D Greek
        'O' => 'О', // U+041E
        'P' => 'Р', // U+0420
        'T' => 'Т', // U+0422
        'X' => 'Х', // U+0425
        'Y' => 'Υ', // U+03A5 Greek
        'Z' => 'Ζ', // U+0396 Greek
        _ => return None,
    })
}

/// Replaces `round(rate * m)` of the `m` letters that have a lookalike ([`homoglyph`]) with
/// it, at random.
///
/// ```
/// use greenmark::eval::attack::homoglyphs;
/// use rand::SeedableRng;
/// let out = homoglyphs("cool", 1.0, &mut rand_chacha::ChaCha8Rng::seed_from_u64(0))?;
/// assert_eq!(out, "\u{441}\u{43e}\u{43e}l");
/// # Ok::<(), greenmark::Error>(())
/// ```
pub fn homoglyphs(text: &str, rate: f64, rng: &mut impl Rng) -> Result<String> {
    let mut chars: Vec<char> = text.chars().collect();
    let candidates: Vec<usize> = (0..chars.len())
        .filter(|&i| homoglyph(chars[i]).is_some())
        .collect();
    let k = count(rate, candidates.len(), "homoglyph rate")?;
    for j in index::sample(rng, candidates.len(), k) {
        let i = candidates[j];
        chars[i] = homoglyph(chars[i]).expect("a candidate has a homoglyph");
    }
    Ok(chars.into_iter().collect())
}

/// The invisible characters [`insert_invisible`] draws from: zero-width space, zero-width
/// joiner, soft hyphen.
pub const INVISIBLE: [char; 3] = ['\u{200B}', '\u{200D}', '\u{00AD}'];

/// Inserts `round(rate * n)` invisible characters ([`INVISIBLE`], drawn uniformly) at random
/// positions between the text's `n` characters (several may land at one position).
pub fn insert_invisible(text: &str, rate: f64, rng: &mut impl Rng) -> Result<String> {
    let chars: Vec<char> = text.chars().collect();
    let k = count(rate, chars.len(), "invisible-character rate")?;
    let mut before = vec![0usize; chars.len() + 1];
    for _ in 0..k {
        // Inside the text, never before the first character or after the last.
        before[rng.gen_range(1..chars.len().max(2))] += 1;
    }
    let mut out = String::with_capacity(text.len() + 3 * k);
    for (i, &n) in before.iter().enumerate() {
        for _ in 0..n {
            out.push(INVISIBLE[rng.gen_range(0..INVISIBLE.len())]);
        }
        if let Some(&c) = chars.get(i) {
            out.push(c);
        }
    }
    Ok(out)
}

/// Replaces `round(rate * w)` of the text's `w` words (maximal runs of non-whitespace) with
/// words drawn uniformly from `donors`; whitespace is kept as it was. The donors are the
/// attacker's substitutes: the evaluation draws them from the plain (unwatermarked) texts, a
/// crude stand-in for a synonym model (context-blind, so it also damages meaning).
pub fn substitute_words(
    text: &str,
    rate: f64,
    donors: &[String],
    rng: &mut impl Rng,
) -> Result<String> {
    let words: Vec<(usize, usize)> = word_spans(text);
    let k = count(rate, words.len(), "word substitution rate")?;
    if k > 0 && donors.is_empty() {
        return Err(Error::InvalidOption {
            option: "donor words",
            reason: "word substitution needs at least one donor word".into(),
        });
    }
    let mut replace: Vec<Option<&str>> = vec![None; words.len()];
    for i in index::sample(rng, words.len(), k) {
        replace[i] = Some(&donors[rng.gen_range(0..donors.len())]);
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (&(start, end), new) in words.iter().zip(replace) {
        out.push_str(&text[last..start]);
        out.push_str(new.unwrap_or(&text[start..end]));
        last = end;
    }
    out.push_str(&text[last..]);
    Ok(out)
}

/// Byte ranges of the maximal runs of non-whitespace characters.
pub fn word_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (false, None) => start = Some(i),
            (true, Some(s)) => {
                spans.push((s, i));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        spans.push((s, text.len()));
    }
    spans
}
