//! Server-rendered HTML pages: the home matrix, the run list, a run page, a release page per
//! milestone, the presubmit changes, login and errors. A pure rendering library: handlers fill the view structs of
//! [`views`] from the store and serve the strings; [`STYLE_CSS`] and [`APP_JS`] are served at
//! `/static/slipway.css` and `/static/slipway.js`. Templates are embedded and autoescaped
//! (`.html`), so nothing from a build, a commit or an error can inject markup.

mod dag;
mod format;
mod policy;
pub mod views;
mod vote;

use minijinja::{Environment, UndefinedBehavior, Value, context};

pub use views::*;

pub const STYLE_CSS: &str = include_str!("static/slipway.css");
pub const APP_JS: &str = include_str!("static/slipway.js");

const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("templates/base.html")),
    ("macros.html", include_str!("templates/macros.html")),
    ("home.html", include_str!("templates/home.html")),
    ("runs.html", include_str!("templates/runs.html")),
    ("run.html", include_str!("templates/run.html")),
    ("policy.html", include_str!("templates/policy.html")),
    ("release.html", include_str!("templates/release.html")),
    ("presubmit.html", include_str!("templates/presubmit.html")),
    ("login.html", include_str!("templates/login.html")),
    ("error.html", include_str!("templates/error.html")),
];

#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("dashboard template {name} does not compile: {source}")]
    Template {
        name: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("rendering the {page} page: {source}")]
    Render {
        page: &'static str,
        #[source]
        source: minijinja::Error,
    },
    #[error("home matrix row for milestone {milestone} has {cells} cells for {jobs} job columns")]
    MisalignedRow {
        milestone: u32,
        cells: usize,
        jobs: usize,
    },
}

pub struct Dashboard {
    env: Environment<'static>,
    asset_version: String,
}

impl Dashboard {
    pub fn new() -> Result<Dashboard, DashboardError> {
        let mut env = Environment::new();
        // A misspelt field must fail the tests, not render as an empty string.
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.add_filter("ago", format::ago);
        env.add_filter("exact", format::exact);
        env.add_filter("took", format::took);
        env.add_filter("duration", format::duration);
        env.add_filter("status_class", format::status_class);
        env.add_filter("urlencode", format::urlencode);
        env.add_filter("abbrev", format::abbrev);
        env.add_filter("vote_text", vote::vote_text);
        env.add_filter("vote_class", vote::vote_class);
        env.add_filter("state_class", policy::state_class);
        env.add_filter("verdict_class", policy::verdict_class);
        env.add_filter("event_class", policy::event_class);
        for (name, source) in TEMPLATES {
            env.add_template(name, source)
                .map_err(|source| DashboardError::Template { name, source })?;
        }
        let asset_version = format!("{:08x}", fnv1a(&[STYLE_CSS, APP_JS]) as u32);
        env.add_global("asset_v", asset_version.clone());
        env.add_global("show_account", true);
        Ok(Dashboard { env, asset_version })
    }

    /// Changes whenever the CSS or JS changes; pages reference `?v=<this>`, so handlers may
    /// serve the static files with a long `Cache-Control` lifetime.
    pub fn asset_version(&self) -> &str {
        &self.asset_version
    }

    /// `GET /`.
    pub fn home(&self, v: &HomeView) -> Result<String, DashboardError> {
        if let Some(r) = v.rows.iter().find(|r| r.cells.len() != v.jobs.len()) {
            return Err(DashboardError::MisalignedRow {
                milestone: r.milestone,
                cells: r.cells.len(),
                jobs: v.jobs.len(),
            });
        }
        self.render("home", context! { ..Value::from_serialize(v) })
    }

    /// `GET /runs?job=&milestone=&before=`.
    pub fn runs(&self, v: &RunsView) -> Result<String, DashboardError> {
        let mut query = Vec::new();
        if let Some(job) = &v.filter_job {
            query.push(format!("job={}", format::urlencode(job.clone())));
        }
        if let Some(m) = v.filter_milestone {
            query.push(format!("milestone={m}"));
        }
        self.render(
            "runs",
            context! { filter_query => query.join("&"), ..Value::from_serialize(v) },
        )
    }

    /// `GET /runs/{id}`.
    pub fn run(&self, v: &RunView) -> Result<String, DashboardError> {
        let columns = dag::columns(&v.builds, &v.bypassed);
        self.render(
            "run",
            context! { columns => columns, ..Value::from_serialize(v) },
        )
    }

    /// `GET /milestones/{m}`.
    pub fn release(&self, v: &ReleaseView) -> Result<String, DashboardError> {
        let staging = v.candidates.first();
        let production = v
            .live
            .as_ref()
            .and_then(|live| v.candidates.iter().find(|c| c.id == live.candidate_id));
        self.render(
            "release",
            context! {
                staging => staging,
                production => production,
                ..Value::from_serialize(v)
            },
        )
    }

    /// `GET /presubmit`.
    pub fn presubmit(&self, v: &PresubmitView) -> Result<String, DashboardError> {
        self.render("presubmit", context! { ..Value::from_serialize(v) })
    }

    /// `GET /login`.
    pub fn login(&self, v: &LoginView) -> Result<String, DashboardError> {
        self.render("login", context! { ..Value::from_serialize(v) })
    }

    /// Any HTML error page (404, 403, 500 ...). Carries no project or role: it must render
    /// even when the handler could not load them.
    pub fn error(&self, status: u16, message: &str) -> Result<String, DashboardError> {
        let reason = axum::http::StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason());
        let page = Page {
            project: "Slipway".to_string(),
            title: format!("Error {status}"),
            role: None,
            now: String::new(),
        };
        self.render(
            "error",
            context! {
                page => page,
                status => status,
                reason => reason,
                message => message,
                show_account => false,
            },
        )
    }

    fn render(&self, page: &'static str, ctx: Value) -> Result<String, DashboardError> {
        let render = || {
            self.env
                .get_template(&format!("{page}.html"))?
                .render(context! { kind => page, ..ctx })
        };
        render().map_err(|source| DashboardError::Render { page, source })
    }
}

/// FNV-1a over the assets: a stable, dependency-free fingerprint for cache busting.
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in parts.iter().flat_map(|p| p.bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod samples;
#[cfg(test)]
mod tests;
