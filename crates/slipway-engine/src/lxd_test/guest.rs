//! Work inside the container: `lxc exec` as root or as a user, waiting for the system to boot
//! and running the configured checks.

use std::time::Duration;

use slipway_config::LxdCheck;
use tokio::time::Instant;

use super::capture::{Out, output};
use super::daemon::Daemon;
use super::report::Outcome;

#[derive(Clone)]
pub(super) struct UserEnv {
    name: Option<String>,
    gid: u32,
    home: String,
}

impl Daemon {
    /// `lxc exec` of `argv` in the container, as root or as a user with its session variables.
    async fn exec(
        &self,
        argv: &[String],
        user: Option<(u32, &UserEnv)>,
        limit: Option<Duration>,
    ) -> Result<Out, String> {
        let mut args: Vec<String> = vec!["exec".into(), self.container.clone(), "-T".into()];
        if let Some((uid, u)) = user {
            args.extend([
                "--user".into(),
                uid.to_string(),
                "--group".into(),
                u.gid.to_string(),
                "--cwd".into(),
                u.home.clone(),
                "--env".into(),
                format!("HOME={}", u.home),
                "--env".into(),
                format!("XDG_RUNTIME_DIR=/run/user/{uid}"),
            ]);
            if let Some(name) = &u.name {
                args.extend([
                    "--env".into(),
                    format!("USER={name}"),
                    "--env".into(),
                    format!("LOGNAME={name}"),
                ]);
            }
        }
        args.push("--".into());
        args.extend(argv.iter().cloned());
        let mut cmd = self.command("lxc");
        cmd.args(&args);
        output(cmd, limit, None).await
    }

    /// The passwd entry of `uid` in the container (home `/` and gid = uid when there is none).
    async fn user_env(&mut self, uid: u32) -> UserEnv {
        if let Some((_, u)) = self.users.iter().find(|(id, _)| *id == uid) {
            return u.clone();
        }
        let argv = ["getent".to_string(), "passwd".into(), uid.to_string()];
        let found = match self.exec(&argv, None, Some(Duration::from_secs(30))).await {
            Ok(o) if o.ok() => parse_passwd(&o.stdout),
            _ => None,
        };
        let u = found.unwrap_or(UserEnv {
            name: None,
            gid: uid,
            home: "/".into(),
        });
        self.users.push((uid, u.clone()));
        u
    }

    /// `test_system_boots`: `systemctl is-system-running` says running or degraded in time.
    pub(super) async fn wait_boot(&self, boot_timeout: Duration) -> Outcome {
        let end = Instant::now() + boot_timeout;
        let argv = ["systemctl".to_string(), "is-system-running".into()];
        let last = loop {
            let left = end.saturating_duration_since(Instant::now());
            let answer = match self
                .exec(&argv, None, Some(left.max(Duration::from_secs(5))))
                .await
            {
                Ok(o) => {
                    let state = o.stdout.trim().to_string();
                    if state == "running" || state == "degraded" {
                        if state == "degraded" {
                            self.log.info("the system is degraded; failed units:");
                            self.show(&["systemctl", "--failed", "--no-legend", "--plain"])
                                .await;
                        }
                        return Outcome::Passed;
                    }
                    if state.is_empty() {
                        o.describe()
                    } else {
                        state
                    }
                }
                Err(e) => e,
            };
            if Instant::now() + Duration::from_secs(1) >= end {
                break answer;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        };
        self.log.info("jobs still queued and failed units:");
        self.show(&["systemctl", "list-jobs", "--no-legend"]).await;
        self.show(&["systemctl", "--failed", "--no-legend", "--plain"])
            .await;
        Outcome::Failed(format!(
            "the system was not running or degraded within {}s (last state: {last})",
            boot_timeout.as_secs()
        ))
    }

    /// Runs a diagnostic command in the container into the build log.
    async fn show(&self, argv: &[&str]) {
        let argv: Vec<String> = argv.iter().map(|a| a.to_string()).collect();
        if let Ok(o) = self.exec(&argv, None, Some(Duration::from_secs(30))).await {
            o.log_to(&self.log, "out");
        }
    }

    pub(super) async fn check(&mut self, check: &LxdCheck) -> Outcome {
        let user = match check.user {
            Some(uid) => Some((uid, self.user_env(uid).await)),
            None => None,
        };
        let retry_end = check.retry_for.map(|r| Instant::now() + r);
        let mut attempts = 0u32;
        loop {
            attempts += 1;
            // An attempt that hangs must not eat the retry window; without retries only the
            // build's timeout bounds it.
            let limit = retry_end.map(|end| {
                end.saturating_duration_since(Instant::now())
                    .max(Duration::from_secs(5))
            });
            let as_user = user.as_ref().map(|(uid, u)| (*uid, u));
            let why = match self.exec(&check.run, as_user, limit).await {
                Ok(o) if o.ok() => return Outcome::Passed,
                Ok(o) => o.describe(),
                Err(e) => e,
            };
            match retry_end {
                Some(end) if Instant::now() + Duration::from_secs(1) < end => {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
                _ => {
                    let tries = if attempts > 1 {
                        format!(" (after {attempts} attempts)")
                    } else {
                        String::new()
                    };
                    return Outcome::Failed(format!("`{}`{tries}: {why}", check.run.join(" ")));
                }
            }
        }
    }
}

fn parse_passwd(line: &str) -> Option<UserEnv> {
    let fields: Vec<&str> = line.trim().split(':').collect();
    if fields.len() < 7 {
        return None;
    }
    let home = fields[5];
    Some(UserEnv {
        name: Some(fields[0].to_string()).filter(|n| !n.is_empty()),
        gid: fields[3].parse().ok()?,
        home: if home.starts_with('/') { home } else { "/" }.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_lines() {
        let u = parse_passwd("guest:x:1000:1001:,,,:/home/guest:/bin/bash\n").unwrap();
        assert_eq!(
            (u.name.as_deref(), u.gid, u.home.as_str()),
            (Some("guest"), 1001, "/home/guest")
        );
        assert!(parse_passwd("").is_none());
        assert!(parse_passwd("a:x:1:zz:::/bin/sh").is_none());
        assert_eq!(parse_passwd("a:x:1:2::home:/bin/sh").unwrap().home, "/");
    }
}
