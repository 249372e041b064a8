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
    /// Example project.
    Example {
        #[command(subcommand)]
        command: ExampleCommand,
    },
    /// Benchmarks (not tests): print timings side by side with a baseline.
    Bench {
        #[command(subcommand)]
        command: BenchCommand,
    },
}

#[derive(Subcommand, Debug)]
pub enum ExampleCommand {
    /// Write the crostini-guest example (config, product git repo with 4 branches, signing key).
    Init { dir: PathBuf },
}

#[derive(Subcommand, Debug)]
pub enum BenchCommand {
    /// Scheduler overhead: a DAG of no-op builds against spawning the same processes directly.
    Plan {
        #[arg(long, default_value_t = 1000)]
        builds: usize,
        #[arg(long, short = 'j', default_value_t = 2)]
        jobs: usize,
    },
}
