#!/bin/sh
# Cold-process `seal` of a 5-key Secret from a certificate file (examples/cert.pem, RSA-4096):
# the release `sealbox`, real `kubeseal` and, optionally, a baseline `sealbox` (e.g. the build
# of the commit before a change), measured side by side in ONE hyperfine run (no shell between,
# 3 warm-up runs, then RUNS runs each), so the ratios hold however busy the machine is.
# Then the same tools over BULK Secrets (3 values each, 1,000 by default) in one multi-document
# file, one process each (BULK_RUNS runs): the throughput of sealing a repository's worth.
# Prints hyperfine's table (mean ± σ, min…max, relative) and a table of medians and CPU time for
# each.
#
#   tests/bench/seal-cold.sh
#
# Environment: SEALBOX (default: $CARGO_TARGET_DIR or target, /release/sealbox; built when
# missing), KUBESEAL (default target/peers/bin/kubeseal, which tests/kube/build.sh's peers step
# builds; skipped when absent), BASELINE (another sealbox binary; skipped when unset), RUNS (50),
# BULK (1000; 0 skips the bulk part), BULK_RUNS (5).
# Needs hyperfine (Debian: apt-get install hyperfine) and python3 for the medians.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sealbox=${SEALBOX:-$target/release/sealbox}
kubeseal=${KUBESEAL:-$root/target/peers/bin/kubeseal}
runs=${RUNS:-50}
bulk=${BULK:-1000}
bulk_runs=${BULK_RUNS:-5}
# The measuring happens in a scratch directory: make the given paths absolute first.
absolute() { case $1 in /* | "") echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
sealbox=$(absolute "$sealbox")
kubeseal=$(absolute "$kubeseal")
BASELINE=$(absolute "${BASELINE:-}")

command -v hyperfine >/dev/null || { echo "hyperfine is missing: apt-get install hyperfine" >&2; exit 2; }
if [ ! -x "$sealbox" ]; then
    (cd "$root" && cargo build --release --locked -p sealbox --bin sealbox)
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/secret.yaml" <<'YAML'
apiVersion: v1
kind: Secret
metadata:
  name: bench
  namespace: default
stringData:
  username: admin
  password: correct-horse-battery-staple
  host: db.internal.example.com
  port: "5432"
  url: postgres://admin:correct-horse-battery-staple@db.internal.example.com:5432/app
YAML
cp "$root/examples/cert.pem" "$work/cert.pem"
cd "$work"
# No cluster anywhere: both tools seal offline from the file.
export KUBECONFIG=/nonexistent HOME="$work"

# One hyperfine run of every tool over INPUT (RUNS runs each after WARMUP), then its tables.
measure() {
    input=$1 warmup=$2 count=$3
    set -- -n sealbox "$sealbox seal --cert cert.pem -f $input -w sealbox.yaml"
    if [ -n "${BASELINE:-}" ]; then
        set -- "$@" -n "sealbox (baseline)" "$BASELINE seal --cert cert.pem -f $input -w baseline.yaml"
    fi
    if [ -x "$kubeseal" ]; then
        set -- "$@" -n kubeseal "$kubeseal --cert cert.pem -f $input -w kubeseal.yaml"
    fi
    hyperfine -N --warmup "$warmup" --runs "$count" --export-json "$input.json" \
        --export-markdown "$input.md" "$@" >&2
    cat "$input.md"
    echo
    python3 - "$input.json" <<'PY'
import json, sys
results = json.load(open(sys.argv[1]))["results"]
first = results[0]["median"]
# CPU time (user + system, mean) says what the process costs whatever else runs; the wall
# time median is what a CI loop waits.
print("| command | median (wall) | min | max | median ÷ sealbox | CPU user+sys (mean) |")
print("| --- | --- | --- | --- | --- | --- |")
for r in results:
    cpu = (r["user"] + r["system"]) * 1000
    print(f"| {r['command']} | {r['median'] * 1000:.1f} ms | {r['min'] * 1000:.1f} ms | "
          f"{r['max'] * 1000:.1f} ms | {r['median'] / first:.2f} | {cpu:.1f} ms |")
PY
}

[ -x "$kubeseal" ] || echo "note: no kubeseal at $kubeseal (set KUBESEAL); measuring sealbox only" >&2
echo "## one Secret with 5 keys, cold process"
echo
measure secret.yaml 3 "$runs"
if [ "$bulk" -gt 0 ]; then
    i=0
    while [ "$i" -lt "$bulk" ]; do
        [ "$i" -gt 0 ] && echo ---
        printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: app-%05d\n  namespace: bench-%02d\n' "$i" $((i % 20))
        printf 'stringData:\n  a: "%012d"\n  b: "%032d"\n  c: "%064d"\n' "$i" "$i" "$i"
        i=$((i + 1))
    done > bulk.yaml
    echo
    echo "## $bulk Secrets × 3 values in one file, one process"
    echo
    measure bulk.yaml 1 "$bulk_runs"
fi
