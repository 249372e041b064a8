//! `slipway bench apt`: Slipway's apt repository builder, cold and incremental, side by side
//! with apt-ftparchive, dpkg-scanpackages and reprepro on the same generated .debs, with two
//! floors over the same bytes: `sha256sum` (one process) and `openssl dgst -sha256` in as many
//! processes as cores (SHA extensions where the CPU has them: the true floor); then `slipway apt
//! sign` of the result against `gpg --clearsign` of the same Release. Tools that are not
//! installed are reported as such.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use slipway_apt::testdeb::make_deb;
use slipway_apt::{BuildOptions, Distribution, Input, build_repo};

/// Deterministic pseudo-random bytes (xorshift64*): incompressible payloads without a seed file.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
    /// Log-uniform in [lo, hi]: many small packages, a few large ones, as in real archives.
    fn size(&mut self, lo: u64, hi: u64) -> u64 {
        let u = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        ((lo as f64).ln() + u * ((hi as f64).ln() - (lo as f64).ln())).exp() as u64
    }
}

fn write_corpus(
    dir: &Path,
    prefix: &str,
    n: usize,
    lo: u64,
    hi: u64,
) -> Result<(Vec<PathBuf>, u64)> {
    std::fs::create_dir_all(dir)?;
    let mut rng = Rng(0x5151_7a7a_0123_4567);
    let mut files = Vec::with_capacity(n);
    let mut total = 0;
    for i in 0..n {
        let size = rng.size(lo, hi);
        let mut payload = vec![0u8; size as usize];
        rng.fill(&mut payload);
        let name = format!("{prefix}{i:05}");
        let control = format!(
            "Package: {name}\nVersion: 1.{i}-1\nArchitecture: all\nMaintainer: Bench <bench@example.org>\nSection: misc\nPriority: optional\nDescription: benchmark package {i}\n Generated payload of {size} bytes.\n"
        );
        let path = dir.join(format!("{name}_1.{i}-1_all.deb"));
        let bytes = make_deb(&control, "gz", &payload);
        total += bytes.len() as u64;
        std::fs::write(&path, bytes)?;
        files.push(path);
    }
    Ok((files, total))
}

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn timed(cmd: &mut Command) -> Result<Duration> {
    let start = Instant::now();
    let out = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("{cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(start.elapsed())
}

pub fn run(n: usize, lo: u64, hi: u64) -> Result<ExitCode> {
    if n == 0 || lo == 0 || hi < lo {
        bail!("need --debs >= 1 and 0 < --min-size <= --max-size");
    }
    let tmp = tempfile::Builder::new()
        .prefix("slipway-bench-apt")
        .tempdir()?;
    let dir = tmp.path();
    eprintln!("generating {n} .debs ...");
    let (mut files, total) = write_corpus(&dir.join("debs"), "bench-pkg", n, lo, hi)?;
    let dist = Distribution {
        origin: Some("Bench".into()),
        label: Some("bench".into()),
        suites: [("bookworm".into(), "stable".into())].into(),
        version: None,
        codenames: vec!["bookworm".into()],
        components: vec!["main".into()],
        architectures: vec!["amd64".into()],
        description: None,
        valid_for: None,
    };
    let inputs = |files: &[PathBuf]| -> Vec<Input> {
        files
            .iter()
            .map(|p| Input {
                codename: "bookworm".into(),
                component: "main".into(),
                path: p.clone(),
            })
            .collect()
    };
    let opts = BuildOptions {
        date: 1_700_000_000,
        cache: Some(dir.join("cache.json")),
    };
    let mut rows: Vec<(&str, Option<Duration>, String)> = Vec::new();

    // Floors: hashing the same bytes once, in one process and in one per core.
    let floor = timed(Command::new("sha256sum").args(&files))?;
    rows.push(("sha256sum (1 process)", Some(floor), String::new()));
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    let parallel_floor = if have("openssl") {
        let t = openssl_floor(dir, &files, cores)?;
        rows.push((
            "openssl dgst -sha256 (floor)",
            Some(t),
            format!("{cores} processes"),
        ));
        Some(t)
    } else {
        rows.push((
            "openssl dgst -sha256 (floor)",
            None,
            "not installed (openssl)".into(),
        ));
        None
    };

    let start = Instant::now();
    let cold_report = build_repo(&dist, &inputs(&files), &dir.join("repo"), &opts)?;
    let cold = start.elapsed();
    rows.push((
        "slipway apt build (cold)",
        Some(cold),
        format!("{} packages", cold_report.packages),
    ));

    let (extra, _) = write_corpus(&dir.join("debs-extra"), "bench-extra", 1, lo, lo * 2)?;
    let moved = dir.join("debs").join("bench-extra00000_1.0-1_all.deb");
    std::fs::rename(&extra[0], &moved)?;
    files.push(moved);
    let start = Instant::now();
    let inc_report = build_repo(&dist, &inputs(&files), &dir.join("repo"), &opts)?;
    let incremental = start.elapsed();
    rows.push((
        "slipway apt build (+1 deb)",
        Some(incremental),
        format!(
            "{} read, {} unchanged",
            inc_report.debs_read, inc_report.debs_cached
        ),
    ));

    let debs_dir = dir.join("debs");
    if have("apt-ftparchive") {
        rows.push((
            "apt-ftparchive packages",
            Some(timed(
                Command::new("apt-ftparchive")
                    .arg("packages")
                    .arg(&debs_dir),
            )?),
            String::new(),
        ));
    } else {
        rows.push((
            "apt-ftparchive packages",
            None,
            "not installed (apt-utils)".into(),
        ));
    }
    if have("dpkg-scanpackages") {
        rows.push((
            "dpkg-scanpackages",
            Some(timed(
                Command::new("dpkg-scanpackages")
                    .arg("--multiversion")
                    .arg(&debs_dir)
                    .arg("/dev/null"),
            )?),
            String::new(),
        ));
    } else {
        rows.push(("dpkg-scanpackages", None, "not installed (dpkg-dev)".into()));
    }
    if have("reprepro") {
        let rr = dir.join("reprepro");
        std::fs::create_dir_all(rr.join("conf"))?;
        std::fs::write(
            rr.join("conf/distributions"),
            "Codename: bookworm\nArchitectures: amd64\nComponents: main\n",
        )?;
        let d = timed(
            Command::new("reprepro")
                .arg("-b")
                .arg(&rr)
                .arg("includedeb")
                .arg("bookworm")
                .args(&files),
        )?;
        rows.push(("reprepro includedeb", Some(d), String::new()));
    } else {
        rows.push(("reprepro includedeb", None, "not installed".into()));
    }

    // Signing the repository just built: `slipway apt sign` (the command, as a user runs it)
    // against `gpg --clearsign` of the same Release file with the same key.
    let (sign_time, gpg_time, verify_time) = bench_sign(dir, &dir.join("repo"))?;
    rows.push((
        "gpg --clearsign Release",
        gpg_time,
        match gpg_time {
            Some(_) => "same Release, same key".into(),
            None => "not installed (gnupg)".into(),
        },
    ));
    rows.push((
        "slipway apt sign",
        Some(sign_time),
        match gpg_time {
            Some(g) => format!(
                "{:.2}x gpg --clearsign",
                sign_time.as_secs_f64() / g.as_secs_f64().max(1e-9)
            ),
            None => String::new(),
        },
    ));
    rows.push((
        "slipway apt verify",
        Some(verify_time),
        "signatures, indices, every pool file hashed once".into(),
    ));

    println!(
        "apt benchmark: {} .debs, {:.1} MiB ({}-{} bytes each, log-uniform), {} cores",
        files.len(),
        total as f64 / (1 << 20) as f64,
        lo,
        hi,
        cores
    );
    println!(
        "  {:<28} {:>10} {:>14}",
        "tool", "seconds", "vs slipway cold"
    );
    for (name, t, note) in &rows {
        match t {
            Some(t) => println!(
                "  {name:<28} {:>10.3} {:>13.2}x  {note}",
                t.as_secs_f64(),
                t.as_secs_f64() / cold.as_secs_f64().max(1e-9)
            ),
            None => println!("  {name:<28} {:>10} {:>14}  {note}", "-", "-"),
        }
    }
    let ftparchive = rows
        .iter()
        .find(|r| r.0 == "apt-ftparchive packages")
        .and_then(|r| r.1);
    println!("targets:");
    if let Some(f) = ftparchive {
        println!(
            "  cold <= apt-ftparchive:      {:.3}s vs {:.3}s  {}",
            cold.as_secs_f64(),
            f.as_secs_f64(),
            verdict(cold <= f)
        );
    }
    let speedup = cold.as_secs_f64() / incremental.as_secs_f64().max(1e-9);
    println!(
        "  incremental >= 20x faster:   {speedup:.1}x  {}",
        verdict(speedup >= 20.0)
    );
    println!(
        "  apt sign under 50 ms:        {:.3}s  {}",
        sign_time.as_secs_f64(),
        verdict(sign_time < Duration::from_millis(50))
    );
    let vs_floor = cold.as_secs_f64() / floor.as_secs_f64().max(1e-9);
    println!(
        "  cold within 2x of sha256sum: {vs_floor:.2}x  {}",
        verdict(vs_floor <= 2.0)
    );
    if let Some(p) = parallel_floor {
        let vs_openssl = cold.as_secs_f64() / p.as_secs_f64().max(1e-9);
        println!(
            "  cold within 2x of openssl:   {vs_openssl:.2}x  {}",
            verdict(vs_openssl <= 2.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `openssl dgst -sha256` over `files`, started by `xargs` in `cores` parallel processes, each
/// given a slice of the list (a few slices per core, so one slow slice does not leave cores idle).
fn openssl_floor(dir: &Path, files: &[PathBuf], cores: usize) -> Result<Duration> {
    use std::os::unix::ffi::OsStrExt;
    let list = dir.join("openssl-files");
    let mut names = Vec::new();
    for f in files {
        names.extend_from_slice(f.as_os_str().as_bytes());
        names.push(0);
    }
    std::fs::write(&list, names)?;
    let chunk = files.len().div_ceil(cores * 4).max(1);
    timed(
        Command::new("xargs")
            .arg("-0")
            .arg("-a")
            .arg(&list)
            .args(["-P", &cores.to_string(), "-n", &chunk.to_string()])
            .args(["openssl", "dgst", "-sha256"]),
    )
}

/// The fastest of a few runs: signing takes milliseconds, so one run is mostly noise.
fn best_of(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut best = f()?;
    for _ in 1..runs {
        best = best.min(f()?);
    }
    Ok(best)
}

/// Times `slipway apt sign` on `repo` (this binary, a fresh process per run) and, when gpg is
/// installed, `gpg --clearsign` of its Release with the same key imported into a private
/// GNUPGHOME (no keyserver, no network; its agent is stopped afterwards).
/// Also times `slipway apt verify` of the signed repository (the complete check, which signing
/// no longer repeats).
fn bench_sign(dir: &Path, repo: &Path) -> Result<(Duration, Option<Duration>, Duration)> {
    let key = slipway_apt::keys::generate(
        "Slipway Bench <bench@example.org>",
        slipway_apt::keys::KeyKind::Ed25519,
    )?;
    let keys_dir = dir.join("keys");
    slipway_apt::keys::write_key_files(&keys_dir, &key)?;
    let secret = keys_dir.join("signing-key.asc");
    let exe = std::env::current_exe().context("cannot find the slipway binary")?;
    let sign = best_of(3, || {
        timed(
            Command::new(&exe)
                .args(["apt", "sign"])
                .arg(repo)
                .arg("--key")
                .arg(&secret)
                .args(["--digest", "sha256"]),
        )
    })?;
    let verify = timed(
        Command::new(&exe)
            .args(["apt", "verify"])
            .arg(repo)
            .arg("--keyring")
            .arg(keys_dir.join("keyring.gpg")),
    )?;
    if !have("gpg") {
        return Ok((sign, None, verify));
    }
    let home = tempfile::Builder::new().prefix("slipway-gpg").tempdir()?;
    let gpg = || {
        let mut c = Command::new("gpg");
        c.env("GNUPGHOME", home.path())
            .args(["--batch", "--yes", "--no-auto-key-retrieve"]);
        c
    };
    timed(gpg().arg("--import").arg(&secret))?;
    let release = repo.join("dists/bookworm/Release");
    let out = dir.join("InRelease.gpg-bench");
    let clearsign = || {
        timed(
            gpg()
                .args(["--pinentry-mode", "loopback", "--passphrase", ""])
                .args(["--digest-algo", "SHA256", "--local-user"])
                .arg(slipway_apt::keys::fingerprint(&key))
                .arg("--output")
                .arg(&out)
                .arg("--clearsign")
                .arg(&release),
        )
    };
    // The first run starts gpg-agent; time the runs after it.
    let result = clearsign().and_then(|_| best_of(3, clearsign));
    let _ = Command::new("gpgconf")
        .env("GNUPGHOME", home.path())
        .args(["--kill", "gpg-agent"])
        .status();
    Ok((sign, Some(result?), verify))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "MISSED" }
}
