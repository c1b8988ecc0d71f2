//! Reading the files a config names (certificates, keys, CAs, CRLs, OCSP responses, the ticket
//! key, the admin token, the config itself) without ever waiting on one or running out of memory.
//!
//! A path that names a FIFO would block `open(2)` until a writer appears, and a device such as
//! `/dev/zero` never ends: both once froze the control loop. So a file is opened non-blocking,
//! must be a regular file, and may hold at most a stated number of bytes.

use std::cell::RefCell;
use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// The most a certificate, key, CA bundle, CRL, OCSP response or config file may hold. A large
/// CA bundle is about 250 KiB and a large CRL a few MiB.
pub const MAX_MATERIAL_FILE: u64 = 16 * 1024 * 1024;

/// The most a secret file (ticket key, admin token) may hold.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// Opens `path` for reading without blocking, if it is a regular file; the error says what it is
/// otherwise.
pub(crate) fn open_regular(path: &Path) -> io::Result<(File, std::fs::Metadata)> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let metadata = file.metadata()?;
    if !metadata.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("not a regular file (it is {})", kind(&metadata.file_type())),
        ));
    }
    Ok((file, metadata))
}

/// The whole of `path`, a regular file of at most `max` bytes. While a recording is under
/// way on this thread, the read (or its failure) is noted with a digest of the contents.
pub fn read_limited(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let contents = read_regular(path, max);
    if RECORDING.with(|stack| !stack.borrow().is_empty()) {
        note(&[FileRead {
            path: path.to_owned(),
            sha256: contents.as_deref().ok().map(sha256),
        }]);
    }
    contents
}

fn read_regular(path: &Path, max: u64) -> io::Result<Vec<u8>> {
    let (file, metadata) = open_regular(path)?;
    let too_large = |size: u64| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("the file is {size} bytes; at most {max} are read"),
        )
    };
    if metadata.len() > max {
        return Err(too_large(metadata.len()));
    }
    // The size can change after the check: read one byte more than allowed to notice.
    let mut contents = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(max + 1).read_to_end(&mut contents)?;
    if contents.len() as u64 > max {
        return Err(too_large(contents.len() as u64));
    }
    Ok(contents)
}

fn sha256(contents: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, contents);
    let mut sha256 = [0u8; 32];
    sha256.copy_from_slice(digest.as_ref());
    sha256
}

/// A file read while recording: its path and the SHA-256 of what it held (`None`: it could not
/// be read, e.g. an ACME certificate not issued yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct FileRead {
    pub(crate) path: PathBuf,
    pub(crate) sha256: Option<[u8; 32]>,
}

impl FileRead {
    /// Whether `path` holds now what it held when read (`cache`: this pass's answers, so a
    /// file many servers name is read once; by the path's bytes, which hash much faster than
    /// its components).
    pub(crate) fn still_holds(
        &self,
        cache: &mut std::collections::HashMap<std::ffi::OsString, Option<[u8; 32]>>,
    ) -> bool {
        if let Some(now) = cache.get(self.path.as_os_str()) {
            return *now == self.sha256;
        }
        let now = read_regular(&self.path, MAX_MATERIAL_FILE)
            .ok()
            .map(|contents| sha256(&contents));
        cache.insert(self.path.clone().into_os_string(), now);
        now == self.sha256
    }
}

thread_local! {
    /// The reads of each recording under way on this thread, innermost last.
    static RECORDING: RefCell<Vec<Vec<FileRead>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f`, and returns with its result every file [`read_limited`] read on this thread
/// meanwhile (what a server's validation read, to tell whether its inputs changed). A
/// recording within another passes its reads on to the outer one.
pub(crate) fn recording<T>(f: impl FnOnce() -> T) -> (T, Vec<FileRead>) {
    /// Ends the recording also if `f` unwinds.
    struct Recording;
    impl Drop for Recording {
        fn drop(&mut self) {
            let reads = RECORDING.with(|stack| stack.borrow_mut().pop());
            note(&reads.unwrap_or_default());
        }
    }
    RECORDING.with(|stack| stack.borrow_mut().push(Vec::new()));
    let guard = Recording;
    let value = f();
    let reads = RECORDING.with(|stack| stack.borrow().last().cloned().unwrap_or_default());
    drop(guard);
    (value, reads)
}

/// Counts `reads` as made now by the recording under way (a result kept from an earlier read
/// stands for the reads that made it); nothing when none is.
pub(crate) fn note(reads: &[FileRead]) {
    RECORDING.with(|stack| {
        if let Some(current) = stack.borrow_mut().last_mut() {
            current.extend_from_slice(reads);
        }
    });
}

/// [`read_limited`] as UTF-8 text.
pub fn read_text(path: &Path, max: u64) -> io::Result<String> {
    String::from_utf8(read_limited(path, max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "the file is not UTF-8 text"))
}

/// The permission bits of `path` when group or others may read or write it (a secret should be
/// its owner's alone); `None` when only the owner may, or the file cannot be examined.
pub(crate) fn loose_permissions(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path).ok()?.permissions().mode() & 0o777;
    (mode & 0o077 != 0).then_some(mode)
}

fn kind(file_type: &std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a folder"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else {
        "not a file"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_and_folders_are_refused_and_sizes_capped() {
        let error = read_limited(Path::new("/dev/zero"), 10)
            .map(|_| ())
            .unwrap_err();
        assert!(error.to_string().contains("character device"), "{error}");
        let error = read_limited(Path::new("/"), 10).map(|_| ()).unwrap_err();
        assert!(error.to_string().contains("folder"), "{error}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        std::fs::write(&path, [0u8; 100]).unwrap();
        assert!(read_limited(&path, 99).is_err());
        assert_eq!(read_limited(&path, 100).unwrap().len(), 100);
    }

    #[test]
    fn a_fifo_is_refused_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fifo");
        nix_free_mkfifo(&path);
        let error = read_limited(&path, 10).map(|_| ()).unwrap_err();
        assert!(error.to_string().contains("FIFO"), "{error}");
    }

    fn nix_free_mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo")
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}
