//! The committed CRD must be exactly what the types generate.

use std::path::PathBuf;

use kube::CustomResourceExt;
use sealbox_crds::SealedSecret;

const REGENERATE: &str =
    "cargo run -p sealbox-crds --bin crdgen > deploy/crds/sealedsecrets.bitnami.com.yaml";

#[test]
fn committed_crd_matches_the_types() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crds/sealedsecrets.bitnami.com.yaml");
    let committed = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}; run `{REGENERATE}`", path.display()));
    let committed: serde_json::Value = serde_norway::from_str(&committed)
        .unwrap_or_else(|err| panic!("{} is not YAML: {err}; run `{REGENERATE}`", path.display()));
    let generated = serde_json::to_value(SealedSecret::crd()).expect("the CRD serializes");
    assert!(
        committed == generated,
        "{} is out of date with the SealedSecret types; run `{REGENERATE}`",
        path.display()
    );
}

#[test]
fn crd_keeps_the_bitnami_contract() {
    let crd = serde_json::to_value(SealedSecret::crd()).expect("the CRD serializes");
    assert_eq!(crd["metadata"]["name"], "sealedsecrets.bitnami.com");
    assert_eq!(crd["spec"]["group"], "bitnami.com");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    assert_eq!(crd["spec"]["names"]["plural"], "sealedsecrets");
    assert_eq!(crd["spec"]["names"]["kind"], "SealedSecret");
    let version = &crd["spec"]["versions"][0];
    assert_eq!(version["name"], "v1alpha1");
    assert_eq!(version["subresources"]["status"], serde_json::json!({}));
    let columns: Vec<_> = version["additionalPrinterColumns"]
        .as_array()
        .expect("printer columns")
        .iter()
        .map(|c| (c["name"].as_str(), c["jsonPath"].as_str()))
        .collect();
    assert_eq!(
        columns,
        [
            (Some("Status"), Some(".status.conditions[0].message")),
            (Some("Synced"), Some(".status.conditions[0].status")),
            (Some("Age"), Some(".metadata.creationTimestamp")),
        ]
    );
    let spec = &version["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert_eq!(spec["required"], serde_json::json!(["encryptedData"]));
    let template_metadata = &spec["properties"]["template"]["properties"]["metadata"];
    assert_eq!(
        template_metadata["x-kubernetes-preserve-unknown-fields"],
        true
    );
}
