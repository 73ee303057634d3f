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
