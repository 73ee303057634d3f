//! SealedSecrets read from a [`Document`] and written back out.
//!
//! Reading checks the shape of every field before handing the document to serde, so a malformed
//! file yields an error naming the field, never one quoting a ciphertext.

use sealbox_crds::{SealedSecret, VERSION};

use crate::document::{Document, Object, expect_kind};
use crate::error::{Error, Result};

/// `bitnami.com/v1alpha1`.
pub fn api_version() -> String {
    format!("{}/{VERSION}", sealbox_crds::GROUP)
}

/// Reads a SealedSecret, with errors naming the document and field.
pub fn from_document(document: &Document) -> Result<SealedSecret> {
    let root = document.object()?;
    expect_kind(
        &root,
        "SealedSecret",
        &api_version(),
        if document.kind() == Some("Secret") {
            "seal it first with `sealbox seal`"
        } else {
            ""
        },
    )?;
    if root.str("apiVersion")?.is_none() {
        return Err(root.error("apiVersion", format!("missing; expected {}", api_version())));
    }
    let metadata = root
        .object("metadata")?
        .ok_or_else(|| root.error("metadata", "missing"))?;
    match metadata.str("name")? {
        Some(name) if !name.is_empty() => {}
        _ => return Err(metadata.error("name", "missing")),
    }
    metadata.str("namespace")?;
    metadata.string_map("labels", "")?;
    metadata.string_map("annotations", "")?;

    let spec = root
        .object("spec")?
        .ok_or_else(|| root.error("spec", "missing"))?;
    check_spec(&spec)?;

    serde_json::from_value(document.value.clone()).map_err(|e| Error::InvalidDocument {
        origin: document.origin.clone(),
        field: "(document)".to_owned(),
        problem: format!("not a valid SealedSecret: {e}"),
    })
}

fn check_spec(spec: &Object<'_>) -> Result<()> {
    if spec.get("data").is_some() {
        return Err(spec.error(
            "data",
            "the legacy single-blob format (spec.data) is not supported; re-seal the Secret with `sealbox seal`",
        ));
    }
    if spec.string_map("encryptedData", "")?.is_none() {
        return Err(spec.error("encryptedData", "missing"));
    }
    if let Some(template) = spec.object("template")? {
        template.str("type")?;
        template.bool("immutable")?;
        template.string_map("data", "")?;
        if let Some(metadata) = template.object("metadata")? {
            metadata.str("name")?;
            metadata.str("namespace")?;
            metadata.string_map("labels", "")?;
            metadata.string_map("annotations", "")?;
            metadata.string_list("finalizers")?;
        }
    }
    Ok(())
}

/// `namespace/name` of a SealedSecret, for messages.
pub fn display_name(sealed: &SealedSecret) -> String {
    format!(
        "{}/{}",
        sealed.metadata.namespace.as_deref().unwrap_or("?"),
        sealed.metadata.name.as_deref().unwrap_or("?")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::document::parse;

    fn sealed(yaml: &str) -> Result<SealedSecret> {
        let input = parse("ss.yaml", yaml.as_bytes()).unwrap();
        from_document(&input.documents[0])
    }

    #[test]
    fn reads_a_sealed_secret() {
        let ss = sealed(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: a, namespace: b}\nspec:\n  encryptedData: {x: AgA=}\n",
        )
        .unwrap();
        assert_eq!(ss.spec.encrypted_data["x"], "AgA=");
    }

    #[test]
    fn shape_errors_name_the_field() {
        let err = sealed(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: a}\nspec:\n  encryptedData: AgBsecretciphertext\n",
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("spec.encryptedData: expected a mapping"),
            "{message}"
        );
        assert!(!message.contains("AgBsecret"), "{message}");

        let err = sealed("apiVersion: v1\nkind: Secret\nmetadata: {name: a}\n").unwrap_err();
        assert!(err.to_string().contains("seal it first"), "{err}");

        let err = sealed(
            "apiVersion: bitnami.com/v1alpha1\nkind: SealedSecret\nmetadata: {name: a}\nspec: {data: AgB}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("legacy"), "{err}");
    }
}
