//! Moving a multi-recipient value to a cluster's new key without touching its other recipients.
//!
//! A cluster that can open a value knows its file key; with it, the cluster's own `ssh-rsa`
//! stanzas can be replaced by one for its newest key and the header MAC recomputed
//! (HMAC-SHA256 under HKDF-SHA256(file key, info "header"), over the header up to `---`). The
//! other stanzas (other clusters, age keys, grease) and the payload stay byte for byte: the
//! payload key derives from the file key and the unchanged nonce. Nobody else's key is needed,
//! and no plaintext leaves this function.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::public_key::PublicKey;

use super::header::{self, RecipientKind};
use super::ssh_rsa::{RsaKeyRing, RsaRecipient};

const INTRO: &[u8] = b"age-encryption.org/v1\n";
const BODY_COLUMNS: usize = 64;

/// `value` with the ring's `ssh-rsa` stanzas replaced by one for `new_key`, when `new_key` is not
/// a recipient yet; `None` when it already is (nothing to do). The value must open with the ring
/// (header MAC and payload authenticated) and be bound to `expected`, or nothing is written.
pub fn rewrap(
    ring: &RsaKeyRing,
    value: &[u8],
    expected: &super::Binding,
    new_key: &PublicKey,
) -> Result<Option<Vec<u8>>> {
    let parsed = header::parse(value)?;
    let new_tag = new_key.fingerprint().age_tag();
    let is_new_key = |kind: &RecipientKind| *kind == RecipientKind::SshRsa { key_tag: new_tag };
    if parsed.stanzas.iter().any(|s| is_new_key(&s.kind)) {
        return Ok(None);
    }

    let identity = ring.identity();
    let (binding, plaintext) = super::open(&identity, value)?;
    drop(plaintext);
    binding.check(expected)?;
    let file_key = identity.take_file_key().ok_or(Error::NoKeyCouldDecrypt)?;

    let mut out = Vec::with_capacity(value.len() + new_key.modulus_len() * 2);
    out.extend_from_slice(INTRO);
    for stanza in &parsed.stanzas {
        let ours =
            matches!(stanza.kind, RecipientKind::SshRsa { key_tag } if ring.has_tag(&key_tag));
        if !ours {
            out.extend_from_slice(&value[stanza.span.clone()]);
        }
    }
    write_stanza(&mut out, new_key, &file_key)?;
    out.extend_from_slice(b"---");
    let mac_key = Zeroizing::new(age_core::primitives::hkdf(&[], b"header", &file_key[..]));
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, &mac_key[..]), &out);
    out.push(b' ');
    out.extend_from_slice(STANDARD_NO_PAD.encode(tag.as_ref()).as_bytes());
    out.push(b'\n');
    out.extend_from_slice(&value[parsed.len..]);
    // The result must read back within the bounds (a larger key's stanza could push past them).
    header::parse(&out)?;
    Ok(Some(out))
}

/// The `ssh-rsa` stanza of `key` for `file_key`, as age writes stanzas.
fn write_stanza(out: &mut Vec<u8>, key: &PublicKey, file_key: &[u8; 16]) -> Result<()> {
    let file_key = age_core::format::FileKey::init_with_mut(|k| k.copy_from_slice(file_key));
    let (stanzas, _) =
        age::Recipient::wrap_file_key(&RsaRecipient(key), &file_key).map_err(|_| Error::Seal)?;
    for stanza in stanzas {
        out.extend_from_slice(b"-> ");
        out.extend_from_slice(stanza.tag.as_bytes());
        for arg in &stanza.args {
            out.push(b' ');
            out.extend_from_slice(arg.as_bytes());
        }
        out.push(b'\n');
        let body = STANDARD_NO_PAD.encode(&stanza.body);
        let mut last_len = 0;
        for line in body.as_bytes().chunks(BODY_COLUMNS) {
            out.extend_from_slice(line);
            out.push(b'\n');
            last_len = line.len();
        }
        // A body whose last line is full (or empty) ends with an empty line.
        if last_len == BODY_COLUMNS || body.is_empty() {
            out.push(b'\n');
        }
    }
    Ok(())
}
