//! Restarts without re-unsealing: the controller (`sealbox_controller::start`) against the API
//! double, stopped and started again over SealedSecrets it has already unsealed. A Secret it
//! wrote and nobody changed since costs no private-key operation; an edited Secret is restored;
//! a changed SealedSecret is unsealed, exactly that one; annotations copied from another Secret
//! or a proof made up without the controller's key are not trusted. A Secret written without an
//! ownerReference (`skip-set-owner-references`) stays the controller's across a restart.

mod support;

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use sealbox_controller::Running;
use sealbox_crds::{SKIP_SET_OWNER_REFERENCES_ANNOTATION, SealedSecret};
use sealbox_tests::ApiServer;
use support::{NS, TestResult, pair, secret_writes, until};

/// The controller's annotations on the Secrets it writes (`sealbox_controller::authorship`),
/// spelled out: what a tenant sees and copies.
const PROOF: &str = "sealbox.dev/proof";
const SEALED_DIGEST: &str = "sealbox.dev/sealed-digest";

/// SealedSecret `NS/name` with one value, sealed for test key 0; `annotations` go into the
/// template.
fn sealed(name: &str, value: &str, template_annotations: &[(&str, &str)]) -> SealedSecret {
    let mut sealed = sealbox_tests::fixtures::sealed_secret(
        &pair(0).certificate,
        NS,
        name,
        &[("value", value)],
        &[],
    );
    if !template_annotations.is_empty() {
        sealed.spec.template = Some(support::template(&[], template_annotations));
    }
    sealed
}

async fn create(server: &ApiServer, sealed: &SealedSecret) -> TestResult {
    Api::<SealedSecret>::namespaced(server.client(), NS)
        .create(&PostParams::default(), sealed)
        .await?;
    Ok(())
}

/// The `value` of Secret `NS/name`.
fn value(server: &ApiServer, name: &str) -> Option<String> {
    let secret = server.get::<Secret>(Some(NS), name)?;
    String::from_utf8(secret.data?.remove("value")?.0).ok()
}

/// Whether SealedSecret `NS/name` reports `Synced` with `status`.
fn synced(server: &ApiServer, name: &str, status: &str) -> bool {
    server
        .get::<SealedSecret>(Some(NS), name)
        .and_then(|s| s.synced_condition().map(|c| c.status == status))
        .unwrap_or(false)
}

/// Private-key operations of this controller (its registry's counter) and what its metrics say.
fn private_key_operations(running: &Running) -> (u64, u64) {
    let text = running.metrics().encode().unwrap_or_default();
    let scraped = text
        .lines()
        .find_map(|l| l.strip_prefix("sealbox_private_key_operations_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(u64::MAX);
    (running.keys().private_key_operations(), scraped)
}

/// `names`, each with its own name as value, unsealed by a first controller that then stops.
async fn synced_and_stopped(server: &ApiServer, names: &[String]) -> TestResult {
    let first = support::start_controller(server, &[]).await?;
    for name in names {
        create(server, &sealed(name, name, &[])).await?;
    }
    until("every Secret and Synced", || {
        names
            .iter()
            .all(|n| value(server, n).as_deref() == Some(n) && synced(server, n, "True"))
    })
    .await?;
    first.shutdown().await?;
    Ok(())
}

/// Starts the controller again and waits until it has reconciled `count` objects once each
/// (and whatever `done` asks); the request log starts with it.
async fn restart(server: &ApiServer, count: u64, done: impl Fn() -> bool) -> TestResult<Running> {
    server.clear_request_log();
    let running = support::start_controller(server, &[]).await?;
    until("every SealedSecret reconciled", || {
        running.metrics().reconciles("success") >= count && done()
    })
    .await?;
    Ok(running)
}

#[tokio::test]
async fn a_restart_unseals_nothing_that_is_synced() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let names: Vec<String> = (0..30).map(|i| format!("db{i}")).collect();
    synced_and_stopped(&server, &names).await?;

    let running = restart(&server, names.len() as u64, || true).await?;
    assert_eq!(private_key_operations(&running), (0, 0));
    for name in &names {
        assert!(synced(&server, name, "True"), "{name}");
        assert_eq!(value(&server, name).as_deref(), Some(name.as_str()));
        assert_eq!(secret_writes(&server, NS, name), 0, "{name} not written");
    }
    running.shutdown().await?;
    Ok(())
}

/// Replaces Secret `NS/name`'s annotations and data with `annotations` and `data`.
fn put_secret(
    server: &ApiServer,
    name: &str,
    annotations: BTreeMap<String, String>,
    data: BTreeMap<String, ByteString>,
) -> TestResult {
    let mut secret = server.get::<Secret>(Some(NS), name).ok_or("no Secret")?;
    secret.metadata.annotations = Some(annotations);
    secret.data = Some(data);
    server.put(&secret)?;
    Ok(())
}

#[tokio::test]
async fn what_changed_while_stopped_is_unsealed_and_nothing_else() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let names: Vec<String> = (0..12).map(|i| format!("db{i}")).collect();
    synced_and_stopped(&server, &names).await?;
    let secret = |name: &str| server.get::<Secret>(Some(NS), name).ok_or("no Secret");

    // db0: its value edited (a tenant with write access to Secrets).
    let db0 = secret("db0")?;
    let mut data = db0.data.clone().unwrap_or_default();
    data.insert("value".into(), ByteString(b"tampered".to_vec()));
    put_secret(
        &server,
        "db0",
        db0.metadata.annotations.unwrap_or_default(),
        data,
    )?;

    // db1: re-sealed with another value (a new commit in Git).
    let mut resealed = server
        .get::<SealedSecret>(Some(NS), "db1")
        .ok_or("no db1")?;
    resealed.spec = sealed("db1", "db1-v2", &[]).spec;
    server.put(&resealed)?;

    // db2: annotations and data copied whole from db3's Secret.
    let db3 = secret("db3")?;
    put_secret(
        &server,
        "db2",
        db3.metadata.annotations.unwrap_or_default(),
        db3.data.unwrap_or_default(),
    )?;

    // db4: a proof made up without the controller's key (the right fingerprint, tags under a
    // key anyone could compute) over tampered data.
    let db4 = secret("db4")?;
    let mut annotations = db4.metadata.annotations.unwrap_or_default();
    let fingerprint = pair(0).fingerprint().to_string();
    let made_up = URL_SAFE_NO_PAD.encode([7u8; 32]);
    annotations.insert(
        PROOF.into(),
        format!("v1 {fingerprint} {made_up} {made_up}"),
    );
    let tampered = [("value".to_owned(), ByteString(b"tampered".to_vec()))].into();
    put_secret(&server, "db4", annotations, tampered)?;

    // db5: its proof removed (as after an upgrade from a controller without proofs, or a
    // migration from Bitnami's): unsealed to compare, and left as it is, being right.
    let db5 = secret("db5")?;
    let mut annotations = db5.metadata.annotations.unwrap_or_default();
    annotations.remove(PROOF);
    annotations.remove(SEALED_DIGEST);
    put_secret(&server, "db5", annotations, db5.data.unwrap_or_default())?;

    let changed = ["db0", "db1", "db2", "db4", "db5"];
    let rewritten = ["db0", "db1", "db2", "db4"];
    let running = restart(&server, names.len() as u64, || {
        value(&server, "db1").as_deref() == Some("db1-v2")
            && changed
                .iter()
                .filter(|n| **n != "db1")
                .all(|n| value(&server, n).as_deref() == Some(*n))
            && rewritten.iter().all(|n| {
                secret(n)
                    .ok()
                    .and_then(|s| s.metadata.annotations)
                    .is_some_and(|a| a.contains_key(PROOF))
            })
    })
    .await?;

    // One value each, one key: one private-key operation per changed object.
    assert_eq!(private_key_operations(&running), (5, 5));
    for name in &names {
        let written = rewritten.contains(&name.as_str());
        assert_eq!(
            secret_writes(&server, NS, name) > 0,
            written,
            "{name} written: {written}"
        );
        assert!(synced(&server, name, "True"), "{name}");
    }
    running.shutdown().await?;

    // Restored and re-proven: the next restart trusts them again; db5, still without a proof,
    // is unsealed again (and still not written).
    let again = restart(&server, names.len() as u64, || true).await?;
    assert_eq!(private_key_operations(&again), (1, 1));
    assert_eq!(secret_writes(&server, NS, "db5"), 0);
    again.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_secret_written_without_owner_stays_the_controllers() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let skip = [(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")];
    let first = support::start_controller(&server, &[]).await?;
    create(&server, &sealed("unowned", "v1", &skip)).await?;
    until("the Secret", || {
        value(&server, "unowned").as_deref() == Some("v1") && synced(&server, "unowned", "True")
    })
    .await?;
    let secret = server
        .get::<Secret>(Some(NS), "unowned")
        .ok_or("no Secret")?;
    assert_eq!(secret.metadata.owner_references, None);
    first.shutdown().await?;

    // After a restart: recognised, not re-unsealed.
    let running = restart(&server, 1, || true).await?;
    assert_eq!(private_key_operations(&running), (0, 0));

    // A new value: the Secret is updated, not refused as "not managed by SealedSecret" (Bitnami
    // refuses it without `managed: "true"`).
    let mut updated = server
        .get::<SealedSecret>(Some(NS), "unowned")
        .ok_or("no SealedSecret")?;
    updated.spec = sealed("unowned", "v2", &skip).spec;
    server.put(&updated)?;
    until("the new value", || {
        value(&server, "unowned").as_deref() == Some("v2")
    })
    .await?;
    until("Synced", || synced(&server, "unowned", "True")).await?;
    running.shutdown().await?;

    // An edit while stopped is restored too.
    let mut secret = server
        .get::<Secret>(Some(NS), "unowned")
        .ok_or("no Secret")?;
    secret.data = Some([("value".to_owned(), ByteString(b"tampered".to_vec()))].into());
    server.put(&secret)?;
    let running = restart(&server, 1, || {
        value(&server, "unowned").as_deref() == Some("v2")
    })
    .await?;
    assert_eq!(private_key_operations(&running).0, 1);
    assert!(synced(&server, "unowned", "True"));
    running.shutdown().await?;
    Ok(())
}

#[tokio::test]
async fn a_proof_does_not_make_someone_elses_secret_the_controllers() -> TestResult {
    let server = support::api_server(&[0]).await?;
    let skip = [(SKIP_SET_OWNER_REFERENCES_ANNOTATION, "true")];
    let running = support::start_controller(&server, &[]).await?;
    create(&server, &sealed("mine", "v1", &skip)).await?;
    until("the Secret", || {
        value(&server, "mine").as_deref() == Some("v1")
    })
    .await?;

    // Someone else's Secret carrying a copy of the controller's annotations from "mine".
    let mine = server.get::<Secret>(Some(NS), "mine").ok_or("no Secret")?;
    let mut theirs = support::plain_secret("theirs", &[], &[], &[("value", "theirs")]);
    theirs.metadata.annotations = mine.metadata.annotations.clone();
    Api::<Secret>::namespaced(server.client(), NS)
        .create(&PostParams::default(), &theirs)
        .await?;
    create(&server, &sealed("theirs", "taken", &[])).await?;
    until("refused", || synced(&server, "theirs", "False")).await?;
    assert_eq!(value(&server, "theirs").as_deref(), Some("theirs"));
    running.shutdown().await?;
    Ok(())
}
