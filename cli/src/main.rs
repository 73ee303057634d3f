//! The `sealbox` binary: parse flags, set up logging, run, map the result to an exit code.
//! Invoked as `kubeseal` (a symlink or a copy), it runs the kubeseal mode instead.

use std::io::{self, IsTerminal as _, Write as _};
use std::process::ExitCode;

use clap::Parser as _;
use sealbox_cli::cli::{Cli, LogFormat};
use sealbox_cli::kubeseal::{self, KubesealCli};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    if kubeseal::invoked_as_kubeseal(std::env::args_os().next().as_deref()) {
        return kubeseal_main();
    }
    let cli = Cli::parse_with_hints();
    init_tracing(cli.log_format);
    if cli.reads_stdin() && io::stdin().is_terminal() {
        let _ = writeln!(
            io::stderr(),
            "reading from stdin (end with Ctrl-D; -f FILE reads a file)"
        );
    }
    let result = sealbox_cli::run(&cli, io::stdin().lock(), io::stdout().lock(), io::stderr());
    exit(result.map(|outcome| outcome.exit_code()))
}

/// `kubeseal …`: kubeseal's flags; every failure exits 1, bad flags 2 (clap), as kubeseal.
fn kubeseal_main() -> ExitCode {
    let cli = KubesealCli::parse();
    init_tracing(LogFormat::Text);
    if kubeseal::reads_stdin(&cli.args) && io::stdin().is_terminal() {
        let _ = writeln!(
            io::stderr(),
            "(tty detected: expecting json/yaml k8s resource in stdin)"
        );
    }
    let result = kubeseal::run(
        &cli.args,
        io::stdin().lock(),
        io::stdout().lock(),
        io::stderr(),
    );
    exit(result.map(|()| sealbox_cli::EXIT_OK))
}

fn exit(result: sealbox_cli::Result<u8>) -> ExitCode {
    match result {
        Ok(code) => ExitCode::from(code),
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
