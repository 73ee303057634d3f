//! Multi-recipient (age) values: the bounded header reader, then opening with the fixed test key
//! (the controller's path) and with the fixed age identity (the break-glass path). Any bytes
//! must come back as `Err`, never a panic, and both paths must agree.
//!
//! Input: the first byte picks the scope the controller expects (modulo 3), the rest is the
//! value. The seeds are values sealed for the key and the identity, for each scope, and the
//! golden vector the reference age tool wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sealbox_crypto::age_value::{header, open_with_identities, open_with_keys};
use sealbox_crypto::{Binding, ValueFormat};
use sealbox_fuzz::{NAME, NAMESPACE, SCOPES, age_identity, ring};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, value)) = data.split_first() else {
        return;
    };
    let scope = SCOPES[usize::from(selector) % SCOPES.len()];
    let expected = Binding::new(scope, NAMESPACE, NAME).expect("the fuzz names bind");

    if let Ok(parsed) = header::parse(value) {
        assert_eq!(ValueFormat::of(value), ValueFormat::Age);
        assert!(parsed.len <= value.len());
        assert!(parsed.len <= header::MAX_HEADER_LEN);
        assert!(!parsed.stanzas.is_empty() && parsed.stanzas.len() <= header::MAX_STANZAS);
    }

    let mut operations = 0;
    let by_key = open_with_keys(ring(), value, &expected, &mut operations);
    // One operation per ssh-rsa stanza tagged with the key, never more.
    assert!(operations <= header::MAX_STANZAS);
    let by_identity = open_with_identities(&[age_identity()], value);
    if let (Ok(opened), Ok((binding, plaintext))) = (&by_key, &by_identity) {
        assert_eq!(binding, &expected);
        assert_eq!(opened.plaintext.as_slice(), plaintext.as_slice());
    }
});
