//! The incremental cache: a .deb whose file identity (device, inode, size, mtime) is unchanged
//! is not read again. Stored as JSON lines, one file per line: a run appends what it learned and
//! rewrites the file only when dead entries pile up. A missing or corrupt cache only costs a
//! re-read.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rayon::prelude::*;

use crate::deb::{DebInfo, read_deb};
use crate::error::AptError;

#[derive(serde::Serialize, serde::Deserialize)]
struct Line {
    id: String,
    info: DebInfo,
}

#[derive(Default)]
pub struct DebCache {
    path: Option<PathBuf>,
    entries: Mutex<HashMap<String, DebInfo>>,
    /// Identities learned in this run, not yet in the file.
    fresh: Mutex<Vec<String>>,
    loaded: usize,
    pub hits: AtomicUsize,
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
        let mut entries = HashMap::new();
        if let Some(text) = path.and_then(|p| std::fs::read_to_string(p).ok()) {
            for line in text.lines() {
                // A torn last line (a crash mid-append) is skipped, not fatal.
                if let Ok(l) = serde_json::from_str::<Line>(line) {
                    entries.insert(l.id, l.info);
                }
            }
        }
        DebCache {
            path: path.map(Path::to_path_buf),
            loaded: entries.len(),
            entries: Mutex::new(entries),
            fresh: Mutex::new(Vec::new()),
            hits: AtomicUsize::new(0),
        }
    }

    /// Reads every file (in parallel), using the cache where the file is unchanged.
    pub fn read_all(&self, paths: &[PathBuf]) -> Result<Vec<DebInfo>, AptError> {
        paths
            .par_iter()
            .map(|p| {
                if let Some(hit) = self.lookup(p) {
                    self.hits.fetch_add(1, Ordering::Relaxed);
                    return Ok(hit);
                }
                let info = read_deb(p)?;
                self.remember(p, &info);
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
        let Some(id) = identity(path) else { return };
        let (Ok(mut e), Ok(mut fresh)) = (self.entries.lock(), self.fresh.lock()) else {
            return;
        };
        if e.insert(id.clone(), info.clone()).is_none() {
            fresh.push(id);
        }
    }

    /// Persists what this run learned: appends new entries, or rewrites the file with only the
    /// entries of `live` files when it holds dead ones.
    pub fn save(&self, live: &[PathBuf]) {
        let Some(path) = &self.path else { return };
        let (Ok(entries), Ok(fresh)) = (self.entries.lock(), self.fresh.lock()) else {
            return;
        };
        if let Some(parent) = path.parent() {
            let _ = std::fs::create_dir_all(parent);
        }
        let line = |id: &String, info: &DebInfo| {
            serde_json::to_string(&Line {
                id: id.clone(),
                info: info.clone(),
            })
            .ok()
        };
        // Live files have at most `live.len()` identities, so more entries than that means dead
        // ones; checking needs no stat of every file on the common, append-only path.
        if entries.len() > live.len() || self.loaded == 0 {
            let live_ids: HashSet<String> = live.iter().filter_map(|p| identity(p)).collect();
            let mut text = String::new();
            for (id, info) in entries.iter().filter(|(id, _)| live_ids.contains(*id)) {
                if let Some(l) = line(id, info) {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
            let tmp = path.with_extension("tmp");
            if std::fs::write(&tmp, text).is_ok() {
                let _ = std::fs::rename(&tmp, path);
            }
        } else if !fresh.is_empty() {
            let mut text = String::new();
            for id in fresh.iter() {
                if let Some(l) = entries.get(id).and_then(|info| line(id, info)) {
                    text.push_str(&l);
                    text.push('\n');
                }
            }
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(text.as_bytes());
            }
        }
    }
}
