//! The host id ranges sandboxed steps run as. Root inside a sandbox is the first id of its
//! range; the whole range (65,536 ids) is mapped, so package tools can chown inside. The
//! ranges lie far above normal users and LXD's default allocation (1,000,000 + 1e9), own
//! nothing on the host, and trusted and untrusted steps get different ones.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use crate::SandboxError;

pub const DEFAULT_BASE: u32 = 2_100_000_000;
pub const SPAN: u32 = 65_536;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub base: u32,
    pub count: u32,
}

impl IdRange {
    /// The trusted range starts at `base`; the untrusted one follows it.
    pub fn for_trust(base: u32, untrusted: bool) -> IdRange {
        IdRange {
            base: if untrusted { base + SPAN } else { base },
            count: SPAN,
        }
    }

    /// `uid_map` / `gid_map` text: root inside is `base` outside.
    pub fn map_line(&self) -> String {
        format!("0 {} {}\n", self.base, self.count)
    }

    /// Hands a tree Slipway made (owned by root) to the sandbox's root: what root owns becomes
    /// the range's first id; everything else keeps its owner. Symlinks are not followed.
    pub fn give(&self, dir: &Path) -> Result<(), SandboxError> {
        let io = |path: &Path, e: std::io::Error| SandboxError::Io {
            what: "cannot hand to the sandbox",
            path: path.to_path_buf(),
            source: e,
        };
        let top = fs::symlink_metadata(dir).map_err(|e| io(dir, e))?;
        if top.uid() == self.base {
            return Ok(());
        }
        let mut stack = vec![dir.to_path_buf()];
        while let Some(path) = stack.pop() {
            let meta = fs::symlink_metadata(&path).map_err(|e| io(&path, e))?;
            let uid = if meta.uid() == 0 {
                Some(self.base)
            } else {
                None
            };
            let gid = if meta.gid() == 0 {
                Some(self.base)
            } else {
                None
            };
            if uid.is_some() || gid.is_some() {
                std::os::unix::fs::lchown(&path, uid, gid).map_err(|e| io(&path, e))?;
            }
            if meta.is_dir() {
                for entry in fs::read_dir(&path).map_err(|e| io(&path, e))? {
                    stack.push(entry.map_err(|e| io(&path, e))?.path());
                }
            }
        }
        Ok(())
    }
}
