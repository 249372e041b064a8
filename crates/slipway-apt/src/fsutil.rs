//! Whole-tree replacement: build beside the target, then swap, so a reader or a failed build
//! never leaves a half-written tree at the target path.

use std::ffi::CString;
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::error::{AptError, io_err};

/// A fresh, empty staging folder next to `target` (same filesystem, so the swap is a rename).
pub fn staging_dir(target: &Path) -> Result<PathBuf, AptError> {
    let parent = target
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    let staging = parent.join(format!(".{name}.slipway-new-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    Ok(staging)
}

/// Puts `staging` at `target`. An existing target is exchanged atomically (renameat2
/// RENAME_EXCHANGE) and then removed; without one, a plain rename.
pub fn replace_dir(staging: &Path, target: &Path) -> Result<(), AptError> {
    if !target.exists() {
        return fs::rename(staging, target).map_err(io_err(target));
    }
    let a = CString::new(staging.as_os_str().as_bytes())
        .map_err(|_| AptError::Invalid("path has a NUL byte".into()))?;
    let b = CString::new(target.as_os_str().as_bytes())
        .map_err(|_| AptError::Invalid("path has a NUL byte".into()))?;
    // SAFETY: both pointers are valid NUL-terminated paths for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc != 0 {
        // No atomic exchange on this filesystem: move the old tree aside, then rename.
        let old = staging.with_extension("old");
        fs::rename(target, &old).map_err(io_err(target))?;
        fs::rename(staging, target).map_err(io_err(target))?;
        let _ = fs::remove_dir_all(&old);
        return Ok(());
    }
    // `staging` now holds the previous tree.
    fs::remove_dir_all(staging).map_err(io_err(staging))
}

/// Puts `src` at `dest`: a hard link when possible (pool files are immutable), else a copy.
pub fn link_or_copy(src: &Path, dest: &Path) -> Result<(), AptError> {
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io_err(parent))?;
    }
    if fs::hard_link(src, dest).is_ok() {
        return Ok(());
    }
    fs::copy(src, dest).map(|_| ()).map_err(io_err(dest))
}

/// Writes a file atomically: a temp file beside it, then a rename over the old one.
pub fn write(path: &Path, bytes: &[u8]) -> Result<(), AptError> {
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(parent).map_err(io_err(parent))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.slipway-tmp"));
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(|e| {
        let _ = fs::remove_file(&tmp);
        AptError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    })
}
