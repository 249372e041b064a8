//! The incremental cache: a .deb whose file identity (device, inode, size, mtime) is
//! unchanged is not read again. Stored as JSON, replaced atomically; a missing or corrupt cache
//! only costs a re-read.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use rayon::prelude::*;

use crate::deb::{DebInfo, read_deb};
use crate::error::AptError;

#[derive(Default)]
pub struct DebCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<String, DebInfo>>,
    pub hits: std::sync::atomic::AtomicUsize,
}

fn identity(path: &Path) -> Option<String> {
    let m = std::fs::metadata(path).ok()?;
    // Not ctime: hard-linking a .deb into a pool (which the builder does) changes it.
    Some(format!(
        "{}:{}:{}:{}.{}",
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec()
    ))
}

impl DebCache {
    /// Loads a cache file (or starts empty). `None` keeps nothing between runs.
    pub fn open(path: Option<&Path>) -> DebCache {
        let entries = path
            .and_then(|p| std::fs::read(p).ok())
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        DebCache {
            path: path.map(Path::to_path_buf),
            entries: Mutex::new(entries),
            hits: Default::default(),
        }
    }

    /// Reads every file (in parallel), using the cache where the file is unchanged.
    pub fn read_all(&self, paths: &[PathBuf]) -> Result<Vec<DebInfo>, AptError> {
        paths
            .par_iter()
            .map(|p| {
                let id = identity(p);
                if let Some(id) = &id {
                    if let Some(hit) = self.entries.lock().ok().and_then(|e| e.get(id).cloned()) {
                        self.hits.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        return Ok(hit);
                    }
                }
                let info = read_deb(p)?;
                if let (Some(id), Ok(mut e)) = (id, self.entries.lock()) {
                    e.insert(id, info.clone());
                }
                Ok(info)
            })
            .collect()
    }

    /// What the cache knows of `path`, if the file is unchanged since it was recorded.
    pub fn lookup(&self, path: &Path) -> Option<DebInfo> {
        let id = identity(path)?;
        self.entries.lock().ok()?.get(&id).cloned()
    }

    /// Records `info` for the file now at `path` (e.g. a pool copy of an input).
    pub fn remember(&self, path: &Path, info: &DebInfo) {
        if let (Some(id), Ok(mut e)) = (identity(path), self.entries.lock()) {
            e.insert(id, info.clone());
        }
    }

    /// Writes the cache back, keeping only entries for `live` files so it cannot grow forever.
    pub fn save(&self, live: &[PathBuf]) {
        let Some(path) = &self.path else { return };
        let Ok(entries) = self.entries.lock() else {
            return;
        };
        let keep: HashMap<&String, &DebInfo> = live
            .iter()
            .filter_map(|p| identity(p))
            .filter_map(|id| entries.get_key_value(&id))
            .collect();
        let Ok(bytes) = serde_json::to_vec(&keep) else {
            return;
        };
        let tmp = path.with_extension("tmp");
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        if std::fs::write(&tmp, bytes).is_ok() {
            let _ = std::fs::rename(&tmp, path);
        }
    }
}
