//! Which file a request names, and whether it may be served: inside the root (not by `..`, not
//! percent-encoded, not through a symlink that leads out, also for a folder's `index.html`), a
//! regular file (a FIFO or a device would block the thread that opens it), not a dotfile unless
//! allowed, and no name longer than a file system allows.

use std::fs::Metadata;
use std::path::{Component, Path, PathBuf};

/// The longest file name most file systems allow (`NAME_MAX`).
const MAX_NAME: usize = 255;

/// What a request path resolves to.
#[derive(Debug)]
pub(super) enum Target {
    /// A regular file inside the root.
    File { path: PathBuf, metadata: Metadata },
    /// A folder asked for without its trailing slash: redirect to the path with one.
    Folder,
    /// Nothing that may be served: 404.
    NotFound,
}

/// Resolves `decoded` (the request path, percent-decoded) under `root` (canonical).
pub(super) fn resolve(root: &Path, decoded: &str, dotfiles: bool) -> Target {
    let relative = Path::new(decoded.trim_start_matches('/'));
    let mut path = root.to_path_buf();
    let mut through_link = false;
    // An lstat per component: only a symlink beneath the root can lead out, and canonicalizing
    // every request would read every link of the root's own path.
    let mut last = None;
    for component in relative.components() {
        let Component::Normal(name) = component else {
            if component == Component::CurDir {
                continue;
            }
            return Target::NotFound;
        };
        let bytes = name.as_encoded_bytes();
        if bytes.len() > MAX_NAME || (!dotfiles && hidden(bytes)) {
            return Target::NotFound;
        }
        path.push(name);
        match std::fs::symlink_metadata(&path) {
            Ok(found) => {
                through_link |= found.file_type().is_symlink();
                last = Some(found);
            }
            Err(_) => return Target::NotFound,
        }
    }
    match last {
        // The root itself: a folder, checked when the handler was made.
        None => {}
        Some(found) if !found.file_type().is_symlink() && !found.is_dir() => {
            return file(root, path, found, through_link);
        }
        Some(found) if !found.file_type().is_symlink() => {}
        // A link: what it finally names.
        Some(_) => match std::fs::metadata(&path) {
            Ok(found) if found.is_dir() => {}
            Ok(found) => return file(root, path, found, through_link),
            Err(_) => return Target::NotFound,
        },
    }
    // A folder.
    if !decoded.ends_with('/') {
        return Target::Folder;
    }
    path.push("index.html");
    let metadata = match std::fs::symlink_metadata(&path) {
        Ok(found) if found.file_type().is_symlink() => {
            through_link = true;
            match std::fs::metadata(&path) {
                Ok(found) => found,
                Err(_) => return Target::NotFound,
            }
        }
        Ok(found) => found,
        Err(_) => return Target::NotFound,
    };
    file(root, path, metadata, through_link)
}

/// `path` with its `metadata`, if it is a regular file that stays inside `root`.
fn file(root: &Path, path: PathBuf, metadata: Metadata, through_link: bool) -> Target {
    if !metadata.is_file() {
        return Target::NotFound;
    }
    if through_link {
        match std::fs::canonicalize(&path) {
            Ok(real) if real.starts_with(root) => {}
            _ => return Target::NotFound,
        }
    }
    Target::File { path, metadata }
}

/// A dotfile or dot-folder (`.env`, `.git`), except `.well-known` (RFC 8615: ACME challenges,
/// `security.txt`), which sites publish on purpose.
fn hidden(name: &[u8]) -> bool {
    name.first() == Some(&b'.') && name != b".well-known"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn site() -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("www");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::create_dir_all(root.join(".well-known")).unwrap();
        std::fs::write(root.join("a.txt"), "a").unwrap();
        std::fs::write(root.join(".env"), "SECRET=1").unwrap();
        std::fs::write(root.join(".well-known/security.txt"), "x").unwrap();
        std::fs::write(dir.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), root.join("sub/index.html")).unwrap();
        let root = std::fs::canonicalize(root).unwrap();
        (dir, root)
    }

    #[test]
    fn folders_files_and_refusals() {
        let (_dir, root) = site();
        assert!(matches!(
            resolve(&root, "/a.txt", false),
            Target::File { .. }
        ));
        assert!(matches!(resolve(&root, "/sub", false), Target::Folder));
        // A folder's index.html that links out of the root.
        assert!(matches!(resolve(&root, "/sub/", false), Target::NotFound));
        assert!(matches!(resolve(&root, "/.env", false), Target::NotFound));
        assert!(matches!(resolve(&root, "/.env", true), Target::File { .. }));
        let well_known = resolve(&root, "/.well-known/security.txt", false);
        assert!(matches!(well_known, Target::File { .. }));
        let long = format!("/{}", "x".repeat(300));
        assert!(matches!(resolve(&root, &long, false), Target::NotFound));
        assert!(matches!(
            resolve(&root, "/../secret", false),
            Target::NotFound
        ));
    }
}
