//! `sealbox completions SHELL`: a completion script on stdout.

use std::io::Write;

use clap::CommandFactory as _;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, Result};

/// Writes the completion script for `args.shell`.
pub fn run(args: &CompletionsArgs, mut stdout: impl Write) -> Result<()> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "sealbox", &mut script);
    stdout
        .write_all(&script)
        .and_then(|()| stdout.flush())
        .map_err(|source| Error::WriteStdout { source })
}
