//! Secret keys, public key ids, subkey derivation and key files.
//!
//! A [`Key`] is 32 secret bytes. It never appears in `Debug` output, errors or logs: `Debug`
//! prints its public [`KeyId`] only. Each purpose (each seeding scheme, each window size) gets
//! its own subkey by domain-separated SHA-256, so one secret can serve several schemes without
//! one scheme's outputs telling anything about another's.
//!
//! # Example
//! ```
//! use greenmark::Key;
//! let key = Key::from_hex(&"ab".repeat(32))?;
//! assert_eq!(key.id().to_string().len(), 16);
//! assert!(!format!("{key:?}").contains("abab"));
//! # Ok::<(), greenmark::Error>(())
//! ```

use std::fmt;
use std::io::Write;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::error::{Document, Error, Result};

/// Domain-separation prefix of every hash greenmark derives from a key.
const DOMAIN: &[u8] = b"greenmark/v1/";

/// A 32-byte watermarking secret.
///
/// The bytes are zeroed when the key is dropped. Equality takes the same time whatever the
/// keys hold (no early exit at the first differing byte), so comparing a guess against a key
/// tells nothing about how close the guess was.
#[derive(Clone)]
pub struct Key([u8; 32]);

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        // OR of the XORs of every byte pair; `black_box` keeps the compiler from turning the
        // fold back into an early-exit comparison.
        let mut diff = 0u8;
        for (a, b) in self.0.iter().zip(other.0.iter()) {
            diff |= std::hint::black_box(a ^ b);
        }
        std::hint::black_box(diff) == 0
    }
}

impl Eq for Key {}

/// The public name of a key: the first 8 bytes of a domain-separated SHA-256 of the secret,
/// printed as 16 hex digits. Safe to show in reports; reveals nothing usable about the key.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId([u8; 8]);

impl Key {
    /// Length of a key in bytes.
    pub const LEN: usize = 32;

    /// A fresh key from the operating system's random number generator.
    pub fn generate() -> Result<Key> {
        let mut bytes = [0u8; 32];
        getrandom::getrandom(&mut bytes).map_err(|e| Error::Rng(e.to_string()))?;
        Ok(Key(bytes))
    }

    /// A key from its 32 raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Key {
        Key(bytes)
    }

    /// Parses 64 hex digits (surrounding whitespace ignored).
    ///
    /// Errors say what is wrong with the text without echoing it.
    pub fn from_hex(text: &str) -> Result<Key> {
        let text = text.trim();
        if text.len() != 64 {
            return Err(Error::InvalidKey(format!(
                "expected 64 hex digits (32 bytes), got {} characters",
                text.chars().count()
            )));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let hi = hex_value(pair[0]).ok_or_else(|| not_hex(2 * i))?;
            let lo = hex_value(pair[1]).ok_or_else(|| not_hex(2 * i + 1))?;
            bytes[i] = hi << 4 | lo;
        }
        Ok(Key(bytes))
    }

    /// The secret as 64 lowercase hex digits. Handle with care.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The secret bytes. Handle with care.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key's public id.
    pub fn id(&self) -> KeyId {
        KeyId::of(b"key-id\0", &[&self.0])
    }

    /// A 32-byte subkey for `purpose`, by domain-separated SHA-256. Distinct purposes give
    /// independent subkeys; the purpose's length is hashed too, so no two purposes collide.
    pub fn derive(&self, purpose: &str) -> [u8; 32] {
        let digest = Sha256::new()
            .chain_update(DOMAIN)
            .chain_update(b"subkey\0")
            .chain_update((purpose.len() as u64).to_le_bytes())
            .chain_update(purpose.as_bytes())
            .chain_update(self.0)
            .finalize();
        digest.into()
    }

    /// Reads a key file: 64 hex digits, or a JSON key file with a config (see [`KeyFile`]).
    pub fn load(path: impl AsRef<Path>) -> Result<Key> {
        Ok(KeyFile::load(path)?.key)
    }

    /// Writes the key as a hex key file with mode 0600. Refuses to overwrite an existing file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_secret_file(path.as_ref(), format!("{}\n", self.to_hex()).as_bytes())
    }
}

impl Drop for Key {
    fn drop(&mut self) {
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference into the key's bytes.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Key(id={})", self.id())
    }
}

impl KeyId {
    /// The first 8 bytes of a SHA-256 of `parts` after greenmark's domain and `label`: a
    /// [`Key`]'s id, and the id of secrets that are not a `Key` (under their own label).
    pub(crate) fn of(label: &[u8], parts: &[&[u8]]) -> KeyId {
        let mut hasher = Sha256::new().chain_update(DOMAIN).chain_update(label);
        for part in parts {
            hasher.update(part);
        }
        let mut id = [0u8; 8];
        id.copy_from_slice(&hasher.finalize()[..8]);
        KeyId(id)
    }

    /// The id's 8 bytes.
    pub fn as_bytes(&self) -> &[u8; 8] {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

#[cfg(feature = "serde")]
impl serde::Serialize for KeyId {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// A key file's contents: the secret, and optionally the watermark config it was made for.
///
/// On disk a key file is either 64 hex digits, or JSON:
/// `{"format": "greenmark-key/v1", "key_id": "...", "secret": "<64 hex>", "config": {...}}`.
/// Keeping the config beside the secret lets a detector refuse a config that disagrees with the
/// one used at generation ([`KeyFile::check`]), instead of silently finding nothing.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct KeyFile {
    /// The secret.
    pub key: Key,
    /// The watermark config stored with the key, if any.
    #[cfg(feature = "serde")]
    pub config: Option<crate::WatermarkConfig>,
}

/// The key-file format tag.
#[cfg(feature = "serde")]
const KEY_FILE_FORMAT: &str = "greenmark-key/v1";

impl KeyFile {
    /// Reads a key file (hex or JSON). The path must be a regular file of at most
    /// [`crate::files::KEY_FILE_LIMIT`] bytes ([`crate::files::read_limited`]): a directory, a
    /// FIFO or `/dev/zero` is refused at once with [`Error::FileRefused`].
    pub fn load(path: impl AsRef<Path>) -> Result<KeyFile> {
        let path = path.as_ref();
        let bytes =
            crate::files::read_limited(path, "read key file", crate::files::KEY_FILE_LIMIT)?;
        let text = std::str::from_utf8(&bytes).map_err(|_| Error::Parse {
            what: Document::KeyFile,
            message: format!(
                "{} is not text; expected 64 hex digits or a greenmark JSON key file",
                path.display()
            ),
        })?;
        Self::parse(text)
    }

    /// Parses a key file's text (hex or JSON).
    pub fn parse(text: &str) -> Result<KeyFile> {
        if text.trim_start().starts_with('{') {
            return Self::parse_json(text);
        }
        Ok(KeyFile {
            key: Key::from_hex(text)?,
            #[cfg(feature = "serde")]
            config: None,
        })
    }

    /// The JSON key file. Errors name the field and what it must hold, never a value from
    /// the file: any of them may be the secret, or the secret pasted into the wrong field
    /// ([`crate::json`]).
    #[cfg(feature = "serde")]
    fn parse_json(text: &str) -> Result<KeyFile> {
        use crate::json::Object;
        let what = Document::KeyFile;
        let value = crate::json::parse(what, text)?;
        let o = Object::new(what, "", &value)?;
        o.only(&["format", "key_id", "secret", "config"])?;
        let format = format!("the string {KEY_FILE_FORMAT:?}");
        match o.str("format", &format)? {
            Some(KEY_FILE_FORMAT) => {}
            Some(_) => {
                return Err(o.error(
                    "format",
                    format!("must be {format}, got another string (an unsupported version?)"),
                ))
            }
            None => return Err(o.error("format", format!("is missing: it must be {format}"))),
        }
        const SECRET: &str = "a string of 64 hex digits";
        let secret = match o.str("secret", SECRET)? {
            Some(secret) => secret,
            None => return Err(o.error("secret", format!("is missing: it must be {SECRET}"))),
        };
        let key = Key::from_hex(secret).map_err(|e| match e {
            Error::InvalidKey(why) => Error::InvalidKey(format!("the key file's secret: {why}")),
            other => other,
        })?;
        if let Some(id) = o.str("key_id", "a string of 16 hex digits (the key's public id)")? {
            if id != key.id().to_string() {
                return Err(Error::InvalidKey(format!(
                    "the key file's key_id does not match its secret (whose id is {}): the file \
                     is corrupt",
                    key.id()
                )));
            }
        }
        let config = match o.get("config") {
            None => None,
            Some(v) => Some(crate::WatermarkConfig::from_object(&o.child("config", v)?)?),
        };
        Ok(KeyFile { key, config })
    }

    #[cfg(not(feature = "serde"))]
    fn parse_json(_text: &str) -> Result<KeyFile> {
        Err(Error::Parse {
            what: Document::KeyFile,
            message: "JSON key files need greenmark's `serde` feature".into(),
        })
    }

    /// A key file holding `key` and the `config` it is for.
    #[cfg(feature = "serde")]
    pub fn new(key: Key, config: Option<crate::WatermarkConfig>) -> KeyFile {
        KeyFile { key, config }
    }

    /// The JSON text of this key file.
    #[cfg(feature = "serde")]
    pub fn to_json(&self) -> String {
        let value = serde_json::json!({
            "format": KEY_FILE_FORMAT,
            "key_id": self.key.id().to_string(),
            "secret": self.key.to_hex(),
            "config": self.config,
        });
        let mut text = serde_json::to_string_pretty(&value).expect("a JSON value always prints");
        text.push('\n');
        text
    }

    /// Writes the JSON key file with mode 0600. Refuses to overwrite an existing file.
    #[cfg(feature = "serde")]
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        write_secret_file(path.as_ref(), self.to_json().as_bytes())
    }

    /// The config to watermark a model whose logits rows have `width` entries: the stored one,
    /// checked with [`crate::WatermarkConfig::check_logits_width`], or the defaults for that
    /// width when the file stores none.
    #[cfg(feature = "serde")]
    pub fn config_for_model(&self, width: u64) -> Result<crate::WatermarkConfig> {
        match &self.config {
            Some(config) => config.check_logits_width(width).map(|()| config.clone()),
            None => crate::WatermarkConfig::new(width),
        }
    }

    /// The config to detect in text tokenized by a tokenizer of `tokens` tokens: the stored
    /// one, checked with [`crate::WatermarkConfig::check_tokenizer_vocab`], or the defaults
    /// for that many tokens when the file stores none.
    #[cfg(feature = "serde")]
    pub fn config_for_tokenizer(&self, tokens: usize) -> Result<crate::WatermarkConfig> {
        match &self.config {
            Some(config) => config
                .check_tokenizer_vocab(tokens)
                .map(|()| config.clone()),
            None => crate::WatermarkConfig::new(tokens as u64),
        }
    }

    /// Checks `given` against the stored config; `Ok` when none is stored or they agree on every
    /// field that changes which tokens are green or how strongly they are biased.
    #[cfg(feature = "serde")]
    pub fn check(&self, given: &crate::WatermarkConfig) -> Result<()> {
        match &self.config {
            Some(stored) => stored.check_same_watermark(given),
            None => Ok(()),
        }
    }
}

fn write_secret_file(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        action: "write key file",
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)
}

fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn not_hex(index: usize) -> Error {
    Error::InvalidKey(format!(
        "character {index} is not a hex digit (expected 64 of 0-9, a-f)"
    ))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_id_is_stable() {
        let key = Key::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(Key::from_hex(&key.to_hex()).unwrap(), key);
        assert_eq!(Key::from_hex(&key.to_hex().to_uppercase()).unwrap(), key);
        assert_eq!(key.id(), key.clone().id());
        assert_ne!(key.id(), Key::from_bytes([0; 32]).id());
    }

    #[test]
    fn debug_and_errors_never_show_the_secret() {
        let key = Key::from_hex(&"5a".repeat(32)).unwrap();
        assert!(!format!("{key:?}").contains("5a5a"));
        let bad = format!("{}zz", "5a".repeat(31));
        let err = Key::from_hex(&bad).unwrap_err().to_string();
        assert!(!err.contains("5a5a"), "{err}");
        assert!(err.contains("character 62"), "{err}");
        let err = Key::from_hex("abc").unwrap_err().to_string();
        assert!(
            err.contains("64 hex digits") && err.contains("got 3"),
            "{err}"
        );
    }

    #[test]
    fn equality_compares_every_byte() {
        let key = Key::from_bytes(core::array::from_fn(|i| i as u8));
        assert_eq!(key, key.clone());
        for i in [0, 1, 15, 30, 31] {
            let mut bytes = *key.as_bytes();
            bytes[i] ^= 0x80;
            assert_ne!(Key::from_bytes(bytes), key, "byte {i}");
            bytes[i] ^= 0x81;
            assert_ne!(Key::from_bytes(bytes), key, "byte {i}");
        }
    }

    /// Key files go through the bounded reader: a directory, `/dev/zero` and an oversize file
    /// are refused at once with [`Error::FileRefused`] naming the key file (the FIFO case is
    /// in `files::tests`).
    #[test]
    fn key_files_that_are_not_small_regular_files_are_refused() {
        use crate::error::FileProblem;
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.key");
        std::fs::write(&big, "0".repeat(70_000)).unwrap();
        let mut paths = vec![dir.path().to_owned(), big];
        if cfg!(unix) {
            paths.push("/dev/zero".into());
        }
        for path in paths {
            let err = KeyFile::load(&path).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::FileRefused {
                        action: "read key file",
                        problem: FileProblem::NotRegular { .. } | FileProblem::TooLarge { .. },
                        ..
                    }
                ),
                "{}: {err:?}",
                path.display()
            );
            assert!(err.to_string().starts_with("cannot read key file"), "{err}");
        }
    }

    #[test]
    fn subkeys_are_domain_separated() {
        let key = Key::from_bytes([7; 32]);
        assert_ne!(key.derive("a"), key.derive("b"));
        assert_ne!(key.derive("ab"), key.derive("a"));
        assert_eq!(key.derive("x"), key.derive("x"));
        assert_ne!(key.derive("x")[..8], key.id().as_bytes()[..]);
    }

    #[test]
    fn generated_keys_differ() {
        assert_ne!(Key::generate().unwrap(), Key::generate().unwrap());
    }

    #[test]
    fn save_is_0600_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.hex");
        let key = Key::generate().unwrap();
        key.save(&path).unwrap();
        assert_eq!(Key::load(&path).unwrap(), key);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        let err = key.save(&path).unwrap_err();
        assert!(matches!(err, Error::Io { .. }), "{err}");
    }

    #[test]
    fn unreadable_and_garbage_key_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing");
        let err = Key::load(&missing).unwrap_err();
        assert!(matches!(err, Error::Io { .. }));
        assert!(err.to_string().contains("cannot read key file"), "{err}");
        let garbage = dir.path().join("garbage");
        std::fs::write(&garbage, [0xff, 0x00, 0x13]).unwrap();
        let err = Key::load(&garbage).unwrap_err();
        assert!(err.to_string().contains("not text"), "{err}");
        std::fs::write(&garbage, "{ not json").unwrap();
        let err = Key::load(&garbage).unwrap_err();
        assert!(matches!(err, Error::Parse { .. }), "{err}");
    }
}
