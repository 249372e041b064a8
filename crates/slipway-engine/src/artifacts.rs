//! Collecting a build's artifacts: files under the workspace matched by the build's globs, with
//! `strip_prefix` removed, stored by sha256. Nothing outside the workspace can be collected:
//! symlinks must resolve inside it and stored paths are plain relative paths.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use globset::GlobBuilder;
use slipway_config::ArtifactSpec;
use slipway_store::{ArtifactRow, Cas};

/// Matches and stores artifacts. Returns a user-facing reason on failure.
///
/// `from_steps`: the files were written by a script step (untrusted code, possibly): a file
/// with more than one hard link (which could be a link to something the step could not read)
/// is refused too. Native builds hard-link stored objects on purpose, so they are exempt.
pub(crate) fn collect(
    work: &Path,
    specs: &[ArtifactSpec],
    allow_empty: bool,
    cas: &Cas,
    from_steps: bool,
) -> Result<Vec<ArtifactRow>, String> {
    if specs.is_empty() {
        return Ok(Vec::new());
    }
    let root = work
        .canonicalize()
        .map_err(|e| format!("cannot read the workspace: {e}"))?;
    let matchers = specs
        .iter()
        .map(|s| {
            GlobBuilder::new(&s.glob)
                .literal_separator(true)
                .build()
                .map(|g| g.compile_matcher())
                .map_err(|e| format!("artifact glob '{}' ({}): {e}", s.glob, s.loc))
        })
        .collect::<Result<Vec<_>, _>>()?;

    let mut matched_per_spec = vec![0usize; specs.len()];
    // Destination path -> (source file, workspace-relative path it came from).
    let mut chosen: BTreeMap<String, (PathBuf, String)> = BTreeMap::new();
    for entry in walkdir::WalkDir::new(&root)
        .min_depth(1)
        .follow_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|e| format!("cannot walk the workspace: {e}"))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let Ok(rel) = entry.path().strip_prefix(&root) else {
            continue;
        };
        let Some(rel_str) = rel.to_str() else {
            continue;
        };
        for (i, (spec, m)) in specs.iter().zip(&matchers).enumerate() {
            if !m.is_match(rel) {
                continue;
            }
            let file = regular_file_inside(&root, entry.path(), rel_str, from_steps)?;
            let dest = strip(rel_str, spec.strip_prefix.as_deref())?;
            if let Some((_, other)) = chosen.get(&dest) {
                if other != rel_str {
                    return Err(format!(
                        "artifacts '{other}' and '{rel_str}' would both be stored as '{dest}'"
                    ));
                }
            }
            chosen.insert(dest, (file, rel_str.to_string()));
            matched_per_spec[i] += 1;
        }
    }
    if !allow_empty {
        if let Some(i) = matched_per_spec.iter().position(|&n| n == 0) {
            return Err(format!(
                "artifact glob '{}' ({}) matched no files (set `allow_empty = true` if that is expected)",
                specs[i].glob, specs[i].loc
            ));
        }
    }
    chosen
        .into_iter()
        .map(|(path, (file, _))| {
            let stored = cas.put_file(&file).map_err(|e| e.to_string())?;
            Ok(ArtifactRow {
                path,
                sha256: stored.sha256,
                size: stored.size,
            })
        })
        .collect()
}

/// The file to store for a matched entry: itself, or a symlink's target if that is a regular
/// file inside the workspace.
fn regular_file_inside(
    root: &Path,
    path: &Path,
    rel: &str,
    from_steps: bool,
) -> Result<PathBuf, String> {
    use std::os::unix::fs::MetadataExt;
    let single = |p: &Path| -> Result<PathBuf, String> {
        let meta = std::fs::symlink_metadata(p).map_err(|e| format!("artifact '{rel}': {e}"))?;
        if from_steps && meta.nlink() > 1 {
            return Err(format!(
                "artifact '{rel}' has {} hard links; a build's artifacts must be files it wrote itself",
                meta.nlink()
            ));
        }
        Ok(p.to_path_buf())
    };
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("artifact '{rel}': {e}"))?;
    if meta.file_type().is_file() {
        return single(path);
    }
    if meta.file_type().is_symlink() {
        let target = path
            .canonicalize()
            .map_err(|e| format!("artifact '{rel}' is a dangling symlink: {e}"))?;
        if !target.starts_with(root) {
            return Err(format!(
                "artifact '{rel}' is a symlink to {} outside the workspace",
                target.display()
            ));
        }
        if std::fs::symlink_metadata(&target).is_ok_and(|m| m.file_type().is_file()) {
            return single(&target);
        }
    }
    Err(format!(
        "artifact '{rel}' is not a regular file (devices, sockets and pipes are never collected)"
    ))
}

/// Removes `prefix` (whole components) from `rel` and checks the result is a clean relative path.
fn strip(rel: &str, prefix: Option<&str>) -> Result<String, String> {
    let out = match prefix
        .map(|p| p.trim_end_matches('/'))
        .filter(|p| !p.is_empty())
    {
        None => rel.to_string(),
        Some(p) => Path::new(rel)
            .strip_prefix(p)
            .map_err(|_| format!("artifact '{rel}' does not start with strip_prefix '{p}'"))?
            .to_string_lossy()
            .into_owned(),
    };
    let clean = !out.is_empty()
        && Path::new(&out)
            .components()
            .all(|c| matches!(c, Component::Normal(_)));
    if !clean {
        return Err(format!(
            "artifact '{rel}' with strip_prefix gives '{out}', which is not a file path inside the build"
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use slipway_config::Loc;

    fn spec(glob: &str, strip_prefix: Option<&str>) -> ArtifactSpec {
        ArtifactSpec {
            glob: glob.into(),
            strip_prefix: strip_prefix.map(Into::into),
            loc: Loc {
                file: "b.toml".into(),
                line: 1,
                col: 1,
            },
        }
    }

    #[test]
    fn strips_prefix_and_dedupes() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(work.join("out/debs/sub")).unwrap();
        std::fs::write(work.join("out/debs/a.deb"), "same").unwrap();
        std::fs::write(work.join("out/debs/b.deb"), "same").unwrap();
        std::fs::write(work.join("out/debs/sub/c.deb"), "other").unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let rows = collect(
            &work,
            &[spec("out/debs/*.deb", Some("out/"))],
            false,
            &cas,
            true,
        )
        .unwrap();
        let paths: Vec<_> = rows.iter().map(|r| r.path.as_str()).collect();
        // `*` does not cross directories.
        assert_eq!(paths, ["debs/a.deb", "debs/b.deb"]);
        assert_eq!(rows[0].sha256, rows[1].sha256);
        let rows = collect(
            &work,
            &[spec("out/**/*.deb", Some("out/debs"))],
            false,
            &cas,
            true,
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
    }

    #[test]
    fn empty_matches_fail_unless_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let e = collect(dir.path(), &[spec("out/*.deb", None)], false, &cas, true).unwrap_err();
        assert!(e.contains("matched no files"), "{e}");
        assert!(
            collect(dir.path(), &[spec("out/*.deb", None)], true, &cas, true)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn symlinks_out_of_the_workspace_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(dir.path().join("secret"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), work.join("leak.txt")).unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let e = collect(&work, &[spec("*.txt", None)], false, &cas, true).unwrap_err();
        assert!(e.contains("outside the workspace"), "{e}");
    }

    #[test]
    fn hard_links_and_devices_from_steps_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let work = dir.path().join("work");
        std::fs::create_dir_all(&work).unwrap();
        std::fs::write(dir.path().join("key"), "secret").unwrap();
        std::fs::hard_link(dir.path().join("key"), work.join("key.txt")).unwrap();
        let cas = Cas::open(&dir.path().join("cas")).unwrap();
        let e = collect(&work, &[spec("*.txt", None)], false, &cas, true).unwrap_err();
        assert!(e.contains("hard links"), "{e}");
        // Native builds link stored objects on purpose.
        assert_eq!(
            collect(&work, &[spec("*.txt", None)], false, &cas, false)
                .unwrap()
                .len(),
            1
        );
        std::fs::remove_file(work.join("key.txt")).unwrap();
        let fifo = std::ffi::CString::new(work.join("pipe.txt").to_str().unwrap()).unwrap();
        // SAFETY: mkfifo on a path we own.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let e = collect(&work, &[spec("*.txt", None)], false, &cas, true).unwrap_err();
        assert!(e.contains("not a regular file"), "{e}");
    }

    #[test]
    fn strip_prefix_cannot_produce_escaping_or_empty_paths() {
        assert!(strip("out/a", Some("out/a")).is_err());
        assert!(strip("out/a", Some("other")).is_err());
        assert_eq!(strip("out/a/b", Some("out")).unwrap(), "a/b");
    }
}
