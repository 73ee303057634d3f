//! `sealbox-controller`: parses flags, sets up logging, runs the controller.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use sealbox_controller::flag_env;
use sealbox_controller::flags::{LogFormat, log_directives};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::writer::MakeWriterExt as _;

#[tokio::main]
async fn main() -> ExitCode {
    let vars = std::env::vars()
        .filter(|(name, _)| name.starts_with(flag_env::ENV_PREFIX))
        .collect();
    let parsed = match flag_env::parse(std::env::args_os(), &vars) {
        Ok(parsed) => parsed,
        Err(e) => e.exit(),
    };
    let config = parsed.config;
    let filter = EnvFilter::try_new(config.log_directives())
        .unwrap_or_else(|_| EnvFilter::new(log_directives("info")));
    // Bitnami's --log-info-stdout: warnings and errors on stderr, the rest on stdout.
    let info_out = config.log_info_stdout;
    let writer = std::io::stderr
        .with_max_level(tracing::Level::WARN)
        .or_else(move || -> Box<dyn std::io::Write> {
            if info_out {
                Box::new(std::io::stdout())
            } else {
                Box::new(std::io::stderr())
            }
        });
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        // No colour codes in a file or a pipe: both streams may carry lines.
        .with_ansi(
            std::io::stderr().is_terminal() && (!info_out || std::io::stdout().is_terminal()),
        );
    match config.log_format {
        LogFormat::Json => logs.json().init(),
        LogFormat::Text => logs.init(),
    }
    for warning in &parsed.warnings {
        tracing::warn!("{warning}");
    }

    match sealbox_controller::run(config).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("controller failed: {:#}", anyhow::Error::new(error));
            ExitCode::FAILURE
        }
    }
}
