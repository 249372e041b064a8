//! Debian version ordering (deb-version(7)): epoch, upstream version and revision compared with
//! dpkg's rules, `~` sorting before anything, even the end of the string.

use std::cmp::Ordering;

/// Checks a version string is one apt and dpkg accept.
pub fn validate(v: &str) -> Result<(), String> {
    if v.is_empty() {
        return Err("empty version".into());
    }
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (Some(e), r),
        None => (None, v),
    };
    if let Some(e) = epoch {
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("version '{v}' has a bad epoch"));
        }
    }
    let upstream = rest.rsplit_once('-').map(|(u, _)| u).unwrap_or(rest);
    if !upstream.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!("version '{v}' must start with a digit"));
    }
    if !rest
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"+.~-:".contains(&b))
    {
        return Err(format!(
            "version '{v}' has characters outside [A-Za-z0-9.+~-:]"
        ));
    }
    Ok(())
}

/// The version as it appears in file names: without the epoch.
pub fn without_epoch(v: &str) -> &str {
    v.split_once(':').map(|(_, r)| r).unwrap_or(v)
}

pub fn compare(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| compare_part(ua, ub))
        .then_with(|| compare_part(ra, rb))
}

fn split(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (e.parse().unwrap_or(0), r),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

fn order(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_digit() => 0,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

fn compare_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a.as_bytes(), b.as_bytes());
    while !a.is_empty() || !b.is_empty() {
        // Non-digit prefix, compared with the special order.
        loop {
            let ca = a.first().copied().filter(|c| !c.is_ascii_digit());
            let cb = b.first().copied().filter(|c| !c.is_ascii_digit());
            if ca.is_none() && cb.is_none() {
                break;
            }
            let (oa, ob) = (order(ca), order(cb));
            if oa != ob {
                return oa.cmp(&ob);
            }
            a = &a[1..];
            b = &b[1..];
        }
        // Digit run, compared as a number.
        let da = a.iter().take_while(|c| c.is_ascii_digit()).count();
        let db = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let na = std::str::from_utf8(&a[..da])
            .unwrap_or("0")
            .trim_start_matches('0');
        let nb = std::str::from_utf8(&b[..db])
            .unwrap_or("0")
            .trim_start_matches('0');
        let ord = na.len().cmp(&nb.len()).then_with(|| na.cmp(nb));
        if ord != Ordering::Equal {
            return ord;
        }
        a = &a[da..];
        b = &b[db..];
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cmp::Ordering::*;

    #[test]
    fn dpkg_ordering() {
        for (a, b, want) in [
            ("1.0", "1.0", Equal),
            ("1.0", "1.1", Less),
            ("1.10", "1.9", Greater),
            ("1.0~rc1", "1.0", Less),
            ("1.0", "1.0+b1", Less),
            ("1:0.1", "2.0", Greater),
            ("1.0-1", "1.0-2", Less),
            ("1.0a", "1.0", Greater),
            ("1.0~~", "1.0~", Less),
            ("74.0.1", "71.0.1", Greater),
        ] {
            assert_eq!(compare(a, b), want, "{a} vs {b}");
        }
    }

    #[test]
    fn validation() {
        assert!(validate("1:2.3-4").is_ok());
        assert!(validate("abc").is_err());
        assert!(validate("1.0 beta").is_err());
        assert!(validate("x:1.0").is_err());
        assert_eq!(without_epoch("2:1.0-1"), "1.0-1");
    }
}
