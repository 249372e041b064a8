//! `slipway`: the command line, thin over the libraries.

mod bench;
mod bench_apt;
mod bench_publish;
mod bench_sandbox;
mod bench_serve;
mod cli;
mod cmd;
mod context;
mod example;
mod progress;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // Behave like other Unix tools when output goes to a closed pipe (`slipway show 1 | head`):
    // end quietly instead of panicking on the failed write.
    // SAFETY: setting a signal disposition to its default before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = cli::Cli::parse();
    // A service tells what it does; one-shot commands speak only of problems.
    let default_filter = match cli.command {
        cli::Command::Serve { .. } => "info,sqlx=warn,tower_http=warn",
        _ => "warn",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SLIPWAY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter)),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(cmd::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::from(1)
        }
    }
}

/// The error and its causes, each said once: library errors often include their cause's text
/// in their own message already, and `{:#}` would repeat it (`X: X`). A cause that already says
/// everything said so far replaces it.
fn one_line(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let c = cause.to_string();
        if text.contains(&c) {
            continue;
        }
        if c.contains(&text) {
            text = c;
        } else {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::one_line;

    /// A library error in the common `{path}: {source}` form, with the source in the chain too.
    #[derive(Debug)]
    struct IoAt {
        path: String,
        source: std::io::Error,
    }

    impl std::fmt::Display for IoAt {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "{}: {}", self.path, self.source)
        }
    }

    impl std::error::Error for IoAt {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.source)
        }
    }

    /// A wrapper that displays its source as its own message (`#[error("{0}")]`).
    #[derive(Debug)]
    struct Wrapped(IoAt);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            self.0.fmt(f)
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    fn io_at(path: &str) -> IoAt {
        IoAt {
            path: path.into(),
            source: std::io::Error::other("disk on fire"),
        }
    }

    #[test]
    fn causes_are_said_once() {
        let io = std::io::Error::other("disk on fire");
        let e = anyhow::Error::new(io).context("cannot write x: disk on fire");
        assert_eq!(one_line(&e), "cannot write x: disk on fire");
        let e = anyhow::anyhow!("root cause").context("while doing y");
        assert_eq!(one_line(&e), "while doing y: root cause");
    }

    #[test]
    fn library_errors_that_embed_their_source_are_not_repeated() {
        let e = anyhow::Error::new(io_at("/a"));
        assert_eq!(one_line(&e), "/a: disk on fire");
        let e = anyhow::Error::new(Wrapped(io_at("/b"))).context("cannot publish");
        assert_eq!(one_line(&e), "cannot publish: /b: disk on fire");
        // A context that the cause already states in full.
        let e = anyhow::Error::new(io_at("bucket apt")).context("bucket apt");
        assert_eq!(one_line(&e), "bucket apt: disk on fire");
    }
}
