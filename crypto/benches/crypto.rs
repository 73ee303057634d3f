//! Seal and unseal throughput on one RSA-4096 key, and what the crate's unseal costs on top of a
//! bare aws-lc-rs RSA-OAEP decrypt of the same key, measured in one run on one thread.
//!
//! `cargo bench -p sealbox-crypto` (about 28 s of measuring). Figures are machine-specific; the ratio is the
//! number to compare across machines.

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::{KeyPair, PublicKey, Scope, seal, unseal};

/// Runs `op` repeatedly for about `budget`; returns (operations, seconds).
fn run(budget: Duration, mut op: impl FnMut()) -> (u64, f64) {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < budget {
        op();
        count += 1;
    }
    (count, start.elapsed().as_secs_f64())
}

/// Operations per second over about `budget`, after a short warm-up.
fn rate(budget: Duration, mut op: impl FnMut()) -> f64 {
    for _ in 0..3 {
        op();
    }
    let (count, seconds) = run(budget, op);
    count as f64 / seconds
}

fn pkcs8_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).unwrap()
}

fn main() {
    let started = Instant::now();
    let key_pair = KeyPair::generate("", SystemTime::now()).unwrap();
    println!(
        "generate RSA-4096 key + certificate: {:.2?}",
        started.elapsed()
    );

    let rng = SystemRandom::new();
    let public = key_pair.certificate.public_key();
    let label = Scope::Strict.label("default", "bench");
    let plaintext = vec![b'x'; 64];
    let sealed = seal(&rng, public, &plaintext, &label).unwrap();
    assert_eq!(sealed.len(), 530 + plaintext.len());

    let raw = OaepPrivateDecryptingKey::new(
        PrivateDecryptingKey::from_pkcs8(&pkcs8_der(&key_pair.private_key.to_pkcs8_pem().unwrap()))
            .unwrap(),
    )
    .unwrap();
    let rsa_part = &sealed[2..2 + public.modulus_len()];
    let mut buffer = vec![0u8; raw.min_output_size()];

    let seal_rate = rate(Duration::from_secs(3), || {
        black_box(seal(&rng, public, black_box(&plaintext), &label).unwrap());
    });
    // A key's first values take the `rsa` crate's OAEP (no aws-lc generator to seed, for a
    // short-lived CLI); a freshly read key per value, as a cold `sealbox seal` has.
    let first_seal_rate = rate(Duration::from_secs(3), || {
        let fresh = PublicKey::from_der(public.spki_der(), "bench").unwrap();
        black_box(seal(&rng, &fresh, black_box(&plaintext), &label).unwrap());
    });

    // Many short alternating slices, so load from other processes and clock drift hit both
    // sides alike and the ratio stays meaningful on a busy machine.
    let slice = Duration::from_millis(250);
    let (mut unseal_ops, mut unseal_secs, mut raw_ops, mut raw_secs) = (0, 0.0, 0, 0.0);
    for _ in 0..40 {
        let (ops, secs) = run(slice, || {
            black_box(unseal(&key_pair.private_key, black_box(&sealed), &label).unwrap());
        });
        (unseal_ops, unseal_secs) = (unseal_ops + ops, unseal_secs + secs);
        let (ops, secs) = run(slice, || {
            let out = raw
                .decrypt(
                    &OAEP_SHA256_MGF1SHA256,
                    black_box(rsa_part),
                    &mut buffer,
                    Some(&label),
                )
                .unwrap();
            black_box(out);
        });
        (raw_ops, raw_secs) = (raw_ops + ops, raw_secs + secs);
    }
    let unseal_rate = unseal_ops as f64 / unseal_secs;
    let raw_rate = raw_ops as f64 / raw_secs;

    println!("plaintext: {} bytes, one thread", plaintext.len());
    println!(
        "seal, a key's first values:    {first_seal_rate:>10.0} values/s (rsa crate; key read each time)"
    );
    println!("seal, after those:             {seal_rate:>10.0} values/s (aws-lc-rs)");
    println!("unseal (sealbox-crypto):       {unseal_rate:>10.0} values/s");
    println!("raw aws-lc-rs OAEP decrypt:    {raw_rate:>10.0} ops/s");
    println!(
        "ratio unseal / raw decrypt:    {:>10.3}",
        unseal_rate / raw_rate
    );
    println!("total bench time: {:.1?}", started.elapsed());
}
