//! `[release]`: the release policy. Which suites must pass on a candidate and how long it must
//! soak in staging before it is promoted without a person, on which channels, and when failing
//! production suites roll the live release back. Evaluated by `slipway-release`.

use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, SourceText};
use crate::duration::parse_duration;
use crate::service::BranchRow;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRelease {
    auto: Option<bool>,
    require: Option<Vec<Spanned<String>>>,
    soak: Option<Spanned<String>>,
    channels: Option<Spanned<Vec<Spanned<String>>>>,
    rollback_after: Option<Spanned<i64>>,
    watch: Option<Vec<Spanned<String>>>,
}

/// The release policy of every milestone of the project. Without a `[release]` section nothing
/// is released automatically and nothing is rolled back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleasePolicy {
    /// Promote without a person when a candidate satisfies the policy.
    pub auto: bool,
    /// Suites that must pass on a candidate (in staging): a build's JUnit by build name, or an
    /// external suite by name.
    pub require: Vec<String>,
    /// How long a candidate must have been in staging before it is promoted.
    pub soak: Duration,
    /// Channels that release automatically; `None`: every channel.
    pub channels: Option<Vec<String>>,
    /// Consecutive failed `watch` results on the live release that roll it back; 0: never.
    pub rollback_after: u32,
    /// Production suites whose results count for rollback.
    pub watch: Vec<String>,
}

impl ReleasePolicy {
    /// Whether candidates of a milestone on `channel` may be promoted without a person.
    pub fn auto_releases(&self, channel: &str) -> bool {
        self.channels
            .as_ref()
            .is_none_or(|c| c.iter().any(|x| x == channel))
    }
}

/// Above this a typo (an extra digit) is more likely than intent.
const MAX_ROLLBACK_AFTER: i64 = 100;

pub(crate) fn release_policy(
    source: &SourceText,
    raw: &RawRelease,
    branches: &[BranchRow],
    errors: &mut ConfigErrors,
) -> ReleasePolicy {
    let mut policy = ReleasePolicy {
        auto: raw.auto.unwrap_or(false),
        ..ReleasePolicy::default()
    };
    let suite_rule = "a suite name is letters, digits, '-', '_' or '.'";
    if let Some(require) = &raw.require {
        policy.require = names(
            source,
            require,
            "require",
            is_suite_name,
            suite_rule,
            errors,
        );
    }
    if let Some(watch) = &raw.watch {
        policy.watch = names(source, watch, "watch", is_suite_name, suite_rule, errors);
    }
    if let Some(soak) = &raw.soak {
        match parse_duration(soak.get_ref()) {
            Ok(d) => policy.soak = d,
            Err(e) => errors.push(source.error(&soak.span(), format!("release.soak: {e}"))),
        }
    }
    if let Some(channels) = &raw.channels {
        let known = |c: &str| branches.iter().any(|b| b.channel == c);
        let list = names(
            source,
            channels.get_ref(),
            "channels",
            known,
            "it is not a channel of the branch table",
            errors,
        );
        if channels.get_ref().is_empty() {
            errors.push(source.error(
                &channels.span(),
                "release.channels is empty: no channel would release (set auto = false instead)",
            ));
        }
        policy.channels = Some(list);
    }
    if let Some(n) = &raw.rollback_after {
        match *n.get_ref() {
            v @ 0..=MAX_ROLLBACK_AFTER => policy.rollback_after = v as u32,
            v => errors.push(source.error(
                &n.span(),
                format!(
                    "release.rollback_after must be a whole number from 0 to {MAX_ROLLBACK_AFTER}, not {v}"
                ),
            )),
        }
        if policy.rollback_after > 0 && policy.watch.is_empty() {
            errors.push(source.error(
                &n.span(),
                "release.rollback_after needs release.watch: the production suites whose failures roll back",
            ));
        }
    }
    policy
}

/// A list of names, each checked, none twice.
fn names(
    source: &SourceText,
    list: &[Spanned<String>],
    key: &str,
    valid: impl Fn(&str) -> bool,
    rule: &str,
    errors: &mut ConfigErrors,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in list {
        let name = item.get_ref();
        if !valid(name) {
            errors.push(source.error(
                &item.span(),
                format!("release.{key}: '{name}' is refused: {rule}"),
            ));
        } else if out.contains(name) {
            errors.push(source.error(&item.span(), format!("release.{key} names '{name}' twice")));
        } else {
            out.push(name.clone());
        }
    }
    out
}

/// Suite names: build names (`lxd_test`) and the names labs report under (`bvt-cq`, `Tast.smoke`).
pub fn is_suite_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::time::Duration;

    use super::ReleasePolicy;
    use crate::diag::SourceText;
    use crate::service::Config;

    const HEAD: &str = "[project]\nname = \"p\"\nrepo = \"repo\"\n[[branches]]\nchannel = \"canary\"\nmilestone = 74\nbranch = \"main\"\n[[branches]]\nchannel = \"stable\"\nmilestone = 71\nbranch = \"release-71\"\n";

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(
            SourceText::new("slipway.toml", format!("{HEAD}{body}")),
            PathBuf::from("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn without_a_section_nothing_releases_or_rolls_back() {
        let c = parse("").unwrap();
        assert_eq!(c.release, ReleasePolicy::default());
        assert!(!c.release.auto);
        assert!(c.release.require.is_empty() && c.release.watch.is_empty());
        assert_eq!(
            (c.release.soak, c.release.rollback_after),
            (Duration::ZERO, 0)
        );
        assert!(c.release.auto_releases("canary") && c.release.auto_releases("stable"));
        let c = parse("[release]\n").unwrap();
        assert_eq!(c.release, ReleasePolicy::default());
    }

    #[test]
    fn a_full_section_parses() {
        let c = parse(
            "[release]\nauto = true\nrequire = [\"lxd_test\", \"pfq\"]\nsoak = \"30m\"\nchannels = [\"canary\"]\nrollback_after = 2\nwatch = [\"bvt-cq\"]\n",
        )
        .unwrap();
        assert_eq!(
            c.release,
            ReleasePolicy {
                auto: true,
                require: vec!["lxd_test".into(), "pfq".into()],
                soak: Duration::from_secs(1800),
                channels: Some(vec!["canary".into()]),
                rollback_after: 2,
                watch: vec!["bvt-cq".into()],
            }
        );
        assert!(c.release.auto_releases("canary"));
        assert!(!c.release.auto_releases("stable"));
    }

    #[test]
    fn bad_values_are_positioned_errors_reported_at_once() {
        let e = parse(
            "[release]\nrequire = [\"pfq\", \"lxd test\", \"pfq\"]\nsoak = \"30 minutes\"\nchannels = [\"beta\", \"canary\", \"canary\"]\nrollback_after = 2\n",
        )
        .unwrap_err();
        for want in [
            "slipway.toml:13:19: release.require: 'lxd test' is refused: a suite name is letters, digits, '-', '_' or '.'",
            "slipway.toml:13:31: release.require names 'pfq' twice",
            "slipway.toml:14:8: release.soak: unknown unit ' ' in duration '30 minutes'",
            "slipway.toml:15:13: release.channels: 'beta' is refused: it is not a channel of the branch table",
            "slipway.toml:15:31: release.channels names 'canary' twice",
            "slipway.toml:16:18: release.rollback_after needs release.watch",
        ] {
            assert!(e.contains(want), "missing {want:?} in\n{e}");
        }
    }

    #[test]
    fn counts_lists_and_keys_are_checked() {
        let e = parse("[release]\nrollback_after = -1\n").unwrap_err();
        assert!(
            e.contains("slipway.toml:13:18: release.rollback_after must be a whole number from 0 to 100, not -1"),
            "{e}"
        );
        let e = parse("[release]\nrollback_after = 101\nwatch = [\"bvt-cq\"]\n").unwrap_err();
        assert!(e.contains("from 0 to 100, not 101"), "{e}");
        let e = parse("[release]\nwatch = [\"bvt-cq\", \"bvt-cq\"]\n").unwrap_err();
        assert!(e.contains("release.watch names 'bvt-cq' twice"), "{e}");
        let e = parse("[release]\nchannels = []\n").unwrap_err();
        assert!(
            e.contains("slipway.toml:13:12: release.channels is empty"),
            "{e}"
        );
        let e = parse("[release]\nauto = \"yes\"\n").unwrap_err();
        assert!(e.contains("slipway.toml:13:8:"), "{e}");
        let e = parse("[release]\nrequires = [\"pfq\"]\n").unwrap_err();
        assert!(e.contains("unknown field `requires`"), "{e}");
        // Turning rollback off needs no watch list.
        assert_eq!(
            parse("[release]\nrollback_after = 0\n")
                .unwrap()
                .release
                .rollback_after,
            0
        );
    }

    #[test]
    fn suite_names() {
        for ok in ["lxd_test", "pfq", "bvt-cq", "Tast.smoke"] {
            assert!(super::is_suite_name(ok), "{ok}");
        }
        for bad in ["", ".hidden", "a b", "a/b", "é", &"x".repeat(129)] {
            assert!(!super::is_suite_name(bad), "{bad}");
        }
    }
}
