//! Template filters: compact relative times, durations, status classes and path segments. Each
//! takes what a view holds (strings from the store) and never fails on bad input: a time that
//! does not parse is shown as given, so one odd row cannot take a page down.

use chrono::{DateTime, FixedOffset};

fn parse(t: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(t).ok()
}

/// "1m 04s", "2h 05m", "3d 04h"; seconds only under a minute.
pub fn compact_duration(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m {:02}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {:02}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `{{ t|ago(page.now) }}`: "just now", "42s ago", "5m ago", "3h ago", "2d ago"; older than a
/// month, the date. Times after `now` (clock skew between hosts) read "just now".
pub fn ago(t: String, now: String) -> String {
    let (Some(at), Some(now)) = (parse(&t), parse(&now)) else {
        return t;
    };
    let secs = (now - at).num_seconds();
    match secs {
        i64::MIN..=4 => "just now".to_string(),
        5..=59 => format!("{secs}s ago"),
        60..=3599 => format!("{}m ago", secs / 60),
        3600..=86_399 => format!("{}h ago", secs / 3600),
        86_400..=2_591_999 => format!("{}d ago", secs / 86_400),
        _ => at.format("%Y-%m-%d").to_string(),
    }
}

/// `{{ t|exact }}`: the full time in UTC to the second, for tooltips and fact lists.
pub fn exact(t: String) -> String {
    match parse(&t) {
        Some(at) => at
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        None => t,
    }
}

/// `{{ start|took(end) }}`: the compact time between two instants; empty when either is
/// missing or unparseable (the caller shows nothing rather than a wrong figure).
pub fn took(start: Option<String>, end: Option<String>) -> String {
    match (
        start.as_deref().and_then(parse),
        end.as_deref().and_then(parse),
    ) {
        (Some(a), Some(b)) => compact_duration((b - a).num_seconds()),
        _ => String::new(),
    }
}

/// `{{ secs|duration }}`: [`compact_duration`] of a number of seconds.
pub fn duration(secs: i64) -> String {
    compact_duration(secs)
}

/// `{{ digest|abbrev(23) }}`: at most `n` characters, "…" marking a cut.
pub fn abbrev(value: String, n: usize) -> String {
    if value.chars().count() <= n {
        return value;
    }
    let mut out: String = value.chars().take(n.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Statuses the stylesheet knows; anything else gets the neutral `st-unknown` so a new status
/// in the store shows up grey instead of unstyled.
const STATUSES: &[&str] = &[
    "queued",
    "pending",
    "running",
    "success",
    "failure",
    "cancelled",
    "interrupted",
    "skipped",
    "bypassed",
];

/// `{{ status|status_class }}`: `st-success`, ...
pub fn status_class(status: String) -> String {
    if STATUSES.contains(&status.as_str()) {
        format!("st-{status}")
    } else {
        "st-unknown".to_string()
    }
}

/// `{{ name|urlencode }}`: percent-encodes everything but RFC 3986 unreserved characters, so a
/// value is safe as one path segment or one query value.
pub fn urlencode(value: String) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: &str = "2026-11-26T12:00:00.000Z";

    #[test]
    fn ago_is_compact_and_tolerates_bad_input() {
        let ago_ = |t: &str| ago(t.into(), NOW.into());
        assert_eq!(ago_("2026-11-26T11:59:58.000Z"), "just now");
        assert_eq!(ago_("2026-11-26T11:59:18.500Z"), "41s ago");
        assert_eq!(ago_("2026-11-26T11:55:00Z"), "5m ago");
        assert_eq!(ago_("2026-11-26T09:00:00+00:00"), "3h ago");
        assert_eq!(ago_("2026-11-24T12:00:00Z"), "2d ago");
        assert_eq!(ago_("2026-09-01T08:00:00Z"), "2026-09-01");
        assert_eq!(ago_("2026-11-26T12:05:00Z"), "just now");
        assert_eq!(ago_("yesterday"), "yesterday");
    }

    #[test]
    fn durations_keep_two_units() {
        assert_eq!(compact_duration(0), "0s");
        assert_eq!(compact_duration(64), "1m 04s");
        assert_eq!(compact_duration(7_500), "2h 05m");
        assert_eq!(compact_duration(273_600), "3d 04h");
        assert_eq!(compact_duration(-3), "0s");
        assert_eq!(
            took(
                Some("2026-11-26T12:00:00Z".into()),
                Some("2026-11-26T12:01:04.900Z".into())
            ),
            "1m 04s"
        );
        assert_eq!(took(Some("2026-11-26T12:00:00Z".into()), None), "");
        assert_eq!(took(Some("nope".into()), Some(NOW.into())), "");
    }

    #[test]
    fn exact_is_utc() {
        assert_eq!(
            exact("2026-11-26T14:00:05+02:00".into()),
            "2026-11-26 12:00:05 UTC"
        );
        assert_eq!(exact("garbage".into()), "garbage");
    }

    #[test]
    fn status_class_only_known_names() {
        assert_eq!(status_class("running".into()), "st-running");
        assert_eq!(status_class("x\" onclick=\"y".into()), "st-unknown");
    }

    #[test]
    fn abbrev_cuts_on_characters() {
        assert_eq!(abbrev("sha256:0123456789".into(), 10), "sha256:01…");
        assert_eq!(abbrev("ééé".into(), 3), "ééé");
        assert_eq!(abbrev("éééé".into(), 3), "éé…");
    }

    #[test]
    fn urlencode_leaves_one_segment() {
        assert_eq!(urlencode("apt_repo-1.x~".into()), "apt_repo-1.x~");
        assert_eq!(urlencode("a/b c?&é".into()), "a%2Fb%20c%3F%26%C3%A9");
    }
}
