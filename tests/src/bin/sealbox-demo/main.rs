//! `sealbox-demo`: the whole Sealbox loop on this machine, without a cluster.
//!
//! Starts the Kubernetes API double, runs the real `sealbox-controller` against it and drives it
//! with the real `sealbox` CLI: seal, apply, unseal, delete and restore, rotate, re-encrypt. Each
//! step is printed in plain words. `cargo run -q -p sealbox-tests --bin sealbox-demo`; with
//! `--real`, the same story on the real control plane of tests/kube (see cluster.rs).

mod cluster;
mod demo;
mod processes;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// Shows Sealbox end to end on a stand-in Kubernetes API: the real controller and CLI, no cluster.
///
/// Exit code 0 when every step worked, 1 (with the reason) when one did not. The controller and
/// the scratch directory are cleaned up on every path, Ctrl-C included.
#[derive(Debug, Parser)]
#[command(version)]
pub struct Cli {
    /// Directory holding the `sealbox` and `sealbox-controller` binaries. Defaults to this
    /// binary's own directory (e.g. target/debug).
    #[arg(long, env = "SEALBOX_DEMO_BIN_DIR", value_name = "DIR")]
    pub bin_dir: Option<PathBuf>,

    /// Do not run `cargo build -p sealbox -p sealbox-controller` first (the default when started
    /// by `cargo run`).
    #[arg(long)]
    pub no_build: bool,

    /// Size in bits of the RSA keys the controller generates and `keys rotate` creates.
    #[arg(long, default_value = "4096", value_parser = ["2048", "3072", "4096"])]
    pub key_size: String,

    /// Run the story on the real control plane instead of the API double: etcd, kube-apiserver
    /// and kube-controller-manager built by tests/kube/build.sh (looked for in
    /// $SEALBOX_KUBE_BIN, else target/kube/bin). The controller then runs in a network
    /// namespace the API server's service proxy reaches, which needs root and iproute2.
    #[arg(long)]
    pub real: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match demo::run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("\nThe demo failed: {error:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    use super::Cli;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }
}
