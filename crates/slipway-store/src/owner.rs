//! Which process owns a running run, so a crashed owner can be told from a live one.

/// This process's pid and kernel start time (clock ticks since boot). The pair tells a live owner
/// from a later process that reused its pid.
pub fn current() -> (i64, String) {
    let pid = std::process::id() as i64;
    (pid, start_time(pid).unwrap_or_default())
}

pub fn is_alive(pid: i64, start: &str) -> bool {
    if pid <= 0 {
        return false;
    }
    match start_time(pid) {
        Some(actual) => start.is_empty() || actual == start,
        None => false,
    }
}

pub fn start_time(pid: i64) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3; starttime is field 22.
    rest.split_whitespace().nth(19).map(str::to_string)
}

/// Kills a process group left by a crashed run, if its leader is still the process we started.
pub fn kill_group_if_alive(pgid: i64, start: &str) -> bool {
    if pgid <= 1 || start.is_empty() || !is_alive(pgid, start) {
        return false;
    }
    // SAFETY: kill(2) with a negative pid signals a process group; no memory is touched.
    unsafe { libc::kill(-(pgid as i32), libc::SIGKILL) == 0 }
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_is_alive_and_a_wrong_start_is_not() {
        let (pid, start) = super::current();
        assert!(!start.is_empty());
        assert!(super::is_alive(pid, &start));
        assert!(!super::is_alive(pid, "1"));
        assert!(!super::is_alive(i32::MAX as i64, ""));
    }
}
