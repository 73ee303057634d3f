//! Property tests (proptest): seal→unseal round trips over arbitrary values, names, namespaces
//! and the three scopes; a value never unseals under another scope or label; the wire decoder
//! never panics on arbitrary bytes. Keys are the binary's shared 2048-bit pairs; case counts
//! are modest (each case costs one or two RSA private-key operations).

use aws_lc_rs::rand::SystemRandom;
use proptest::prelude::*;
use sealbox_crypto::{Error, Scope, seal, unseal, unseal_with_keys};

use crate::{key_pair, other_key_pair};

/// Cases per property: each is an RSA-2048 decryption or two (~1 ms optimised).
const CASES: u32 = 64;

/// A Kubernetes name or namespace: a DNS-1123 label (no `/`, so strict labels are unambiguous).
fn name() -> impl Strategy<Value = String> {
    "[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?"
}

fn scope() -> impl Strategy<Value = Scope> {
    prop::sample::select(Scope::ALL.to_vec())
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..4096)
}

fn seal_for(plaintext: &[u8], label: &[u8]) -> Vec<u8> {
    seal(
        &SystemRandom::new(),
        key_pair().certificate.public_key(),
        plaintext,
        label,
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    #[test]
    fn seal_then_unseal_round_trips(
        plaintext in value(),
        namespace in name(),
        name in name(),
        scope in scope(),
    ) {
        let label = scope.label(&namespace, &name);
        let sealed = seal_for(&plaintext, &label);
        let opened = unseal(&key_pair().private_key, &sealed, &label).unwrap();
        prop_assert_eq!(&opened[..], &plaintext[..]);
        // The other key never opens it.
        let other = unseal(&other_key_pair().private_key, &sealed, &label);
        prop_assert!(matches!(other, Err(Error::NoKeyCouldDecrypt)));
    }

    #[test]
    fn unseal_never_succeeds_under_another_scope_or_label(
        plaintext in value(),
        namespace in name(),
        name in name(),
        other_namespace in name(),
        other_name in name(),
        scope in scope(),
        other_scope in scope(),
    ) {
        let sealed = seal_for(&plaintext, &scope.label(&namespace, &name));
        let opens = |label: Vec<u8>| unseal(&key_pair().private_key, &sealed, &label).is_ok();

        // Where it may move: strict nowhere, namespace-wide within its namespace, cluster-wide
        // anywhere.
        let allowed = match scope {
            Scope::Strict => namespace == other_namespace && name == other_name,
            Scope::NamespaceWide => namespace == other_namespace,
            Scope::ClusterWide => true,
        };
        prop_assert_eq!(opens(scope.label(&other_namespace, &other_name)), allowed);
        // Another scope's label never opens it, wherever the object is.
        if other_scope != scope {
            prop_assert!(!opens(other_scope.label(&namespace, &name)));
            prop_assert!(!opens(other_scope.label(&other_namespace, &other_name)));
        }
    }

    #[test]
    fn the_wire_decoder_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..1200)) {
        let keys = [&key_pair().private_key, &other_key_pair().private_key];
        for label in [&b""[..], b"default/db"] {
            // Random bytes are never a valid value (the GCM tag alone is 128 bits).
            let result = unseal_with_keys(keys, &bytes, label);
            prop_assert!(
                matches!(result, Err(Error::TooShort | Error::NoKeyCouldDecrypt)),
                "{:?}", result.map(|(_, index)| index)
            );
        }
    }

    #[test]
    fn any_changed_byte_is_refused(
        plaintext in prop::collection::vec(any::<u8>(), 0..256),
        position in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let label = Scope::Strict.label("default", "db");
        let mut sealed = seal_for(&plaintext, &label);
        let at = position.index(sealed.len());
        sealed[at] ^= flip;
        let result = unseal(&key_pair().private_key, &sealed, &label);
        // A changed length prefix may leave a shorter RSA part that Go-compatible left padding
        // still accepts; it never decrypts to the plaintext.
        prop_assert!(result.is_err(), "byte {} changed and it still unsealed", at);
    }
}

/// An X25519 recipient fixed for the binary (generating one per case would be cheap, but the
/// identity must outlive the case).
fn age_identity() -> &'static age::x25519::Identity {
    static IDENTITY: std::sync::OnceLock<age::x25519::Identity> = std::sync::OnceLock::new();
    IDENTITY.get_or_init(age::x25519::Identity::generate)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(CASES))]

    /// A multi-recipient value opens with the cluster key and the age identity, bound to its
    /// Secret, and is refused for any other Secret.
    #[test]
    fn age_values_round_trip_and_stay_bound(
        plaintext in value(),
        namespace in name(),
        name in name(),
        other_name in name(),
        scope in scope(),
    ) {
        use sealbox_crypto::age_value::{open_with_identities, open_with_keys, seal};
        use sealbox_crypto::{Binding, Recipients, RsaKeyRing};

        let mut recipients = Recipients::new();
        recipients.add_rsa(key_pair().certificate.public_key().clone());
        recipients.add_age(&age_identity().to_public().to_string()).unwrap();
        let bound = Binding::new(scope, &namespace, &name).unwrap();
        let value = seal(&recipients, &bound, &plaintext).unwrap();

        let ring = RsaKeyRing::new([other_key_pair().private_key.clone(), key_pair().private_key.clone()]);
        let mut operations = 0;
        let opened = open_with_keys(&ring, &value, &bound, &mut operations).unwrap();
        prop_assert_eq!(&opened.plaintext[..], &plaintext[..]);
        prop_assert_eq!(opened.key, 1);
        prop_assert_eq!(operations, 1);

        let (read, opened) = open_with_identities(&[age_identity()], &value).unwrap();
        prop_assert_eq!(&read, &bound);
        prop_assert_eq!(&opened[..], &plaintext[..]);

        let other = Binding::new(scope, &namespace, &format!("{other_name}x")).unwrap();
        let moved = open_with_keys(&ring, &value, &other, &mut operations);
        prop_assert_eq!(moved.is_ok(), other == bound);
    }

    /// The header reader never panics and never reads past its bound.
    #[test]
    fn the_age_header_reader_takes_any_bytes(
        tail in prop::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut value = b"age-encryption.org/v1\n".to_vec();
        value.extend_from_slice(&tail);
        if let Ok(header) = sealbox_crypto::age_value::header::parse(&value) {
            prop_assert!(header.len <= value.len());
        }
    }
}
