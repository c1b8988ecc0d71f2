//! The folder ACME state is kept in: the account's credentials, and each certificate chain and
//! key, written atomically (a temporary file, synced, then renamed) and readable by the owner
//! only, so a crash never leaves half a key and restarts reuse what was issued.

use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

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
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, directory.as_bytes());
        let short: String = digest.as_ref()[..8]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
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
