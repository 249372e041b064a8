//! A one-second cache of the busiest read responses (the home page, the branch table, run
//! lists), so a wall of dashboards and pollers costs one query per second, not one per client.
//! Any change this server makes (a run queued, started, cancelled, a build's progress, a
//! release) clears it at once; a change made by another process (a CLI run on the same data
//! dir) shows within a second.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use crate::state::lock;

const FRESH_FOR: Duration = Duration::from_secs(1);
/// Distinct URLs kept at most (query strings are client-chosen).
const MAX_ENTRIES: usize = 256;

#[derive(Default)]
pub struct ReadCache {
    generation: AtomicU64,
    entries: Mutex<HashMap<String, Entry>>,
    /// Held while a missing response is computed: the clients that missed at the same moment
    /// wait for that one computation instead of all running it (no stampede each second).
    pub computing: tokio::sync::Mutex<()>,
}

struct Entry {
    at: Instant,
    generation: u64,
    content_type: &'static str,
    body: Bytes,
}

impl ReadCache {
    /// Something changed: nothing cached before now is served again.
    pub fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(&self, key: &str) -> Option<(&'static str, Bytes)> {
        let generation = self.generation.load(Ordering::Relaxed);
        let entries = lock(&self.entries);
        let e = entries.get(key)?;
        (e.generation == generation && e.at.elapsed() < FRESH_FOR)
            .then(|| (e.content_type, e.body.clone()))
    }

    /// Keeps a response computed while the generation was `generation` (read before computing,
    /// so a change during the computation is never hidden).
    pub fn put(&self, key: String, generation: u64, content_type: &'static str, body: Bytes) {
        let mut entries = lock(&self.entries);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, e| e.at.elapsed() < FRESH_FOR);
            if entries.len() >= MAX_ENTRIES {
                return;
            }
        }
        entries.insert(
            key,
            Entry {
                at: Instant::now(),
                generation,
                content_type,
                body,
            },
        );
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::ReadCache;

    #[test]
    fn a_change_or_a_second_ends_an_entry() {
        let c = ReadCache::default();
        let g = c.generation();
        c.put("/".into(), g, "text/html", "a".into());
        assert_eq!(c.get("/").map(|(_, b)| b), Some("a".into()));
        c.changed();
        assert!(c.get("/").is_none());
        // Computed before a change: never served after it.
        c.put("/x".into(), g, "text/html", "old".into());
        assert!(c.get("/x").is_none());
    }
}
