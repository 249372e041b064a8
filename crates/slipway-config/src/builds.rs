//! Builds: reusable units of work, read from the product repo at the commit being built.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, Loc, SourceText, parse_toml};
use crate::duration::parse_duration;
use crate::native::{ActionError, NativeAction, native_action};
use crate::resources::{Limits, RawResources};
use crate::service::is_name;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBuildsFile {
    #[serde(default)]
    builds: BTreeMap<Spanned<String>, Spanned<RawBuild>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBuild {
    #[serde(default)]
    needs: Vec<Spanned<String>>,
    #[serde(default)]
    steps: Vec<String>,
    uses: Option<Spanned<String>>,
    #[serde(default)]
    with: Option<Spanned<toml::Table>>,
    #[serde(default)]
    artifacts: Vec<Spanned<RawArtifact>>,
    #[serde(default)]
    allow_empty: bool,
    #[serde(default)]
    secrets: Vec<Spanned<String>>,
    #[serde(default)]
    privileged: bool,
    timeout: Option<Spanned<toml::Value>>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    #[serde(default)]
    junit: Vec<Spanned<String>>,
    sandbox: Option<Spanned<bool>>,
    network: Option<Spanned<bool>>,
    resources: Option<Spanned<RawResources>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawArtifact {
    glob: String,
    strip_prefix: Option<String>,
}

/// Files to collect from a build's workspace after its last step.
#[derive(Debug, Clone)]
pub struct ArtifactSpec {
    pub glob: String,
    /// Removed from the front of each matched path (whole components only).
    pub strip_prefix: Option<String>,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct Build {
    pub name: String,
    pub needs: Vec<(String, Loc)>,
    pub steps: Vec<String>,
    pub action: Option<NativeAction>,
    pub artifacts: Vec<ArtifactSpec>,
    pub allow_empty: bool,
    pub secrets: Vec<(String, Loc)>,
    pub privileged: bool,
    pub timeout: Duration,
    pub env: BTreeMap<String, String>,
    /// JUnit reports the build writes (globs in its workspace), recorded as suite results.
    pub junit: Vec<String>,
    /// Run the steps in the sandbox (default). `false` is for trusted jobs only.
    pub sandbox: bool,
    /// Where `sandbox = false` was written, for the untrusted-job check.
    pub sandbox_loc: Option<Loc>,
    /// Host network inside the sandbox (else only a private loopback).
    pub network: bool,
    pub network_loc: Option<Loc>,
    /// Limits set on the build itself; the service's `[sandbox]` defaults fill the rest.
    pub resources: Limits,
    pub loc: Loc,
    /// Where `with` was written, for errors about its values.
    pub with_loc: Loc,
}

impl Build {
    pub fn bucket(&self) -> Option<&str> {
        match &self.action {
            Some(NativeAction::Publish { bucket, .. }) => Some(bucket),
            _ => None,
        }
    }
}

/// All builds of one source (a builds file at a commit, or the service file).
#[derive(Debug, Clone)]
pub struct Builds {
    pub source_name: Arc<str>,
    pub map: BTreeMap<String, Build>,
}

impl Builds {
    pub fn empty(source_name: Arc<str>) -> Builds {
        Builds {
            source_name,
            map: BTreeMap::new(),
        }
    }

    /// Parses a builds file (`[builds.<name>]` tables only).
    pub fn parse(source: &SourceText) -> Result<Builds, ConfigErrors> {
        let raw: RawBuildsFile = parse_toml(source)?;
        Builds::from_raw(source, raw.builds)
    }

    pub(crate) fn from_raw(
        source: &SourceText,
        raw: BTreeMap<Spanned<String>, Spanned<RawBuild>>,
    ) -> Result<Builds, ConfigErrors> {
        let mut errors = ConfigErrors::default();
        let mut map = BTreeMap::new();
        for (name, raw_build) in raw {
            let name_loc = source.loc_of(&name.span());
            let name = name.into_inner();
            if !is_name(&name) {
                errors.push(crate::ConfigError {
                    loc: name_loc.clone(),
                    message: format!(
                        "build name '{name}' must be lowercase letters, digits, '-', '_' or '.'"
                    ),
                });
            }
            let build_span = raw_build.span();
            let b = raw_build.into_inner();
            let with_loc = b
                .with
                .as_ref()
                .map(|w| source.loc_of(&w.span()))
                .unwrap_or_else(|| name_loc.clone());
            let with = b.with.map(|w| w.into_inner()).unwrap_or_default();

            let action = match &b.uses {
                None => {
                    if b.steps.is_empty() {
                        errors.push(source.error(
                            &build_span,
                            format!("build '{name}' has neither `steps` nor `uses`"),
                        ));
                    }
                    if !with.is_empty() {
                        errors.push(crate::ConfigError {
                            loc: with_loc.clone(),
                            message: format!("build '{name}' has `with` but no `uses`"),
                        });
                    }
                    None
                }
                Some(uses) => {
                    if !b.steps.is_empty() {
                        errors.push(source.error(
                            &uses.span(),
                            format!("build '{name}' has both `steps` and `uses`; choose one"),
                        ));
                    }
                    match native_action(uses.get_ref(), &with) {
                        Ok(a) => Some(a),
                        Err(ActionError::UnknownKind(msg)) => {
                            errors
                                .push(source.error(&uses.span(), format!("build '{name}': {msg}")));
                            None
                        }
                        Err(ActionError::BadWith(msg)) => {
                            errors.push(crate::ConfigError {
                                loc: with_loc.clone(),
                                message: format!("build '{name}': {msg}"),
                            });
                            None
                        }
                    }
                }
            };

            let mut artifacts = Vec::new();
            for a in &b.artifacts {
                let loc = source.loc_of(&a.span());
                let spec = a.get_ref();
                if let Err(msg) = check_artifact(&spec.glob, spec.strip_prefix.as_deref()) {
                    errors.push(crate::ConfigError {
                        loc,
                        message: format!("build '{name}': {msg}"),
                    });
                    continue;
                }
                artifacts.push(ArtifactSpec {
                    glob: spec.glob.clone(),
                    strip_prefix: spec.strip_prefix.clone(),
                    loc,
                });
            }

            let timeout = match &b.timeout {
                None => DEFAULT_TIMEOUT,
                Some(t) => {
                    let parsed = match t.get_ref() {
                        toml::Value::Integer(i) if *i > 0 => Ok(Duration::from_secs(*i as u64)),
                        toml::Value::String(s) => parse_duration(s),
                        _ => Err(
                            "timeout must be a positive number of seconds or a string like \"15m\""
                                .to_string(),
                        ),
                    };
                    match parsed {
                        Ok(d) if !d.is_zero() => d,
                        Ok(_) => {
                            errors.push(source.error(&t.span(), "timeout must be more than zero"));
                            DEFAULT_TIMEOUT
                        }
                        Err(msg) => {
                            errors.push(source.error(&t.span(), msg));
                            DEFAULT_TIMEOUT
                        }
                    }
                }
            };

            for g in &b.junit {
                let ok = check_relative(g.get_ref(), "junit glob").and_then(|_| {
                    globset::Glob::new(g.get_ref())
                        .map(|_| ())
                        .map_err(|e| format!("junit glob '{}' is invalid: {e}", g.get_ref()))
                });
                if let Err(msg) = ok {
                    errors.push(source.error(&g.span(), format!("build '{name}': {msg}")));
                }
            }
            let resources = match &b.resources {
                None => Limits::default(),
                Some(r) => r.get_ref().parse().unwrap_or_else(|msg| {
                    errors.push(source.error(&r.span(), format!("build '{name}': {msg}")));
                    Limits::default()
                }),
            };
            let sandbox_loc = b
                .sandbox
                .as_ref()
                .filter(|s| !*s.get_ref())
                .map(|s| source.loc_of(&s.span()));
            let network_loc = b
                .network
                .as_ref()
                .filter(|s| *s.get_ref())
                .map(|s| source.loc_of(&s.span()));
            for key in b.env.keys() {
                if key.starts_with("SLIPWAY_") || key.is_empty() || key.contains('=') {
                    errors.push(source.error(
                        &build_span,
                        format!("build '{name}': env key '{key}' is reserved or invalid"),
                    ));
                }
            }

            map.insert(
                name.clone(),
                Build {
                    name,
                    needs: b
                        .needs
                        .iter()
                        .map(|n| (n.get_ref().clone(), source.loc_of(&n.span())))
                        .collect(),
                    steps: b.steps,
                    action,
                    artifacts,
                    allow_empty: b.allow_empty,
                    secrets: b
                        .secrets
                        .iter()
                        .map(|s| (s.get_ref().clone(), source.loc_of(&s.span())))
                        .collect(),
                    privileged: b.privileged,
                    timeout,
                    junit: b.junit.iter().map(|g| g.get_ref().clone()).collect(),
                    env: b.env,
                    loc: name_loc,
                    with_loc,
                    sandbox: sandbox_loc.is_none(),
                    sandbox_loc,
                    network: network_loc.is_some(),
                    network_loc,
                    resources,
                },
            );
        }

        // `needs` must name builds of the same file.
        for b in map.values() {
            for (need, loc) in &b.needs {
                if !map.contains_key(need) {
                    errors.push(crate::ConfigError {
                        loc: loc.clone(),
                        message: format!(
                            "build '{}' needs '{need}', which is not a defined build",
                            b.name
                        ),
                    });
                }
            }
        }
        if let Some(err) = find_cycle(&map) {
            errors.push(err);
        }
        errors.into_result()?;
        Ok(Builds {
            source_name: source.name.clone(),
            map,
        })
    }

    /// Adds another source's builds; a name defined twice is an error at the second definition.
    pub fn merge(&mut self, other: Builds) -> Result<(), ConfigErrors> {
        let mut errors = ConfigErrors::default();
        for (name, b) in other.map {
            if let Some(prev) = self.map.get(&name) {
                errors.push(crate::ConfigError {
                    loc: b.loc.clone(),
                    message: format!("build '{name}' is also defined at {}", prev.loc),
                });
                continue;
            }
            self.map.insert(name, b);
        }
        errors.into_result()
    }

    pub fn get(&self, name: &str) -> Option<&Build> {
        self.map.get(name)
    }
}

/// A path written in config that must stay inside its root.
pub(crate) fn check_relative(p: &str, what: &str) -> Result<(), String> {
    if p.starts_with('/') {
        return Err(format!("{what} '{p}' must be relative"));
    }
    if p.split('/').any(|c| c == "..") {
        return Err(format!("{what} '{p}' must not contain '..'"));
    }
    Ok(())
}

fn check_artifact(glob: &str, strip_prefix: Option<&str>) -> Result<(), String> {
    check_relative(glob, "artifact glob")?;
    globset::Glob::new(glob).map_err(|e| format!("artifact glob '{glob}' is invalid: {e}"))?;
    if let Some(p) = strip_prefix {
        check_relative(p, "strip_prefix")?;
    }
    Ok(())
}

fn find_cycle(map: &BTreeMap<String, Build>) -> Option<crate::ConfigError> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        Active,
        Done,
    }
    let mut marks: BTreeMap<&str, Mark> = map.keys().map(|k| (k.as_str(), Mark::New)).collect();
    // Iterative DFS keeping the path, so deep chains cannot overflow the stack.
    for start in map.keys() {
        if marks[start.as_str()] != Mark::New {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        marks.insert(start, Mark::Active);
        while let Some((node, idx)) = stack.last().copied() {
            let needs = &map[node].needs;
            if idx < needs.len() {
                if let Some(top) = stack.last_mut() {
                    top.1 += 1;
                }
                let next = needs[idx].0.as_str();
                match marks.get(next).copied() {
                    Some(Mark::New) => {
                        marks.insert(next, Mark::Active);
                        stack.push((next, 0));
                    }
                    Some(Mark::Active) => {
                        let pos = stack.iter().position(|(n, _)| *n == next).unwrap_or(0);
                        let mut names: Vec<&str> = stack[pos..].iter().map(|(n, _)| *n).collect();
                        names.push(next);
                        return Some(crate::ConfigError {
                            loc: needs[idx].1.clone(),
                            message: format!("dependency cycle: {}", names.join(" -> ")),
                        });
                    }
                    _ => {}
                }
            } else {
                marks.insert(node, Mark::Done);
                stack.pop();
            }
        }
    }
    None
}
