//! `[server]`: how `slipway serve` listens, polls, queues and whom it lets in. Every key has a
//! default that suits one engineer on a laptop: loopback only, reads public, no tokens but the
//! bootstrap one from the environment.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, Loc, SourceText};
use crate::duration::parse_duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    listen: Option<Spanned<String>>,
    public_url: Option<Spanned<String>>,
    poll_interval: Option<Spanned<String>>,
    audit_interval: Option<Spanned<String>>,
    max_runs: Option<Spanned<i64>>,
    build_jobs: Option<Spanned<i64>>,
    public_reads: Option<bool>,
    cancel_superseded: Option<bool>,
    on_shutdown: Option<Spanned<String>>,
    #[serde(default)]
    tokens: BTreeMap<Spanned<String>, Spanned<RawToken>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawToken {
    secret: Spanned<String>,
    role: Spanned<String>,
}

/// What a bearer token may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Read runs, logs, releases (needed only when reads are not public).
    Viewer,
    /// Report test results about candidates and releases (a device lab).
    Reporter,
    /// Start and cancel runs, force a poll.
    Trigger,
    /// Promote and roll back.
    Releaser,
    /// Everything, including reloading the config.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Viewer,
        Role::Reporter,
        Role::Trigger,
        Role::Releaser,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reporter => "reporter",
            Role::Trigger => "trigger",
            Role::Releaser => "releaser",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                format!("unknown role '{s}' (use viewer, reporter, trigger, releaser or admin)")
            })
    }
}

/// What the server does with running builds when it is asked to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnShutdown {
    /// Cancel running runs (recorded `cancelled`), then exit.
    Cancel,
    /// Let running runs finish (queued ones stay queued), then exit.
    Wait,
}

/// A bearer token: its value lives in the secrets store under `secret`.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    pub name: String,
    pub secret: String,
    pub role: Role,
    pub loc: Loc,
}

#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: String,
    /// How the dashboard and messages link back to the server.
    pub public_url: Option<String>,
    pub poll_interval: Duration,
    pub audit_interval: Duration,
    /// Runs executing at once, all jobs together.
    pub max_runs: usize,
    /// Builds of one run executing at once.
    pub build_jobs: usize,
    /// Whether reading endpoints and pages need no token.
    pub public_reads: bool,
    /// A newer head of a continuous instance cancels its queued (not started) older runs.
    pub cancel_superseded: bool,
    pub on_shutdown: OnShutdown,
    pub tokens: Vec<TokenConfig>,
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: DEFAULT_LISTEN.into(),
            public_url: None,
            poll_interval: Duration::from_secs(60),
            audit_interval: Duration::from_secs(600),
            max_runs: 2,
            build_jobs: 2,
            public_reads: true,
            cancel_superseded: true,
            on_shutdown: OnShutdown::Cancel,
            tokens: Vec::new(),
        }
    }
}

pub(crate) fn server_config(
    source: &SourceText,
    raw: &RawServer,
    secrets: &[String],
    errors: &mut ConfigErrors,
) -> ServerConfig {
    let mut cfg = ServerConfig::default();
    if let Some(l) = &raw.listen {
        if l.get_ref().parse::<std::net::SocketAddr>().is_err() {
            errors.push(source.error(
                &l.span(),
                format!(
                    "server.listen '{}' is not an address and port such as 127.0.0.1:8080",
                    l.get_ref()
                ),
            ));
        }
        cfg.listen = l.get_ref().clone();
    }
    if let Some(u) = &raw.public_url {
        let url = u.get_ref().trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://"))
            || url.contains(char::is_whitespace)
        {
            errors.push(source.error(
                &u.span(),
                format!("server.public_url '{url}' must be an http:// or https:// URL"),
            ));
        }
        cfg.public_url = Some(url.to_string());
    }
    let mut interval =
        |value: &Option<Spanned<String>>, name: &str, min: Duration, slot: &mut Duration| {
            let Some(v) = value else { return };
            match parse_duration(v.get_ref()) {
                Ok(d) if d >= min => *slot = d,
                Ok(_) => errors.push(source.error(
                    &v.span(),
                    format!("server.{name} must be at least {}s", min.as_secs()),
                )),
                Err(e) => errors.push(source.error(&v.span(), format!("server.{name}: {e}"))),
            }
        };
    interval(
        &raw.poll_interval,
        "poll_interval",
        Duration::from_secs(1),
        &mut cfg.poll_interval,
    );
    interval(
        &raw.audit_interval,
        "audit_interval",
        Duration::from_secs(10),
        &mut cfg.audit_interval,
    );
    let mut count = |value: &Option<Spanned<i64>>, name: &str, slot: &mut usize| {
        let Some(v) = value else { return };
        match *v.get_ref() {
            n @ 1..=256 => *slot = n as usize,
            n => errors.push(source.error(
                &v.span(),
                format!("server.{name} must be a whole number from 1 to 256, not {n}"),
            )),
        }
    };
    count(&raw.max_runs, "max_runs", &mut cfg.max_runs);
    count(&raw.build_jobs, "build_jobs", &mut cfg.build_jobs);
    if let Some(p) = raw.public_reads {
        cfg.public_reads = p;
    }
    if let Some(c) = raw.cancel_superseded {
        cfg.cancel_superseded = c;
    }
    if let Some(s) = &raw.on_shutdown {
        match s.get_ref().as_str() {
            "cancel" => cfg.on_shutdown = OnShutdown::Cancel,
            "wait" => cfg.on_shutdown = OnShutdown::Wait,
            other => errors.push(source.error(
                &s.span(),
                format!("server.on_shutdown must be \"cancel\" or \"wait\", not \"{other}\""),
            )),
        }
    }
    for (name, token) in &raw.tokens {
        let t = token.get_ref();
        let role = match t.role.get_ref().parse::<Role>() {
            Ok(r) => r,
            Err(e) => {
                errors.push(source.error(
                    &t.role.span(),
                    format!("server.tokens.{}: {e}", name.get_ref()),
                ));
                continue;
            }
        };
        if !secrets.iter().any(|s| s == t.secret.get_ref()) {
            errors.push(source.error(
                &t.secret.span(),
                format!(
                    "server.tokens.{}: secret '{}' is not defined in [secrets]",
                    name.get_ref(),
                    t.secret.get_ref()
                ),
            ));
            continue;
        }
        cfg.tokens.push(TokenConfig {
            name: name.get_ref().clone(),
            secret: t.secret.get_ref().clone(),
            role,
            loc: source.loc_of(&token.span()),
        });
    }
    cfg
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::{OnShutdown, Role};
    use crate::diag::SourceText;
    use crate::service::Config;

    const HEAD: &str =
        "[project]\nname = \"p\"\nrepo = \"repo\"\n[secrets]\nops = { env = \"OPS_TOKEN\" }\n";

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(
            SourceText::new("slipway.toml", format!("{HEAD}{body}")),
            PathBuf::from("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_values() {
        let c = parse("").unwrap();
        assert_eq!(c.server.listen, "127.0.0.1:8080");
        assert!(c.server.public_reads && c.server.cancel_superseded);
        let c = parse(
            "[server]\nlisten = \"127.0.0.1:0\"\npoll_interval = \"5s\"\nmax_runs = 3\non_shutdown = \"wait\"\npublic_reads = false\n[server.tokens]\nops = { secret = \"ops\", role = \"releaser\" }\n",
        )
        .unwrap();
        assert_eq!(c.server.poll_interval, Duration::from_secs(5));
        assert_eq!(c.server.max_runs, 3);
        assert_eq!(c.server.on_shutdown, OnShutdown::Wait);
        assert!(!c.server.public_reads);
        assert_eq!(c.server.tokens[0].role, Role::Releaser);
        assert!(Role::Admin > Role::Releaser && Role::Trigger > Role::Viewer);
    }

    #[test]
    fn bad_values_are_positioned_errors() {
        let e = parse(
            "[server]\nlisten = \"localhost\"\npoll_interval = \"0s\"\nmax_runs = 0\non_shutdown = \"later\"\n[server.tokens]\na = { secret = \"nope\", role = \"admin\" }\nb = { secret = \"ops\", role = \"god\" }\n",
        )
        .unwrap_err();
        for want in [
            "slipway.toml:7:10: server.listen 'localhost' is not an address",
            "slipway.toml:8:17: server.poll_interval must be at least 1s",
            "slipway.toml:9:12: server.max_runs must be a whole number from 1 to 256, not 0",
            "slipway.toml:10:15: server.on_shutdown must be",
            "server.tokens.a: secret 'nope' is not defined in [secrets]",
            "server.tokens.b: unknown role 'god'",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }
}
