#!/bin/sh
# Cold-process `seal` of a 5-key Secret from a certificate file (examples/cert.pem, RSA-4096):
# the release `sealbox`, real `kubeseal` and, optionally, a baseline `sealbox` (e.g. the build
# of the commit before a change), measured side by side in ONE hyperfine run (no shell between,
# 3 warm-up runs, then RUNS runs each), so the ratios hold however busy the machine is.
# Prints hyperfine's table (mean ± σ, min…max, relative) and a table of medians and CPU time.
#
#   tests/bench/seal-cold.sh
#
# Environment: SEALBOX (default: $CARGO_TARGET_DIR or target, /release/sealbox; built when
# missing), KUBESEAL (default target/peers/bin/kubeseal, which tests/kube/build.sh's peers step
# builds; skipped when absent), BASELINE (another sealbox binary; skipped when unset), RUNS (50).
# Needs hyperfine (Debian: apt-get install hyperfine) and python3 for the medians.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
sealbox=${SEALBOX:-$target/release/sealbox}
kubeseal=${KUBESEAL:-$root/target/peers/bin/kubeseal}
runs=${RUNS:-50}

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

set -- -n sealbox "$sealbox seal --cert cert.pem -f secret.yaml -w sealbox.yaml"
if [ -n "${BASELINE:-}" ]; then
    set -- "$@" -n "sealbox (baseline)" "$BASELINE seal --cert cert.pem -f secret.yaml -w baseline.yaml"
fi
if [ -x "$kubeseal" ]; then
    set -- "$@" -n kubeseal "$kubeseal --cert cert.pem -f secret.yaml -w kubeseal.yaml"
else
    echo "note: no kubeseal at $kubeseal (set KUBESEAL); measuring sealbox only" >&2
fi
hyperfine -N --warmup 3 --runs "$runs" --export-json results.json --export-markdown table.md "$@" >&2
cat table.md
echo
python3 - results.json <<'PY'
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
