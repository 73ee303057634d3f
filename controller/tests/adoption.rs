//! Adopting what another controller left: Bitnami's controller, stopped for an in-place
//! migration, leaves Secrets without Sealbox's proof of authorship and statuses without a
//! reason. The controller (`sealbox_controller::start`) against the API double adopts them
//! without writing either when they already say what it would write, on its first start and on
//! every restart after (each restart unseals such a Secret again, as it has no proof), and
//! writes the Secret (with its proof) once the SealedSecret changes. tests/tests/migration.rs
//! does the same with Bitnami's own controller on the real control plane.

mod support;

use jiff::Timestamp;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use sealbox_controller::Running;
use sealbox_controller::authorship::PROOF_ANNOTATION;
use sealbox_crds::{SealedSecret, SealedSecretCondition, SealedSecretStatus};
use sealbox_tests::ApiServer;
use serde_json::json;
use support::{NS, TestResult, pair, secret_writes, until};

const NAME: &str = "db";

/// The SealedSecret `NS/db` with `value`, sealed for test key 0, with a template label.
fn sealed(value: &str) -> SealedSecret {
    let mut sealed =
        support::sealed_secret(&pair(0).certificate, NS, NAME, &[("value", value)], &[]);
    sealed.spec.template = Some(support::template(&[("app", "web")], &[]));
    sealed
}

/// The Secret and the status Bitnami's controller (v0.40.0, `pkg/controller/controller.go`)
/// leaves for the SealedSecret `uid` at `generation`: the template's metadata, the controller
/// ownerReference, the data; one `Synced` condition without reason or message.
async fn bitnami_wrote(server: &ApiServer, uid: &str, generation: Option<i64>) -> TestResult {
    server.put(&Secret {
        metadata: ObjectMeta {
            name: Some(NAME.into()),
            namespace: Some(NS.into()),
            labels: Some([("app".to_owned(), "web".to_owned())].into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "bitnami.com/v1alpha1".into(),
                kind: "SealedSecret".into(),
                name: NAME.into(),
                uid: uid.into(),
                controller: Some(true),
                block_owner_deletion: None,
            }]),
            ..ObjectMeta::default()
        },
        data: Some([("value".to_owned(), ByteString(b"v1".to_vec()))].into()),
        type_: Some("Opaque".into()),
        ..Secret::default()
    })?;
    // Through the status subresource, as Bitnami's controller writes it.
    let status = SealedSecretStatus {
        observed_generation: generation,
        conditions: vec![SealedSecretCondition {
            type_: "Synced".into(),
            status: "True".into(),
            last_update_time: Some(Time(Timestamp::from_second(1_700_000_000)?)),
            last_transition_time: Some(Time(Timestamp::from_second(1_700_000_000)?)),
            reason: None,
            message: None,
        }],
    };
    Api::<SealedSecret>::namespaced(server.client(), NS)
        .patch_status(
            NAME,
            &PatchParams::default(),
            &Patch::Merge(json!({ "status": status })),
        )
        .await?;
    Ok(())
}

/// Successful status writes of the SealedSecret `NS/db` in the request log.
fn status_writes(server: &ApiServer) -> usize {
    server
        .request_log()
        .iter()
        .filter(|r| {
            r.resource == "sealedsecrets/status"
                && r.name.as_deref() == Some(NAME)
                && matches!(r.verb.as_str(), "update" | "patch")
                && r.status < 300
        })
        .count()
}

/// The controller started with an empty request log, once it has reconciled the SealedSecret.
async fn start(server: &ApiServer) -> TestResult<Running> {
    server.clear_request_log();
    let running = support::start_controller(server, &[]).await?;
    until("the SealedSecret reconciled", || {
        running.metrics().reconciles("success") >= 1
    })
    .await?;
    Ok(running)
}

/// The Secret's resourceVersion and the SealedSecret's (status included).
fn versions(server: &ApiServer) -> TestResult<(Option<String>, Option<String>)> {
    let secret = server.get::<Secret>(Some(NS), NAME).ok_or("no Secret")?;
    let sealed = server
        .get::<SealedSecret>(Some(NS), NAME)
        .ok_or("no SealedSecret")?;
    Ok((
        secret.metadata.resource_version,
        sealed.metadata.resource_version,
    ))
}

fn has_proof(server: &ApiServer) -> bool {
    server
        .get::<Secret>(Some(NS), NAME)
        .and_then(|s| s.metadata.annotations)
        .is_some_and(|a| a.contains_key(PROOF_ANNOTATION))
}

#[tokio::test]
async fn what_bitnami_wrote_is_adopted_without_a_write() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let created = Api::<SealedSecret>::namespaced(server.client(), NS)
        .create(&PostParams::default(), &sealed("v1"))
        .await?;
    let uid = created.metadata.uid.clone().ok_or("no uid")?;
    bitnami_wrote(&server, &uid, created.metadata.generation).await?;
    let before = versions(&server)?;

    // First start, and a restart: unsealed to compare (no proof to trust), nothing written.
    for start_number in 1..=2 {
        let running = start(&server).await?;
        assert_eq!(
            running.keys().private_key_operations(),
            1,
            "start {start_number}: one unseal to compare"
        );
        assert_eq!(secret_writes(&server, NS, NAME), 0, "start {start_number}");
        assert_eq!(status_writes(&server), 0, "start {start_number}");
        assert_eq!(versions(&server)?, before, "start {start_number}");
        assert!(!has_proof(&server));
        running.shutdown().await?;
    }

    // A new value: written, with a proof, that the next restart trusts.
    let running = start(&server).await?;
    let mut resealed = server
        .get::<SealedSecret>(Some(NS), NAME)
        .ok_or("no SealedSecret")?;
    resealed.spec = sealed("v2").spec;
    server.put(&resealed)?;
    until("the new value, proven", || {
        has_proof(&server)
            && server
                .get::<Secret>(Some(NS), NAME)
                .and_then(|s| s.data?.remove("value"))
                == Some(ByteString(b"v2".to_vec()))
    })
    .await?;
    running.shutdown().await?;
    let running = start(&server).await?;
    assert_eq!(running.keys().private_key_operations(), 0);
    assert_eq!(secret_writes(&server, NS, NAME), 0);
    running.shutdown().await?;
    Ok(())
}
