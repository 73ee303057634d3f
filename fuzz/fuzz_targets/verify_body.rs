//! The `/v1/verify` and `/v1/rotate` request-body path: `reseal::parse` of the posted bytes,
//! then `verify` and `rotate` against the fixed test key. Any body must come back as a 4xx/5xx
//! decision (`Err`) or a result, never a panic or an abort.
#![no_main]

use aws_lc_rs::rand::SystemRandom;
use libfuzzer_sys::fuzz_target;
use sealbox_controller::reseal;
use sealbox_controller::unseal::Cancel;
use sealbox_fuzz::keys;

fuzz_target!(|data: &[u8]| {
    let Ok(posted) = reseal::parse(data) else {
        return;
    };
    let keys = keys();
    // Never cancelled: the fuzzer looks for panics and hangs in the work itself.
    let cancel = Cancel::default();
    let _ = reseal::verify(&posted, keys, false, &cancel);
    let _ = reseal::verify(&posted, keys, true, &cancel);
    let _ = reseal::rotate(posted, keys, &SystemRandom::new(), &cancel);
});
