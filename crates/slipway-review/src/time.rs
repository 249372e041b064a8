//! Gerrit timestamps: `2026-11-26 09:59:32.126000000`, UTC, up to nanoseconds.

use chrono::{DateTime, NaiveDateTime};

/// Nanoseconds since the epoch of a Gerrit timestamp; `None` if it is not one.
pub fn parse_gerrit_time(text: &str) -> Option<i64> {
    let t = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S%.f").ok()?;
    t.and_utc().timestamp_nanos_opt()
}

/// The Gerrit timestamp of nanoseconds since the epoch (for `after:` queries).
pub fn format_gerrit_time(nanos: i64) -> String {
    DateTime::from_timestamp_nanos(nanos)
        .naive_utc()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_garbage() {
        let n = parse_gerrit_time("2026-11-26 09:59:32.126000000").unwrap();
        assert_eq!(format_gerrit_time(n), "2026-11-26 09:59:32.126");
        assert_eq!(
            parse_gerrit_time("2026-11-26 09:59:32"),
            Some(n - 126_000_000)
        );
        assert!(parse_gerrit_time("yesterday").is_none());
        assert!(parse_gerrit_time("").is_none());
    }
}
