//! Handles as names: what a C program holds is a number in the shape of a pointer, looked up
//! here on every call, never dereferenced. A freed handle is gone from its table (numbers are
//! never reused), so using it again is `TLSPLEX_INVALID_HANDLE`, not a use after free; a handle
//! of another kind carries another kind's tag and is refused the same way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::tlsplex_result::{self, TLSPLEX_INVALID_HANDLE, TLSPLEX_NULL_ARGUMENT};

/// The live handles of one kind.
pub(crate) struct Handles<T> {
    /// Its kind, in the two low bits of every handle (a handle is never null: numbers start at 1).
    tag: u64,
    live: Mutex<HashMap<u64, Arc<T>>>,
}

/// Handle numbers, shared by every kind, each used once.
static NEXT: AtomicU64 = AtomicU64::new(1);

const TAG_BITS: u32 = 2;

impl<T> Handles<T> {
    pub(crate) fn new(tag: u64) -> Self {
        Self {
            tag,
            live: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `value`, and the handle that names it.
    pub(crate) fn add<H>(&self, value: T) -> *mut H {
        let number = (NEXT.fetch_add(1, Ordering::Relaxed) << TAG_BITS) | self.tag;
        self.lock().insert(number, Arc::new(value));
        std::ptr::without_provenance_mut(number as usize)
    }

    /// What `handle` names.
    pub(crate) fn get<H>(&self, handle: *const H) -> Result<Arc<T>, tlsplex_result> {
        let number = self.number(handle)?;
        self.lock()
            .get(&number)
            .cloned()
            .ok_or(TLSPLEX_INVALID_HANDLE)
    }

    /// Forgets `handle`; what it named goes once no call holds it.
    pub(crate) fn remove<H>(&self, handle: *const H) -> Result<Arc<T>, tlsplex_result> {
        let number = self.number(handle)?;
        self.lock().remove(&number).ok_or(TLSPLEX_INVALID_HANDLE)
    }

    /// Frees `handle` (null: nothing to free).
    pub(crate) fn free<H>(&self, handle: *const H) -> Result<(), tlsplex_result> {
        if handle.is_null() {
            return Ok(());
        }
        self.remove(handle).map(drop)
    }

    /// How many are live.
    #[cfg(test)]
    pub(crate) fn count(&self) -> usize {
        self.lock().len()
    }

    fn number<H>(&self, handle: *const H) -> Result<u64, tlsplex_result> {
        if handle.is_null() {
            return Err(TLSPLEX_NULL_ARGUMENT);
        }
        let number = handle.addr() as u64;
        if number & ((1 << TAG_BITS) - 1) != self.tag {
            return Err(TLSPLEX_INVALID_HANDLE);
        }
        Ok(number)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<T>>> {
        self.live.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    enum A {}
    enum B {}

    #[test]
    fn freed_foreign_and_made_up_handles_are_refused() {
        let strings = Handles::<String>::new(1);
        let numbers = Handles::<u32>::new(2);
        let a: *mut A = strings.add("one".to_owned());
        let b: *mut B = numbers.add(7);
        assert_eq!(strings.get(a).map(|s| s.to_string()), Ok("one".to_owned()));
        assert_eq!(
            numbers.get(a.cast::<B>()).err(),
            Some(TLSPLEX_INVALID_HANDLE)
        );
        assert_eq!(
            strings.get(b.cast::<A>()).err(),
            Some(TLSPLEX_INVALID_HANDLE)
        );
        assert!(strings.remove(a).is_ok());
        assert_eq!(strings.get(a).err(), Some(TLSPLEX_INVALID_HANDLE), "freed");
        assert_eq!(
            strings.remove(a).err(),
            Some(TLSPLEX_INVALID_HANDLE),
            "freed twice"
        );
        let made_up: *const A = std::ptr::without_provenance(0x1235);
        assert_eq!(strings.get(made_up).err(), Some(TLSPLEX_INVALID_HANDLE));
        assert_eq!(
            strings.get(std::ptr::null::<A>()).err(),
            Some(TLSPLEX_NULL_ARGUMENT)
        );
        assert_eq!((strings.count(), numbers.count()), (0, 1));
    }
}
