//! Removing what a daemon leaves behind: its mounts and folder, the cgroups LXC made for its
//! container, and whatever Slipways that are gone left.

use std::fs;
use std::path::{Path, PathBuf};

use slipway_sandbox::cgroup;

use super::ROOT;

/// Mount points at or under `dir`, deepest first.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let mut found: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape_mount(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c));
        if b[i] == b'\\' && octal {
            let v = u32::from(b[i + 1] - b'0') * 64
                + u32::from(b[i + 2] - b'0') * 8
                + u32::from(b[i + 3] - b'0');
            out.push(u8::try_from(v).unwrap_or(b'?'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Unmounts what the daemon left in its folder (its pool, `shmounts`, `devlxd`), then removes
/// the folder; never while something is still mounted in it (removal would cross into it).
pub(super) fn remove_private_dir(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    for _ in 0..5 {
        let mounts = mounts_under(dir);
        if mounts.is_empty() {
            break;
        }
        for m in mounts {
            if let Ok(c) = std::ffi::CString::new(m.as_os_str().as_encoded_bytes()) {
                // SAFETY: umount2(2) on a NUL-terminated path; touches no memory of ours.
                unsafe {
                    libc::umount2(c.as_ptr(), libc::MNT_DETACH);
                }
            }
        }
    }
    let left = mounts_under(dir);
    if !left.is_empty() {
        return Err(format!("still mounted: {}", left[0].display()));
    }
    fs::remove_dir_all(dir).map_err(|e| e.to_string())
}

/// Removes the (empty) cgroups LXC made for `container` outside the daemon's cgroup: in the
/// hierarchies Slipway sets no limits in, LXC creates them beside Slipway's own. rmdir only
/// removes empty cgroups, so nothing in use is touched.
pub(super) fn remove_container_cgroups(container: &str) {
    if container.is_empty() || container.contains('/') || container.contains("..") {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let own = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let own_paths: Vec<&str> = own
        .lines()
        .filter_map(|l| l.splitn(3, ':').nth(2))
        .map(|p| p.trim_start_matches('/'))
        .collect();
    for line in mounts.lines() {
        let Some((left, right)) = line.split_once(" - ") else {
            continue;
        };
        let fstype = right.split(' ').next().unwrap_or("");
        if fstype != "cgroup" && fstype != "cgroup2" {
            continue;
        }
        let Some(mountpoint) = left.split(' ').nth(4) else {
            continue;
        };
        let mountpoint = PathBuf::from(unescape_mount(mountpoint));
        let bases =
            std::iter::once(mountpoint.clone()).chain(own_paths.iter().map(|p| mountpoint.join(p)));
        for base in bases {
            for kind in ["payload", "monitor"] {
                let dir = base.join(format!("lxc.{kind}.{container}"));
                if dir.is_dir() {
                    rmdir_tree(&dir);
                }
            }
        }
    }
}

fn rmdir_tree(dir: &Path) {
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                rmdir_tree(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(dir);
}

/// Ends and removes what `lxd-test` builds of Slipway processes that are gone left behind:
/// their cgroups (the daemon and its containers, via [`cgroup::reap_orphans`]), the cgroups
/// LXC made beside them, the daemon's mounts and its folder. Returns the folders removed.
/// Called at every start (with the other orphans) and before each `lxd-test`.
pub fn reap_leftovers() -> Vec<String> {
    let Ok(entries) = fs::read_dir(ROOT) else {
        return Vec::new();
    };
    let mut stale = Vec::new();
    for e in entries.flatten() {
        let dir = e.path();
        if !e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            continue;
        }
        // A folder without an owner file is being created right now, or is not ours.
        let Ok(owner) = fs::read_to_string(dir.join("owner")) else {
            continue;
        };
        let mut lines = owner.lines();
        let tag = lines.next().unwrap_or("");
        if cgroup::owner_alive(tag) {
            continue;
        }
        stale.push((dir, lines.next().unwrap_or("").trim().to_string()));
    }
    if stale.is_empty() {
        return Vec::new();
    }
    // The processes first: nothing may still use the folder when it is unmounted and removed.
    cgroup::reap_orphans();
    let mut removed = Vec::new();
    for (dir, container) in stale {
        remove_container_cgroups(&container);
        match remove_private_dir(&dir) {
            Ok(()) => removed.push(dir.display().to_string()),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), "cannot remove an LXD folder left behind: {e}")
            }
        }
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount("/a\\040b"), "/a b");
        assert_eq!(unescape_mount("/plain"), "/plain");
        assert_eq!(unescape_mount("/end\\04"), "/end\\04");
    }
}
