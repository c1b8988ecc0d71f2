//! A server's own connection limit: permits taken before accept, resizable while serving.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::Semaphore;

#[derive(Debug)]
pub(crate) struct ConnectionLimit {
    permits: Arc<Semaphore>,
    limit: Mutex<usize>,
}

impl ConnectionLimit {
    pub(crate) fn new(limit: usize) -> Self {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(limit)),
            limit: Mutex::new(limit),
        }
    }

    pub(crate) fn permits(&self) -> &Arc<Semaphore> {
        &self.permits
    }

    /// Changes the limit. Raising it frees permits at once; lowering it takes permits away as
    /// connections close (open connections are never cut). Must run within a tokio runtime.
    pub(crate) fn resize(&self, limit: usize) {
        let limit = limit.clamp(1, Semaphore::MAX_PERMITS);
        let mut current = self.limit.lock().unwrap_or_else(PoisonError::into_inner);
        if limit > *current {
            self.permits.add_permits(limit - *current);
        } else if limit < *current {
            let excess = *current - limit;
            let forgotten = self.permits.forget_permits(excess);
            if let Ok(rest) = u32::try_from(excess - forgotten) {
                if rest > 0 {
                    let permits = self.permits.clone();
                    tokio::spawn(async move {
                        if let Ok(taken) = permits.acquire_many_owned(rest).await {
                            taken.forget();
                        }
                    });
                }
            }
        }
        *current = limit;
    }
}
