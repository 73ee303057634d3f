//! The CLI's document reader (`sealbox::document::parse`, behind every command that reads a
//! file or stdin) and the readers on top of it: Secrets to seal and SealedSecrets to verify,
//! merge or unseal. In CI the file may come from a pull request. Any bytes must come back as
//! `Err`, never a panic or an abort.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealbox_cli::document;
use sealbox_cli::secret::SecretInput;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = document::parse("fuzz.yaml", data) else {
        return;
    };
    for doc in &input.documents {
        let _ = doc.kind();
        if let Ok(object) = doc.object() {
            for key in object.keys() {
                let _ = object.path_of(key);
            }
        }
        if let Ok(secret) = SecretInput::from_document(doc) {
            let _ = secret.display_name();
        }
        let _ = sealbox_cli::sealed::from_document(doc);
        let mut value = doc.value.clone();
        document::scrub(&mut value);
        let _ = document::kind_of(&value);
    }
});
