//! The `static` handler's open-file cache (as nginx's `open_file_cache`, but holding contents):
//! small files kept in memory with what their response head needs, answered with no system
//! call while fresh, and checked again at most every `revalidate` through the same
//! [`super::target::resolve`] rules as an uncached request (inside the root, regular files,
//! no dotfiles unless allowed, no symlink leading out). Bounded in entries and bytes; when full,
//! entries are evicted at random (cheap, and a client cannot steer it).

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use hyper::header::{HeaderMap, HeaderValue};

/// How the cache is bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileCacheOptions {
    /// Files kept at most.
    pub max_entries: usize,
    /// Bytes of file contents kept at most.
    pub max_bytes: usize,
    /// How long an entry is served before its file is looked at again.
    pub revalidate: Duration,
}

impl Default for FileCacheOptions {
    fn default() -> Self {
        Self {
            max_entries: 1024,
            max_bytes: 16 * 1024 * 1024,
            revalidate: Duration::from_secs(1),
        }
    }
}

/// One cached file: its contents and its response's headers, made once when it is read (type,
/// length, `Accept-Ranges`, date, weak `ETag`): a response clones them.
#[derive(Debug)]
pub(super) struct Cached {
    pub(super) content: Bytes,
    pub(super) headers: HeaderMap,
    modified: Option<SystemTime>,
}

struct Slot {
    file: Arc<Cached>,
    checked: Instant,
}

/// Cached files by request path (percent-decoded).
pub(super) struct FileCache {
    options: FileCacheOptions,
    slots: Mutex<(HashMap<String, Slot>, usize)>,
}

/// What the cache knows of a request path.
pub(super) enum Lookup {
    /// Fresh: answer with it.
    Fresh(Arc<Cached>),
    /// Not cached, or due for a look at its file.
    Check,
}

impl FileCache {
    pub(super) fn new(options: FileCacheOptions) -> Self {
        Self {
            options,
            slots: Mutex::new((HashMap::new(), 0)),
        }
    }

    /// An empty cache with the same bounds.
    pub(super) fn same_options(&self) -> Self {
        Self::new(self.options)
    }

    pub(super) fn lookup(&self, key: &str) -> Lookup {
        let slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        match slots.0.get(key) {
            Some(slot) if slot.checked.elapsed() < self.options.revalidate => {
                Lookup::Fresh(slot.file.clone())
            }
            _ => Lookup::Check,
        }
    }

    /// The file `path` (just resolved for `key`, with `metadata`): the cached copy when it is
    /// unchanged (same size and modification time), else read again and cached. `None` when
    /// it cannot be read whole or does not fit the cache.
    pub(super) fn load(
        &self,
        key: &str,
        path: &Path,
        metadata: &std::fs::Metadata,
        content_type: HeaderValue,
    ) -> Option<Arc<Cached>> {
        let len = usize::try_from(metadata.len()).ok()?;
        let modified = metadata.modified().ok();
        {
            let mut slots = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(slot) = slots.0.get_mut(key) {
                if slot.file.content.len() == len && slot.file.modified == modified {
                    slot.checked = Instant::now();
                    return Some(slot.file.clone());
                }
            }
        }
        if len > self.options.max_bytes {
            return None;
        }
        let content = read_whole(path, len).ok()?;
        let file = Arc::new(Cached {
            content,
            headers: super::file_head(content_type, metadata.len(), modified),
            modified,
        });
        let mut guard = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let (slots, bytes) = &mut *guard;
        if let Some(old) = slots.remove(key) {
            *bytes -= old.file.content.len();
        }
        while !slots.is_empty()
            && (slots.len() >= self.options.max_entries || *bytes + len > self.options.max_bytes)
        {
            let Some(victim) = slots.keys().next().cloned() else {
                break;
            };
            if let Some(old) = slots.remove(&victim) {
                *bytes -= old.file.content.len();
            }
        }
        if self.options.max_entries > 0 {
            *bytes += len;
            let slot = Slot {
                file: file.clone(),
                checked: Instant::now(),
            };
            slots.insert(key.to_owned(), slot);
        }
        Some(file)
    }

    /// Forgets `key` (its path no longer resolves to a file that may be served).
    pub(super) fn forget(&self, key: &str) {
        let mut guard = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        let (slots, bytes) = &mut *guard;
        if let Some(old) = slots.remove(key) {
            *bytes -= old.file.content.len();
        }
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let guard = self.slots.lock().unwrap_or_else(PoisonError::into_inner);
        (guard.0.len(), guard.1)
    }
}

/// Reads `path` whole, expecting `len` bytes; opened non-blocking and checked to be a regular
/// file again (it may have been swapped since it was resolved).
fn read_whole(path: &Path, len: usize) -> io::Result<Bytes> {
    let (file, _) = crate::files::open_regular(path)?;
    let mut content = Vec::with_capacity(len);
    (&file).take(len as u64 + 1).read_to_end(&mut content)?;
    if content.len() != len {
        return Err(io::Error::other("the file changed size while being read"));
    }
    Ok(Bytes::from(content))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_in_entries_and_bytes_and_reloaded_when_the_file_changes() {
        let dir = std::env::temp_dir().join(format!("tlsplex-file-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = FileCacheOptions {
            max_entries: 2,
            max_bytes: 10,
            revalidate: Duration::from_secs(3600),
        };
        let cache = FileCache::new(options);
        let text = HeaderValue::from_static("text/plain");
        let load = |name: &str, content: &str| {
            let path = dir.join(name);
            std::fs::write(&path, content).unwrap();
            let metadata = std::fs::metadata(&path).unwrap();
            cache.load(name, &path, &metadata, text.clone())
        };
        assert_eq!(&load("a", "aaaa").unwrap().content[..], b"aaaa");
        assert_eq!(&load("b", "bbbb").unwrap().content[..], b"bbbb");
        load("c", "cccc").unwrap();
        assert_eq!(cache.held(), (2, 8), "at most two entries");
        load("d", "dddddddd").unwrap();
        assert!(
            cache.held().1 <= 10,
            "at most ten bytes: {:?}",
            cache.held()
        );
        assert!(
            load("e", "too long for it").is_none(),
            "over the byte bound: not cached"
        );
        assert!(matches!(cache.lookup("d"), Lookup::Fresh(_)));
        // A changed file (another size) is read again.
        let reloaded = load("d", "dd").unwrap();
        assert_eq!(&reloaded.content[..], b"dd");
        cache.forget("d");
        assert!(matches!(cache.lookup("d"), Lookup::Check));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
