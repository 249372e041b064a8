//! `[notify]`: where Slipway tells people that the release policy acted on its own (a rollback,
//! a candidate marked bad): a generic webhook receiving a JSON POST.

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, SourceText};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    url: Spanned<String>,
    secret: Option<Spanned<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyConfig {
    /// The webhook a JSON body is POSTed to.
    pub url: String,
    /// Secret sent as `Authorization: Bearer <value>`; `None`: no header.
    pub secret: Option<String>,
}

pub(crate) fn notify_config(
    source: &SourceText,
    raw: &RawNotify,
    secrets: &[String],
    errors: &mut ConfigErrors,
) -> NotifyConfig {
    let url = raw.url.get_ref().trim().to_string();
    if let Err(why) = check_webhook_url(&url) {
        errors.push(source.error(&raw.url.span(), format!("notify.url: {why}")));
    }
    let secret = raw.secret.as_ref().map(|s| {
        if !secrets.iter().any(|n| n == s.get_ref()) {
            errors.push(source.error(
                &s.span(),
                format!(
                    "notify.secret: secret '{}' is not defined in [secrets]",
                    s.get_ref()
                ),
            ));
        }
        s.get_ref().clone()
    });
    NotifyConfig { url, secret }
}

/// An http(s) URL with a host. Credentials in it are refused: the URL is logged and shown,
/// a token belongs in `secret`.
fn check_webhook_url(url: &str) -> Result<(), String> {
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err("must be an http:// or https:// URL".into());
    };
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".into());
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("must not carry credentials (name a [secrets] entry in notify.secret)".into());
    }
    if authority.is_empty() || authority.starts_with(':') {
        return Err("names no host".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::{NotifyConfig, check_webhook_url};
    use crate::diag::SourceText;
    use crate::service::Config;

    const HEAD: &str =
        "[project]\nname = \"p\"\nrepo = \"repo\"\n[secrets]\nhook = { env = \"HOOK_TOKEN\" }\n";

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(
            SourceText::new("slipway.toml", format!("{HEAD}{body}")),
            PathBuf::from("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn optional_and_parsed() {
        assert_eq!(parse("").unwrap().notify, None);
        let c =
            parse("[notify]\nurl = \"http://127.0.0.1:9999/hook\"\nsecret = \"hook\"\n").unwrap();
        assert_eq!(
            c.notify,
            Some(NotifyConfig {
                url: "http://127.0.0.1:9999/hook".into(),
                secret: Some("hook".into()),
            })
        );
        let c =
            parse("[notify]\nurl = \"https://chat.example.org/hooks/release?room=ops\"\n").unwrap();
        assert_eq!(c.notify.unwrap().secret, None);
    }

    #[test]
    fn bad_values_are_positioned_errors() {
        let e = parse("[notify]\nurl = \"ftp://example.org\"\nsecret = \"nope\"\n").unwrap_err();
        for want in [
            "slipway.toml:7:7: notify.url: must be an http:// or https:// URL",
            "slipway.toml:8:10: notify.secret: secret 'nope' is not defined in [secrets]",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
        let e = parse("[notify]\nsecret = \"hook\"\n").unwrap_err();
        assert!(e.contains("missing field `url`"), "{e}");
    }

    #[test]
    fn webhook_urls() {
        assert!(check_webhook_url("http://127.0.0.1:9999/hook").is_ok());
        assert!(check_webhook_url("https://hooks.example.org").is_ok());
        let err = |u: &str| check_webhook_url(u).unwrap_err();
        assert!(err("https://bot:hunter2@example.org/hook").contains("credentials"));
        assert!(err("http:///hook").contains("no host"));
        assert!(err("http://:80/hook").contains("no host"));
        assert!(err("http://exa mple.org").contains("spaces"));
        assert!(err("example.org/hook").contains("http://"));
    }
}
