//! The `sealbox` binary: parse flags, set up logging, run, map the result to an exit code.

use std::io::{self, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use sealbox_cli::cli::{Cli, LogFormat};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.log_format);
    if cli.reads_stdin() && io::stdin().is_terminal() {
        let _ = writeln!(
            io::stderr(),
            "reading from stdin (end with Ctrl-D; -f FILE reads a file)"
        );
    }
    match sealbox_cli::run(&cli, io::stdin().lock(), io::stdout().lock(), io::stderr()) {
        Ok(outcome) => ExitCode::from(outcome.exit_code()),
        // `sealbox seal | head -1`: the reader has all it wanted.
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            tracing::debug!(category = e.category(), "command failed");
            let _ = writeln!(io::stderr(), "error: {}", e.report());
            ExitCode::from(e.exit_code())
        }
    }
}

fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SEALBOX_LOG").unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
