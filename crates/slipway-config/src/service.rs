//! The service file: project, branch table, buckets, secrets, jobs (and optionally builds).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::buckets::{Bucket, RawBucket};
use crate::builds::{Builds, RawBuild};
use crate::diag::{ConfigError, ConfigErrors, Loc, SourceText, parse_toml};
use crate::notify::{NotifyConfig, RawNotify, notify_config};
use crate::release::{RawRelease, ReleasePolicy, release_policy};
use crate::resources::{RawResources, Resources, parse_size};
use crate::retention::{RawRetention, RetentionConfig, retention_config};
use crate::review::{RawReview, ReviewConfig, is_label, review_config};
use crate::server::{RawServer, ServerConfig, server_config};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    project: Spanned<RawProject>,
    #[serde(default)]
    branches: Vec<Spanned<RawBranch>>,
    #[serde(default)]
    buckets: BTreeMap<Spanned<String>, Spanned<RawBucket>>,
    #[serde(default)]
    secrets: BTreeMap<Spanned<String>, RawSecret>,
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, RawJob>,
    #[serde(default)]
    builds: BTreeMap<Spanned<String>, Spanned<RawBuild>>,
    sandbox: Option<Spanned<RawSandbox>>,
    retention: Option<RawRetention>,
    server: Option<RawServer>,
    review: Option<RawReview>,
    release: Option<RawRelease>,
    notify: Option<RawNotify>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSandbox {
    #[serde(default)]
    read_only: Vec<Spanned<String>>,
    memory: Option<toml::Value>,
    pids: Option<toml::Value>,
    cpus: Option<toml::Value>,
    log_limit: Option<Spanned<toml::Value>>,
    id_base: Option<Spanned<i64>>,
}

/// `[sandbox]`: what every sandboxed step gets unless its build says otherwise.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Host folders every sandboxed step sees read-only (e.g. a prepared base image cache).
    pub read_only: Vec<PathBuf>,
    pub defaults: Resources,
    /// Bytes a build's log may grow to.
    pub log_limit: u64,
    /// First host id of the trusted sandbox range (the untrusted range follows it).
    pub id_base: u32,
}

pub const DEFAULT_LOG_LIMIT: u64 = 64 * 1024 * 1024;
pub const DEFAULT_ID_BASE: u32 = 2_100_000_000;

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            read_only: Vec::new(),
            defaults: Resources::default(),
            log_limit: DEFAULT_LOG_LIMIT,
            id_base: DEFAULT_ID_BASE,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    name: Spanned<String>,
    repo: Spanned<String>,
    builds: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBranch {
    channel: String,
    milestone: Spanned<u32>,
    branch: Spanned<String>,
    #[serde(default = "yes")]
    active: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    file: Option<String>,
    env: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    trigger: Spanned<RawTrigger>,
    branches: Spanned<RawBranches>,
    #[serde(default)]
    untrusted: bool,
    #[serde(default)]
    allow_network: bool,
    max_concurrent: Option<Spanned<i64>>,
    builds: Vec<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawTrigger {
    Named(String),
    Review { review: ReviewTrigger },
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawBranches {
    Named(String),
    List(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    /// A local path (resolved against the config file's folder) or a URL git understands.
    pub repo: String,
    pub repo_loc: Loc,
    /// Path of the builds file inside the product repository, if builds come from the repo.
    pub builds_path: Option<String>,
}

impl Project {
    /// Whether `repo` is a URL git fetches (mirrored under the data dir) rather than a folder.
    pub fn is_remote(&self) -> bool {
        let repo = self.repo.as_str();
        repo.contains("://")
            || (repo.contains(':') && !repo.starts_with('/') && !repo.starts_with('.'))
    }
}

#[derive(Debug, Clone)]
pub struct BranchRow {
    pub channel: String,
    pub milestone: u32,
    pub branch: String,
    pub active: bool,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

#[derive(Debug, Clone)]
pub struct Secret {
    pub name: String,
    pub source: SecretSource,
    pub loc: Loc,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewTrigger {
    pub label: String,
    pub min: i32,
}

impl<'de> Deserialize<'de> for ReviewTrigger {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            label: String,
            min: i32,
        }
        let r = Raw::deserialize(d)?;
        Ok(ReviewTrigger {
            label: r.label,
            min: r.min,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trigger {
    Continuous,
    Manual,
    Review(ReviewTrigger),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchSelector {
    /// Every active row of the branch table.
    Active,
    /// Rows whose branch is one of these names (active or not).
    Named(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Job {
    pub name: String,
    pub trigger: Trigger,
    pub branches: BranchSelector,
    pub untrusted: bool,
    /// Lets builds of an untrusted job ask for `network = true`.
    pub allow_network: bool,
    /// Runs of this job executing at once under `slipway serve` (all milestones together).
    pub max_concurrent: Option<usize>,
    pub builds: Vec<(String, Loc)>,
    pub loc: Loc,
    pub branches_loc: Loc,
}

/// The loaded service config. Paths in it are relative to `base_dir` (the config file's folder).
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceText,
    pub base_dir: PathBuf,
    pub project: Project,
    pub branches: Vec<BranchRow>,
    pub buckets: BTreeMap<String, Bucket>,
    pub secrets: BTreeMap<String, Secret>,
    pub jobs: BTreeMap<String, Job>,
    /// Builds defined in the service file itself (a single-file setup).
    pub inline_builds: Builds,
    pub sandbox: SandboxConfig,
    pub retention: RetentionConfig,
    pub server: ServerConfig,
    /// The code review server review-triggered jobs listen to.
    pub review: Option<ReviewConfig>,
    /// `[release]`: when candidates are promoted and releases rolled back without a person.
    pub release: ReleasePolicy,
    /// `[notify]`: the webhook told when the release policy acted.
    pub notify: Option<NotifyConfig>,
}

impl Config {
    /// Reads and checks the service file. Checks here are those that need only this file;
    /// [`crate::validate`] checks jobs against the builds of a commit.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError {
            loc: Loc {
                file: path.display().to_string().into(),
                line: 0,
                col: 0,
            },
            message: format!("cannot read config: {e}"),
        })?;
        let base_dir = path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf();
        Config::parse(SourceText::new(path.display().to_string(), text), base_dir)
    }

    pub fn parse(source: SourceText, base_dir: PathBuf) -> Result<Config, ConfigErrors> {
        let raw: RawService = parse_toml(&source)?;
        let mut errors = ConfigErrors::default();

        let project = {
            let p = raw.project.get_ref();
            if !is_name(p.name.get_ref()) {
                errors.push(source.error(
                    &p.name.span(),
                    format!(
                        "project name '{}' must be lowercase letters, digits, '-', '_' or '.'",
                        p.name.get_ref()
                    ),
                ));
            }
            if p.repo.get_ref().trim().is_empty() {
                errors.push(source.error(&p.repo.span(), "project repo is empty"));
            }
            Project {
                name: p.name.get_ref().clone(),
                repo: p.repo.get_ref().clone(),
                repo_loc: source.loc_of(&p.repo.span()),
                builds_path: p.builds.clone(),
            }
        };

        let mut branches: Vec<BranchRow> = Vec::new();
        for row in &raw.branches {
            let r = row.get_ref();
            let m = *r.milestone.get_ref();
            if let Some(prev) = branches.iter().find(|b| b.milestone == m) {
                errors.push(source.error(
                    &r.milestone.span(),
                    format!("duplicate milestone {m} (first defined at {})", prev.loc),
                ));
            }
            if r.branch.get_ref().trim().is_empty() {
                errors.push(source.error(&r.branch.span(), "branch name is empty"));
            }
            branches.push(BranchRow {
                channel: r.channel.clone(),
                milestone: m,
                branch: r.branch.get_ref().clone(),
                active: r.active,
                loc: source.loc_of(&row.span()),
            });
        }

        let mut secrets = BTreeMap::new();
        for (name, s) in raw.secrets {
            let loc = source.loc_of(&name.span());
            let source_kind = match (s.file, s.env) {
                (Some(f), None) => SecretSource::File(PathBuf::from(f)),
                (None, Some(e)) => SecretSource::Env(e),
                _ => {
                    errors.push(ConfigError {
                        loc: loc.clone(),
                        message: format!(
                            "secret '{}' needs exactly one of `file` or `env`",
                            name.get_ref()
                        ),
                    });
                    continue;
                }
            };
            let name = name.into_inner();
            secrets.insert(
                name.clone(),
                Secret {
                    name,
                    source: source_kind,
                    loc,
                },
            );
        }

        let buckets = crate::buckets::parse(
            &source,
            &base_dir,
            &project,
            &secrets,
            raw.buckets,
            &mut errors,
        );

        let mut jobs = BTreeMap::new();
        for (name, j) in raw.jobs {
            let loc = source.loc_of(&name.span());
            if !is_name(name.get_ref()) {
                errors.push(ConfigError {
                    loc: loc.clone(),
                    message: format!(
                        "job name '{}' must be lowercase letters, digits, '-', '_' or '.'",
                        name.get_ref()
                    ),
                });
            }
            let trigger_span = j.trigger.span();
            let trigger = match j.trigger.into_inner() {
                RawTrigger::Named(n) if n == "continuous" => Trigger::Continuous,
                RawTrigger::Named(n) if n == "manual" => Trigger::Manual,
                RawTrigger::Named(n) => {
                    errors.push(source.error(
                        &trigger_span,
                        format!("unknown trigger '{n}': use \"continuous\", \"manual\" or {{ review = {{ label, min }} }}"),
                    ));
                    Trigger::Manual
                }
                RawTrigger::Review { review } => {
                    if review.min < 1 {
                        errors.push(source.error(
                            &trigger_span,
                            format!(
                                "review trigger min must be at least 1, not {} (a negative or zero vote never starts a presubmit)",
                                review.min
                            ),
                        ));
                    }
                    if !is_label(&review.label) {
                        errors.push(source.error(
                            &trigger_span,
                            format!(
                                "review trigger label '{}' is not a label name",
                                review.label
                            ),
                        ));
                    }
                    Trigger::Review(review)
                }
            };
            let branches_loc = source.loc_of(&j.branches.span());
            let selector = match j.branches.into_inner() {
                RawBranches::Named(n) if n == "active" => BranchSelector::Active,
                RawBranches::Named(n) => BranchSelector::Named(vec![n]),
                RawBranches::List(l) => BranchSelector::Named(l),
            };
            if let BranchSelector::Named(names) = &selector {
                for n in names {
                    if !branches.iter().any(|b| &b.branch == n) {
                        errors.push(ConfigError {
                            loc: branches_loc.clone(),
                            message: format!(
                                "job '{}' runs on branch '{n}', which is not in the branch table",
                                name.get_ref()
                            ),
                        });
                    }
                }
            }
            let builds = j
                .builds
                .iter()
                .map(|b| (b.get_ref().clone(), source.loc_of(&b.span())))
                .collect();
            let max_concurrent = j.max_concurrent.as_ref().and_then(|m| match *m.get_ref() {
                n @ 1..=256 => Some(n as usize),
                n => {
                    errors.push(source.error(
                        &m.span(),
                        format!("max_concurrent must be a whole number from 1 to 256, not {n}"),
                    ));
                    None
                }
            });
            let name = name.into_inner();
            jobs.insert(
                name.clone(),
                Job {
                    name,
                    trigger,
                    branches: selector,
                    untrusted: j.untrusted,
                    allow_network: j.allow_network,
                    max_concurrent,
                    builds,
                    loc,
                    branches_loc,
                },
            );
        }

        let inline_builds = match Builds::from_raw(&source, raw.builds) {
            Ok(b) => b,
            Err(e) => {
                errors.0.extend(e.0);
                Builds::empty(source.name.clone())
            }
        };

        let sandbox = match &raw.sandbox {
            None => SandboxConfig::default(),
            Some(sb) => sandbox_config(&source, &base_dir, sb, &mut errors),
        };

        let retention = raw
            .retention
            .as_ref()
            .map(|r| retention_config(&source, r, &mut errors))
            .unwrap_or_default();

        let secret_names: Vec<String> = secrets.keys().cloned().collect();
        let server = raw
            .server
            .as_ref()
            .map(|r| server_config(&source, r, &secret_names, &mut errors))
            .unwrap_or_default();
        let review = raw
            .review
            .as_ref()
            .map(|r| review_config(&source, r, &secret_names, &mut errors));
        let release = raw
            .release
            .as_ref()
            .map(|r| release_policy(&source, r, &branches, &mut errors))
            .unwrap_or_default();
        let notify = raw
            .notify
            .as_ref()
            .map(|r| notify_config(&source, r, &secret_names, &mut errors));

        errors.into_result()?;
        Ok(Config {
            sandbox,
            retention,
            server,
            review,
            release,
            notify,
            source,
            base_dir,
            project,
            branches,
            buckets,
            secrets,
            jobs,
            inline_builds,
        })
    }

    pub fn row(&self, milestone: u32) -> Option<&BranchRow> {
        self.branches.iter().find(|b| b.milestone == milestone)
    }

    /// Branch-table rows a job runs on.
    pub fn rows_for(&self, job: &Job) -> Vec<&BranchRow> {
        self.branches
            .iter()
            .filter(|row| match &job.branches {
                BranchSelector::Active => row.active,
                BranchSelector::Named(names) => names.contains(&row.branch),
            })
            .collect()
    }

    /// Resolves a path written in the config against the config file's folder.
    pub fn resolve(&self, path: &str) -> PathBuf {
        let p = Path::new(path);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

fn sandbox_config(
    source: &SourceText,
    base_dir: &Path,
    spanned: &Spanned<RawSandbox>,
    errors: &mut ConfigErrors,
) -> SandboxConfig {
    let raw = spanned.get_ref();
    let mut cfg = SandboxConfig::default();
    for p in &raw.read_only {
        let path = Path::new(p.get_ref());
        let resolved = if path.is_absolute() {
            path.to_path_buf()
        } else {
            base_dir.join(path)
        };
        if p.get_ref().trim().is_empty() || resolved == Path::new("/") {
            errors.push(source.error(
                &p.span(),
                "sandbox.read_only: name a folder to share, not the whole file system",
            ));
            continue;
        }
        cfg.read_only.push(resolved);
    }
    let limits = RawResources::from_values(raw.memory.clone(), raw.pids.clone(), raw.cpus.clone());
    match limits.parse() {
        Ok(l) => cfg.defaults = l.over(&Resources::default()),
        Err(msg) => errors.push(ConfigError {
            loc: source.loc_of(&spanned.span()),
            message: format!("[sandbox] {}", msg.trim_start_matches("resources.")),
        }),
    }
    if let Some(v) = &raw.log_limit {
        let parsed = match v.get_ref() {
            toml::Value::Integer(n) if *n > 0 => Ok(*n as u64),
            toml::Value::String(s) => parse_size(s),
            _ => Err("expected a size like \"64M\"".to_string()),
        };
        match parsed {
            Ok(n) if n >= 4096 => cfg.log_limit = n,
            Ok(_) => errors.push(source.error(&v.span(), "sandbox.log_limit must be at least 4K")),
            Err(msg) => errors.push(source.error(&v.span(), format!("sandbox.log_limit: {msg}"))),
        }
    }
    if let Some(b) = &raw.id_base {
        let base = *b.get_ref();
        if base < 65_536 || base > (u32::MAX as i64) - 2 * 65_536 {
            errors.push(source.error(
                &b.span(),
                "sandbox.id_base must leave room for two ranges of 65536 ids above 65535",
            ));
        } else {
            cfg.id_base = base as u32;
        }
    }
    cfg
}

/// Names that end up in paths and instance names.
pub(crate) fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
        && !s.starts_with('.')
}
