//! The sealed value wire format (Bitnami compatible, byte for byte):
//!
//! ```text
//! u16 big-endian len(R) || R || G
//! R = RSA-OAEP(SHA-256, MGF1-SHA-256, label)(32-byte random session key)
//! G = AES-256-GCM(session key, nonce = 12 zero bytes, no AAD)(plaintext) || 16-byte tag
//! ```
//!
//! The zero nonce is safe because every value gets a fresh session key. Decryption errors say
//! only "too short" (the framing is broken) or "no key could decrypt" (anything after that),
//! never which step failed.

use aws_lc_rs::aead::{
    AES_128_GCM, AES_192_GCM, AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey,
};
use aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::private_key::PrivateKey;
use crate::public_key::PublicKey;
use crate::random::SealRandom;

/// Length of the random AES-256-GCM session key.
pub const SESSION_KEY_LEN: usize = 32;
/// Length of the AES-GCM tag at the end of every value.
pub const TAG_LEN: usize = 16;

/// The length of a sealed value: `2 + modulus_len + plaintext_len + 16` (530 + n for RSA-4096).
pub fn sealed_len(key: &PublicKey, plaintext_len: usize) -> usize {
    2 + key.modulus_len() + plaintext_len + TAG_LEN
}

/// Seals `plaintext` for `key`, bound to `label` (see [`Scope::label`](crate::Scope::label)).
///
/// `rng` supplies the session key, and the OAEP padding seed of a key's first 32 values in a
/// process (after those, aws-lc-rs's own generator does, for speed: see `SEALS_BEFORE_AWS_LC`
/// in `public_key.rs`): [`OsRandom`](crate::OsRandom) in a short-lived process, any aws-lc-rs
/// generator elsewhere. Returns raw bytes; the caller base64-encodes them for
/// `spec.encryptedData`.
pub fn seal<R: SealRandom + ?Sized>(
    rng: &R,
    key: &PublicKey,
    plaintext: &[u8],
    label: &[u8],
) -> Result<Vec<u8>> {
    let mut session_key = Zeroizing::new([0u8; SESSION_KEY_LEN]);
    rng.fill(&mut session_key[..])?;

    let rsa_len = key.modulus_len();
    let rsa_len_prefix = u16::try_from(rsa_len).map_err(|_| Error::Seal)?;
    // The buffer briefly holds the plaintext before it is encrypted in place: size it exactly so
    // it never reallocates, and wipe it if anything fails.
    let mut out = Zeroizing::new(Vec::with_capacity(sealed_len(key, plaintext.len())));
    out.extend_from_slice(&rsa_len_prefix.to_be_bytes());
    out.resize(2 + rsa_len, 0);
    key.encrypt_session_key(rng, &session_key[..], label, &mut out[2..])?;

    let aead = aes_gcm_key(&session_key[..]).ok_or(Error::Seal)?;
    out.extend_from_slice(plaintext);
    let tag = aead
        .seal_in_place_separate_tag(zero_nonce(), Aad::empty(), &mut out[2 + rsa_len..])
        .map_err(|_| Error::Seal)?;
    out.extend_from_slice(tag.as_ref());
    Ok(std::mem::take(&mut *out))
}

/// Unseals a value sealed for `key` with `label`.
pub fn unseal(key: &PrivateKey, ciphertext: &[u8], label: &[u8]) -> Result<Zeroizing<Vec<u8>>> {
    unseal_with_keys([key], ciphertext, label).map(|(plaintext, _)| plaintext)
}

/// Unseals with the first of `keys` that works, trying them in the given order; returns the
/// plaintext and the index of that key. One RSA operation per key tried.
pub fn unseal_with_keys<'a>(
    keys: impl IntoIterator<Item = &'a PrivateKey>,
    ciphertext: &[u8],
    label: &[u8],
) -> Result<(Zeroizing<Vec<u8>>, usize)> {
    let (rsa_part, aes_part) = split(ciphertext)?;
    keys.into_iter()
        .enumerate()
        .find_map(|(index, key)| {
            try_unseal(key, rsa_part, aes_part, label).map(|plaintext| (plaintext, index))
        })
        .ok_or(Error::NoKeyCouldDecrypt)
}

/// Splits a value into its RSA and AES-GCM parts.
fn split(ciphertext: &[u8]) -> Result<(&[u8], &[u8])> {
    let (prefix, rest) = ciphertext.split_first_chunk::<2>().ok_or(Error::TooShort)?;
    let rsa_len = usize::from(u16::from_be_bytes(*prefix));
    if rest.len() < rsa_len {
        return Err(Error::TooShort);
    }
    Ok(rest.split_at(rsa_len))
}

fn try_unseal(
    key: &PrivateKey,
    rsa_part: &[u8],
    aes_part: &[u8],
    label: &[u8],
) -> Option<Zeroizing<Vec<u8>>> {
    let oaep = key.oaep();
    let modulus_len = oaep.key_size_bytes();
    // Go's DecryptOAEP accepts a ciphertext with its leading zero bytes stripped; so do we.
    let padded;
    let rsa_part = match rsa_part.len() {
        len if len == modulus_len => rsa_part,
        len if len < modulus_len && len > 0 => {
            let mut buf = vec![0u8; modulus_len];
            buf[modulus_len - len..].copy_from_slice(rsa_part);
            padded = buf;
            &padded
        }
        _ => return None,
    };

    let mut decrypted = Zeroizing::new(vec![0u8; oaep.min_output_size()]);
    let session_key = oaep
        .decrypt(
            &OAEP_SHA256_MGF1SHA256,
            rsa_part,
            &mut decrypted[..],
            Some(label),
        )
        .ok()?;
    let aead = aes_gcm_key(session_key)?;

    let mut plaintext = Zeroizing::new(aes_part.to_vec());
    let len = aead
        .open_in_place(zero_nonce(), Aad::empty(), &mut plaintext[..])
        .ok()?
        .len();
    plaintext.truncate(len);
    Some(plaintext)
}

/// AES-GCM under the session key. Sealbox and Bitnami write 32-byte keys; Go's AES also takes
/// 16 and 24 bytes, so those unseal too.
fn aes_gcm_key(session_key: &[u8]) -> Option<LessSafeKey> {
    let algorithm = match session_key.len() {
        32 => &AES_256_GCM,
        24 => &AES_192_GCM,
        16 => &AES_128_GCM,
        _ => return None,
    };
    UnboundKey::new(algorithm, session_key)
        .ok()
        .map(LessSafeKey::new)
}

fn zero_nonce() -> Nonce {
    Nonce::assume_unique_for_key([0u8; NONCE_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_reports_too_short() {
        assert!(matches!(split(&[]), Err(Error::TooShort)));
        assert!(matches!(split(&[0x02]), Err(Error::TooShort)));
        assert!(matches!(split(&[0x00, 0x03, 1, 2]), Err(Error::TooShort)));
        assert!(matches!(split(&[0x00, 0x02, 1, 2]), Ok((&[1, 2], &[]))));
        assert!(matches!(split(&[0x00, 0x00, 9]), Ok((&[], &[9]))));
    }
}
