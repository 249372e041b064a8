//! `[retention]`: how long `slipway gc` keeps runs. What a live release, its rollback chain or an
//! open candidate needs is kept whatever the policy says; this only bounds everything else.

use serde::Deserialize;
use toml::Spanned;

use crate::diag::{ConfigErrors, SourceText};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRetention {
    keep_days: Option<Spanned<i64>>,
    keep_last: Option<Spanned<i64>>,
    keep_releases: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionConfig {
    /// Runs younger than this many days are kept.
    pub keep_days: u32,
    /// The newest runs of each job instance kept, however old.
    pub keep_last: u32,
    /// Releases of each milestone whose candidates are kept: the live one and the ones a
    /// rollback can go back to.
    pub keep_releases: u32,
}

pub const DEFAULT_KEEP_DAYS: u32 = 30;
pub const DEFAULT_KEEP_LAST: u32 = 10;
pub const DEFAULT_KEEP_RELEASES: u32 = 3;

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            keep_days: DEFAULT_KEEP_DAYS,
            keep_last: DEFAULT_KEEP_LAST,
            keep_releases: DEFAULT_KEEP_RELEASES,
        }
    }
}

/// Upper bound of every count: beyond it a typo (an extra digit) is more likely than intent.
const MAX: i64 = 100_000;

pub(crate) fn retention_config(
    source: &SourceText,
    raw: &RawRetention,
    errors: &mut ConfigErrors,
) -> RetentionConfig {
    let mut cfg = RetentionConfig::default();
    let mut field = |value: &Option<Spanned<i64>>, name: &str, min: i64, slot: &mut u32| {
        let Some(v) = value else { return };
        let n = *v.get_ref();
        if (min..=MAX).contains(&n) {
            *slot = n as u32;
        } else {
            errors.push(source.error(
                &v.span(),
                format!("retention.{name} must be a whole number from {min} to {MAX}, not {n}"),
            ));
        }
    };
    field(&raw.keep_days, "keep_days", 0, &mut cfg.keep_days);
    field(&raw.keep_last, "keep_last", 0, &mut cfg.keep_last);
    // The live release is always kept; fewer than one would say otherwise.
    field(
        &raw.keep_releases,
        "keep_releases",
        1,
        &mut cfg.keep_releases,
    );
    cfg
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::diag::SourceText;
    use crate::service::Config;

    const HEAD: &str = "[project]\nname = \"p\"\nrepo = \"repo\"\n";

    fn parse(body: &str) -> Result<Config, String> {
        Config::parse(
            SourceText::new("slipway.toml", format!("{HEAD}{body}")),
            PathBuf::from("."),
        )
        .map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_apply_without_a_section_and_for_missing_keys() {
        assert_eq!(
            parse("").unwrap().retention,
            super::RetentionConfig::default()
        );
        let c = parse("[retention]\nkeep_days = 7\n").unwrap();
        assert_eq!(c.retention.keep_days, 7);
        assert_eq!(c.retention.keep_last, super::DEFAULT_KEEP_LAST);
        assert_eq!(c.retention.keep_releases, super::DEFAULT_KEEP_RELEASES);
        let c = parse("[retention]\nkeep_days = 0\nkeep_last = 0\nkeep_releases = 1\n").unwrap();
        assert_eq!(
            (
                c.retention.keep_days,
                c.retention.keep_last,
                c.retention.keep_releases
            ),
            (0, 0, 1)
        );
    }

    #[test]
    fn bad_values_are_positioned_errors() {
        let e = parse("[retention]\nkeep_days = -1\nkeep_releases = 0\n").unwrap_err();
        assert!(
            e.contains("slipway.toml:5:13: retention.keep_days must be a whole number from 0 to 100000, not -1"),
            "{e}"
        );
        assert!(
            e.contains("slipway.toml:6:17: retention.keep_releases must be a whole number from 1 to 100000, not 0"),
            "{e}"
        );
        let e = parse("[retention]\nkeep_last = \"ten\"\n").unwrap_err();
        assert!(e.contains("slipway.toml:5:"), "{e}");
        let e = parse("[retention]\nkeep_weeks = 2\n").unwrap_err();
        assert!(e.contains("unknown field `keep_weeks`"), "{e}");
    }
}
