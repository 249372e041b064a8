//! A build's folder: `work/` (the source tree, where steps run), `inputs/<build>/...` (upstream
//! artifacts), `home/` and `tmp/` (so builds do not share or touch the host's), `secrets/`.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use slipway_store::Store;

use crate::error::{EngineError, io_err};

pub(crate) struct Workspace {
    pub root: PathBuf,
    pub work: PathBuf,
    pub inputs: PathBuf,
    pub home: PathBuf,
    pub tmp: PathBuf,
    pub secrets: PathBuf,
}

impl Workspace {
    pub fn create(root: PathBuf, source_tree: &Path) -> Result<Workspace, EngineError> {
        if root.exists() {
            fs::remove_dir_all(&root).map_err(io_err(&root))?;
        }
        let ws = Workspace {
            work: root.join("work"),
            inputs: root.join("inputs"),
            home: root.join("home"),
            tmp: root.join("tmp"),
            secrets: root.join("secrets"),
            root,
        };
        for dir in [&ws.inputs, &ws.home, &ws.tmp] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        copy_tree(source_tree, &ws.work)?;
        Ok(ws)
    }

    /// Puts each upstream build's artifacts under `inputs/<build>/<path>`.
    /// `link` hard-links the stored objects instead of copying them: only for Slipway's own
    /// (native) builds, which never write to their inputs.
    pub async fn add_inputs(
        &self,
        store: &Store,
        run_id: i64,
        needs: &[String],
        link: bool,
    ) -> Result<usize, EngineError> {
        let mut count = 0;
        for need in needs {
            let dir = self.inputs.join(need);
            fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            for a in store.artifacts(run_id, need).await? {
                let dest = dir.join(&a.path);
                let linked = link && {
                    let src = store
                        .cas()
                        .verified_path(&a.sha256)
                        .map_err(|e| EngineError::Store(e.into()))?;
                    dest.parent().is_some_and(|p| fs::create_dir_all(p).is_ok())
                        && fs::hard_link(&src, &dest).is_ok()
                };
                if !linked {
                    store
                        .cas()
                        .export(&a.sha256, &dest)
                        .map_err(|e| EngineError::Store(e.into()))?;
                }
                count += 1;
            }
        }
        Ok(count)
    }

    pub fn remove(&self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

/// Removes (or with `dry_run` only measures) what an ended run left in its folder besides its
/// logs: build workspaces (`builds/<build>`, kept by `--keep-workspaces` or by an interrupted
/// run) and the checked-out source (`src`). Returns the folders removed and the bytes freed.
/// Never call it for a running run.
pub fn remove_run_workspaces(run_dir: &Path, dry_run: bool) -> Result<(u64, u64), EngineError> {
    let mut folders: Vec<PathBuf> = match fs::read_dir(run_dir.join("builds")) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<Result<_, _>>()
            .map_err(io_err(&run_dir.join("builds")))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(&run_dir.join("builds"))(e)),
    };
    folders.push(run_dir.join("src"));
    let (mut count, mut bytes) = (0, 0);
    for folder in folders.iter().filter(|f| f.exists()) {
        bytes += slipway_store::remove_tree(folder, dry_run)?.bytes;
        count += 1;
    }
    if !dry_run {
        let _ = fs::remove_dir(run_dir.join("builds"));
    }
    Ok((count, bytes))
}

/// Copies a tree keeping modes and symlinks (not following them).
pub(crate) fn copy_tree(src: &Path, dst: &Path) -> Result<(), EngineError> {
    fs::create_dir_all(dst).map_err(io_err(dst))?;
    for entry in walkdir::WalkDir::new(src).min_depth(1).follow_links(false) {
        let entry = entry.map_err(|e| EngineError::Io {
            path: src.to_path_buf(),
            source: e.into(),
        })?;
        let rel = entry.path().strip_prefix(src).unwrap_or(entry.path());
        let target = dst.join(rel);
        let ft = entry.file_type();
        if ft.is_dir() {
            fs::create_dir_all(&target).map_err(io_err(&target))?;
        } else if ft.is_symlink() {
            let link = fs::read_link(entry.path()).map_err(io_err(entry.path()))?;
            std::os::unix::fs::symlink(&link, &target).map_err(io_err(&target))?;
        } else if ft.is_file() {
            fs::copy(entry.path(), &target).map_err(io_err(&target))?;
            let mode = entry
                .metadata()
                .map(|m| m.permissions().mode())
                .unwrap_or(0o644);
            fs::set_permissions(&target, fs::Permissions::from_mode(mode | 0o200))
                .map_err(io_err(&target))?;
        }
    }
    Ok(())
}
