use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// Slipway: build, sign, publish and release OS guest artifacts per release milestone.
#[derive(Parser, Debug)]
#[command(name = "slipway", version)]
pub struct Cli {
    /// Service config file.
    #[arg(long, global = true, default_value = "slipway.toml")]
    pub config: PathBuf,
    /// Where runs, logs and artifacts are kept.
    #[arg(long, global = true, env = "SLIPWAY_HOME", default_value = ".slipway")]
    pub data_dir: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once per process: variant sizes do not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Check the service config and the builds of every branch the jobs run on.
    Validate,
    /// Show the ordered builds of a job instance, and what an untrusted job bypasses.
    Plan {
        job: String,
        #[arg(long)]
        milestone: u32,
        /// Plan with the builds file of this commit instead of the branch head.
        #[arg(long)]
        commit: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Run a job instance for a milestone (the branch head, or --commit).
    Run {
        job: String,
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        commit: Option<String>,
        /// Builds running at once.
        #[arg(long, short = 'j')]
        jobs: Option<usize>,
        /// Keep build workspaces under the data dir after the run.
        #[arg(long)]
        keep_workspaces: bool,
        #[arg(long)]
        json: bool,
    },
    /// Run the service: continuous triggers for every active milestone, the API and the
    /// dashboard, until SIGTERM or Ctrl-C.
    Serve {
        /// Address and port to listen on (default: `[server] listen`, else 127.0.0.1:8080).
        #[arg(long)]
        listen: Option<String>,
        /// Serve the example project in this folder (written there first if missing), with its
        /// data dir inside it.
        #[arg(long, value_name = "DIR")]
        example: Option<PathBuf>,
    },
    /// Queue a run of a job on a running server (token from SLIPWAY_TOKEN).
    Trigger {
        job: String,
        #[arg(long)]
        milestone: u32,
        /// A commit, tag or branch (default: the milestone branch's head).
        #[arg(long)]
        commit: Option<String>,
        #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        /// Wait for the run to end; exit 0 only if it succeeded.
        #[arg(long)]
        wait: bool,
        #[arg(long)]
        json: bool,
    },
    /// Cancel a run on a running server (token from SLIPWAY_TOKEN).
    Cancel {
        run: i64,
        #[arg(long, env = "SLIPWAY_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
    },
    /// List recent runs.
    Runs {
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[arg(long)]
        json: bool,
    },
    /// Show one run: its builds, steps and artifacts.
    Show {
        run: i64,
        #[arg(long)]
        json: bool,
    },
    /// Print a build's log.
    Logs {
        run: i64,
        build: String,
        /// Keep printing as the build writes, until it ends.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// List a build's artifacts, or copy them out.
    Artifacts {
        run: i64,
        build: String,
        /// Write the artifacts under this folder (their stored paths kept).
        #[arg(long)]
        export: Option<PathBuf>,
        #[arg(long)]
        json: bool,
    },
    /// Publish a local tree to a configured bucket, in safe order, skipping unchanged objects.
    Publish {
        dir: PathBuf,
        #[arg(long)]
        bucket: String,
        #[arg(long, default_value = "")]
        prefix: String,
        /// Fault injection for tests: stop after writing this many objects.
        #[arg(long, hide = true)]
        abort_after: Option<usize>,
    },
    /// Copy a milestone's candidate (default: the newest) from staging to production buckets,
    /// after finishing an interrupted promotion of the milestone.
    Promote {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        candidate: Option<i64>,
        /// Give up an interrupted promotion that cannot be finished instead of finishing it.
        #[arg(long)]
        abandon_interrupted: bool,
        #[arg(long)]
        json: bool,
    },
    /// Re-promote the release before the current one, after finishing an interrupted
    /// promotion of the milestone.
    Rollback {
        #[arg(long)]
        milestone: u32,
        /// Give up an interrupted promotion that cannot be finished instead of finishing it.
        #[arg(long)]
        abandon_interrupted: bool,
        #[arg(long)]
        json: bool,
    },
    /// Release history of a milestone (newest first).
    Releases {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        json: bool,
    },
    /// Why a milestone's candidates are (not yet) promoted: each one's state and reasons under
    /// the release policy (`[release]`).
    Why {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        candidate: Option<i64>,
        #[arg(long)]
        json: bool,
    },
    /// The release policy: evaluate it now.
    Release {
        #[command(subcommand)]
        command: ReleaseCommand,
    },
    /// Hold a milestone: the release policy promotes nothing automatically until `unhold`.
    Hold {
        #[arg(long)]
        milestone: u32,
        /// Why (shown with every candidate's promotion state).
        #[arg(long)]
        reason: Option<String>,
    },
    /// Lift a milestone's hold.
    Unhold {
        #[arg(long)]
        milestone: u32,
    },
    /// Candidates of a milestone (newest first): what continuous runs published to staging.
    Candidates {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        json: bool,
    },
    /// Compare every object the milestone's staging and production buckets serve with what the
    /// records say they serve; exit 1 on drift, one line per finding.
    Audit {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        json: bool,
    },
    /// Remove old runs, ended runs' workspaces, and artifact-store objects, logs and caches
    /// nothing kept needs, by the `[retention]` policy; what a release, its rollback chain or an
    /// open candidate needs is always kept.
    Gc {
        /// Report what would be removed; remove nothing.
        #[arg(long)]
        dry_run: bool,
        #[arg(long)]
        json: bool,
    },
    /// What a milestone's staging and production serve now (apt URLs and codenames, streams,
    /// VM images, candidate/release and digest), for labs to test and report against.
    Environments {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        json: bool,
    },
    /// Test verdicts about candidates and releases: list them, or record a lab's report.
    Suite {
        #[command(subcommand)]
        command: SuiteCommand,
    },
    /// Native apt repositories: build, sign, verify.
    Apt {
        #[command(subcommand)]
        command: AptCommand,
    },
    /// OpenPGP signing keys.
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Example project.
    Example {
        #[command(subcommand)]
        command: ExampleCommand,
    },
    /// What this host offers Slipway: the sandbox (bubblewrap, user namespaces, id ranges)
    /// and the cgroup layout used for limits and kill.
    Doctor,
    /// Benchmarks (not tests): print timings side by side with a baseline.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum AptCommand {
    /// Build a repository from .deb files (replaces the output only when the new one is whole).
    Build {
        /// Folder searched (recursively) for *.deb.
        #[arg(long)]
        debs: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// Codename (repeat for several suites with the same packages).
        #[arg(long = "codename", required = true)]
        codenames: Vec<String>,
        #[arg(long = "arch", default_values_t = ["amd64".to_string()])]
        architectures: Vec<String>,
        #[arg(long, default_value = "main")]
        component: String,
        #[arg(long)]
        origin: Option<String>,
        #[arg(long)]
        label: Option<String>,
        /// CODENAME=SUITE (repeat; each suite names one codename), or SUITE with one --codename.
        #[arg(long)]
        suite: Vec<String>,
        #[arg(long = "release-version")]
        version: Option<String>,
        #[arg(long)]
        description: Option<String>,
        /// Adds Valid-Until (e.g. 7d).
        #[arg(long)]
        valid_for: Option<String>,
        /// Incremental cache (default: under the data dir, one per output).
        #[arg(long)]
        cache: Option<PathBuf>,
    },
    /// Sign every dists/*/Release into InRelease and Release.gpg, then verify.
    Sign {
        repo: PathBuf,
        /// Armored or binary secret key file (repeat for several keys).
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        /// sha256 or sha512.
        #[arg(long, default_value = "sha512")]
        digest: String,
    },
    /// Check signatures, sizes, hashes, by-hash copies and the pool.
    Verify {
        repo: PathBuf,
        /// Keyring to check signatures against (binary or armored).
        #[arg(long)]
        keyring: Option<PathBuf>,
        /// Check a published tree as clients see it: InRelease is the authority, indices are
        /// read by hash, and earlier releases' pool files may remain.
        #[arg(long)]
        published: bool,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum ReleaseCommand {
    /// Evaluate the milestone's release policy now and do what it decides (promote the newest
    /// candidate that satisfies it, roll back a failing live release).
    Evaluate {
        #[arg(long)]
        milestone: u32,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum SuiteCommand {
    /// Suite results about a candidate: its run's reports and the labs'.
    List {
        #[arg(long)]
        candidate: i64,
        #[arg(long)]
        json: bool,
    },
    /// Record a lab's report about a candidate (staging, e.g. pfq) or a release (production,
    /// e.g. bvt-cq). The same report about the same digest is recorded once.
    #[command(group(clap::ArgGroup::new("target").required(true).args(["candidate", "release"])))]
    #[command(group(clap::ArgGroup::new("report").required(true).args(["junit", "tast"])))]
    Record {
        /// The candidate tested (its digest, as staging serves it).
        #[arg(long)]
        candidate: Option<i64>,
        /// The release tested (its candidate's digest, as production serves it).
        #[arg(long)]
        release: Option<i64>,
        /// The suite the report is for (required with --tast; without it each JUnit
        /// <testsuite> is recorded under its own name).
        #[arg(long)]
        suite: Option<String>,
        /// A JUnit XML report.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// A Tast results.json.
        #[arg(long)]
        tast: Option<PathBuf>,
        /// Where to read more (the lab's run page).
        #[arg(long)]
        link: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Write signing-key.asc (secret, 0600), keyring.gpg and keyring.asc into DIR.
    Generate {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "Slipway repository signing key <apt@localhost>")]
        uid: String,
        /// ed25519, rsa3072 or rsa4096.
        #[arg(long = "type", default_value = "ed25519")]
        kind: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExampleCommand {
    /// Write the crostini-guest example (config, product git repo with 4 branches, signing key).
    Init { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Publishing to a local S3 server: Slipway against `rclone sync`, cold and after one change.
    Publish {
        #[arg(long, default_value_t = 2000)]
        objects: usize,
        /// Total size of the tree in MiB.
        #[arg(long, default_value_t = 1024)]
        mib: u64,
        /// A running S3 server (http://127.0.0.1:PORT); default: start moto_server.
        #[arg(long)]
        endpoint: Option<String>,
    },
    /// apt repository building: Slipway cold and incremental against apt-ftparchive,
    /// dpkg-scanpackages, reprepro and the sha256sum floor, on the same generated .debs.
    Apt {
        #[arg(long, default_value_t = 2000)]
        debs: usize,
        /// Smallest and largest .deb (sizes are spread log-uniformly between them).
        #[arg(long, default_value_t = 10 * 1024)]
        min_size: u64,
        #[arg(long, default_value_t = 5 * 1024 * 1024)]
        max_size: u64,
    },
    /// Step start cost: plain spawn, Slipway's plain and sandboxed runners, `bwrap
    /// --unshare-all`, `unshare` with a 65,536-id map; `--example` adds the example job with
    /// and without the sandbox.
    Sandbox {
        #[arg(long, default_value_t = 200)]
        steps: usize,
        #[arg(long)]
        example: bool,
    },
    /// The service under load: `wrk` against the API of a `slipway serve` holding a long
    /// history; p50, p99 and requests/s per path.
    Serve {
        /// Runs of history in the store.
        #[arg(long, default_value_t = 10_000)]
        runs: usize,
        /// Rows of the branch table.
        #[arg(long, default_value_t = 30)]
        milestones: u32,
        /// Concurrent clients.
        #[arg(long, default_value_t = 200)]
        connections: usize,
        /// Seconds of load per path.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Scheduler overhead: a DAG of no-op builds against spawning the same processes directly.
    Plan {
        #[arg(long, default_value_t = 1000)]
        builds: usize,
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: usize,
        /// Run the no-op builds sandboxed (default: the plain runner, the scheduler alone).
        #[arg(long)]
        sandbox: bool,
    },
}
