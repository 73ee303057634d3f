//! `sealbox verify`: offline checks of SealedSecrets against a certificate ([`crate::inspect`]),
//! every problem listed, naming the document and field; a pass says what was checked and what
//! an offline check cannot know.
//!
//! `verify --online` asks the controller instead (`POST /v1/verify` through the service proxy),
//! which can tell whether it can actually decrypt each SealedSecret.

use std::io::{Read, Write};
use std::time::SystemTime;

use http::Method;

use crate::Outcome;
use crate::bounded;
use crate::cert::Expiry;
use crate::cert_choice::CertChoice;
use crate::cli::VerifyArgs;
use crate::cluster::{self, Cluster};
use crate::document::read_documents;
use crate::error::{Error, Result};
use crate::inspect::{OFFLINE_LIMITS, check_document};
use crate::output::note;
use crate::sealed::{self, display_name};

/// Runs `sealbox verify`. Problems are written to `stderr`; the outcome says whether any were
/// found.
pub fn run(args: &VerifyArgs, stdin: impl Read, mut stderr: impl Write) -> Result<Outcome> {
    if args.online {
        return run_online(args, stdin, stderr);
    }
    let cluster = args.cluster.options();
    let cert = CertChoice::new(args.cert.cert.as_ref(), &cluster).ignoring_rules()?;
    let cert = &cert;
    let input = read_documents(args.input.file.as_deref(), stdin, "a SealedSecret")?;
    let now = SystemTime::now();
    let key = cert.load(now, Expiry::Accept)?;
    if key.not_after.is_some_and(|not_after| not_after < now) {
        note(
            &mut stderr,
            format_args!("{cert} has expired; checking against it anyway"),
        );
    }

    let mut problems = Vec::new();
    let mut values = 0;
    for document in &input.documents {
        values += check_document(document, &key.public_key, &mut problems);
    }
    let documents = input.documents.len();
    if problems.is_empty() {
        let _ = writeln!(
            stderr,
            "ok (offline): {documents} SealedSecret(s), {values} value(s) checked against {cert} ({}): structure, base64, value sizes for its {}-bit key, scope annotations, sealing-key hint, name and namespace against the template, the 1 MiB Secret limit",
            key.public_key.fingerprint(),
            key.public_key.modulus_bits()
        );
        note(&mut stderr, format_args!("{OFFLINE_LIMITS}"));
        Ok(Outcome::Success)
    } else {
        for problem in &problems {
            let _ = writeln!(stderr, "{problem}");
        }
        let _ = writeln!(
            stderr,
            "{} problem(s) in {documents} document(s)",
            problems.len()
        );
        Ok(Outcome::ProblemsFound)
    }
}

/// `verify --online`: every document must be a SealedSecret; each is POSTed to the controller's
/// `/v1/verify`, which answers 200 when it can decrypt it and 409 when it cannot.
fn run_online(args: &VerifyArgs, stdin: impl Read, mut stderr: impl Write) -> Result<Outcome> {
    let input = read_documents(args.input.file.as_deref(), stdin, "a SealedSecret")?;
    let mut requests = Vec::with_capacity(input.documents.len());
    for document in &input.documents {
        let sealed = sealed::from_document(document)?;
        let body = serde_json::to_vec(&document.value).map_err(|e| Error::Render {
            format: "JSON",
            reason: e.to_string(),
        })?;
        requests.push((document.origin.clone(), display_name(&sealed), body));
    }
    let options = args.cluster.options();
    let answers = cluster::block_on(async {
        let cluster = Cluster::connect(&options)
            .await
            .map_err(|e| e.offline_hint("drop --online and pass --cert FILE"))?;
        let mut answers = Vec::with_capacity(requests.len());
        for (origin, name, body) in requests {
            let decryptable = verify_online(&cluster, body).await?;
            answers.push((origin, name, decryptable));
        }
        Ok::<_, Error>(answers)
    })??;
    let failed = answers.iter().filter(|(_, _, ok)| !ok).count();
    for (origin, name, decryptable) in &answers {
        if !decryptable {
            let _ = writeln!(
                stderr,
                "{origin}: SealedSecret {name}: the controller cannot decrypt it (sealed with another cluster's key, for another name or namespace, or damaged)"
            );
        }
    }
    if failed == 0 {
        let _ = writeln!(
            stderr,
            "ok: the {options} can decrypt all {} SealedSecret(s)",
            answers.len()
        );
        Ok(Outcome::Success)
    } else {
        let _ = writeln!(
            stderr,
            "{failed} of {} SealedSecret(s) cannot be decrypted by the {options}",
            answers.len()
        );
        Ok(Outcome::ProblemsFound)
    }
}

/// POSTs one SealedSecret to `/v1/verify`: `Ok(true)` for 200, `Ok(false)` for 409.
async fn verify_online(cluster: &Cluster, body: Vec<u8>) -> Result<bool> {
    match cluster
        .controller_request(
            Method::POST,
            "v1/verify",
            body,
            "application/json",
            bounded::CONTROLLER_ANSWER,
        )
        .await
    {
        Ok(_) => Ok(true),
        Err(Error::ControllerRequest { code: 409, .. }) => Ok(false),
        Err(e) => Err(e),
    }
}
