//! What the controller benchmarks share (benches/real_control_plane.rs, benches/cold_start.rs):
//! the registry of RSA-4096 keys, SealedSecrets sealed round-robin to it, unrelated Secrets,
//! the yardstick (the raw aws-lc-rs decrypt rate) and the process and machine figures read
//! from /proc.
//!
//! SealedSecret `i` is `bench-NN/app-i` (NN = `i % NAMESPACES`), strict scope, with the 3
//! values of [`VALUES`], sealed to key `i % keys`: in process ([`seal_objects`], with Sealbox's
//! hint as `sealbox seal` writes it; [`without_hint`] takes it off), or by a sealing CLI itself
//! from [`plain_secret`] ([`seal_with_cli`]).

use std::hint::black_box;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{OAEP_SHA256_MGF1SHA256, OaepPrivateDecryptingKey, PrivateDecryptingKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sealbox_crypto::scope::SEALING_KEY_ANNOTATION;
use sealbox_crypto::{KeyPair, Scope, seal};
use serde_json::{Value, json};

/// The SealedSecrets are spread over this many namespaces (`bench-NN`), the unrelated Secrets
/// over as many (`unrelated-NN`).
pub const NAMESPACES: usize = 20;
/// The values of each SealedSecret: name and plaintext length.
pub const VALUES: [(&str, usize); 3] = [("username", 12), ("password", 32), ("api-token", 64)];
/// Linux's USER_HZ, the unit of /proc/<pid>/stat CPU times.
const CLOCK_TICKS: f64 = 100.0;
const DAY: Duration = Duration::from_secs(86_400);

/// A number from the environment, or `default`; panics naming the variable if it is not one.
pub fn number(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a number")),
        Err(_) => default,
    }
}

/// The namespace of SealedSecret `i`.
pub fn bench_namespace(i: usize) -> String {
    format!("bench-{:02}", i % NAMESPACES)
}

/// `count` RSA-4096 key pairs, newest first (NotBefore a month apart, the newest a minute
/// ago), generated on `threads` threads.
pub fn generate_keys(count: usize, threads: usize) -> Vec<KeyPair> {
    let now = SystemTime::now() - Duration::from_secs(60);
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    let mut pairs: Vec<Option<KeyPair>> = (0..count).map(|_| None).collect();
    std::thread::scope(|scope| {
        for (thread, chunk) in pairs.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                for (offset, slot) in chunk.iter_mut().enumerate() {
                    let age = u32::try_from(thread * per_thread + offset).unwrap_or(u32::MAX);
                    *slot = Some(
                        KeyPair::generate("", now - age * 30 * DAY)
                            .expect("RSA-4096 key generation failed"),
                    );
                }
            });
        }
    });
    pairs.into_iter().flatten().collect()
}

/// SealedSecrets `0..count` (see the module docs), hinted, sealed on `threads` threads.
pub fn seal_objects(pairs: &[KeyPair], count: usize, threads: usize) -> Vec<Value> {
    let mut objects: Vec<Value> = vec![Value::Null; count];
    let per_thread = count.div_ceil(threads.max(1)).max(1);
    std::thread::scope(|scope| {
        for (thread, chunk) in objects.chunks_mut(per_thread).enumerate() {
            scope.spawn(move || {
                let rng = SystemRandom::new();
                for (offset, slot) in chunk.iter_mut().enumerate() {
                    *slot = sealed_object(&rng, pairs, thread * per_thread + offset);
                }
            });
        }
    });
    objects
}

/// The plaintext of value `key` (`len` bytes) of SealedSecret `i`.
fn plaintext(key: &str, len: usize, i: usize) -> Vec<u8> {
    let mut text = format!("{key}-{i:05}-").repeat(len).into_bytes();
    text.truncate(len);
    text
}

/// The Secret SealedSecret `i` is sealed from: what a user hands `sealbox seal` or `kubeseal`.
pub fn plain_secret(i: usize) -> Value {
    let data: serde_json::Map<String, Value> = VALUES
        .iter()
        .map(|(key, len)| {
            let value = STANDARD.encode(plaintext(key, *len, i));
            ((*key).to_owned(), Value::String(value))
        })
        .collect();
    json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": format!("app-{i:05}"),
            "namespace": bench_namespace(i),
            "labels": { "app.kubernetes.io/part-of": "cold-start-bench" },
        },
        "type": "Opaque",
        "data": data,
    })
}

/// SealedSecrets `0..count` as a sealing CLI writes them: for each key, one process of
/// `command(certificate file)` reads the plain Secrets of that key (a YAML stream on stdin; both
/// `sealbox seal` and `kubeseal` take several) and prints the SealedSecrets as a JSON stream.
/// Up to `threads` processes at once; `dir` holds the certificates.
pub fn seal_with_cli(
    command: impl Fn(&Path) -> Command + Sync,
    pairs: &[KeyPair],
    count: usize,
    threads: usize,
    dir: &Path,
) -> Vec<Value> {
    let keys = pairs.len().max(1);
    let next = AtomicUsize::new(0);
    let sealed: Vec<Vec<(usize, Value)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.max(1))
            .map(|_| {
                scope.spawn(|| {
                    let mut out = Vec::new();
                    loop {
                        let key = next.fetch_add(1, Ordering::Relaxed);
                        if key >= keys.min(count) {
                            return out;
                        }
                        let cert = dir.join(format!("key-{key:02}.pem"));
                        std::fs::write(&cert, pairs[key].certificate.to_pem())
                            .expect("writing a certificate failed");
                        let indices: Vec<usize> = (key..count).step_by(keys).collect();
                        let input: String = indices
                            .iter()
                            .map(|&i| {
                                serde_norway::to_string(&plain_secret(i)).expect("a Secret in YAML")
                            })
                            .collect::<Vec<_>>()
                            .join("---\n");
                        let objects = run_sealing(command(&cert), input.as_bytes());
                        assert_eq!(objects.len(), indices.len(), "one SealedSecret per Secret");
                        out.extend(indices.into_iter().zip(objects));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().expect("a sealing thread panicked"))
            .collect()
    });
    let mut objects = vec![Value::Null; count];
    for (i, object) in sealed.into_iter().flatten() {
        assert_eq!(
            object["metadata"]["name"],
            format!("app-{i:05}"),
            "in input order"
        );
        objects[i] = object;
    }
    objects
}

/// Runs a sealing CLI over `input`; its stdout as a stream of JSON documents.
fn run_sealing(mut command: Command, input: &[u8]) -> Vec<Value> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    writer
        .join()
        .expect("the stdin writer panicked")
        .unwrap_or_else(|e| panic!("{command:?}: writing stdin: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::Deserializer::from_slice(&output.stdout)
        .into_iter::<Value>()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{command:?} printed no JSON stream: {e}"))
}

fn sealed_object(rng: &SystemRandom, pairs: &[KeyPair], i: usize) -> Value {
    let pair = &pairs[i % pairs.len()];
    let (namespace, name) = (bench_namespace(i), format!("app-{i:05}"));
    let label = Scope::Strict.label(&namespace, &name);
    let encrypted: serde_json::Map<String, Value> = VALUES
        .iter()
        .map(|(key, len)| {
            let plaintext = plaintext(key, *len, i);
            let sealed = seal(rng, pair.certificate.public_key(), &plaintext, &label)
                .expect("sealing failed");
            ((*key).to_owned(), Value::String(STANDARD.encode(sealed)))
        })
        .collect();
    json!({
        "apiVersion": "bitnami.com/v1alpha1",
        "kind": "SealedSecret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "annotations": { SEALING_KEY_ANNOTATION: pair.fingerprint().to_string() },
        },
        "spec": {
            "encryptedData": encrypted,
            "template": {
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "labels": { "app.kubernetes.io/part-of": "cold-start-bench" },
                },
                "type": "Opaque",
            },
        },
    })
}

/// The same SealedSecret without Sealbox's hint, as `kubeseal` writes it.
pub fn without_hint(mut object: Value) -> Value {
    if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        metadata.remove("annotations");
    }
    object
}

/// Private-key operations Sealbox needs for unhinted SealedSecrets `0..count`: the first value
/// of SealedSecret `i` tries keys newest first up to its key `i % keys` (`i % keys + 1`
/// operations); the other values reuse it.
pub fn expected_unhinted_operations(count: usize, keys: usize) -> u64 {
    (0..count)
        .map(|i| (i % keys.max(1) + VALUES.len()) as u64)
        .sum()
}

/// Secrets no controller has anything to do with: `unrelated-NN/other-i`, 3 × 256 bytes.
pub fn unrelated_secrets(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| {
            let value = STANDARD.encode(format!("{i:08}").repeat(32));
            json!({
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {
                    "name": format!("other-{i:05}"),
                    "namespace": format!("unrelated-{:02}", i % NAMESPACES),
                    "labels": { "app.kubernetes.io/name": "unrelated" },
                },
                "type": "Opaque",
                "data": { "a": value, "b": value, "c": value },
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The yardstick.

/// The raw aws-lc-rs RSA-4096 OAEP-SHA256 decrypt of one value, over and over: what a perfect
/// controller spends per value, nothing else.
pub struct RawDecrypt {
    key: OaepPrivateDecryptingKey,
    ciphertext: Vec<u8>,
    label: Vec<u8>,
}

/// Never the key.
impl std::fmt::Debug for RawDecrypt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawDecrypt").finish_non_exhaustive()
    }
}

impl RawDecrypt {
    /// A decrypt with `pair`'s private key of a value sealed to it.
    pub fn new(pair: &KeyPair) -> RawDecrypt {
        let pem = pair
            .private_key
            .to_pkcs8_pem()
            .expect("the key has a PKCS#8 form");
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD.decode(body).expect("PKCS#8 PEM holds base64");
        let key = OaepPrivateDecryptingKey::new(
            PrivateDecryptingKey::from_pkcs8(&der).expect("aws-lc-rs reads the key"),
        )
        .expect("an RSA key decrypts OAEP");
        let label = Scope::Strict.label("bench-00", "app-00000");
        let public = pair.certificate.public_key();
        let sealed =
            seal(&SystemRandom::new(), public, &[b'x'; 32], &label).expect("sealing failed");
        RawDecrypt {
            key,
            ciphertext: sealed[2..2 + public.modulus_len()].to_vec(),
            label,
        }
    }

    fn decrypt(&self, buffer: &mut [u8]) {
        let out = self
            .key
            .decrypt(
                &OAEP_SHA256_MGF1SHA256,
                black_box(&self.ciphertext),
                buffer,
                Some(&self.label),
            )
            .map(|plaintext| plaintext.len());
        black_box(out).expect("the raw decrypt failed");
    }

    /// Decrypts per second on one thread over about `budget`.
    pub fn rate(&self, budget: Duration) -> f64 {
        self.rate_parallel(1, budget)
    }

    /// Decrypts per second on `threads` threads at once over about `budget`.
    pub fn rate_parallel(&self, threads: usize, budget: Duration) -> f64 {
        let start = Instant::now();
        let total: u64 = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    scope.spawn(|| {
                        let mut buffer = vec![0u8; self.key.min_output_size()];
                        let mut count = 0u64;
                        while start.elapsed() < budget {
                            self.decrypt(&mut buffer);
                            count += 1;
                        }
                        count
                    })
                })
                .collect();
            workers.into_iter().filter_map(|w| w.join().ok()).sum()
        });
        total as f64 / start.elapsed().as_secs_f64()
    }
}

// ---------------------------------------------------------------------------------------------
// /proc.

/// User + system CPU seconds of process `pid` so far (/proc/<pid>/stat).
pub fn process_cpu(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name start at field 3; utime and stime are 14, 15.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / CLOCK_TICKS)
}

/// Peak resident set size of process `pid` so far (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// CPU seconds the whole machine spent busy, idle and stolen so far, all cores (/proc/stat).
#[derive(Debug, Clone, Copy, Default)]
pub struct MachineCpu {
    pub busy: f64,
    pub idle: f64,
    pub steal: f64,
}

impl MachineCpu {
    /// Now.
    pub fn now() -> MachineCpu {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|n| n.parse().ok())
            .collect();
        let field = |i: usize| ticks.get(i).copied().unwrap_or(0.0) / CLOCK_TICKS;
        // user nice system idle iowait irq softirq steal
        MachineCpu {
            busy: field(0) + field(1) + field(2) + field(5) + field(6),
            idle: field(3) + field(4),
            steal: field(7),
        }
    }

    /// What was spent between `earlier` and this.
    pub fn since(self, earlier: MachineCpu) -> MachineCpu {
        MachineCpu {
            busy: self.busy - earlier.busy,
            idle: self.idle - earlier.idle,
            steal: self.steal - earlier.steal,
        }
    }
}

/// The CPU's model name, for the report.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find_map(|line| line.strip_prefix("model name"))
                .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned())
}

/// The 1, 5 and 15 minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhinted_operations_count_the_keys_tried_newest_first() {
        // Key 0 (newest): 1 try + 2 reuses; key 1: 2 tries + 2; key 2: 3 + 2.
        assert_eq!(expected_unhinted_operations(3, 12), 3 + 4 + 5);
        // Round-robin over 2 keys: 3, 4, 3.
        assert_eq!(expected_unhinted_operations(3, 2), 10);
    }

    #[test]
    fn this_process_has_cpu_time_and_a_peak_rss() {
        let pid = std::process::id();
        assert!(process_cpu(pid).is_some());
        assert!(peak_rss_kib(pid).is_some_and(|kib| kib > 0));
        assert!(process_cpu(u32::MAX).is_none());
    }

    #[test]
    fn the_hint_is_removed_and_nothing_else() {
        let hinted = json!({"metadata": {"name": "a", "annotations": {"x": "y"}}, "spec": {}});
        assert_eq!(
            without_hint(hinted),
            json!({"metadata": {"name": "a"}, "spec": {}})
        );
    }
}
