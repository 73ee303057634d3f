//! Prints the SealedSecret CRD as YAML.
//!
//! Regenerate the committed copy with:
//! `cargo run -p sealbox-crds --bin crdgen > deploy/crds/sealedsecrets.bitnami.com.yaml`

use std::io::Write;
use std::process::ExitCode;

fn main() -> ExitCode {
    let yaml = match sealbox_crds::crd_yaml() {
        Ok(yaml) => yaml,
        Err(err) => {
            eprintln!("crdgen: cannot render the CRD: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("crdgen: cannot write: {err}");
            ExitCode::FAILURE
        }
    }
}
