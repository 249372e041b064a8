//! The product repository: resolving branches and commits, reading the builds file at a commit,
//! and exporting the tree at a commit. Uses the `git` CLI, which every build host has.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use slipway_config::{Builds, Config, Plan, SourceText, plan};

use crate::error::{EngineError, io_err};

/// A git repository Slipway reads from: the configured local repo, or a mirror of a remote one.
#[derive(Debug, Clone)]
pub struct Source {
    git_dir: PathBuf,
    display: String,
}

/// A planned run: the plan and the exact commit it builds.
#[derive(Debug, Clone)]
pub struct Prepared {
    pub plan: Plan,
    pub commit: String,
    /// Committer time of `commit`, exported as `SOURCE_DATE_EPOCH` for reproducible builds.
    pub commit_time: i64,
    pub source: Source,
}

impl Source {
    /// Opens the project's repository; a remote one is mirrored under `<data_dir>/repos` and fetched.
    pub fn open(config: &Config, data_dir: &Path) -> Result<Source, EngineError> {
        let repo = &config.project.repo;
        if config.project.is_remote() {
            let digest = hex::encode(Sha256::digest(repo.as_bytes()));
            let mirror = data_dir.join("repos").join(&digest[..16]);
            let src = Source {
                git_dir: mirror.clone(),
                display: repo.clone(),
            };
            if mirror.join("HEAD").exists() {
                src.git(&["fetch", "--prune", "origin", "+refs/heads/*:refs/heads/*"])?;
            } else {
                std::fs::create_dir_all(data_dir.join("repos"))
                    .map_err(io_err(data_dir.join("repos")))?;
                let out = Command::new("git")
                    .args(["clone", "--quiet", "--mirror", repo])
                    .arg(&mirror)
                    .stdin(Stdio::null())
                    .output()
                    .map_err(|e| git_missing(repo, e))?;
                if !out.status.success() {
                    let _ = std::fs::remove_dir_all(&mirror);
                    return Err(EngineError::Git {
                        repo: repo.clone(),
                        message: format!(
                            "cannot clone: {}",
                            String::from_utf8_lossy(&out.stderr).trim()
                        ),
                    });
                }
            }
            return Ok(src);
        }
        let path = config.resolve(repo);
        if !path.exists() {
            return Err(EngineError::Git {
                repo: path.display().to_string(),
                message: format!(
                    "does not exist (set [project].repo in {})",
                    config.source.name
                ),
            });
        }
        let src = Source {
            git_dir: path.clone(),
            display: path.display().to_string(),
        };
        src.git(&["rev-parse", "--git-dir"])
            .map_err(|_| EngineError::Git {
                repo: src.display.clone(),
                message: "is not a git repository".into(),
            })?;
        Ok(src)
    }

    pub fn display(&self) -> &str {
        &self.display
    }

    fn git(&self, args: &[&str]) -> Result<String, EngineError> {
        let out = Command::new("git")
            .arg("-C")
            .arg(&self.git_dir)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| git_missing(&self.display, e))?;
        if !out.status.success() {
            return Err(EngineError::Git {
                repo: self.display.clone(),
                message: format!(
                    "git {} failed: {}",
                    args.first().unwrap_or(&""),
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// The commit a revision names (a sha, a tag, a branch).
    pub fn resolve(&self, rev: &str) -> Result<String, EngineError> {
        if rev.starts_with('-') {
            return Err(self.no_rev(rev));
        }
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("{rev}^{{commit}}"),
        ])
        .map_err(|_| self.no_rev(rev))
    }

    fn no_rev(&self, rev: &str) -> EngineError {
        EngineError::Git {
            repo: self.display.clone(),
            message: format!("no commit '{rev}'"),
        }
    }

    pub fn branch_head(&self, branch: &str) -> Result<String, EngineError> {
        self.git(&[
            "rev-parse",
            "--verify",
            "--quiet",
            &format!("refs/heads/{branch}^{{commit}}"),
        ])
        .map_err(|_| EngineError::Git {
            repo: self.display.clone(),
            message: format!("branch '{branch}' does not exist"),
        })
    }

    pub fn commit_time(&self, commit: &str) -> Result<i64, EngineError> {
        let out = self.git(&["show", "-s", "--format=%ct", commit])?;
        out.parse().map_err(|_| EngineError::Git {
            repo: self.display.clone(),
            message: format!("cannot read the time of commit {commit}"),
        })
    }

    /// The commit of a review patch set's ref (`refs/changes/NN/C/P`), fetched first when the
    /// repository is a mirror. It must be `revision`, the commit the review server named: a ref
    /// that moved or lies is refused rather than built.
    pub fn change_commit(
        &self,
        remote: bool,
        git_ref: &str,
        revision: &str,
    ) -> Result<String, EngineError> {
        let valid = git_ref.starts_with("refs/changes/")
            && git_ref
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'/' || b == b'-' || b == b'_');
        if !valid {
            return Err(EngineError::Git {
                repo: self.display.clone(),
                message: format!("'{git_ref}' is not a review ref (refs/changes/...)"),
            });
        }
        if remote {
            self.git(&[
                "fetch",
                "--quiet",
                "origin",
                &format!("+{git_ref}:{git_ref}"),
            ])?;
        }
        let commit = self
            .git(&[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{git_ref}^{{commit}}"),
            ])
            .map_err(|_| EngineError::Git {
                repo: self.display.clone(),
                message: format!("no ref '{git_ref}'"),
            })?;
        if commit != revision {
            return Err(EngineError::Git {
                repo: self.display.clone(),
                message: format!(
                    "{git_ref} is {}, not the patch set's revision {}",
                    short(&commit),
                    short(revision)
                ),
            });
        }
        Ok(commit)
    }

    /// A file's text at a commit, or `None` if the commit does not have it.
    pub fn read_file(&self, commit: &str, path: &str) -> Result<Option<String>, EngineError> {
        let spec = format!("{commit}:{path}");
        if self.git(&["cat-file", "-e", &spec]).is_err() {
            return Ok(None);
        }
        self.git(&["show", &spec]).map(Some)
    }

    /// Writes the tree at `commit` into `dest` (which must exist).
    pub fn export(&self, commit: &str, dest: &Path) -> Result<(), EngineError> {
        let mut archive = Command::new("git")
            .arg("-C")
            .arg(&self.git_dir)
            .args(["archive", "--format=tar", commit])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| git_missing(&self.display, e))?;
        let stdout = archive.stdout.take().ok_or_else(|| EngineError::Git {
            repo: self.display.clone(),
            message: "git archive gave no output".into(),
        })?;
        let tar = Command::new("tar")
            .args(["-x", "-f", "-", "-C"])
            .arg(dest)
            .stdin(stdout)
            .output()
            .map_err(io_err("tar"))?;
        let archived = archive.wait_with_output().map_err(io_err("git archive"))?;
        if !archived.status.success() || !tar.status.success() {
            return Err(EngineError::Git {
                repo: self.display.clone(),
                message: format!(
                    "cannot export {commit}: {}{}",
                    String::from_utf8_lossy(&archived.stderr).trim(),
                    String::from_utf8_lossy(&tar.stderr).trim()
                ),
            });
        }
        Ok(())
    }
}

fn git_missing(repo: &str, e: std::io::Error) -> EngineError {
    EngineError::Git {
        repo: repo.to_string(),
        message: format!("cannot run git: {e}"),
    }
}

/// The builds a commit defines: the service file's own builds plus the repo's builds file.
pub fn load_builds_at(
    config: &Config,
    source: &Source,
    commit: &str,
) -> Result<Builds, EngineError> {
    let mut builds = config.inline_builds.clone();
    if let Some(path) = &config.project.builds_path {
        let name = format!("{}@{}:{}", source.display(), short(commit), path);
        let text = source
            .read_file(commit, path)?
            .ok_or_else(|| EngineError::Git {
                repo: source.display().to_string(),
                message: format!(
                    "commit {} has no builds file '{path}' ([project].builds)",
                    short(commit)
                ),
            })?;
        builds.merge(Builds::parse(&SourceText::new(name, text))?)?;
    }
    Ok(builds)
}

pub fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

/// Resolves the commit (the branch head unless `commit` is given), reads its builds, and plans.
pub fn load_plan(
    config: &Config,
    data_dir: &Path,
    job: &str,
    milestone: u32,
    commit: Option<&str>,
) -> Result<Prepared, EngineError> {
    let row = slipway_config::branch_for(config, job, milestone)?;
    let source = Source::open(config, data_dir)?;
    let commit = match commit {
        Some(rev) => source.resolve(rev)?,
        None => source.branch_head(&row.branch)?,
    };
    plan_at(config, &source, job, milestone, &commit)
}

/// Plans `job` on `milestone` at `commit` (a full sha already in `source`), reading the builds
/// file at that commit.
pub fn plan_at(
    config: &Config,
    source: &Source,
    job: &str,
    milestone: u32,
    commit: &str,
) -> Result<Prepared, EngineError> {
    let builds = load_builds_at(config, source, commit)?;
    let plan = plan(config, &builds, job, milestone)?;
    let commit_time = source.commit_time(commit)?;
    Ok(Prepared {
        plan,
        commit: commit.to_string(),
        commit_time,
        source: source.clone(),
    })
}
