mod apt;
mod audit;
mod client;
mod doctor;
mod gc;
mod inspect;
mod plan;
mod policy;
mod release;
mod results;
mod run;
mod serve;
mod validate;

use std::process::ExitCode;

use anyhow::Result;

use crate::cli::{BenchCommand, Cli, Command, ExampleCommand, ReleaseCommand, SuiteCommand};

pub async fn dispatch(cli: Cli) -> Result<ExitCode> {
    let Cli {
        config,
        data_dir,
        command,
    } = cli;
    match command {
        Command::Validate => validate::validate(&config, &data_dir).await,
        Command::Plan {
            job,
            milestone,
            commit,
            json,
        } => plan::plan(&config, &data_dir, &job, milestone, commit.as_deref(), json),
        Command::Run {
            job,
            milestone,
            commit,
            jobs,
            keep_workspaces,
            json,
        } => {
            run::run(
                &config,
                &data_dir,
                run::RunArgs {
                    job,
                    milestone,
                    commit,
                    jobs,
                    keep_workspaces,
                    json,
                },
            )
            .await
        }
        Command::Serve { listen, example } => {
            serve::serve(&config, &data_dir, listen, example).await
        }
        Command::Trigger {
            job,
            milestone,
            commit,
            server,
            wait,
            json,
        } => client::trigger(&server, &job, milestone, commit, wait, json).await,
        Command::Cancel { run, server } => client::cancel(&server, run).await,
        Command::Runs { limit, json } => inspect::runs(&data_dir, limit, json).await,
        Command::Show { run, json } => inspect::show(&data_dir, run, json).await,
        Command::Logs { run, build, follow } => inspect::logs(&data_dir, run, &build, follow).await,
        Command::Artifacts {
            run,
            build,
            export,
            json,
        } => inspect::artifacts(&data_dir, run, &build, export.as_deref(), json).await,
        Command::Publish {
            dir,
            bucket,
            prefix,
            abort_after,
        } => release::publish(&config, &data_dir, &dir, &bucket, &prefix, abort_after).await,
        Command::Promote {
            milestone,
            candidate,
            abandon_interrupted,
            json,
        } => {
            let how = interrupted(abandon_interrupted);
            release::promote(&config, &data_dir, milestone, candidate, how, json).await
        }
        Command::Rollback {
            milestone,
            abandon_interrupted,
            json,
        } => {
            let how = interrupted(abandon_interrupted);
            release::rollback(&config, &data_dir, milestone, how, json).await
        }
        Command::Releases { milestone, json } => {
            release::releases(&config, &data_dir, milestone, json).await
        }
        Command::Why {
            milestone,
            candidate,
            json,
        } => policy::why(&config, &data_dir, milestone, candidate, json).await,
        Command::Release {
            command: ReleaseCommand::Evaluate { milestone, json },
        } => policy::evaluate(&config, &data_dir, milestone, json).await,
        Command::Hold { milestone, reason } => {
            policy::hold(&config, &data_dir, milestone, reason, false).await
        }
        Command::Unhold { milestone } => {
            policy::hold(&config, &data_dir, milestone, None, true).await
        }
        Command::Candidates { milestone, json } => {
            release::candidates(&config, &data_dir, milestone, json).await
        }
        Command::Audit { milestone, json } => {
            audit::audit(&config, &data_dir, milestone, json).await
        }
        Command::Gc { dry_run, json } => gc::gc(&config, &data_dir, dry_run, json).await,
        Command::Suite {
            command: SuiteCommand::List { candidate, json },
        } => results::suites(&data_dir, candidate, json).await,
        Command::Suite {
            command:
                SuiteCommand::Record {
                    candidate,
                    release,
                    suite,
                    junit,
                    tast,
                    link,
                    json,
                },
        } => {
            let args = results::RecordArgs {
                candidate,
                release,
                suite,
                junit,
                tast,
                link,
                json,
            };
            results::record(&config, &data_dir, args).await
        }
        Command::Environments { milestone, json } => {
            results::environments(&config, &data_dir, milestone, json).await
        }
        Command::Apt { command } => apt::apt(&data_dir, command),
        Command::Key { command } => apt::key(command),
        Command::Example {
            command: ExampleCommand::Init { dir },
        } => crate::example::init(&dir).map(|()| ExitCode::SUCCESS),
        Command::Bench {
            command:
                BenchCommand::Plan {
                    builds,
                    jobs,
                    sandbox,
                },
        } => crate::bench::plan(builds, jobs, sandbox).await,
        Command::Bench {
            command: BenchCommand::Sandbox { steps, example },
        } => crate::bench_sandbox::run(steps, example).await,
        Command::Bench {
            command:
                BenchCommand::Serve {
                    runs,
                    milestones,
                    connections,
                    seconds,
                },
        } => {
            crate::bench_serve::run(crate::bench_serve::Options {
                runs,
                milestones,
                connections,
                seconds,
            })
            .await
        }
        Command::Doctor => doctor::doctor(&config).await,
        Command::Bench {
            command:
                BenchCommand::Apt {
                    debs,
                    min_size,
                    max_size,
                },
        } => crate::bench_apt::run(debs, min_size, max_size),
        Command::Bench {
            command:
                BenchCommand::Publish {
                    objects,
                    mib,
                    endpoint,
                },
        } => crate::bench_publish::run(objects, mib, endpoint).await,
    }
}

/// Prints a value as one JSON document on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

fn interrupted(abandon: bool) -> slipway_engine::promote::Interrupted {
    if abandon {
        slipway_engine::promote::Interrupted::Abandon
    } else {
        slipway_engine::promote::Interrupted::Finish
    }
}
