//! `sealbox reencrypt PATH...`: re-seal sealed files to the newest key, in place.
//!
//! Offline (`--key`): each value is decrypted with the key that opens it (the hinted one
//! first); values the current key already opens stay byte for byte, the others are sealed
//! again with the current certificate, for the same label (scope, namespace, name).
//! Online (no `--key`): SealedSecrets whose hint is not the controller's current key are
//! POSTed to its `/v1/rotate`, which answers with every value re-sealed.
//!
//! Multi-recipient (age) values are re-wrapped, not re-sealed: the stanzas of the `--key` keys
//! are replaced by one for the current key, and the other clusters, age keys and the payload
//! stay as they were (online, the controller's `/v1/rotate` does the same).
//!
//! Files are edited as text: each old ciphertext is replaced by the new one and the hint
//! fingerprint updated, so comments, order, other documents and templates stay as they were.
//! Only a single-document file that lacks the hint (or whose values are folded over several
//! lines) is re-rendered. Every result is parsed again and compared with what was intended
//! before the file is replaced atomically; a file that cannot be re-sealed completely is left
//! untouched.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal as _, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use http::Method;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sealbox_crds::SealedSecret;
use sealbox_crypto::OsRandom;
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use sealbox_crypto::{Fingerprint, PublicKey};
use serde_json::Value;

use crate::Outcome;
use crate::bounded;
use crate::cert::{CertSource, Expiry, KeyCache, parse_sealing_key};
use crate::cert_choice::CertChoice;
use crate::cli::ReencryptArgs;
use crate::cluster::{self, Cluster, ClusterOptions};
use crate::config::{Configs, select_files};
use crate::document::{Input, Syntax, parse, read_file};
use crate::error::{Error, Result};
use crate::keyring::{Keyring, load_keys};
use crate::output::{Format, Visibility, note, render, write_atomically};
use crate::sealed;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileResult {
    /// Re-sealed (or, with --dry-run, would be): how many values changed.
    Rewritten {
        /// Values sealed again.
        values: usize,
        /// Whether the file had to be re-rendered (comments and layout not kept).
        rerendered: bool,
    },
    /// Every value is already sealed to the current key: not touched.
    Current,
    /// Not a sealed file: not touched.
    Skipped(String),
    /// Could not be re-sealed: not touched.
    Failed(String),
}

/// New values for one SealedSecret: `None` when it is already current.
type Resealed = Option<BTreeMap<String, String>>;

/// A file's SealedSecret documents, read and checked.
struct SealedFile {
    bytes: zeroize::Zeroizing<Vec<u8>>,
    input: Input,
    /// (index in `input.documents`, the SealedSecret).
    sealed: Vec<(usize, SealedSecret)>,
}

/// Reads a file; `Err` is the result to report (skipped or failed).
fn read_sealed_file(path: &Path) -> std::result::Result<SealedFile, FileResult> {
    let name = path.display().to_string();
    let bytes = read_file(path).map_err(|e| FileResult::Failed(format!("cannot read: {e}")))?;
    let input = parse(&name, &bytes)
        .map_err(|e| FileResult::Skipped(format!("not a manifest ({})", e.report())))?;
    let mut sealed = Vec::new();
    for (index, document) in input.documents.iter().enumerate() {
        if document.kind() != Some("SealedSecret") {
            continue;
        }
        match sealed::from_document(document) {
            Ok(object) => sealed.push((index, object)),
            Err(e) => return Err(FileResult::Failed(e.to_string())),
        }
    }
    if sealed.is_empty() {
        let kinds: Vec<&str> = input.documents.iter().filter_map(|d| d.kind()).collect();
        return Err(FileResult::Skipped(if kinds.is_empty() {
            "no SealedSecret".to_owned()
        } else {
            format!("no SealedSecret (holds {})", kinds.join(", "))
        }));
    }
    Ok(SealedFile {
        bytes,
        input,
        sealed,
    })
}

/// Runs `sealbox reencrypt`.
pub fn run(args: &ReencryptArgs, _stdout: impl Write, mut stderr: impl Write) -> Result<Outcome> {
    let mut configs = Configs::default();
    let selection = select_files(&args.walk, &mut configs)?;
    if let Some(message) = selection.helm_note() {
        note(&mut stderr, format_args!("{message}"));
    }
    let files = selection.files;
    let progress = progress_bar(files.len());
    let results = if args.keys.is_empty() {
        if args.cert.cert.is_some() {
            note(
                &mut stderr,
                format_args!(
                    "without --key the controller re-seals to its newest key; --cert (or SEALBOX_CERT) is not used"
                ),
            );
        }
        run_online(args, &files, &mut configs, &progress)?
    } else {
        run_offline(args, &files, &mut configs, &progress)?
    };
    progress.finish_and_clear();
    Ok(report(&files, &results, args.dry_run, &mut stderr))
}

fn progress_bar(len: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} {wide_msg}") {
        bar.set_style(style);
    }
    bar
}

fn report(
    files: &[PathBuf],
    results: &[FileResult],
    dry_run: bool,
    stderr: &mut impl Write,
) -> Outcome {
    let (mut rewritten, mut values, mut current, mut skipped, mut failed) = (0, 0, 0, 0, 0);
    for (file, result) in files.iter().zip(results) {
        let file = file.display();
        match result {
            FileResult::Rewritten {
                values: n,
                rerendered,
            } => {
                rewritten += 1;
                values += n;
                let _ = writeln!(
                    stderr,
                    "{} {file}: {n} value(s){}",
                    if dry_run {
                        "would re-seal"
                    } else {
                        "re-sealed"
                    },
                    if *rerendered {
                        " (rewritten in sealbox's layout to add the sealing-key hint)"
                    } else {
                        ""
                    }
                );
            }
            FileResult::Current => current += 1,
            FileResult::Skipped(why) => {
                skipped += 1;
                let _ = writeln!(stderr, "skipped {file}: {why}");
            }
            FileResult::Failed(why) => {
                failed += 1;
                let _ = writeln!(stderr, "error: {file}: {why}; the file is left as it was");
            }
        }
    }
    let _ = writeln!(
        stderr,
        "reencrypt{}: {} file(s): {rewritten} {} ({values} value(s)), {current} already current, {skipped} skipped (not sealed), {failed} failed",
        if dry_run { " (dry run)" } else { "" },
        files.len(),
        if dry_run { "to re-seal" } else { "re-sealed" },
    );
    if failed > 0 {
        Outcome::ProblemsFound
    } else {
        Outcome::Success
    }
}

fn run_offline(
    args: &ReencryptArgs,
    files: &[PathBuf],
    configs: &mut Configs,
    progress: &ProgressBar,
) -> Result<Vec<FileResult>> {
    let ring = Keyring::new(load_keys(&args.keys, &args.backup.openers())?);
    let age_ring = ring.age_ring();
    let cluster = args.cluster.options();
    let choice = CertChoice::new(args.cert.cert.as_ref(), &cluster);
    // Sealing to an expired certificate is refused, as `seal` does.
    let mut keys = KeyCache::new(Expiry::Refuse);
    let rng = OsRandom;
    let mut results = Vec::with_capacity(files.len());
    for file in files {
        progress.set_message(file.display().to_string());
        let source = choice.for_path(configs, file)?;
        let current = keys.get(&source)?;
        let result = match read_sealed_file(file) {
            Err(result) => result,
            Ok(sealed_file) => {
                let plan = sealed_file
                    .sealed
                    .iter()
                    .map(|(index, object)| {
                        reseal_offline(object, &current, (&ring, &age_ring), &rng)
                            .map(|r| (*index, r))
                    })
                    .collect::<std::result::Result<Vec<_>, String>>();
                match plan {
                    Ok(plan) => finish(
                        file,
                        &sealed_file,
                        &plan,
                        current.fingerprint(),
                        args.dry_run,
                    ),
                    Err(why) => FileResult::Failed(why),
                }
            }
        };
        results.push(result);
        progress.inc(1);
    }
    Ok(results)
}

/// New values for the values of `object` not yet sealed to `current`.
fn reseal_offline(
    object: &SealedSecret,
    current: &PublicKey,
    (ring, age_ring): (&Keyring, &sealbox_crypto::RsaKeyRing),
    rng: &OsRandom,
) -> std::result::Result<Resealed, String> {
    let hint = object.sealing_key_hint();
    let label = object.label();
    let mut resealed = BTreeMap::new();
    let mut undecryptable = Vec::new();
    for (name, value) in &object.spec.encrypted_data {
        if let Some(bytes) = multi_recipient(value) {
            let rewrapped = sealbox_crypto::Binding::from_label(&label).and_then(|binding| {
                sealbox_crypto::age_value::rewrap(age_ring, &bytes, &binding, current)
            });
            match rewrapped {
                Ok(Some(bytes)) => {
                    resealed.insert(name.clone(), STANDARD.encode(bytes));
                }
                // The current key is a recipient already.
                Ok(None) => {}
                Err(_) => undecryptable.push(name.clone()),
            }
            continue;
        }
        match ring.open(value, &label, hint.as_ref()) {
            Some((_, key)) if &key == current.fingerprint() => {}
            Some((plaintext, _)) => {
                let sealed = sealbox_crypto::seal(rng, current, &plaintext, &label)
                    .map_err(|e| format!("cannot seal {name}: {}", e.category()))?;
                resealed.insert(name.clone(), STANDARD.encode(sealed));
            }
            None if hint.as_ref() == Some(current.fingerprint()) => {}
            None => undecryptable.push(name.clone()),
        }
    }
    if !undecryptable.is_empty() {
        return Err(format!(
            "SealedSecret {}: no --key decrypts [{}] (sealed to a key not given, or for another name, namespace or scope)",
            sealed::display_name(object),
            undecryptable.join(", ")
        ));
    }
    Ok((!resealed.is_empty()).then_some(resealed))
}

/// The bytes of an `encryptedData` value when it is a multi-recipient (age) value.
fn multi_recipient(encoded: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    crate::secret::decode_base64(encoded)
        .filter(|bytes| sealbox_crypto::ValueFormat::of(bytes) == sealbox_crypto::ValueFormat::Age)
}

fn run_online(
    args: &ReencryptArgs,
    files: &[PathBuf],
    configs: &mut Configs,
    progress: &ProgressBar,
) -> Result<Vec<FileResult>> {
    let base = args.cluster.options();
    // Which controller serves each file: the flags', or its rule's context.
    let mut targets = Vec::with_capacity(files.len());
    for file in files {
        let options = match configs.for_path(file)? {
            Some(config) => match config.cert_for(file, &base) {
                Some(CertSource::Cluster(options)) => options,
                _ => base.clone(),
            },
            None => base.clone(),
        };
        targets.push(options);
    }
    let dry_run = args.dry_run;
    cluster::block_on(async {
        let mut controllers: HashMap<ClusterOptions, (Cluster, Fingerprint)> = HashMap::new();
        let mut results = Vec::with_capacity(files.len());
        for (file, options) in files.iter().zip(&targets) {
            progress.set_message(file.display().to_string());
            if !controllers.contains_key(options) {
                let cluster = Cluster::connect(options).await.map_err(|e| {
                    e.offline_hint(
                        "pass --key with the old keys (or a `keys backup` file) and --cert FILE",
                    )
                })?;
                let pem = cluster
                    .controller_request(
                        Method::GET,
                        "v1/cert.pem",
                        Vec::new(),
                        "text/plain",
                        bounded::CERTIFICATE,
                    )
                    .await?;
                let key = parse_sealing_key(
                    pem.as_bytes(),
                    &options.to_string(),
                    SystemTime::now(),
                    Expiry::Accept,
                )?;
                controllers.insert(
                    options.clone(),
                    (cluster, key.public_key.fingerprint().clone()),
                );
            }
            let Some((cluster, current)) = controllers.get(options) else {
                continue;
            };
            let result = match read_sealed_file(file) {
                Err(result) => result,
                Ok(sealed_file) => {
                    match plan_online(cluster, &sealed_file, current, dry_run).await? {
                        Ok(plan) => finish(file, &sealed_file, &plan, current, dry_run),
                        Err(why) => FileResult::Failed(why),
                    }
                }
            };
            results.push(result);
            progress.inc(1);
        }
        Ok(results)
    })?
}

/// The file's SealedSecrets as the controller re-seals them (those already sealed to `current`
/// are left alone; with `dry_run` nothing is sent); `Ok(Err(why))` when the controller cannot
/// decrypt one.
async fn plan_online(
    cluster: &Cluster,
    sealed_file: &SealedFile,
    current: &Fingerprint,
    dry_run: bool,
) -> Result<std::result::Result<Vec<(usize, Resealed)>, String>> {
    let mut plan = Vec::with_capacity(sealed_file.sealed.len());
    for (index, object) in &sealed_file.sealed {
        if object.sealing_key_hint().as_ref() == Some(current) {
            plan.push((*index, None));
            continue;
        }
        if dry_run {
            plan.push((*index, Some(object.spec.encrypted_data.clone())));
            continue;
        }
        let document = &sealed_file.input.documents[*index];
        match reseal_online(cluster, &document.value, object).await {
            Ok(values) => plan.push((*index, Some(values))),
            Err(Error::ControllerRequest {
                code: 409, reason, ..
            }) => {
                return Ok(Err(format!(
                    "the controller cannot decrypt SealedSecret {} ({})",
                    sealed::display_name(object),
                    reason.trim()
                )));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(Ok(plan))
}

/// POSTs one SealedSecret to `/v1/rotate`; returns every value as re-sealed.
async fn reseal_online(
    cluster: &Cluster,
    document: &Value,
    object: &SealedSecret,
) -> Result<BTreeMap<String, String>> {
    let body = serde_json::to_vec(document).map_err(|e| Error::Render {
        format: "JSON",
        reason: e.to_string(),
    })?;
    let answer = cluster
        .controller_request(
            Method::POST,
            "v1/rotate",
            body,
            "application/json",
            bounded::CONTROLLER_ANSWER,
        )
        .await?;
    let unexpected = |reason: String| Error::ControllerAnswer {
        controller: cluster.options.controller(),
        request: "POST /v1/rotate".to_owned(),
        reason,
    };
    let rotated: Value = serde_json::from_str(&answer).map_err(|e| {
        unexpected(format!(
            "not JSON (line {}, column {})",
            e.line(),
            e.column()
        ))
    })?;
    let values = rotated
        .pointer("/spec/encryptedData")
        .and_then(Value::as_object)
        .ok_or_else(|| unexpected("no spec.encryptedData".to_owned()))?;
    let mut resealed = BTreeMap::new();
    for name in object.spec.encrypted_data.keys() {
        let value = values
            .get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| unexpected(format!("spec.encryptedData lacks {name}")))?;
        resealed.insert(name.clone(), value.to_owned());
    }
    Ok(resealed)
}

/// Applies the plan to the file's text, checks the result and writes it (unless `dry_run`).
fn finish(
    file: &Path,
    sealed_file: &SealedFile,
    plan: &[(usize, Resealed)],
    current: &Fingerprint,
    dry_run: bool,
) -> FileResult {
    let changes: Vec<(usize, &BTreeMap<String, String>)> = plan
        .iter()
        .filter_map(|(index, resealed)| resealed.as_ref().map(|values| (*index, values)))
        .collect();
    if changes.is_empty() {
        return FileResult::Current;
    }
    let values = changes.iter().map(|(_, v)| v.len()).sum();
    let (text, rerendered) = match edit(sealed_file, &changes, current) {
        Ok(edited) => edited,
        Err(why) => return FileResult::Failed(why),
    };
    if !dry_run && let Err(e) = write_atomically(file, text.as_bytes(), Visibility::Public) {
        return FileResult::Failed(e.report());
    }
    FileResult::Rewritten { values, rerendered }
}

/// The new text of a file: ciphertexts and hints replaced in place, else (one document) the
/// document re-rendered; then checked by parsing it again.
fn edit(
    sealed_file: &SealedFile,
    changes: &[(usize, &BTreeMap<String, String>)],
    current: &Fingerprint,
) -> std::result::Result<(String, bool), String> {
    let original = std::str::from_utf8(&sealed_file.bytes).map_err(|_| "not UTF-8".to_owned())?;
    let documents = &sealed_file.input.documents;
    let current_hint = current.to_string();

    // What every document must look like afterwards.
    let mut expected: Vec<Value> = documents.iter().map(|d| d.value.clone()).collect();
    let mut text = original.to_owned();
    let mut in_place = true;
    let mut missing_hint = false;
    for (index, values) in changes {
        let document = &documents[*index];
        for (name, new) in *values {
            let Some(old) = document
                .value
                .pointer("/spec/encryptedData")
                .and_then(|d| d.get(name))
                .and_then(Value::as_str)
            else {
                return Err(format!("spec.encryptedData.{name} vanished"));
            };
            if text.matches(old).count() == 1 {
                text = text.replacen(old, new, 1);
            } else {
                in_place = false;
            }
            if let Some(data) = expected[*index]
                .pointer_mut("/spec/encryptedData")
                .and_then(Value::as_object_mut)
            {
                data.insert(name.clone(), Value::String(new.clone()));
            }
        }
        match hint_of(&document.value) {
            Some(old) if old != current_hint => text = text.replace(old, &current_hint),
            Some(_) => {}
            None => missing_hint = true,
        }
    }
    let single = documents.len() == 1 && documents[0].origin.item.is_none();
    let rerender = single && (!in_place || missing_hint);
    if rerender {
        let mut value = expected[0].clone();
        set_hint(&mut value, &current_hint);
        let format = match sealed_file.input.syntax {
            Syntax::Yaml => Format::Yaml,
            Syntax::Json => Format::Json,
        };
        let rendered = render(&[&value], format).map_err(|e| e.to_string())?;
        text = String::from_utf8(rendered.to_vec()).map_err(|_| "not UTF-8".to_owned())?;
    } else if !in_place {
        return Err(
            "a value is not written on one line, so it cannot be replaced in place in a file of several documents; split the file or re-seal it by hand".to_owned(),
        );
    }

    check_edit(&text, expected, changes, &current_hint)?;
    Ok((text, rerender))
}

/// Parses the edited text and compares it, hints aside, with what was intended; every changed
/// document must carry the current hint.
fn check_edit(
    text: &str,
    expected: Vec<Value>,
    changes: &[(usize, &BTreeMap<String, String>)],
    current_hint: &str,
) -> std::result::Result<(), String> {
    let reparsed = parse("(result)", text.as_bytes()).map_err(|e| {
        format!(
            "the edited file does not parse ({}); nothing was written",
            e.report()
        )
    })?;
    if reparsed.documents.len() != expected.len() {
        return Err(
            "the edited file has another number of documents; nothing was written".to_owned(),
        );
    }
    for (index, (after, mut wanted)) in reparsed.documents.iter().zip(expected).enumerate() {
        let mut after = after.value.clone();
        strip_hint(&mut after);
        strip_hint(&mut wanted);
        if after != wanted {
            return Err(format!(
                "document {} would change beyond its ciphertexts; nothing was written",
                index + 1
            ));
        }
    }
    for (index, _) in changes {
        let hint = hint_of(&reparsed.documents[*index].value);
        if hint.is_some_and(|h| h != current_hint) {
            return Err("a sealing-key hint could not be updated; nothing was written".to_owned());
        }
    }
    Ok(())
}

fn hint_of(value: &Value) -> Option<&str> {
    value
        .pointer("/metadata/annotations")?
        .get(SEALING_KEY_ANNOTATION)?
        .as_str()
}

fn set_hint(value: &mut Value, hint: &str) {
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let annotations = metadata
        .entry("annotations")
        .or_insert_with(|| Value::Object(serde_json::Map::new()));
    if let Some(map) = annotations.as_object_mut() {
        map.insert(
            SEALING_KEY_ANNOTATION.to_owned(),
            Value::String(hint.to_owned()),
        );
    }
}

fn strip_hint(value: &mut Value) {
    let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) else {
        return;
    };
    let empty = match metadata
        .get_mut("annotations")
        .and_then(Value::as_object_mut)
    {
        Some(map) => {
            map.remove(SEALING_KEY_ANNOTATION);
            map.is_empty()
        }
        None => false,
    };
    if empty {
        metadata.remove("annotations");
    }
}
