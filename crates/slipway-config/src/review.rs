//! `[review]`: the code review server presubmit jobs listen to (Gerrit). Slipway polls its REST
//! API with the HTTP credentials of a bot account (the password lives in the secrets store and
//! is read by the server only), accepts its webhooks as a faster path, and votes back.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, SourceText};
use crate::duration::parse_duration;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawReview {
    kind: Spanned<String>,
    url: Spanned<String>,
    project: Spanned<String>,
    poll_interval: Option<Spanned<String>>,
    overlap: Option<Spanned<String>>,
    user: Spanned<String>,
    password_secret: Spanned<String>,
    report_label: Option<Spanned<String>>,
    webhook_secret: Option<Spanned<String>>,
}

/// The review server (only Gerrit today).
#[derive(Debug, Clone)]
pub struct ReviewConfig {
    /// Base URL without a trailing slash, e.g. `https://review.example.org`.
    pub url: String,
    /// The Gerrit project whose open changes are watched.
    pub project: String,
    pub poll_interval: Duration,
    /// How far before the last poll's newest update the next query starts, so an update
    /// Gerrit indexed late is still seen (duplicates are harmless: triggers are exactly once).
    pub overlap: Duration,
    pub user: String,
    /// Secret holding the bot's HTTP password.
    pub password_secret: String,
    /// Label Slipway votes on (+1 success, -1 failure); `None`: comment only.
    pub report_label: Option<String>,
    /// Secret a webhook delivery must present; `None`: webhooks are refused.
    pub webhook_secret: Option<String>,
}

pub(crate) fn review_config(
    source: &SourceText,
    raw: &RawReview,
    secrets: &[String],
    errors: &mut ConfigErrors,
) -> ReviewConfig {
    if raw.kind.get_ref() != "gerrit" {
        errors.push(source.error(
            &raw.kind.span(),
            format!(
                "review.kind '{}' is not supported (use \"gerrit\")",
                raw.kind.get_ref()
            ),
        ));
    }
    let url = raw.url.get_ref().trim_end_matches('/').to_string();
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.contains(char::is_whitespace)
        || url.contains('?')
        || url.contains('#')
    {
        errors.push(source.error(
            &raw.url.span(),
            format!(
                "review.url '{url}' must be the http:// or https:// base URL of the Gerrit server"
            ),
        ));
    }
    let project = raw.project.get_ref().trim().to_string();
    if project.is_empty() || project.contains(char::is_whitespace) {
        errors.push(source.error(
            &raw.project.span(),
            "review.project must be a Gerrit project name such as containers/guest-tools",
        ));
    }
    if raw.user.get_ref().trim().is_empty() {
        errors.push(source.error(&raw.user.span(), "review.user is empty"));
    }
    let mut secret = |s: &Spanned<String>, key: &str| {
        if !secrets.iter().any(|n| n == s.get_ref()) {
            errors.push(source.error(
                &s.span(),
                format!(
                    "review.{key}: secret '{}' is not defined in [secrets]",
                    s.get_ref()
                ),
            ));
        }
        s.get_ref().clone()
    };
    let password_secret = secret(&raw.password_secret, "password_secret");
    let webhook_secret = raw
        .webhook_secret
        .as_ref()
        .map(|s| secret(s, "webhook_secret"));
    let mut duration =
        |v: &Option<Spanned<String>>, key: &str, default: Duration, min: Duration| {
            let Some(v) = v else { return default };
            match parse_duration(v.get_ref()) {
                Ok(d) if d >= min => d,
                Ok(_) => {
                    errors.push(source.error(
                        &v.span(),
                        format!("review.{key} must be at least {}s", min.as_secs()),
                    ));
                    default
                }
                Err(e) => {
                    errors.push(source.error(&v.span(), format!("review.{key}: {e}")));
                    default
                }
            }
        };
    let poll_interval = duration(
        &raw.poll_interval,
        "poll_interval",
        Duration::from_secs(30),
        Duration::from_secs(1),
    );
    let overlap = duration(
        &raw.overlap,
        "overlap",
        Duration::from_secs(120),
        Duration::from_secs(0),
    );
    let report_label = raw.report_label.as_ref().map(|l| {
        if !is_label(l.get_ref()) {
            errors.push(source.error(
                &l.span(),
                format!("review.report_label '{}' is not a label name", l.get_ref()),
            ));
        }
        l.get_ref().clone()
    });
    ReviewConfig {
        url,
        project,
        poll_interval,
        overlap,
        user: raw.user.get_ref().clone(),
        password_secret,
        report_label,
        webhook_secret,
    }
}

/// Gerrit label names: letters, digits and '-' (Gerrit's own rule).
pub fn is_label(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use crate::diag::SourceText;
    use crate::service::Config;

    const HEAD: &str = "[project]\nname = \"p\"\nrepo = \"repo\"\n[[branches]]\nchannel = \"canary\"\nmilestone = 1\nbranch = \"main\"\n[secrets]\ngerrit = { env = \"GERRIT_PW\" }\n";

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(
            SourceText::new("slipway.toml", format!("{HEAD}{body}")),
            PathBuf::from("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn a_gerrit_section_parses_with_defaults() {
        let c = parse("[review]\nkind = \"gerrit\"\nurl = \"https://review.example.org/\"\nproject = \"containers/guest-tools\"\nuser = \"bot\"\npassword_secret = \"gerrit\"\nreport_label = \"Verified\"\n").unwrap();
        let r = c.review.unwrap();
        assert_eq!(r.url, "https://review.example.org");
        assert_eq!(r.poll_interval, Duration::from_secs(30));
        assert_eq!(r.overlap, Duration::from_secs(120));
        assert_eq!(r.report_label.as_deref(), Some("Verified"));
        assert!(r.webhook_secret.is_none());
        assert!(parse("").unwrap().review.is_none());
    }

    #[test]
    fn bad_values_are_positioned_errors() {
        let e = parse("[review]\nkind = \"github\"\nurl = \"review.example.org\"\nproject = \"\"\nuser = \"bot\"\npassword_secret = \"nope\"\npoll_interval = \"0s\"\nreport_label = \"Veri fied\"\nwebhook_secret = \"missing\"\n").unwrap_err();
        for want in [
            "slipway.toml:11:8: review.kind 'github' is not supported",
            "slipway.toml:12:7: review.url 'review.example.org' must be the http:// or https://",
            "review.project must be a Gerrit project name",
            "review.password_secret: secret 'nope' is not defined in [secrets]",
            "review.poll_interval must be at least 1s",
            "review.report_label 'Veri fied' is not a label name",
            "review.webhook_secret: secret 'missing' is not defined",
        ] {
            assert!(e.contains(want), "missing {want:?} in {e}");
        }
    }

    #[test]
    fn review_triggers_need_a_positive_minimum_and_a_label() {
        let job = |t: &str| {
            format!(
                "[jobs.pre]\ntrigger = {{ review = {t} }}\nbranches = [\"main\"]\nuntrusted = true\nbuilds = []\n"
            )
        };
        let e = parse(&job("{ label = \"Code-Review\", min = -2 }")).unwrap_err();
        assert!(e.contains("min must be at least 1"), "{e}");
        let e = parse(&job("{ label = \"Code-Review\", min = 0 }")).unwrap_err();
        assert!(e.contains("min must be at least 1"), "{e}");
        let e = parse(&job("{ label = \"Code Review\", min = 1 }")).unwrap_err();
        assert!(e.contains("'Code Review' is not a label name"), "{e}");
        assert!(parse(&job("{ label = \"Code-Review\", min = 2 }")).is_ok());
    }
}
