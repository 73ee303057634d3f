//! SealedSecret decoding from YAML and JSON, the ways the controller and the CLI do it:
//! the typed CRD structs straight from YAML/JSON, the controller's reading of a watched
//! `DynamicObject` (cache parse and full parse), and the CLI's field-checked reading of a
//! document. Any bytes must come back as `Err` (or a malformed mark), never a panic.
#![no_main]

use kube::api::DynamicObject;
use libfuzzer_sys::fuzz_target;
use sealbox_controller::watched::{WatchedSealedSecret, parse_sealed_secret};
use sealbox_crds::SealedSecret;

fn exercise(sealed: &SealedSecret) {
    let _ = sealed.scope();
    let _ = sealed.label();
    let _ = sealed.sealing_key_hint();
    let _ = sealed.synced_condition();
}

fn controller(object: DynamicObject) {
    if let Ok(sealed) = parse_sealed_secret(&object) {
        exercise(&sealed);
    }
    let _ = WatchedSealedSecret::from_object(object);
}

fuzz_target!(|data: &[u8]| {
    // The typed structs, as written by kubectl users and read back in tests and tools.
    if let Ok(sealed) = serde_json::from_slice::<SealedSecret>(data) {
        exercise(&sealed);
    }
    if let Ok(sealed) = serde_norway::from_slice::<SealedSecret>(data) {
        exercise(&sealed);
    }

    // The controller: watched objects arrive from the API server as JSON into DynamicObject.
    if let Ok(object) = serde_json::from_slice::<DynamicObject>(data) {
        controller(object);
    }
    if let Ok(object) = serde_norway::from_slice::<DynamicObject>(data) {
        controller(object);
    }

    // The CLI: documents (YAML or JSON, several, List items) read field by field.
    if let Ok(input) = sealbox_cli::document::parse("fuzz", data) {
        for document in &input.documents {
            if let Ok(sealed) = sealbox_cli::sealed::from_document(document) {
                exercise(&sealed);
                let _ = sealbox_cli::sealed::display_name(&sealed);
            }
        }
    }
});
