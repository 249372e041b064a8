//! `slipway bench serve`: the service under load. Writes a project with 30 milestones and a
//! store holding `--runs` finished runs of history (through the store API), starts the real
//! `slipway serve` on it (this binary, on an ephemeral port of 127.0.0.1), then drives each of
//! `PATHS` with `wrk` (`--connections` concurrent clients, `--latency`) and prints p50, p99 and
//! requests per second per path, against issue 9's target: p99 under 100 ms at 200 clients
//! and 10,000 runs.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use slipway_store::{NewRun, RunOrigin, RunStatus, Store};

/// What is measured: the run list and the branch table with each row's latest runs (what the
/// dashboard home shows). The dashboard home `/` joins this list when it lands.
pub const PATHS: [&str; 3] = ["/", "/api/v1/branches", "/api/v1/runs"];

/// Issue 9's latency target for p99.
const TARGET_P99: Duration = Duration::from_millis(100);

const JOBS: [&str; 3] = ["ci", "images", "tests"];
const BUILDS: [&str; 4] = ["packages", "image", "publish", "suite"];

pub struct Options {
    pub runs: usize,
    pub milestones: u32,
    pub connections: usize,
    pub seconds: u64,
}

/// `slipway serve`, stopped with SIGTERM when dropped.
struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        // SAFETY: a plain kill(2) of our own child.
        unsafe {
            libc::kill(self.0.id() as i32, libc::SIGTERM);
        }
        let _ = self.0.wait();
    }
}

pub async fn run(opts: Options) -> Result<ExitCode> {
    if opts.runs == 0 || opts.milestones == 0 || opts.connections == 0 || opts.seconds == 0 {
        bail!("--runs, --milestones, --connections and --seconds must be at least 1");
    }
    if Command::new("wrk").arg("--version").output().is_err() {
        bail!("wrk is not installed (Debian package wrk; scripts/setup-host.sh installs it)");
    }
    let dir = tempfile::Builder::new()
        .prefix("slipway-bench-serve")
        .tempdir()?;
    write_project(dir.path(), opts.milestones)?;
    let data_dir = dir.path().join(".slipway");
    let started = Instant::now();
    fill_history(&data_dir, opts.runs, opts.milestones).await?;
    let filled = started.elapsed();

    let (_server, url) = start_server(dir.path())?;
    let mut report = String::new();
    writeln!(
        report,
        "slipway serve under load: {} runs of history, {} milestones x {} jobs, {} connections, {} s per path (wrk --latency)",
        opts.runs,
        opts.milestones,
        JOBS.len(),
        opts.connections,
        opts.seconds
    )?;
    writeln!(
        report,
        "  history written in {:.1} s through the store API",
        filled.as_secs_f64()
    )?;
    writeln!(
        report,
        "  {:<20} {:>10} {:>10} {:>10} {:>11}",
        "path", "bytes", "p50", "p99", "requests/s"
    )?;
    let mut worst = Duration::ZERO;
    for path in PATHS {
        let bytes = check_path(&url, path).await?;
        let m = wrk(&format!("{url}{path}"), opts.connections, opts.seconds)?;
        worst = worst.max(m.p99);
        writeln!(
            report,
            "  {path:<20} {bytes:>10} {:>7.2} ms {:>7.2} ms {:>11.0}",
            ms(m.p50),
            ms(m.p99),
            m.requests_per_sec
        )?;
    }
    writeln!(
        report,
        "  worst p99 / target: {:.2} ms / {:.0} ms = {:.2} (p99 under {:.0} ms: {})",
        ms(worst),
        ms(TARGET_P99),
        worst.as_secs_f64() / TARGET_P99.as_secs_f64(),
        ms(TARGET_P99),
        if worst < TARGET_P99 { "yes" } else { "no" }
    )?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// A config with `milestones` active rows (all on `main`: nothing is polled, every job is
/// manual) and a git repo for it.
fn write_project(dir: &Path, milestones: u32) -> Result<()> {
    let repo = dir.join("repo");
    std::fs::create_dir_all(&repo)?;
    std::fs::write(repo.join("README"), "bench\n")?;
    for args in [
        &["init", "--quiet", "--initial-branch=main"][..],
        &["add", "README"],
        &[
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@example.org",
            "commit",
            "--quiet",
            "-m",
            "init",
        ],
    ] {
        let st = Command::new("git")
            .arg("-C")
            .arg(&repo)
            .args(args)
            .status()
            .context("cannot run git")?;
        if !st.success() {
            bail!("git {args:?} failed");
        }
    }
    let mut toml = String::from("[project]\nname = \"bench\"\nrepo = \"repo\"\n");
    for m in 1..=milestones {
        write!(
            toml,
            "\n[[branches]]\nchannel = \"c{m}\"\nmilestone = {m}\nbranch = \"main\"\n"
        )?;
    }
    toml.push_str("\n[server]\npoll_interval = \"1h\"\naudit_interval = \"1h\"\n");
    for job in JOBS {
        write!(
            toml,
            "\n[jobs.{job}]\ntrigger = \"manual\"\nbranches = \"active\"\nbuilds = {BUILDS:?}\n"
        )?;
    }
    for b in BUILDS {
        write!(toml, "\n[builds.{b}]\nsteps = [\"true\"]\n")?;
    }
    std::fs::write(dir.join("slipway.toml"), toml)?;
    Ok(())
}

/// `runs` ended runs spread over every job and milestone, oldest first, each with its builds.
async fn fill_history(data_dir: &Path, runs: usize, milestones: u32) -> Result<()> {
    let store = Store::open(data_dir).await?;
    let builds: Vec<(String, Vec<String>)> = BUILDS
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let needs = if i == 0 {
                vec![]
            } else {
                vec![BUILDS[i - 1].to_string()]
            };
            (b.to_string(), needs)
        })
        .collect();
    for i in 0..runs {
        let job = JOBS[i % JOBS.len()];
        let milestone = (i / JOBS.len()) as u32 % milestones + 1;
        let instance = format!("bench/{milestone}/{job}");
        let channel = format!("c{milestone}");
        let commit = format!("{i:040x}");
        let run = NewRun {
            instance: &instance,
            project: "bench",
            job,
            milestone,
            channel: &channel,
            branch: "main",
            commit: Some(&commit),
            flow: "continuous",
        };
        let origin = RunOrigin {
            trigger: "continuous".into(),
            requested_by: None,
            retry_of: None,
        };
        let id = store.enqueue_run(&run, &builds, &origin).await?;
        let (status, error) = if i % 10 == 7 {
            (RunStatus::Failure, Some("build 'suite' failed"))
        } else {
            (RunStatus::Success, None)
        };
        store.finish_run(id, status, error).await?;
    }
    Ok(())
}

fn start_server(dir: &Path) -> Result<(Served, String)> {
    let log = std::fs::File::create(dir.join("serve.log"))?;
    let mut child = Command::new(std::env::current_exe()?)
        .current_dir(dir)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "slipway.toml",
        ])
        .arg("--data-dir")
        .arg(dir.join(".slipway"))
        .env("SLIPWAY_LOG", "warn")
        .env_remove("SLIPWAY_ADMIN_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("cannot start slipway serve")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let served = Served(child);
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        if let Some(url) = line?.strip_prefix("slipway serve: dashboard at ") {
            let url = url.trim_end_matches('/').to_string();
            // Drain the rest so the server never blocks on a full pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Ok((served, url));
        }
    }
    let text = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
    bail!("slipway serve did not start:\n{text}")
}

/// One request before the load: the path must answer 200; its size in bytes.
async fn check_path(url: &str, path: &str) -> Result<usize> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?;
    let r = client.get(format!("{url}{path}")).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    if !status.is_success() {
        bail!(
            "GET {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    Ok(body.len())
}

struct Measured {
    p50: Duration,
    p99: Duration,
    requests_per_sec: f64,
}

fn wrk(url: &str, connections: usize, seconds: u64) -> Result<Measured> {
    let threads = connections.clamp(1, 2).to_string();
    let out = Command::new("wrk")
        .args(["-t", &threads, "-c", &connections.to_string()])
        .args([
            "-d",
            &format!("{seconds}s"),
            "--timeout",
            "10s",
            "--latency",
        ])
        .arg(url)
        .output()
        .context("cannot run wrk")?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!("wrk failed: {text}{}", String::from_utf8_lossy(&out.stderr));
    }
    parse_wrk(&text).with_context(|| format!("cannot read wrk's report:\n{text}"))
}

/// p50, p99 and requests/s from `wrk --latency`; a run with failed requests is an error.
fn parse_wrk(text: &str) -> Result<Measured> {
    if let Some(line) = text.lines().find(|l| {
        l.trim_start().starts_with("Non-2xx") || l.trim_start().starts_with("Socket errors")
    }) {
        bail!("requests failed: {}", line.trim());
    }
    let percentile = |p: &str| -> Result<Duration> {
        let value = text
            .lines()
            .find_map(|l| l.trim().strip_prefix(p)?.split_whitespace().next())
            .with_context(|| format!("no {p} latency"))?;
        wrk_duration(value)
    };
    let requests_per_sec = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .context("no Requests/sec")?
        .trim()
        .parse()?;
    Ok(Measured {
        p50: percentile("50%")?,
        p99: percentile("99%")?,
        requests_per_sec,
    })
}

/// wrk's durations: `812.00us`, `3.25ms`, `1.02s`, `2.00m`.
fn wrk_duration(v: &str) -> Result<Duration> {
    let split = v
        .find(|c: char| c.is_ascii_alphabetic())
        .with_context(|| format!("no unit in '{v}'"))?;
    let (n, unit) = v.split_at(split);
    let n: f64 = n.parse().with_context(|| format!("not a number: '{v}'"))?;
    let secs = match unit {
        "us" => n / 1e6,
        "ms" => n / 1e3,
        "s" => n,
        "m" => n * 60.0,
        _ => bail!("unknown unit in '{v}'"),
    };
    Ok(Duration::from_secs_f64(secs))
}

#[cfg(test)]
mod tests {
    use super::{parse_wrk, wrk_duration};
    use std::time::Duration;

    const REPORT: &str = "Running 2s test @ http://127.0.0.1:1/api/v1/runs
  2 threads and 20 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     3.10ms    1.20ms  20.01ms   80.00%
    Req/Sec     3.20k   100.00     3.40k    70.00%
  Latency Distribution
     50%  812.00us
     75%    3.00ms
     90%    4.00ms
     99%   12.50ms
  12800 requests in 2.00s, 10.00MB read
Requests/sec:   6400.12
Transfer/sec:      5.00MB
";

    #[test]
    fn reads_wrk_latency_reports() {
        let m = parse_wrk(REPORT).unwrap();
        assert_eq!(m.p50, Duration::from_micros(812));
        assert_eq!(m.p99, Duration::from_micros(12_500));
        assert!((m.requests_per_sec - 6400.12).abs() < 1e-9);
        let failed = REPORT.replace(
            "Requests/sec",
            "  Non-2xx or 3xx responses: 5\nRequests/sec",
        );
        assert!(parse_wrk(&failed).is_err());
        assert_eq!(wrk_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(wrk_duration("12").is_err());
        assert!(wrk_duration("1.0h").is_err());
    }
}
