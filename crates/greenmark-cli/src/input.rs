//! Reading inputs: files or stdin (`-`), gzip-compressed or not, and JSON Lines read line by
//! line with an error per bad line instead of one that ends the batch.
//!
//! A JSON line is read with a length limit ([`DEFAULT_MAX_LINE_BYTES`], or
//! `$GREENMARK_MAX_LINE_BYTES`): a longer line is an error naming it and the limit, and is
//! skipped without being held in memory. Before the limit, one 50 MB line of text peaked at
//! 4 to 5 GB (the line, its JSON value, then the tokenizer's per-token state).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use anyhow::{bail, Context, Result};
use flate2::read::MultiGzDecoder;

/// The two bytes every gzip member starts with.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// The longest JSON line read by default: 8 MiB (a text of some 2 million tokens, or about a
/// million token ids). `$GREENMARK_MAX_LINE_BYTES` changes it.
///
/// Measured (`detect --jsonl`, the SmolLM2 tokenizer, English text): a 15 MB line peaks at
/// 1.6 GB, nearly all of it the tokenizer's per-token state (about 100 bytes per byte of
/// text), so 8 MiB keeps one line under about 0.9 GB and a chunk of lines
/// ([`read_json_chunk`]: at most about twice the limit) under about 2 GB; a 50 MB line, 4 GB
/// before the limit, is refused with 0.11 GB.
pub const DEFAULT_MAX_LINE_BYTES: usize = 8 << 20;

/// The environment variable that overrides [`DEFAULT_MAX_LINE_BYTES`].
pub const MAX_LINE_ENV: &str = "GREENMARK_MAX_LINE_BYTES";

/// An opened input: its reader and the name to use in messages.
pub struct Input {
    /// The bytes, decompressed when the input is gzip.
    pub reader: Box<dyn BufRead + Send>,
    /// `stdin` or the path as given.
    pub name: String,
    /// The longest line [`read_json_lines`] accepts, in bytes (without its line break).
    pub max_line: usize,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("name", &self.name).finish()
    }
}

/// Opens `input` (`-` is stdin), buffered. Gzip input (`.jsonl.gz`, or any stream that starts
/// with gzip's magic bytes, stdin included) is decompressed as it is read.
pub fn open(input: &str) -> Result<Input> {
    let max_line = max_line_bytes()?;
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
    Ok(Input {
        reader,
        name,
        max_line,
    })
}

/// The line limit: `$GREENMARK_MAX_LINE_BYTES` (bytes, or with a `K`, `M` or `G` suffix for
/// KiB, MiB, GiB), else [`DEFAULT_MAX_LINE_BYTES`].
pub fn max_line_bytes() -> Result<usize> {
    match std::env::var(MAX_LINE_ENV) {
        Ok(value) if !value.trim().is_empty() => parse_size(&value).with_context(|| {
            format!(
                "{MAX_LINE_ENV}={value:?} is not a size: give bytes, e.g. 33554432 or 32M \
                 (the default is {})",
                format_size(DEFAULT_MAX_LINE_BYTES as u64)
            )
        }),
        _ => Ok(DEFAULT_MAX_LINE_BYTES),
    }
}

/// `123`, `64K`, `32M`, `1G` (binary multiples) as bytes; at least 1.
fn parse_size(text: &str) -> Result<usize> {
    let text = text.trim();
    let (digits, shift) = match text.as_bytes().last().map(u8::to_ascii_uppercase) {
        Some(b'K') => (&text[..text.len() - 1], 10),
        Some(b'M') => (&text[..text.len() - 1], 20),
        Some(b'G') => (&text[..text.len() - 1], 30),
        _ => (text, 0),
    };
    let n: usize = digits.trim().parse()?;
    let bytes = n
        .checked_mul(1usize << shift)
        .context("too large for this machine")?;
    if bytes == 0 {
        bail!("the limit must be at least 1 byte");
    }
    Ok(bytes)
}

/// A byte count for messages: `16 MiB`, `512 KiB`, `100 bytes`.
pub fn format_size(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    if bytes >= 1 << 20 {
        return format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64);
    }
    format!("{bytes} bytes")
}

/// What [`read_line_limited`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineRead {
    /// The end of the input: nothing was read.
    End,
    /// A line, in the buffer (with its line break, if it had one).
    Line,
    /// A line longer than the limit: it was read to its end and dropped; `bytes` is its length
    /// (without the line break).
    TooLong {
        /// The line's length in bytes.
        bytes: u64,
    },
}

/// Reads one line into `buf` (cleared first), holding at most `max` bytes of it (plus the
/// line break): a longer line is consumed to its end without being stored, and reported as
/// [`LineRead::TooLong`]. Memory stays bounded by `max` plus the reader's buffer however long
/// the line is, unlike `read_until`, which grows the buffer to the whole line.
pub fn read_line_limited(
    reader: &mut dyn BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<LineRead> {
    buf.clear();
    let (mut total, mut too_long, mut newline) = (0u64, false, false);
    loop {
        let available = match reader.fill_buf() {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if available.is_empty() {
            break;
        }
        let (used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (available.len(), false),
        };
        total += used as u64;
        if !too_long {
            if buf.len() + used > max.saturating_add(1) {
                too_long = true;
                *buf = Vec::new();
            } else {
                buf.extend_from_slice(&available[..used]);
            }
        }
        reader.consume(used);
        if done {
            newline = true;
            break;
        }
    }
    let content = total - u64::from(newline);
    Ok(if total == 0 {
        LineRead::End
    } else if too_long || content > max as u64 {
        buf.clear();
        LineRead::TooLong { bytes: content }
    } else {
        LineRead::Line
    })
}

/// Counts the lines of `input` (a last line without a line break counts) in bounded memory.
pub fn count_lines(input: &mut Input) -> Result<u64> {
    let (mut lines, mut open) = (0u64, false);
    loop {
        let available = input
            .reader
            .fill_buf()
            .with_context(|| format!("cannot read {}", input.name))?;
        if available.is_empty() {
            break;
        }
        let n = available.len();
        let breaks = available.iter().filter(|&&b| b == b'\n').count() as u64;
        lines += breaks;
        open = available[n - 1] != b'\n';
        input.reader.consume(n);
    }
    Ok(lines + u64::from(open))
}

/// One non-blank line of a JSON Lines input: its 1-based number and its value, or why it is
/// not a JSON value (not UTF-8, not JSON).
pub type JsonLine = (usize, std::result::Result<serde_json::Value, String>);

/// Reads up to `max` non-blank lines of `input` (blank lines are skipped, and counted in the
/// line numbers). A line that is not UTF-8, not JSON or longer than `input.max_line` is an
/// `Err` item naming the problem (the long line is never held whole); a failing read of the
/// input itself (a broken gzip stream, an I/O error) ends the whole read with an error.
pub fn read_json_lines(
    input: &mut Input,
    line_no: &mut usize,
    max: usize,
) -> Result<Vec<JsonLine>> {
    read_lines(input, line_no, max, usize::MAX)
}

/// [`read_json_lines`] for a chunk to process before reading on: it also stops once the lines
/// read hold more than `input.max_line` bytes in all, so a chunk holds at most about twice the
/// line limit however many lines it may have.
pub fn read_json_chunk(
    input: &mut Input,
    line_no: &mut usize,
    max: usize,
) -> Result<Vec<JsonLine>> {
    let budget = input.max_line;
    read_lines(input, line_no, max, budget)
}

fn read_lines(
    input: &mut Input,
    line_no: &mut usize,
    max: usize,
    budget: usize,
) -> Result<Vec<JsonLine>> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut bytes = 0usize;
    while out.len() < max && bytes <= budget {
        let read = read_line_limited(&mut input.reader, &mut buf, input.max_line)
            .with_context(|| format!("cannot read {} (after line {line_no})", input.name))?;
        if read == LineRead::End {
            break;
        }
        *line_no += 1;
        bytes = bytes.saturating_add(buf.len());
        let value = match read {
            LineRead::TooLong { bytes } => Err(format!(
                "the line is {}, longer than the limit of {} per JSON line: split it, or \
                 raise the limit with {MAX_LINE_ENV} (e.g. {MAX_LINE_ENV}=64M)",
                format_size(bytes),
                format_size(input.max_line as u64)
            )),
            _ => match std::str::from_utf8(&buf) {
                Err(e) => Err(format!(
                    "not UTF-8 text (invalid byte at column {}): JSON Lines input must be UTF-8",
                    e.valid_up_to() + 1
                )),
                Ok(line) if line.trim().is_empty() => continue,
                Ok(line) => serde_json::from_str(line)
                    .map_err(|e| format!("not valid JSON ({e}); each line must be one JSON value")),
            },
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
            max_line: DEFAULT_MAX_LINE_BYTES,
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

    /// A reader that hands out at most 7 bytes per `fill_buf`, so lines cross buffer ends.
    fn small_reads(bytes: &[u8]) -> Box<dyn BufRead + Send> {
        Box::new(BufReader::with_capacity(7, io::Cursor::new(bytes.to_vec())))
    }

    #[test]
    fn a_line_over_the_limit_is_an_error_item_and_the_next_is_read() {
        let long = format!("{{\"text\": \"{}\"}}", "x".repeat(100));
        let bytes = format!("[1]\n{long}\n[2]\n{long}").into_bytes();
        let mut i = Input {
            reader: small_reads(&bytes),
            name: "test".into(),
            max_line: 50,
        };
        let mut line = 0;
        let lines = read_json_lines(&mut i, &mut line, 100).unwrap();
        let numbers: Vec<usize> = lines.iter().map(|(n, _)| *n).collect();
        assert_eq!(numbers, [1, 2, 3, 4]);
        let err = lines[1].1.as_ref().unwrap_err();
        assert!(
            err.contains("112 bytes") && err.contains("50 bytes"),
            "{err}"
        );
        assert!(err.contains(MAX_LINE_ENV), "{err}");
        assert_eq!(lines[2].1.as_ref().unwrap(), &serde_json::json!([2]));
        assert!(
            lines[3].1.is_err(),
            "a last line without a line break is checked too"
        );
    }

    #[test]
    fn the_limit_is_on_the_line_without_its_break() {
        for (text, max, fits) in [
            (&b"12345\n"[..], 5, true),
            (b"12345", 5, true),
            (b"123456\n", 5, false),
            (b"123456", 5, false),
            (b"12345\r\n", 5, false),
        ] {
            let mut reader = small_reads(text);
            let mut buf = Vec::new();
            let got = read_line_limited(&mut reader, &mut buf, max).unwrap();
            assert_eq!(got == LineRead::Line, fits, "{text:?}: {got:?}");
            if fits {
                assert_eq!(&buf[..5], b"12345");
            } else {
                assert!(buf.is_empty());
            }
            assert_eq!(
                read_line_limited(&mut reader, &mut buf, max).unwrap(),
                LineRead::End
            );
        }
    }

    #[test]
    fn the_stored_part_of_a_long_line_stays_bounded() {
        let bytes = vec![b'a'; 1 << 20];
        let mut reader: Box<dyn BufRead + Send> =
            Box::new(BufReader::with_capacity(4096, io::Cursor::new(bytes)));
        let mut buf = Vec::new();
        let got = read_line_limited(&mut reader, &mut buf, 1000).unwrap();
        assert_eq!(got, LineRead::TooLong { bytes: 1 << 20 });
        assert!(buf.capacity() <= 1000 + 4096, "{}", buf.capacity());
    }

    #[test]
    fn chunks_stop_at_the_byte_budget() {
        let line = format!("\"{}\"\n", "y".repeat(30));
        let mut i = Input {
            reader: small_reads(line.repeat(10).as_bytes()),
            name: "test".into(),
            max_line: 64,
        };
        let mut n = 0;
        let first = read_json_chunk(&mut i, &mut n, 100).unwrap();
        assert!(
            first.len() < 10 && first.iter().all(|(_, v)| v.is_ok()),
            "{first:?}"
        );
        let mut total = first.len();
        loop {
            let chunk = read_json_chunk(&mut i, &mut n, 100).unwrap();
            if chunk.is_empty() {
                break;
            }
            total += chunk.len();
        }
        assert_eq!((total, n), (10, 10));
    }

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("32M").unwrap(), 32 << 20);
        assert_eq!(parse_size(" 64k ").unwrap(), 64 << 10);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("0").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
        assert_eq!(format_size(16 << 20), "16 MiB");
        assert_eq!(format_size(50_000_000), "47.7 MiB");
        assert_eq!(format_size(112), "112 bytes");
    }

    #[test]
    fn lines_are_counted_without_holding_them() {
        let mut i = input(b"a\nb\n\nlast".to_vec());
        assert_eq!(count_lines(&mut i).unwrap(), 4);
        let mut i = input(b"a\nb\n".to_vec());
        assert_eq!(count_lines(&mut i).unwrap(), 2);
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
