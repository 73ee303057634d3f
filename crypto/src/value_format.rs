//! Which format a sealed value is in, told by its content: a SealedSecret mixes them freely.

use crate::age_value::AGE_MAGIC;

/// The format of one decoded `encryptedData` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueFormat {
    /// Bitnami's single-key format (`u16` length, RSA-OAEP, AES-256-GCM): [`crate::wire`].
    Bitnami,
    /// A multi-recipient age file: [`crate::age_value`].
    Age,
}

impl ValueFormat {
    /// The format of `value` (decoded from base64). An age file starts with
    /// `age-encryption.org/`; a Bitnami value never can (those two first bytes, read as its
    /// length prefix, would declare a 24 935-byte RSA block), so the test cannot misfile one.
    pub fn of(value: &[u8]) -> ValueFormat {
        if value.starts_with(AGE_MAGIC) {
            ValueFormat::Age
        } else {
            ValueFormat::Bitnami
        }
    }

    /// `bitnami` or `age`, for reports and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            ValueFormat::Bitnami => "bitnami",
            ValueFormat::Age => "age",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_the_formats_apart() {
        assert_eq!(
            ValueFormat::of(b"age-encryption.org/v1\n-> "),
            ValueFormat::Age
        );
        // Another age version is still age (and refused there with a clear error).
        assert_eq!(
            ValueFormat::of(b"age-encryption.org/v2\n"),
            ValueFormat::Age
        );
        assert_eq!(
            ValueFormat::of(&[0x02, 0x00, 1, 2, 3]),
            ValueFormat::Bitnami
        );
        assert_eq!(ValueFormat::of(b""), ValueFormat::Bitnami);
        assert_eq!(ValueFormat::of(b"age-encryption"), ValueFormat::Bitnami);
        // The armored form is not a sealed value; it goes to the Bitnami reader, which refuses it.
        assert_eq!(
            ValueFormat::of(b"-----BEGIN AGE ENCRYPTED FILE-----"),
            ValueFormat::Bitnami
        );
        // The prefix a Bitnami value would need to start with "ag" declares an impossible RSA
        // block: larger than any key (16384 bits = 2048 bytes).
        assert!(usize::from(u16::from_be_bytes([b'a', b'g'])) > 2048);
    }
}
