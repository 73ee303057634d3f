#!/usr/bin/env bash
# Fuzz smoke test: builds every cargo-fuzz (libFuzzer) target in fuzz/ and runs each for a short
# fixed time, from its committed seeds plus the corpus earlier runs grew (kept under target/fuzz).
# Prints one line per target (executions, exec/s, seconds, result) and `N passed, N failed`;
# exits non-zero when any target crashed, leaked past the memory limit, hung or did not run.
#
# Stable toolchain: cargo-fuzz passes nightly-only `-Z` sanitizer flags to rustc;
# RUSTC_BOOTSTRAP=1 makes the stable compiler accept them (see docs/TESTING.md).
#
# Knobs (environment):
#   FUZZ_SECONDS    seconds per target (default 20)
#   FUZZ_RSS_MB     libFuzzer -rss_limit_mb / -malloc_limit_mb (default 1024: the target's own
#                   heap plus AddressSanitizer's shadow and quarantine; a single input that needs
#                   more is a finding, the controller's Deployment limit is 256Mi)
#   FUZZ_TIMEOUT    seconds one input may take before it counts as a hang (default 10)
#   FUZZ_SANITIZER  address (default) or none
#   FUZZ_TARGETS    targets to run (default: all of `cargo fuzz list`)
#   FUZZ_SKIP       targets not to run, space- or comma-separated (default: none)
#   FUZZ_ARGS       extra libFuzzer flags, e.g. "-jobs=2" or "-max_len=65536"
set -euo pipefail
cd "$(dirname "$0")/.."

cargo_fuzz_version='0.13.2'
seconds="${FUZZ_SECONDS:-20}"
rss_mb="${FUZZ_RSS_MB:-1024}"
timeout="${FUZZ_TIMEOUT:-10}"
sanitizer="${FUZZ_SANITIZER:-address}"
skip=" $(printf '%s' "${FUZZ_SKIP:-}" | tr ',' ' ') "

tools="$PWD/target/ci-tools"
# The fuzz crate's own target dir: its caches survive between runs and it never waits on the
# workspace's target-dir lock (its build flags differ, nothing could be shared anyway).
target_dir="$PWD/target/fuzz"
work="$target_dir/work"
mkdir -p "$work"
export CARGO_TERM_COLOR=never
unset CARGO_TARGET_DIR

say() { printf 'fuzz: %s\n' "$*"; }

# cargo-fuzz, keyed by version under target/ci-tools; a second run makes no network call.
cargo_fuzz="$tools/cargo-fuzz-$cargo_fuzz_version/bin/cargo-fuzz"
if [ -x "$cargo_fuzz" ] && "$cargo_fuzz" --version 2>/dev/null | grep -qF "$cargo_fuzz_version"; then
    say "cargo-fuzz $cargo_fuzz_version: cached"
else
    say "installing cargo-fuzz $cargo_fuzz_version"
    # Its own temporary build dir, never the workspace's target dir.
    nice -n 19 cargo install cargo-fuzz --locked --version "$cargo_fuzz_version" \
        --root "$tools/cargo-fuzz-$cargo_fuzz_version" --quiet
fi
fuzz() { RUSTC_BOOTSTRAP=1 "$cargo_fuzz" fuzz "$@"; }

targets="${FUZZ_TARGETS:-$(fuzz list)}"

start=$(date +%s)
say "building every fuzz target (sanitizer: $sanitizer)"
RUSTC_BOOTSTRAP=1 nice -n 19 "$cargo_fuzz" fuzz build --sanitizer "$sanitizer" --target-dir "$target_dir"
built=$(date +%s)
say "build took $((built - start)) s"

passed=0 failed=0 skipped=0
summary=()
for target in $targets; do
    if [[ "$skip" == *" $target "* ]]; then
        skipped=$((skipped + 1))
        summary+=("$(printf '%-14s skipped (FUZZ_SKIP)' "$target")")
        continue
    fi
    corpus="$work/corpus/$target"
    artifacts="$work/artifacts/$target"
    log="$work/$target.log"
    mkdir -p "$corpus" "$artifacts"
    t0=$(date +%s)
    # New inputs go to the first corpus dir (under target/); the committed seeds are read only.
    set +e
    RUSTC_BOOTSTRAP=1 nice -n 19 "$cargo_fuzz" fuzz run --sanitizer "$sanitizer" \
        --target-dir "$target_dir" "$target" "$corpus" "fuzz/corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb="$rss_mb" -malloc_limit_mb="$rss_mb" \
        -timeout="$timeout" -print_final_stats=1 -artifact_prefix="$artifacts/" \
        ${FUZZ_ARGS:-} >"$log" 2>&1
    status=$?
    set -e
    t1=$(date +%s)
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        # No final stats (a crash): the last status line's count.
        execs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#' || true)
    fi
    crash=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log" | tail -1)
    if [ "$status" -eq 0 ]; then
        passed=$((passed + 1))
        result="ok"
    else
        failed=$((failed + 1))
        kind=$(grep -m1 -oE 'deadly signal|stack-overflow|out-of-memory[^)]*\)|timeout after [0-9]+ seconds|panicked at [^:]*:[0-9]+|ERROR: AddressSanitizer: [a-z-]+|ERROR: libFuzzer: [a-z-]+' "$log" || true)
        result="FAILED (exit $status${kind:+: $kind}${crash:+; input $crash}; log $log)"
    fi
    summary+=("$(printf '%-14s %10s execs %7s exec/s %4s s peak %5s MB  %s' \
        "$target" "${execs:-0}" "${rate:-0}" "$((t1 - t0))" "${rss:-?}" "$result")")
done

for line in "${summary[@]}"; do say "$line"; done
end=$(date +%s)
say "build $((built - start)) s, runs $((end - built)) s"
if [ "$skipped" -gt 0 ]; then
    say "$passed passed, $failed failed, $skipped skipped"
else
    say "$passed passed, $failed failed"
fi
[ "$failed" -eq 0 ]
