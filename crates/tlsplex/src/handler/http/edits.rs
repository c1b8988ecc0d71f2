//! `HeaderEdits`: the operator's header edits (`request_headers`, `response_headers`): remove,
//! set, add. Response edits apply to every answer of an HTTP handler, in the HTTP layer.

use hyper::header::{HeaderMap, HeaderName, HeaderValue};

/// Header edits for one direction, applied after tlsplex's own headers: `remove`, then `set`
/// (replacing), then `add` (appending).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct HeaderEdits {
    /// Names to remove.
    pub remove: Vec<HeaderName>,
    /// Set, replacing any value.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Appended.
    pub add: Vec<(HeaderName, HeaderValue)>,
}

impl HeaderEdits {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.remove.is_empty() && self.set.is_empty() && self.add.is_empty()
    }

    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.add {
            headers.append(name.clone(), value.clone());
        }
    }
}
