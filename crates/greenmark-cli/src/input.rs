//! Reading inputs: files or stdin (`-`), gzip-compressed or not, and JSON Lines read line by
//! line with an error per bad line instead of one that ends the batch.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// An opened input: its reader and the name to use in messages.
pub struct Input {
    /// The bytes, decompressed when the input is gzip.
    pub reader: Box<dyn BufRead + Send>,
    /// `stdin` or the path as given.
    pub name: String,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

/// Opens `input` (`-` is stdin), buffered. Gzip input (`.jsonl.gz`, or any stream that starts
/// with gzip's magic bytes, stdin included) is decompressed as it is read.
pub fn open(input: &str) -> Result<Input> {
    let name = if input == "-" { "stdin" } else { input }.to_string();
    let raw: Box<dyn Read + Send> = if input == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(input).with_context(|| {
            format!("cannot open input {name}: give a readable file or `-` for stdin")
        })?)
    };
    let mut buffered = BufReader::with_capacity(1 << 16, raw);
    let head = buffered
        .fill_buf()
        .with_context(|| format!("cannot read {name}"))?;
    let reader: Box<dyn BufRead + Send> = if head.starts_with(&GZIP_MAGIC) {
        Box::new(BufReader::with_capacity(
            1 << 16,
            MultiGzDecoder::new(buffered),
        ))
    } else {
        Box::new(buffered)
    };
    Ok(Input { reader, name })
}

/// One non-blank line of a JSON Lines input: its 1-based number and its value, or why it is
/// not a JSON value (not UTF-8, not JSON).
pub type JsonLine = (usize, std::result::Result<serde_json::Value, String>);

/// Reads up to `max` non-blank lines of `input` (blank lines are skipped, and counted in the
/// line numbers). A line that is not UTF-8 or not JSON is an `Err` item naming the problem; a
/// failing read of the input itself (a broken gzip stream, an I/O error) ends the whole read
/// with an error.
pub fn read_json_lines(
    input: &mut Input,
    line_no: &mut usize,
    max: usize,
) -> Result<Vec<JsonLine>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    while out.len() < max {
        buf.clear();
        let n = input
            .reader
            .read_until(b'\n', &mut buf)
            .with_context(|| format!("cannot read {} (after line {line_no})", input.name))?;
        if n == 0 {
            break;
        }
        *line_no += 1;
        let value = match std::str::from_utf8(&buf) {
            Err(e) => Err(format!(
                "not UTF-8 text (invalid byte at column {}): JSON Lines input must be UTF-8",
                e.valid_up_to() + 1
            )),
            Ok(line) if line.trim().is_empty() => continue,
            Ok(line) => serde_json::from_str(line)
                .map_err(|e| format!("not valid JSON ({e}); each line must be one JSON value")),
        };
        out.push((*line_no, value));
    }
    Ok(out)
}

/// The string in `value`'s `field`, with an error saying how to point at it.
pub fn string_field<'a>(value: &'a serde_json::Value, field: &str, flag: &str) -> Result<&'a str> {
    match value.get(field) {
        Some(serde_json::Value::String(text)) => Ok(text),
        Some(_) => bail!("field {field:?} is not a string; point {flag} at the text"),
        None => bail!("no field {field:?}; name the field holding the text with {flag}"),
    }
}

/// The token ids of a JSON line: a bare array, or the array in an object's `field`; `hint`
/// says how to point at the field when it is missing.
pub fn token_ids(value: &serde_json::Value, field: &str, hint: &str) -> Result<Vec<u32>> {
    match value {
        serde_json::Value::Array(array) => ids_of(array, field),
        serde_json::Value::Object(_) => token_ids_field(value, field, hint),
        _ => bail!("expected a JSON array of token ids or an object holding one"),
    }
}

/// The token ids in the array of an object's `field` (no bare arrays: for lines that hold
/// several arrays).
pub fn token_ids_field(value: &serde_json::Value, field: &str, hint: &str) -> Result<Vec<u32>> {
    match value.get(field) {
        Some(serde_json::Value::Array(array)) => ids_of(array, field),
        Some(_) => bail!("field {field:?} is not an array of token ids"),
        None => bail!("no field {field:?}; {hint}"),
    }
}

fn ids_of(array: &[serde_json::Value], field: &str) -> Result<Vec<u32>> {
    array
        .iter()
        .enumerate()
        .map(|(i, v)| {
            v.as_u64()
                .and_then(|id| u32::try_from(id).ok())
                .with_context(|| {
                    format!("element {i} of {field:?} ({v}) is not a token id (an integer >= 0)")
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(bytes: Vec<u8>) -> Input {
        Input {
            reader: Box::new(io::Cursor::new(bytes)),
            name: "test".into(),
        }
    }

    #[test]
    fn bad_lines_are_items_not_the_end() {
        let mut i = input(b"{\"a\": 1}\n\nnot json\n\xff\xfe\n[1, 2]\n".to_vec());
        let mut line = 0;
        let lines = read_json_lines(&mut i, &mut line, 100).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 3, 4, 5]);
        assert!(lines[1].1.as_ref().unwrap_err().contains("not valid JSON"));
        assert!(lines[2].1.as_ref().unwrap_err().contains("not UTF-8"));
        assert!(lines[3].1.is_ok());
    }

    #[test]
    fn reads_in_bounded_chunks() {
        let mut i = input(b"1\n2\n3\n".to_vec());
        let mut line = 0;
        assert_eq!(read_json_lines(&mut i, &mut line, 2).unwrap().len(), 2);
        assert_eq!(read_json_lines(&mut i, &mut line, 2).unwrap().len(), 1);
        assert!(read_json_lines(&mut i, &mut line, 2).unwrap().is_empty());
    }

    #[test]
    fn token_ids_name_what_is_wrong() {
        let v: serde_json::Value = serde_json::from_str(r#"{"ids": [1, -2]}"#).unwrap();
        let err = token_ids(&v, "ids", "--ids-field").unwrap_err().to_string();
        assert!(err.contains("element 1"), "{err}");
        let err = token_ids(&v, "other", "--ids-field")
            .unwrap_err()
            .to_string();
        assert!(err.contains("--ids-field"), "{err}");
        let v: serde_json::Value = serde_json::from_str("[3, 4]").unwrap();
        assert_eq!(token_ids(&v, "ids", "--ids-field").unwrap(), [3, 4]);
    }
}
