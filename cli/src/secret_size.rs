//! Kubernetes' limit on the size of a Secret, checked when sealing (`seal`, `merge`, `set`) and
//! in sealed files (`verify`, `check`).
//!
//! A SealedSecret over the limit applies fine, but the controller can never create its Secret:
//! the API server refuses it. The size is known exactly even offline, since every sealed value
//! is `2 + len(R) + len(plaintext) + 16` bytes with `len(R)` in its own length prefix.

use sealbox_crypto::wire::TAG_LEN;

use crate::secret::decode_base64;

/// The API server refuses a Secret whose data values add up to more than this many bytes
/// (`MaxSecretSize` in Kubernetes' `pkg/apis/core`, checked by `ValidateSecret`; keys do not
/// count).
pub const MAX_SECRET_DATA_BYTES: usize = 1024 * 1024;

/// The length of the plaintext inside one sealed value (base64), when its framing is sound.
pub fn plaintext_len(encoded: &str) -> Option<usize> {
    let bytes = decode_base64(encoded)?;
    let (prefix, _) = bytes.split_first_chunk::<2>()?;
    let rsa_len = usize::from(u16::from_be_bytes(*prefix));
    bytes.len().checked_sub(2 + rsa_len + TAG_LEN)
}

/// The size of the Secret that sealed values unseal to (values that do not decode count 0;
/// the structural checks report them).
pub fn sealed_data_size<'a>(values: impl IntoIterator<Item = &'a str>) -> usize {
    values
        .into_iter()
        .filter_map(plaintext_len)
        .fold(0, usize::saturating_add)
}

/// What is wrong with a Secret of `size` bytes of data, if it is over the limit: the sizes,
/// for a message that goes on with what to do.
pub fn over_limit(size: usize) -> Option<String> {
    (size > MAX_SECRET_DATA_BYTES).then(|| {
        format!(
            "its data is {} bytes ({}), over Kubernetes' limit of {} bytes (1 MiB) per Secret, so the API server would refuse the Secret",
            thousands(size),
            mebibytes(size),
            thousands(MAX_SECRET_DATA_BYTES)
        )
    })
}

/// `1,048,577`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `1.20 MiB`, rounded down so a size just over the limit never reads as "1.00 MiB" twice.
fn mebibytes(n: usize) -> String {
    let hundredths = n.saturating_mul(100) / MAX_SECRET_DATA_BYTES;
    format!("{}.{:02} MiB", hundredths / 100, hundredths % 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_limit_is_on_the_sum_of_values_and_exclusive() {
        assert_eq!(over_limit(MAX_SECRET_DATA_BYTES), None);
        let message = over_limit(MAX_SECRET_DATA_BYTES + 1).unwrap();
        assert!(
            message.contains("1,048,577 bytes (1.00 MiB)")
                && message.contains("limit of 1,048,576 bytes"),
            "{message}"
        );
        assert!(
            over_limit(3 * MAX_SECRET_DATA_BYTES / 2)
                .unwrap()
                .contains("(1.50 MiB)")
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
    }

    #[test]
    fn plaintext_length_comes_from_the_framing() {
        // A 4096-bit value: prefix 512, 512 bytes of RSA, 7 of plaintext, 16 of tag.
        let mut value = vec![0x02, 0x00];
        value.resize(2 + 512 + 7 + TAG_LEN, 0);
        let encoded = STANDARD.encode(&value);
        assert_eq!(plaintext_len(&encoded), Some(7));
        assert_eq!(
            sealed_data_size([encoded.as_str(), encoded.as_str(), "***"]),
            14
        );
        // Shorter than its own framing: not a size.
        assert_eq!(plaintext_len(&STANDARD.encode([0x02, 0x00, 1, 2])), None);
    }
}
