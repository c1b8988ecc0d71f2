//! Which file a request names, and whether it may be served: inside the root (not by `..`, not
//! percent-encoded, not through a symlink that leads out, also for a folder's index file), a
//! regular file (a FIFO or a device would block the thread that opens it), not a dotfile unless
//! allowed, and no name longer than a file system allows. A folder is served by the first of its
//! index names that is such a file, or listed when listings are on.

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
    /// A folder (inside the root) with no index file, to be listed.
    Listing(PathBuf),
    /// Nothing that may be served: 404.
    NotFound,
}

/// What a site serves besides plain files.
#[derive(Debug, Clone)]
pub(super) struct Rules {
    /// Dotfiles and dot-folders too.
    pub(super) dotfiles: bool,
    /// A folder's index file names, tried in order.
    pub(super) index: Vec<String>,
    /// A folder without an index file is listed.
    pub(super) listing: bool,
    /// `.br` and `.gz` siblings are served to clients that take them.
    pub(super) precompressed: bool,
}

impl Default for Rules {
    fn default() -> Self {
        Self {
            dotfiles: false,
            index: vec!["index.html".to_owned()],
            listing: false,
            precompressed: false,
        }
    }
}

/// Resolves `decoded` (the request path, percent-decoded) under `root` (canonical).
pub(super) fn resolve(root: &Path, decoded: &str, rules: &Rules) -> Target {
    let dotfiles = rules.dotfiles;
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
    for name in &rules.index {
        let index = path.join(name);
        let metadata = match std::fs::symlink_metadata(&index) {
            Ok(found) if found.file_type().is_symlink() => match std::fs::metadata(&index) {
                Ok(found) => (found, true),
                Err(_) => continue,
            },
            Ok(found) => (found, through_link),
            Err(_) => continue,
        };
        return file(root, index, metadata.0, metadata.1);
    }
    if !rules.listing {
        return Target::NotFound;
    }
    // A folder reached through a link is listed only if it stays inside the root.
    if through_link && !std::fs::canonicalize(&path).is_ok_and(|real| real.starts_with(root)) {
        return Target::NotFound;
    }
    Target::Listing(path)
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
pub(super) fn hidden(name: &[u8]) -> bool {
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
        let plain = Rules::default();
        let dotfiles = Rules {
            dotfiles: true,
            ..Rules::default()
        };
        assert!(matches!(
            resolve(&root, "/a.txt", &plain),
            Target::File { .. }
        ));
        assert!(matches!(resolve(&root, "/sub", &plain), Target::Folder));
        // A folder's index.html that links out of the root.
        assert!(matches!(resolve(&root, "/sub/", &plain), Target::NotFound));
        assert!(matches!(resolve(&root, "/.env", &plain), Target::NotFound));
        assert!(matches!(
            resolve(&root, "/.env", &dotfiles),
            Target::File { .. }
        ));
        let well_known = resolve(&root, "/.well-known/security.txt", &plain);
        assert!(matches!(well_known, Target::File { .. }));
        let long = format!("/{}", "x".repeat(300));
        assert!(matches!(resolve(&root, &long, &plain), Target::NotFound));
        assert!(matches!(
            resolve(&root, "/../secret", &plain),
            Target::NotFound
        ));
        // Index names in order, then a listing when asked for.
        std::fs::write(root.join("sub/home.htm"), "h").unwrap();
        let index = Rules {
            index: vec!["missing.html".to_owned(), "home.htm".to_owned()],
            ..Rules::default()
        };
        let found = resolve(&root, "/sub/", &index);
        assert!(matches!(found, Target::File { path, .. } if path.ends_with("sub/home.htm")));
        let listed = Rules {
            index: Vec::new(),
            listing: true,
            ..Rules::default()
        };
        assert!(matches!(
            resolve(&root, "/sub/", &listed),
            Target::Listing(_)
        ));
        assert!(matches!(
            resolve(
                &root,
                "/sub/",
                &Rules {
                    index: Vec::new(),
                    ..Rules::default()
                }
            ),
            Target::NotFound
        ));
    }
}
