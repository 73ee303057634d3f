//! Writes the committed test key (once) and the seed corpora under fuzz/corpus/<target>/ from
//! the repository's fixtures and examples. Run from anywhere:
//!
//! ```sh
//! cargo run --manifest-path fuzz/Cargo.toml --example make_seeds
//! ```
//!
//! The key is generated only when fuzz/keys/key-secret.yaml is empty (so re-running refreshes
//! the corpora without changing the key: the sealed seeds are random each run, commit them with
//! the key they were sealed for). The seeds are starting points, not expectations.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_lc_rs::rand::SystemRandom;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::{KeyPair, KeySecret, Scope, seal};
use serde_json::{Value, json};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

const KEY_BITS: usize = 2048;

fn main() -> Result<()> {
    let fuzz = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = fuzz.parent().ok_or("fuzz/ has a parent")?.to_path_buf();
    let key_file = fuzz.join("keys/key-secret.yaml");
    if fs::read_to_string(&key_file)
        .unwrap_or_default()
        .trim()
        .is_empty()
    {
        let pair = KeyPair::generate_with_bits(KEY_BITS, "", SystemTime::now())?;
        let secret = KeySecret::from_key_pair(&pair, "kube-system", "sealed-secrets-key");
        fs::create_dir_all(key_file.parent().ok_or("keys/")?)?;
        fs::write(&key_file, secret.to_yaml()?)?;
        eprintln!(
            "wrote a new {KEY_BITS}-bit key to {}; run again to seal seeds for it",
            key_file.display()
        );
        return Ok(());
    }
    let secrets = sealbox_crypto::parse_key_secrets(&fs::read(&key_file)?, "fuzz key")?;
    let pair = secrets.first().ok_or("one key")?.key_pair()?;
    let corpus = fuzz.join("corpus");
    let fixtures = root.join("crypto/tests/fixtures");
    let examples = root.join("examples");
    let rng = SystemRandom::new();

    // wire: selector byte + sealed value, for each scope and a few plaintexts.
    let plaintexts: [&[u8]; 4] = [b"", b"hunter2", b"\x00\xff binary \x80", &[b'x'; 300]];
    for (selector, scope) in sealbox_fuzz::SCOPES.iter().enumerate() {
        for (i, plaintext) in plaintexts.iter().enumerate() {
            let sealed = seal(
                &rng,
                pair.certificate.public_key(),
                plaintext,
                &sealbox_fuzz::label(*scope),
            )?;
            let mut input = vec![u8::try_from(selector)?];
            input.extend_from_slice(&sealed);
            write(&corpus, "wire", &format!("{}-{i}", scope.as_str()), &input)?;
        }
    }
    write(&corpus, "wire", "empty-value", &[0, 0, 0])?;

    // age_value: selector byte + multi-recipient value for the fuzz key and the age identity.
    let mut recipients = sealbox_crypto::Recipients::new();
    recipients.add_rsa(pair.certificate.public_key().clone());
    recipients.add_age(&sealbox_fuzz::age_identity().to_public().to_string())?;
    for (selector, scope) in sealbox_fuzz::SCOPES.iter().enumerate() {
        let binding =
            sealbox_crypto::Binding::new(*scope, sealbox_fuzz::NAMESPACE, sealbox_fuzz::NAME)?;
        for (i, plaintext) in plaintexts.iter().enumerate() {
            let value = sealbox_crypto::age_value::seal(&recipients, &binding, plaintext)?;
            let mut input = vec![u8::try_from(selector)?];
            input.extend_from_slice(&value);
            write(&corpus, "age_value", &format!("{}-{i}", scope.as_str()), &input)?;
        }
    }
    // The golden vector of the reference age tool (strict default/mysecret: selector 0).
    let mut input = vec![0u8];
    input.extend_from_slice(&fs::read(fixtures.join("age-value.bin"))?);
    write(&corpus, "age_value", "reference-age-tool", &input)?;

    // pem_key: the fuzz key in every form, the fixtures' keys and public keys, key Secrets.
    write(
        &corpus,
        "pem_key",
        "fuzz-pkcs1.pem",
        pair.private_key.to_pkcs1_pem().as_bytes(),
    )?;
    write(
        &corpus,
        "pem_key",
        "fuzz-pkcs8.pem",
        pair.private_key.to_pkcs8_pem()?.as_bytes(),
    )?;
    write(
        &corpus,
        "pem_key",
        "fuzz-key-secret.yaml",
        &fs::read(&key_file)?,
    )?;
    let key_secret = KeySecret::from_key_pair(&pair, "kube-system", "sealed-secrets-key");
    write(
        &corpus,
        "pem_key",
        "fuzz-key-secret.json",
        serde_json::to_string(&key_secret.to_json())?.as_bytes(),
    )?;
    write(
        &corpus,
        "pem_key",
        "fuzz-public.pem",
        pair.certificate.public_key().to_pem().as_bytes(),
    )?;
    for name in [
        "key-pkcs1.pem",
        "key-pkcs8.pem",
        "key-secret.json",
        "key-secret.yaml",
        "keys-list.yaml",
        "public-pkcs1.pem",
        "public-spki.pem",
    ] {
        copy(&fixtures.join(name), &corpus, "pem_key", name)?;
    }
    copy(
        &examples.join("sealing-key.yaml"),
        &corpus,
        "pem_key",
        "example-sealing-key.yaml",
    )?;

    // certificate: PEM and DER.
    write(
        &corpus,
        "certificate",
        "fuzz-cert.pem",
        pair.certificate.to_pem().as_bytes(),
    )?;
    write(
        &corpus,
        "certificate",
        "fuzz-cert.der",
        pair.certificate.der(),
    )?;
    for name in ["cert.pem", "cert-expired.pem"] {
        copy(&fixtures.join(name), &corpus, "certificate", name)?;
    }
    copy(
        &examples.join("cert.pem"),
        &corpus,
        "certificate",
        "example-cert.pem",
    )?;
    let fingerprint = pair.certificate.public_key().fingerprint().to_string();
    write(
        &corpus,
        "certificate",
        "fingerprint",
        fingerprint.as_bytes(),
    )?;

    // SealedSecrets sealed for the fuzz key (so verify_body gets past the RSA step), with and
    // without templates, as YAML and JSON.
    let templates = [
        None,
        Some(json!({"dsn": "postgres://{{ .username }}:{{ .password }}@db/app"})),
        Some(json!({
            "config.yaml": "user: {{ .username | quote }}\npass: {{ .password | b64enc }}\n{{ if eq .username \"admin\" }}admin: true{{ end }}\n",
            "hash": "{{ sha256sum .password }}{{ index . \"password\" | upper | trim }}",
        })),
    ];
    let mut sealed_docs = Vec::new();
    for (scope_index, scope) in sealbox_fuzz::SCOPES.iter().enumerate() {
        let template = templates[scope_index % templates.len()].clone();
        sealed_docs.push((
            format!("fuzz-{}", scope.as_str()),
            sealed_secret(&pair, *scope, template, &rng)?,
        ));
    }
    sealed_docs.push((
        "fuzz-templated".to_owned(),
        sealed_secret(&pair, Scope::Strict, templates[2].clone(), &rng)?,
    ));
    for (name, doc) in &sealed_docs {
        let yaml = serde_norway::to_string(doc)?;
        let json = serde_json::to_string_pretty(doc)?;
        for target in ["sealed_secret", "verify_body", "cli_document"] {
            write(&corpus, target, &format!("{name}.yaml"), yaml.as_bytes())?;
            write(&corpus, target, &format!("{name}.json"), json.as_bytes())?;
        }
    }
    let list = json!({"apiVersion": "v1", "kind": "List", "items": sealed_docs.iter().map(|(_, d)| d.clone()).collect::<Vec<_>>()});
    write(
        &corpus,
        "cli_document",
        "list.json",
        serde_json::to_string(&list)?.as_bytes(),
    )?;
    let many: Vec<String> = sealed_docs
        .iter()
        .map(|(_, d)| serde_norway::to_string(d))
        .collect::<std::result::Result<_, _>>()?;
    write(
        &corpus,
        "cli_document",
        "several.yaml",
        many.join("---\n").as_bytes(),
    )?;
    for name in [
        "sealedsecret-strict.yaml",
        "sealedsecret-namespace-wide.yaml",
        "sealedsecret-cluster-wide.yaml",
    ] {
        for target in ["sealed_secret", "verify_body", "cli_document"] {
            copy(&fixtures.join(name), &corpus, target, name)?;
        }
    }
    for name in ["sealed-secret.yaml", "secret.yaml"] {
        for target in ["sealed_secret", "verify_body", "cli_document"] {
            copy(
                &examples.join(name),
                &corpus,
                target,
                &format!("example-{name}"),
            )?;
        }
    }

    // template: the value of `fuzz`, NUL, then the template text.
    let template_seeds: [(&str, &str, &str); 12] = [
        ("plain", "", "{{ .username }}"),
        (
            "dsn",
            "",
            "postgres://{{ .username }}:{{ .password }}@db:5432/app",
        ),
        (
            "pipeline",
            "Mixed Case ",
            "{{ .fuzz | trim | lower | upper | quote }}",
        ),
        (
            "index",
            "",
            "{{ index . \"with-dash\" }}{{ index . \"password\" | b64enc | b64dec }}",
        ),
        (
            "printf",
            "42",
            "{{ printf \"%s=%q %d\" .username .fuzz 7 }}",
        ),
        (
            "if",
            "",
            "{{ if eq .username \"admin\" }}{{ .password }}{{ else }}{{ .empty | default \"none\" }}{{ end }}",
        ),
        (
            "range-with",
            "",
            "{{ with .password }}{{ . | sha256sum }}{{ end }}{{ $x := .username }}{{ $x }}",
        ),
        (
            "define",
            "",
            "{{ define \"t\" }}[{{ . }}]{{ end }}{{ template \"t\" .username }}",
        ),
        (
            "helpers",
            "a,b,c",
            "{{ replace \",\" \";\" .fuzz }}{{ trimPrefix \"a\" .fuzz }}{{ hasSuffix \"c\" .fuzz }}{{ contains \"b\" .fuzz }}",
        ),
        (
            "indent",
            "line1\nline2",
            "key:\n{{ .fuzz | indent 2 }}{{ .fuzz | nindent 4 }}{{ repeat 3 .username }}",
        ),
        (
            "coalesce",
            "",
            "{{ coalesce .empty .fuzz .username }}{{ empty .empty }}{{ squote .password }}{{ trimAll \"!\" .password }}{{ trimSuffix \"!\" .password }}",
        ),
        (
            "parens",
            "",
            "{{ (((printf \"%s\" (upper .username)))) }}{{ and .username (or .empty .password) }}{{ not true }}{{ len .password }}",
        ),
    ];
    for (name, value, text) in template_seeds {
        let mut input = value.as_bytes().to_vec();
        input.push(0);
        input.extend_from_slice(text.as_bytes());
        write(&corpus, "template", name, &input)?;
    }
    // The templates of the sealed fixtures, as they are.
    write(&corpus, "template", "no-value", b"static text, no actions")?;
    Ok(())
}

fn sealed_secret(
    pair: &KeyPair,
    scope: Scope,
    template_data: Option<Value>,
    rng: &SystemRandom,
) -> Result<Value> {
    let label = sealbox_fuzz::label(scope);
    let mut encrypted = serde_json::Map::new();
    for (key, value) in [("username", "admin"), ("password", "s3cr3t!")] {
        let sealed = seal(rng, pair.certificate.public_key(), value.as_bytes(), &label)?;
        encrypted.insert(key.to_owned(), Value::String(STANDARD.encode(sealed)));
    }
    let mut annotations = serde_json::Map::new();
    if let Some(annotation) = scope.annotation() {
        annotations.insert(annotation.to_owned(), json!("true"));
    }
    annotations.insert(
        "sealbox.dev/sealing-key".to_owned(),
        json!(pair.fingerprint().to_string()),
    );
    let mut template = json!({
        "metadata": {"name": sealbox_fuzz::NAME, "namespace": sealbox_fuzz::NAMESPACE, "labels": {"app": "demo"}},
        "type": "Opaque",
    });
    if let Some(data) = template_data {
        template["data"] = data;
    }
    Ok(json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {"name": sealbox_fuzz::NAME, "namespace": sealbox_fuzz::NAMESPACE, "annotations": annotations},
        "spec": {"encryptedData": encrypted, "template": template},
    }))
}

fn write(corpus: &Path, target: &str, name: &str, bytes: &[u8]) -> Result<()> {
    let dir = corpus.join(target);
    fs::create_dir_all(&dir)?;
    fs::write(dir.join(name), bytes)?;
    Ok(())
}

fn copy(from: &Path, corpus: &Path, target: &str, name: &str) -> Result<()> {
    let bytes = fs::read(from).map_err(|e| format!("{}: {e}", from.display()))?;
    write(corpus, target, name, &bytes)
}
