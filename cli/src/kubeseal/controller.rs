//! kubeseal's requests to the controller, through the API server's service proxy:
//! `--fetch-cert` (`GET /v1/cert.pem`, or the `--cert` file or URL copied), `--validate`
//! (`POST /v1/verify` per SealedSecret, 409 = cannot decrypt) and `--re-encrypt`
//! (`POST /v1/rotate` per SealedSecret, the answer written out).

use http::Method;
use sealbox_crds::SealedSecret;

use crate::bounded;
use crate::cluster::{self, Cluster};
use crate::document::{Document, parse};
use crate::error::{Error, Result};
use crate::kubeseal::flags::{KubesealArgs, KubesealFormat};
use crate::kubeseal::render::render;
use crate::kubeseal::seal::certificate;
use crate::kubeseal::{cluster_options, kubeseal_words};
use crate::sealed;

/// The certificate's bytes as served (or as in the `--cert` file), for `--fetch-cert`.
pub fn certificate_bytes(args: &KubesealArgs) -> Result<Vec<u8>> {
    certificate(args).fetch()
}

/// The SealedSecrets of the input, each with its JSON body for the controller.
fn read_sealed(input_name: &str, bytes: &[u8]) -> Result<Vec<(SealedSecret, Vec<u8>)>> {
    let input = parse(input_name, bytes)?;
    input
        .documents
        .iter()
        .map(|document: &Document| {
            let object = sealed::from_document(document)?;
            let body = serde_json::to_vec(&document.value).map_err(|e| Error::Render {
                format: "JSON",
                reason: e.to_string(),
            })?;
            Ok((object, body))
        })
        .collect()
}

/// `--validate`: every SealedSecret must be decryptable by the controller.
pub fn validate(args: &KubesealArgs, (input_name, bytes): (&str, &[u8])) -> Result<()> {
    let options = cluster_options(args);
    let objects = read_sealed(input_name, bytes).map_err(|e| Error::Kubeseal {
        message: format!("unable to decrypt sealed secret ({})", kubeseal_words(&e)),
        category: e.category(),
    })?;
    cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        for (object, body) in objects {
            let answer = cluster
                .controller_request(
                    Method::POST,
                    "v1/verify",
                    body,
                    "application/json",
                    bounded::CONTROLLER_ANSWER,
                )
                .await;
            match answer {
                Ok(_) => {}
                Err(Error::ControllerRequest { code: 409, .. }) => {
                    return Err(Error::Kubeseal {
                        message: format!(
                            "unable to decrypt sealed secret: {}",
                            object.metadata.name.as_deref().unwrap_or_default()
                        ),
                        category: "validate",
                    });
                }
                Err(e) => {
                    return Err(Error::Kubeseal {
                        message: format!("cannot validate sealed secret: {}", kubeseal_words(&e)),
                        category: e.category(),
                    });
                }
            }
        }
        Ok(())
    })?
}

/// `--re-encrypt`: each SealedSecret re-sealed by the controller to its newest key, written in
/// `format` without the server-set fields kubeseal clears.
pub fn re_encrypt(
    args: &KubesealArgs,
    (input_name, bytes): (&str, &[u8]),
    format: KubesealFormat,
    out: &mut Vec<u8>,
) -> Result<()> {
    let options = cluster_options(args);
    let objects = read_sealed(input_name, bytes)?;
    let rotated = cluster::block_on(async {
        let cluster = Cluster::connect(&options).await?;
        let mut rotated = Vec::with_capacity(objects.len());
        for (_, body) in objects {
            let answer = cluster
                .controller_request(
                    Method::POST,
                    "v1/rotate",
                    body,
                    "application/json",
                    bounded::CONTROLLER_ANSWER,
                )
                .await;
            let answer = match answer {
                Ok(answer) => answer,
                Err(Error::ControllerRequest { code: 409, .. }) => {
                    return Err(Error::Kubeseal {
                        message: "unable to rotate secret".to_owned(),
                        category: "re_encrypt",
                    });
                }
                Err(e) => {
                    return Err(Error::Kubeseal {
                        message: format!("cannot re-encrypt secret: {}", kubeseal_words(&e)),
                        category: e.category(),
                    });
                }
            };
            rotated.push(parse_rotated(&answer, &cluster)?);
        }
        Ok(rotated)
    })??;
    out.extend_from_slice(&render(&rotated, format)?);
    Ok(())
}

/// The controller's answer as a SealedSecret, without creationTimestamp, deletionTimestamp and
/// generation (kubeseal clears them).
fn parse_rotated(answer: &str, cluster: &Cluster) -> Result<SealedSecret> {
    let mut rotated: SealedSecret =
        serde_json::from_str(answer).map_err(|e| Error::ControllerAnswer {
            controller: cluster.options.controller(),
            request: "POST /v1/rotate".to_owned(),
            reason: format!(
                "not a SealedSecret (line {}, column {})",
                e.line(),
                e.column()
            ),
        })?;
    rotated.metadata.creation_timestamp = None;
    rotated.metadata.deletion_timestamp = None;
    rotated.metadata.generation = None;
    rotated.status = None;
    Ok(rotated)
}
