//! The folder ACME state is kept in: the account's credentials, and each certificate chain and
//! key, written atomically (a temporary file, synced, then renamed) and readable by the owner
//! only, so a crash never leaves half a key and restarts reuse what was issued.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use instant_acme::AccountCredentials;

/// The ACME storage folder.
#[derive(Debug, Clone)]
pub(crate) struct Storage {
    root: PathBuf,
}

impl Storage {
    pub(crate) fn new(root: &Path) -> Self {
        Self {
            root: root.to_owned(),
        }
    }

    /// The account file for `directory` (one account per CA).
    fn account_file(&self, directory: &str) -> PathBuf {
        let short = directory_digest(directory);
        self.root.join(format!("account-{short}.json"))
    }

    /// The stored credentials of the account at `directory`, if any.
    pub(crate) fn account(&self, directory: &str) -> io::Result<Option<AccountCredentials>> {
        let path = self.account_file(directory);
        if !path.exists() {
            return Ok(None);
        }
        let text = crate::files::read_text(&path, crate::files::MAX_SECRET_FILE)?;
        serde_json::from_str(&text).map(Some).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
    }

    /// Takes the order lock for `names`: `locks/<names>.lock`, created exclusively, so processes
    /// sharing this folder (a shared mount) order a certificate once. A lock older than
    /// `expiry` is taken over (its holder died mid-order). `None` while another holds it.
    pub(crate) fn lock(
        &self,
        names: &[String],
        expiry: Duration,
    ) -> io::Result<Option<FolderLock>> {
        let folder = self.root.join("locks");
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&folder)?;
        let name: String = names
            .join(",")
            .to_ascii_lowercase()
            .chars()
            .map(|c| if c == '*' { '_' } else { c })
            .collect();
        let path = folder.join(format!("{name}.lock"));
        for _ in 0..2 {
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(mut file) => {
                    let holder = format!("pid {}\n", std::process::id());
                    file.write_all(holder.as_bytes())?;
                    return Ok(Some(FolderLock { path }));
                }
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
                    let age = fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .map(|at| SystemTime::now().duration_since(at).unwrap_or_default());
                    match age {
                        Ok(age) if age > expiry => {
                            tracing::warn!(lock = %path.display(), "taking over an expired ACME order lock");
                            fs::remove_file(&path).or_else(|e| match e.kind() {
                                io::ErrorKind::NotFound => Ok(()),
                                _ => Err(e),
                            })?;
                        }
                        Ok(_) => return Ok(None),
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e),
                    }
                }
                Err(error) => return Err(error),
            }
        }
        Ok(None)
    }

    pub(crate) fn save_account(
        &self,
        directory: &str,
        credentials: &AccountCredentials,
    ) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(credentials)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        write_private(&self.account_file(directory), &json)
    }
}

/// A short name for the CA at `directory` (16 hex digits of its SHA-256): one account per CA,
/// in the folder and in the fleet store alike.
pub(super) fn directory_digest(directory: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, directory.as_bytes());
    digest.as_ref()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A held order lock in the storage folder; released when dropped.
#[derive(Debug)]
pub(crate) struct FolderLock {
    path: PathBuf,
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Writes `bytes` to `path` atomically, mode 0600, creating its folders (mode 0700).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let folder = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent folder"))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let temporary = folder.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&temporary, path)?;
    // The rename is durable once the folder is synced.
    fs::File::open(folder)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_order_lock_per_names_until_released_or_expired() {
        let root = std::env::temp_dir().join(format!("tlsplex-acme-lock-{}", std::process::id()));
        let storage = Storage::new(&root);
        let names = ["*.Example.test".to_owned(), "example.test".to_owned()];
        let hour = Duration::from_secs(3600);
        let held = storage.lock(&names, hour).unwrap().expect("free at first");
        assert!(root.join("locks/_.example.test,example.test.lock").exists());
        assert!(storage.lock(&names, hour).unwrap().is_none(), "held");
        assert!(
            storage.lock(&names[1..], hour).unwrap().is_some(),
            "other names, other lock"
        );
        drop(held);
        let held = storage.lock(&names, hour).unwrap().expect("released");
        std::mem::forget(held); // its holder "died"
        let taken = storage.lock(&names, Duration::ZERO).unwrap();
        assert!(taken.is_some(), "an expired lock is taken over");
        drop(taken);
        fs::remove_dir_all(root).unwrap();
    }
}
