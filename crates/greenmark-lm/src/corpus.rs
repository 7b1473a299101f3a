//! The reference corpus of human text for key screening ([`greenmark::screen`]): four genres
//! of public-domain (or freely licensed) English, from Debian's own packages, pinned by the
//! SHA-256 of every file read.
//!
//! | genre | text | Debian package | license |
//! |---|---|---|---|
//! | `scripture` | King James Version, 66 books | `sword-text-kjv` (SWORD zText, OSIS markup) | public domain |
//! | `fiction` | Jane Austen's six novels | `r-cran-janeaustenr` (R lazy-load data) | public domain text; package MIT |
//! | `reference` | The Jargon File 4.4.7; Bierce's *The Devil's Dictionary* | `dict-jargon`, `dict-devil` (dictd) | public domain |
//! | `legal` | 14 software licenses (GPL, LGPL, GFDL, MPL, Apache, Artistic, BSD, CC0) | `base-files` (`/usr/share/common-licenses`) | verbatim copying permitted |
//!
//! A file is taken from where the package installs it when it is there with the pinned hash,
//! else from `$GREENMARK_HOME/screen-corpus/v1/` (cached by an earlier fetch), else fetched:
//! `apt-get download PACKAGE` (no root needed; apt's own sources and proxies apply, no host
//! is named here) and `dpkg-deb -x`, then every file is checked against its pinned SHA-256
//! before it is moved into the cache. Only the files below are kept (about 8 MB).
//!
//! Text is normalized the same way in every genre: markup removed, the lines of a paragraph
//! joined with a space, paragraphs separated by a blank line, runs of spaces collapsed.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{LmError, Result};
use crate::fetch::greenmark_home;

/// The cache folder's version: bump it when a pinned file changes.
const CACHE: &str = "screen-corpus/v1";

/// One file of the reference corpus: the package that ships it, where it installs, its hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CorpusFile {
    /// The Debian package.
    pub package: &'static str,
    /// Its installed path (also its path inside the package).
    pub path: &'static str,
    /// SHA-256, lower-case hex.
    pub sha256: &'static str,
}

const fn file(package: &'static str, path: &'static str, sha256: &'static str) -> CorpusFile {
    CorpusFile {
        package,
        path,
        sha256,
    }
}

/// A license text of `base-files`.
macro_rules! license {
    ($name:literal, $sha256:literal) => {
        file(
            "base-files",
            concat!("/usr/share/common-licenses/", $name),
            $sha256,
        )
    };
}

/// The license texts of the `legal` genre (package `base-files`).
pub const LICENSE_FILES: [CorpusFile; 14] = [
    license!(
        "Apache-2.0",
        "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"
    ),
    license!(
        "Artistic",
        "b7fd9b73ea99602016a326e0b62e6646060d18febdd065ceca8bb482208c3d88"
    ),
    license!(
        "BSD",
        "5d588eb3b157d52112afea935c88a7ff9efddc1e2d95a42c25d3b96ad9055008"
    ),
    license!(
        "CC0-1.0",
        "a2010f343487d3f7618affe54f789f5487602331c0a8d03f49e9a7c547cf0499"
    ),
    license!(
        "GFDL-1.2",
        "d8e94ae5fdb5433fcae2961aeb1a8cf17174d6f4a0465d24bf37dd8a038bd439"
    ),
    license!(
        "GFDL-1.3",
        "110535522396708cea37c72a802c5e7e81391139f5f7985631c93ef242b206a4"
    ),
    license!(
        "GPL-1",
        "d77d235e41d54594865151f4751e835c5a82322b0e87ace266567c3391a4b912"
    ),
    license!(
        "GPL-2",
        "8177f97513213526df2cf6184d8ff986c675afb514d4e68a404010521b880643"
    ),
    license!(
        "GPL-3",
        "3972dc9744f6499f0f9b2dbf76696f2ae7ad8af9b23dde66d6af86c9dfb36986"
    ),
    license!(
        "LGPL-2",
        "681e386e44a19d7d0674b4320272c90e66b6610b741e7e6305f8219c42e85366"
    ),
    license!(
        "LGPL-2.1",
        "dc626520dcd53a22f727af3ee42c770e56c97a64fe3adb063799d8ab032fe551"
    ),
    license!(
        "LGPL-3",
        "e3a994d82e644b03a792a930f574002658412f62407f5fee083f2555c5f23118"
    ),
    license!(
        "MPL-1.1",
        "f849fc26a7a99981611a3a370e83078deb617d12a45776d6c4cada4d338be469"
    ),
    license!(
        "MPL-2.0",
        "fab3dd6bdab226f1c08630b1dd917e11fcb4ec5e1e020e2c16f83a0a13863e85"
    ),
];

/// Every file the reference corpus reads except the licenses ([`LICENSE_FILES`], package
/// `base-files`).
pub const CORPUS_FILES: [CorpusFile; 10] = [
    file(
        "sword-text-kjv",
        "/usr/share/sword/modules/texts/ztext/engKJV2006eb/ot.bzs",
        "0d518856e8c6ceae0ca58bef944ba9a2809b5d4489cf81900853ad4af227510b",
    ),
    file(
        "sword-text-kjv",
        "/usr/share/sword/modules/texts/ztext/engKJV2006eb/ot.bzz",
        "69f7e4e9b42ecef2e212ea957a388fccbeed1e3e333a38cf52e1b4064c6ce373",
    ),
    file(
        "sword-text-kjv",
        "/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzs",
        "e7f9bc653743217cdcdf95890a708f997a03af056161d84bb540efef79e4e638",
    ),
    file(
        "sword-text-kjv",
        "/usr/share/sword/modules/texts/ztext/engKJV2006eb/nt.bzz",
        "135b6e70af49372f3a82c5d9cc3c00278f38dbb2c12af74ea8d4b54c18d0cd56",
    ),
    file(
        "r-cran-janeaustenr",
        "/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb",
        "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
    ),
    file(
        "r-cran-janeaustenr",
        "/usr/lib/R/site-library/janeaustenr/data/Rdata.rdx",
        "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
    ),
    file(
        "dict-jargon",
        "/usr/share/dictd/jargon.dict.dz",
        "856ced964d3a3cfd79a3dc251df04365eefd848966e3ae94e58f2671d6e79ca5",
    ),
    file(
        "dict-jargon",
        "/usr/share/dictd/jargon.index",
        "ba834d4907f0f3eabc79644e2c3b85961e28b0fde92ae5ae24a44702bb5a98a9",
    ),
    file(
        "dict-devil",
        "/usr/share/dictd/devil.dict.dz",
        "995ca92760d677965cb2780e78b808e982f9d49e8c12d795c1854476bbf13819",
    ),
    file(
        "dict-devil",
        "/usr/share/dictd/devil.index",
        "c53a3f8d1f889c44716782fe64796d162b7083d239545cf9e7e7c0a390d4ccde",
    ),
];

/// Every file of the reference corpus, licenses included.
pub fn all_files() -> Vec<CorpusFile> {
    CORPUS_FILES.iter().chain(&LICENSE_FILES).copied().collect()
}

/// One genre of the reference corpus: named documents of plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Genre {
    /// `scripture`, `fiction`, `reference` or `legal`.
    pub name: &'static str,
    /// `(title, text)` per document (a book of the Bible, a novel, a dictionary, a license).
    pub documents: Vec<(String, String)>,
}

impl Genre {
    /// Bytes of text in all documents.
    pub fn bytes(&self) -> usize {
        self.documents.iter().map(|(_, t)| t.len()).sum()
    }
}

/// The reference corpus, fetching what is missing (see the module docs); `progress` gets a
/// line per package fetched.
pub fn reference_corpus(progress: &mut dyn FnMut(&str)) -> Result<Vec<Genre>> {
    let dir = greenmark_home().join(CACHE);
    let files = all_files();
    let mut paths = Vec::with_capacity(files.len());
    let mut fetched: Vec<&str> = Vec::new();
    for f in &files {
        let path = match locate(f, &dir)? {
            Some(path) => path,
            None => {
                if fetched.contains(&f.package) {
                    return Err(LmError::Checksum {
                        path: cached_path(&dir, f),
                        expected: f.sha256.into(),
                        got: "missing after the fetch".into(),
                    });
                }
                progress(&format!("fetching Debian package {}", f.package));
                fetch_package(f.package, &files, &dir)?;
                fetched.push(f.package);
                locate(f, &dir)?.ok_or_else(|| LmError::CorpusFetch {
                    what: format!("{} was not in the package {}", f.path, f.package),
                    fix: fix(f.package),
                })?
            }
        };
        paths.push(path);
    }
    let path_of = |suffix: &str| {
        let i = files.iter().position(|f| f.path.ends_with(suffix));
        paths[i.expect("every suffix names a corpus file")].clone()
    };
    let mut scripture = read_ztext(&path_of("ot.bzs"), &path_of("ot.bzz"))?;
    scripture.extend(read_ztext(&path_of("nt.bzs"), &path_of("nt.bzz"))?);
    let fiction = read_rdata_strings(&path_of("Rdata.rdb"))?;
    let reference = vec![
        (
            "The Jargon File 4.4.7".to_string(),
            read_dictd(&path_of("jargon.index"), &path_of("jargon.dict.dz"))?,
        ),
        (
            "The Devil's Dictionary".to_string(),
            read_dictd(&path_of("devil.index"), &path_of("devil.dict.dz"))?,
        ),
    ];
    let mut legal = Vec::new();
    for license in LICENSE_FILES {
        let path = path_of(license.path);
        let text = fs::read_to_string(&path).map_err(|e| LmError::io("read", &path, e))?;
        let name = license.path.rsplit('/').next().unwrap_or(license.path);
        legal.push((name.to_string(), normalize(&text)));
    }
    Ok(vec![
        Genre {
            name: "scripture",
            documents: scripture,
        },
        Genre {
            name: "fiction",
            documents: fiction,
        },
        Genre {
            name: "reference",
            documents: reference,
        },
        Genre {
            name: "legal",
            documents: legal,
        },
    ])
}

fn cached_path(dir: &Path, f: &CorpusFile) -> PathBuf {
    dir.join(f.package).join(
        Path::new(f.path)
            .file_name()
            .expect("corpus paths name files"),
    )
}

/// The installed file, else the cached one, when it has the pinned hash.
fn locate(f: &CorpusFile, dir: &Path) -> Result<Option<PathBuf>> {
    for path in [PathBuf::from(f.path), cached_path(dir, f)] {
        if path.is_file() && sha256_of(&path)? == f.sha256 {
            return Ok(Some(path));
        }
    }
    Ok(None)
}

fn sha256_of(path: &Path) -> Result<String> {
    let bytes = fs::read(path).map_err(|e| LmError::io("read", path, e))?;
    Ok(Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

fn fix(package: &str) -> String {
    format!(
        "check that `apt-get download {package}` and `dpkg-deb` work here (a Debian or Ubuntu \
         system with its package lists: run `apt-get update` as root once), or install the \
         package (`apt-get install --no-install-recommends {package}`)"
    )
}

/// `apt-get download` + `dpkg-deb -x` into a fresh folder, then every pinned file of the
/// package is checked and moved into the cache.
fn fetch_package(package: &str, files: &[CorpusFile], dir: &Path) -> Result<()> {
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = dir.join(format!("download-{}-{attempt}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| LmError::io("create a download folder", &work, e))?;
    let result = fetch_into(package, files, dir, &work);
    let _ = fs::remove_dir_all(&work);
    result
}

fn run(command: &mut Command, what: &str, package: &str) -> Result<()> {
    let output = command.output().map_err(|e| LmError::CorpusFetch {
        what: format!("could not run {what} ({e})"),
        fix: fix(package),
    })?;
    if !output.status.success() {
        return Err(LmError::CorpusFetch {
            what: format!(
                "{what} failed ({}): {}",
                output.status,
                crate::fetch::last_stderr_line(&output)
            ),
            fix: fix(package),
        });
    }
    Ok(())
}

fn fetch_into(package: &str, files: &[CorpusFile], dir: &Path, work: &Path) -> Result<()> {
    run(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(work),
        &format!("`apt-get download {package}`"),
        package,
    )?;
    let deb = fs::read_dir(work)
        .map_err(|e| LmError::io("list", work, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "deb"))
        .ok_or_else(|| LmError::CorpusFetch {
            what: format!("`apt-get download {package}` left no .deb"),
            fix: fix(package),
        })?;
    let root = work.join("root");
    run(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
        &format!("`dpkg-deb -x` of {}", deb.display()),
        package,
    )?;
    for f in files.iter().filter(|f| f.package == package) {
        let extracted = root.join(f.path.trim_start_matches('/'));
        if !extracted.is_file() {
            continue; // reported by the caller as missing
        }
        let got = sha256_of(&extracted)?;
        if got != f.sha256 {
            // The download folder is removed on return: name the package, not a path to delete.
            return Err(LmError::CorpusFetch {
                what: format!(
                    "{} in the downloaded package {package} has SHA-256 {got}, not the pinned {}",
                    f.path, f.sha256
                ),
                fix: format!(
                    "apt's sources serve another version of {package} than the one pinned; {}",
                    fix(package)
                ),
            });
        }
        let target = cached_path(dir, f);
        let parent = target.parent().expect("cached paths have a folder");
        fs::create_dir_all(parent).map_err(|e| LmError::io("create", parent, e))?;
        fs::rename(&extracted, &target)
            .map_err(|e| LmError::io("move into the corpus cache", &target, e))?;
    }
    Ok(())
}

fn corrupt(path: &Path, message: impl Into<String>) -> LmError {
    LmError::CorpusFormat {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Normalizes a text: the lines of a paragraph joined by a space, paragraphs by a blank
/// line, runs of spaces and tabs collapsed, surrounding space trimmed.
pub fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for paragraph in text.split("\n\n") {
        let words: Vec<&str> = paragraph.split_whitespace().collect();
        if words.is_empty() {
            continue;
        }
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&words.join(" "));
    }
    out
}

/// Plain text of OSIS markup: notes dropped with their content, every other tag removed,
/// the five XML entities decoded, `¶` dropped.
pub fn osis_to_text(osis: &str) -> String {
    let mut out = String::with_capacity(osis.len() / 3);
    let mut rest = osis;
    let mut note_depth = 0usize;
    while let Some(open) = rest.find('<') {
        if note_depth == 0 {
            out.push_str(&rest[..open]);
        }
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = &rest[open + 1..open + close];
        if tag.starts_with("note") && !tag.ends_with('/') {
            note_depth += 1;
        } else if tag.starts_with("/note") {
            note_depth = note_depth.saturating_sub(1);
        } else if note_depth == 0 && {
            let name = tag.trim_start_matches('/');
            name.starts_with("div") || name.starts_with("title")
        } {
            out.push_str("\n\n");
        }
        rest = &rest[open + close + 1..];
    }
    if note_depth == 0 {
        out.push_str(rest);
    }
    let decoded = out
        .replace('¶', "")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    normalize(&decoded)
}

/// A SWORD zText testament: the block index (`.bzs`: offset, compressed size, size, 32-bit
/// little-endian each) and the zlib blocks (`.bzz`), one block per book. Returns
/// `(title, text)` per block that has text, titled by its first words.
pub fn read_ztext(bzs: &Path, bzz: &Path) -> Result<Vec<(String, String)>> {
    let index = fs::read(bzs).map_err(|e| LmError::io("read", bzs, e))?;
    let blocks = fs::read(bzz).map_err(|e| LmError::io("read", bzz, e))?;
    if index.len() % 12 != 0 {
        return Err(corrupt(bzs, "a zText block index is 12 bytes per block"));
    }
    let mut books = Vec::new();
    for entry in index.chunks_exact(12) {
        let word = |i: usize| u32::from_le_bytes(entry[i..i + 4].try_into().unwrap()) as usize;
        let (offset, size, plain) = (word(0), word(4), word(8));
        let block = blocks
            .get(offset..offset + size)
            .ok_or_else(|| corrupt(bzz, "a block lies outside the file"))?;
        let mut osis = String::with_capacity(plain);
        flate2::read::ZlibDecoder::new(block)
            .read_to_string(&mut osis)
            .map_err(|e| corrupt(bzz, format!("a block does not inflate to UTF-8: {e}")))?;
        let text = osis_to_text(&osis);
        if text.split_whitespace().count() < 50 {
            continue; // the importer's header block
        }
        let title: String = text
            .split_whitespace()
            .take(8)
            .collect::<Vec<_>>()
            .join(" ");
        books.push((title, text));
    }
    Ok(books)
}

/// The character vectors of an R lazy-load database (`.rdb`): records of a 4-byte
/// big-endian length and a zlib stream holding one object in R's XDR serialization
/// (format 2 or 3). Each object must be a character vector (`STRSXP`), as janeaustenr's six
/// novels are, one line per element; a novel's lines become paragraphs as in [`normalize`].
/// Titled by the first line.
pub fn read_rdata_strings(rdb: &Path) -> Result<Vec<(String, String)>> {
    let bytes = fs::read(rdb).map_err(|e| LmError::io("read", rdb, e))?;
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let stream = bytes
            .get(at + 4..)
            .ok_or_else(|| corrupt(rdb, "a record is cut short"))?;
        let mut decoder = flate2::read::ZlibDecoder::new(stream);
        let mut object = Vec::new();
        decoder
            .read_to_end(&mut object)
            .map_err(|e| corrupt(rdb, format!("a record does not inflate: {e}")))?;
        at += 4 + decoder.total_in() as usize;
        let lines = parse_strsxp(&object).map_err(|m| corrupt(rdb, m))?;
        let title = lines
            .iter()
            .find(|l| !l.trim().is_empty())
            .cloned()
            .unwrap_or_default();
        out.push((title, normalize(&lines.join("\n"))));
    }
    Ok(out)
}

/// A big-endian reader over a serialized R object.
struct Xdr<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Xdr<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        let out = self
            .bytes
            .get(self.at..self.at + n)
            .ok_or("the object is cut short")?;
        self.at += n;
        Ok(out)
    }

    fn int(&mut self) -> std::result::Result<i32, String> {
        let raw = self.take(4)?;
        Ok(i32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }
}

/// A serialized R character vector, element by element (`NA` as empty).
fn parse_strsxp(bytes: &[u8]) -> std::result::Result<Vec<String>, String> {
    let mut r = Xdr { bytes, at: 0 };
    if r.take(2)? != b"X\n" {
        return Err("not R's XDR serialization".into());
    }
    let version = r.int()?;
    let _writer = r.int()?;
    let _reader = r.int()?;
    if version == 3 {
        let n = r.int()?; // the native encoding's name
        r.take(n.max(0) as usize)?;
    } else if version != 2 {
        return Err(format!(
            "R serialization version {version} is not supported"
        ));
    }
    let flags = r.int()?;
    if flags & 0xff != 16 {
        return Err(format!(
            "expected a character vector (type 16), found type {}",
            flags & 0xff
        ));
    }
    let n = r.int()?;
    let mut lines = Vec::with_capacity(n.clamp(0, 1 << 20) as usize);
    for _ in 0..n {
        let flags = r.int()?;
        if flags & 0xff != 9 {
            return Err(format!(
                "expected a string (type 9), found type {}",
                flags & 0xff
            ));
        }
        let len = r.int()?;
        if len < 0 {
            lines.push(String::new());
            continue;
        }
        lines.push(String::from_utf8_lossy(r.take(len as usize)?).into_owned());
    }
    Ok(lines)
}

/// A number in dictd's index: base64 digits (`A-Z a-z 0-9 + /`), most significant first.
fn dictd_number(text: &str) -> Option<usize> {
    text.bytes().try_fold(0usize, |n, c| {
        let digit = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        n.checked_mul(64)?.checked_add(usize::from(digit))
    })
}

/// A dictd dictionary as one text: its entries in file order, the `00-database-*` header
/// entries left out, each entry normalized (its headword line first).
pub fn read_dictd(index: &Path, dict: &Path) -> Result<String> {
    let index_text = fs::read_to_string(index).map_err(|e| LmError::io("read", index, e))?;
    let file = fs::File::open(dict).map_err(|e| LmError::io("open", dict, e))?;
    let mut body = String::new();
    flate2::read::MultiGzDecoder::new(file)
        .read_to_string(&mut body)
        .map_err(|e| corrupt(dict, format!("does not inflate to UTF-8: {e}")))?;
    let mut entries = Vec::new();
    for line in index_text.lines() {
        let mut fields = line.split('\t');
        let (Some(word), Some(offset), Some(length)) =
            (fields.next(), fields.next(), fields.next())
        else {
            return Err(corrupt(index, format!("bad index line {line:?}")));
        };
        if word.starts_with("00database") || word.starts_with("00-database") {
            continue;
        }
        let (Some(offset), Some(length)) = (dictd_number(offset), dictd_number(length)) else {
            return Err(corrupt(index, format!("bad offset or length in {line:?}")));
        };
        entries.push((offset, length));
    }
    entries.sort_unstable();
    entries.dedup();
    let mut out = String::with_capacity(body.len());
    for (offset, length) in entries {
        let entry = body
            .get(offset..offset + length)
            .ok_or_else(|| corrupt(dict, "an index entry points outside the text"))?;
        if !out.is_empty() {
            out.push_str("\n\n");
        }
        out.push_str(&normalize(entry));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn normalize_joins_lines_and_keeps_paragraphs() {
        assert_eq!(
            normalize("  One line\nwrapped  here.\n\n\n\nNext\tpara.\n"),
            "One line wrapped here.\n\nNext para."
        );
        assert_eq!(normalize(" \n\n "), "");
    }

    #[test]
    fn osis_drops_notes_and_tags() {
        let osis = r#"<div sID="a"/>¶ And <w lemma="strong:H0430">God</w> said &amp; saw.<note placement="foot"><reference>1.4 </reference>Heb. between</note> Light.<title>Psalm</title>Next"#;
        assert_eq!(
            osis_to_text(osis),
            "And God said & saw. Light.\n\nPsalm\n\nNext"
        );
    }

    #[test]
    fn dictd_numbers_are_base64() {
        assert_eq!(dictd_number("A"), Some(0));
        assert_eq!(dictd_number("b"), Some(27));
        assert_eq!(dictd_number("BA"), Some(64));
        assert_eq!(dictd_number("B?"), None);
    }

    #[test]
    fn r_character_vectors_parse_and_other_objects_are_refused() {
        let mut object = b"X\n".to_vec();
        for v in [3i32, 0x040201, 0x030500, 5] {
            object.extend(v.to_be_bytes());
        }
        object.extend(b"UTF-8");
        object.extend(16i32.to_be_bytes());
        object.extend(3i32.to_be_bytes());
        for s in [Some("EMMA"), None, Some("By Jane Austen")] {
            object.extend(0x00040009i32.to_be_bytes());
            match s {
                Some(s) => {
                    object.extend((s.len() as i32).to_be_bytes());
                    object.extend(s.as_bytes());
                }
                None => object.extend((-1i32).to_be_bytes()),
            }
        }
        assert_eq!(
            parse_strsxp(&object).unwrap(),
            vec!["EMMA", "", "By Jane Austen"]
        );
        // Two records in an .rdb, read back in order.
        let dir = tempfile::tempdir().unwrap();
        let rdb = dir.path().join("x.rdb");
        let mut bytes = Vec::new();
        for _ in 0..2 {
            let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
            z.write_all(&object).unwrap();
            bytes.extend((object.len() as u32).to_be_bytes());
            bytes.extend(z.finish().unwrap());
        }
        fs::write(&rdb, &bytes).unwrap();
        let novels = read_rdata_strings(&rdb).unwrap();
        assert_eq!(novels.len(), 2);
        assert_eq!(novels[0], ("EMMA".into(), "EMMA\n\nBy Jane Austen".into()));
        let at = 2 + 12 + 4 + 5;
        object[at + 3] = 19; // a list, not a character vector
        assert!(parse_strsxp(&object).unwrap_err().contains("type 19"));
        assert!(parse_strsxp(b"RDX2").is_err());
    }
}
