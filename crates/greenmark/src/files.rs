//! Reading the small files greenmark is handed (key files, watermark configs) safely.
//!
//! A key or config path comes from a user, a config file or an environment variable, and a
//! mistake there must not hang or exhaust the process: `/dev/zero` would be read until memory
//! runs out, a FIFO would block forever, a directory gives an obscure OS error. [`read_limited`]
//! is the one place those files are read: it checks the path's type before opening it, opens
//! without blocking (a FIFO swapped in after the check still cannot block), checks the opened
//! file's type again, and reads at most `limit + 1` bytes, so an oversize file is refused
//! without being read whole.
//!
//! [`loose_permissions`] is the check behind the "key file readable by others" warnings of the
//! CLI and the Python package: the core only reports, each front end warns its own way.
//!
//! # Example
//! ```
//! use greenmark::files::{read_limited, KEY_FILE_LIMIT};
//! use greenmark::{Error, FileProblem};
//! let dir = std::env::temp_dir();
//! let err = read_limited(&dir, "read key file", KEY_FILE_LIMIT).unwrap_err();
//! assert!(matches!(err, Error::FileRefused { problem: FileProblem::NotRegular { .. }, .. }));
//! ```

use std::fmt;
use std::fs::{File, Metadata};
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::error::{Error, FileProblem, Result};

/// The largest key file or watermark config read: 64 KiB. A key file is about 300 bytes and the
/// largest real config (SynthID with dozens of keys) a few KiB, so anything bigger is the wrong
/// file.
pub const KEY_FILE_LIMIT: u64 = 64 * 1024;

/// The contents of the regular file at `path`, refused with [`Error::FileRefused`] when it is
/// not a regular file (a directory, FIFO, socket or device such as `/dev/zero`) or holds more
/// than `limit` bytes. Never blocks on a FIFO and never reads more than `limit + 1` bytes.
/// `action` names what is being done in errors (`"read key file"`).
pub fn read_limited(path: &Path, action: &'static str, limit: u64) -> Result<Vec<u8>> {
    let io = |source| Error::Io {
        action,
        path: path.to_owned(),
        source,
    };
    let refuse = |problem| Error::FileRefused {
        action,
        path: path.to_owned(),
        problem,
    };
    // The path's type first: nothing is opened for a directory, FIFO or device.
    let meta = std::fs::metadata(path).map_err(io)?;
    check_regular(&meta).map_err(refuse)?;
    if meta.len() > limit {
        return Err(refuse(FileProblem::TooLarge { limit }));
    }
    let file = open_nonblocking(path).map_err(io)?;
    // Again on the opened file: the path may have been swapped between the check and the open.
    let meta = file.metadata().map_err(io)?;
    check_regular(&meta).map_err(refuse)?;
    let mut bytes = Vec::with_capacity(meta.len().min(limit) as usize);
    file.take(limit + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(refuse(FileProblem::TooLarge { limit }));
    }
    Ok(bytes)
}

/// [`read_limited`] for a file that must be UTF-8 text; `what` names it in the error
/// (`"the SynthID config"`).
pub fn read_limited_text(
    path: &Path,
    action: &'static str,
    limit: u64,
    what: crate::error::Document,
) -> Result<String> {
    let bytes = read_limited(path, action, limit)?;
    String::from_utf8(bytes).map_err(|e| Error::Parse {
        what,
        message: format!(
            "{} is not UTF-8 text (invalid byte at offset {}): is it the right file?",
            path.display(),
            e.utf8_error().valid_up_to()
        ),
    })
}

fn check_regular(meta: &Metadata) -> std::result::Result<(), FileProblem> {
    if meta.is_file() {
        return Ok(());
    }
    Err(FileProblem::NotRegular {
        kind: file_kind(meta),
    })
}

fn file_kind(meta: &Metadata) -> &'static str {
    if meta.is_dir() {
        return "a directory";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a FIFO (named pipe)";
        }
        if t.is_char_device() {
            return "a character device";
        }
        if t.is_block_device() {
            return "a block device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a regular file"
}

fn open_nonblocking(path: &Path) -> std::io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Opening a FIFO for reading blocks until a writer comes; with O_NONBLOCK it returns at
        // once (and a regular file reads as usual).
        options.custom_flags(libc::O_NONBLOCK);
    }
    options.open(path)
}

/// A key file that users other than its owner may read (see [`loose_permissions`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoosePermissions {
    /// The file.
    pub path: PathBuf,
    /// Its permission bits (`mode & 0o777`).
    pub mode: u32,
}

impl fmt::Display for LoosePermissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let who = match (self.mode & 0o070 != 0, self.mode & 0o007 != 0) {
            (true, true) => "its group and other users",
            (true, false) => "its group",
            _ => "other users",
        };
        write!(
            f,
            "key file {} has mode {:04o}: {who} may read the secret; restrict it with `chmod 600 {}`",
            self.path.display(),
            self.mode,
            self.path.display()
        )
    }
}

/// `Some` when the regular file at `path` grants any permission to its group or other users
/// (`mode & 0o077 != 0`), which a secret should not; `None` when it is private, not a regular
/// file, on platforms without Unix permissions, or when it cannot be inspected (reading it
/// reports those).
///
/// ```
/// # #[cfg(unix)] {
/// use std::os::unix::fs::PermissionsExt;
/// let dir = tempfile::tempdir().unwrap();
/// let path = dir.path().join("k.hex");
/// std::fs::write(&path, "00").unwrap();
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
/// let warning = greenmark::files::loose_permissions(&path).unwrap();
/// assert_eq!(warning.mode, 0o644);
/// assert!(warning.to_string().contains("chmod 600"));
/// std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
/// assert!(greenmark::files::loose_permissions(&path).is_none());
/// # }
/// ```
pub fn loose_permissions(path: &Path) -> Option<LoosePermissions> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path).ok()?;
        let mode = meta.permissions().mode() & 0o777;
        (meta.is_file() && mode & 0o077 != 0).then(|| LoosePermissions {
            path: path.to_owned(),
            mode,
        })
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(result: Result<Vec<u8>>) -> (FileProblem, String) {
        match result {
            Err(e @ Error::FileRefused { .. }) => {
                let msg = e.to_string();
                let Error::FileRefused { problem, .. } = e else {
                    unreachable!()
                };
                (problem, msg)
            }
            other => panic!("expected FileRefused, got {other:?}"),
        }
    }

    #[test]
    fn reads_a_small_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "abc").unwrap();
        assert_eq!(read_limited(&path, "read key file", 3).unwrap(), b"abc");
        assert_eq!(read_limited(&path, "read key file", 64).unwrap(), b"abc");
    }

    #[test]
    fn refuses_an_oversize_file_by_one_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, vec![b'a'; KEY_FILE_LIMIT as usize + 1]).unwrap();
        let (problem, msg) = refused(read_limited(&path, "read key file", KEY_FILE_LIMIT));
        assert_eq!(problem, FileProblem::TooLarge { limit: 65536 });
        assert!(msg.contains("64 KiB"), "{msg}");
        assert!(msg.starts_with("cannot read key file"), "{msg}");
        std::fs::write(&path, vec![b'a'; KEY_FILE_LIMIT as usize]).unwrap();
        assert!(read_limited(&path, "read key file", KEY_FILE_LIMIT).is_ok());
    }

    #[test]
    fn refuses_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (problem, msg) = refused(read_limited(dir.path(), "read key file", KEY_FILE_LIMIT));
        assert_eq!(
            problem,
            FileProblem::NotRegular {
                kind: "a directory"
            }
        );
        assert!(msg.contains("is a directory"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn refuses_dev_zero_without_reading_it() {
        let (problem, msg) = refused(read_limited(
            Path::new("/dev/zero"),
            "read key file",
            KEY_FILE_LIMIT,
        ));
        assert!(
            matches!(
                problem,
                FileProblem::NotRegular {
                    kind: "a character device"
                }
            ),
            "{msg}"
        );
    }

    /// A FIFO with no writer: opening it for reading would block forever. The read runs on a
    /// thread so a regression fails the test after 10 s instead of hanging it.
    #[cfg(unix)]
    #[test]
    fn refuses_a_fifo_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        let status = std::process::Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_limited(&p, "read key file", KEY_FILE_LIMIT));
        });
        let result = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("reading a FIFO must not block");
        let (problem, msg) = refused(result);
        assert!(
            matches!(problem, FileProblem::NotRegular { kind } if kind.contains("FIFO")),
            "{msg}"
        );
        // Unblock the thread in case it is somehow still inside open() (non-blocking: with
        // no reader left this fails at once instead of waiting for one).
        use std::os::unix::fs::OpenOptionsExt;
        let _ = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path);
    }

    #[cfg(unix)]
    #[test]
    fn loose_permissions_sees_group_and_other_bits() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "x").unwrap();
        for (mode, loose, who) in [
            (0o600, false, ""),
            (0o400, false, ""),
            (0o640, true, "its group may"),
            (0o604, true, "other users may"),
            (0o644, true, "its group and other users"),
            (0o610, true, "its group may"),
        ] {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
            let found = loose_permissions(&path);
            assert_eq!(found.is_some(), loose, "{mode:o}");
            if let Some(w) = found {
                assert_eq!(w.mode, mode);
                assert!(w.to_string().contains(who), "{w}");
            }
        }
        assert!(loose_permissions(&dir.path().join("missing")).is_none());
        // Not a key file at all: reading it is refused, with no warning first.
        assert!(loose_permissions(Path::new("/dev/zero")).is_none());
        assert!(loose_permissions(dir.path()).is_none());
    }
}
