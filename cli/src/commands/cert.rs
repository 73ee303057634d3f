//! `sealbox cert fetch`: the controller's newest certificate, through the service proxy.

use std::io::Write;
use std::time::SystemTime;

use crate::cert::{Expiry, fetch_from_cluster, parse_sealing_key};
use crate::cli::{CertCommand, CertFetchArgs};
use crate::error::Result;
use crate::output::{Visibility, deprecated_output_file, emit, note};

/// Runs `sealbox cert …`.
pub fn run(command: &CertCommand, stdout: impl Write, stderr: impl Write) -> Result<()> {
    match command {
        CertCommand::Fetch(args) => fetch(args, stdout, stderr),
    }
}

fn fetch(args: &CertFetchArgs, stdout: impl Write, mut stderr: impl Write) -> Result<()> {
    let target = args.file.target();
    if target.is_some_and(|(_, deprecated)| deprecated) {
        deprecated_output_file(&mut stderr);
    }
    let target = target.map(|(path, _)| path);
    let options = args.cluster.options();
    let pem = fetch_from_cluster(&options)?;
    // Refuse to write something that is not a certificate (an HTML error page, a proxy's
    // answer): whatever is written here is what later seals.
    let now = SystemTime::now();
    let key = parse_sealing_key(&pem, &options.to_string(), now, Expiry::Accept)?;
    if key.not_after.is_some_and(|not_after| not_after < now) {
        note(
            &mut stderr,
            format_args!(
                "the certificate of the {options} has expired; sealing with it will be refused"
            ),
        );
    }
    emit(&pem, target, Visibility::Public, stdout)?;
    let _ = writeln!(
        stderr,
        "fetched the certificate of the {options}: key {}{}",
        key.public_key.fingerprint(),
        target
            .map(|path| format!(", written to {}", path.display()))
            .unwrap_or_default()
    );
    Ok(())
}
