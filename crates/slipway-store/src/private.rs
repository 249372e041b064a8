//! Private modes for what Slipway keeps on disk: its folders are 0700 and its state and log files
//! 0600, so build logs, the state and artifacts are not readable by other users of the host.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Mode of the folders Slipway keeps its data in.
pub const PRIVATE_DIR_MODE: u32 = 0o700;
/// Mode of the state database and the build logs.
pub const PRIVATE_FILE_MODE: u32 = 0o600;

/// Creates `dir` with mode 0700 (its missing parents get the default mode). A folder that already
/// exists has its group and other bits removed; when that is not allowed (not ours) it is left as
/// it is, since the files in it are private anyway.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(PRIVATE_DIR_MODE).create(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {
            tighten(dir, PRIVATE_DIR_MODE);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Creates the file `path` if it is missing, with mode 0600 and empty; an existing file is left
/// as it is except that its group and other bits are removed (best effort).
pub fn create_private_file(path: &Path) -> io::Result<()> {
    match fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_FILE_MODE)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            tighten(path, PRIVATE_FILE_MODE);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Sets `mode` on `path` when it exists and gives group or other any access. Best effort: a
/// file owned by someone else is left alone (with a warning).
pub(crate) fn tighten(path: &Path, mode: u32) {
    let Ok(meta) = fs::metadata(path) else {
        return;
    };
    if meta.permissions().mode() & 0o077 == 0 {
        return;
    }
    if let Err(e) = fs::set_permissions(path, fs::Permissions::from_mode(mode)) {
        tracing::warn!(
            "cannot make {} private (mode {mode:o}): {e}",
            path.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn new_and_existing_dirs_and_files_become_private() {
        let tmp = tempfile::tempdir().unwrap();
        let new = tmp.path().join("a/b/data");
        create_private_dir(&new).unwrap();
        assert_eq!(mode(&new), 0o700);
        create_private_dir(&new).unwrap();
        assert_eq!(mode(&new), 0o700);

        let open = tmp.path().join("open");
        fs::create_dir(&open).unwrap();
        fs::set_permissions(&open, fs::Permissions::from_mode(0o755)).unwrap();
        create_private_dir(&open).unwrap();
        assert_eq!(mode(&open), 0o700);

        let file = new.join("f");
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        fs::write(&file, b"kept").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).unwrap();
        create_private_file(&file).unwrap();
        assert_eq!(mode(&file), 0o600);
        assert_eq!(fs::read(&file).unwrap(), b"kept");

        // A file where a folder should be is an error, not silently accepted.
        assert!(create_private_dir(&file).is_err());
    }
}
