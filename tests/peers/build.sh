#!/usr/bin/env bash
# Builds the Bitnami peers of the tier-5 tests (see docs/TESTING.md) from the Go module proxy:
# Bitnami's `kubeseal` and `controller`, pinned by tests/peers/go.mod and go.sum, into
# target/peers/bin/ (or $CARGO_TARGET_DIR/peers/bin, where the tests look first).
#   - GOCACHE and GOMODCACHE are the ones tests/kube/build.sh uses (target/kube/): the two
#     modules share golang.org/x, protobuf and friends, so they are downloaded and compiled once;
#   - skipped entirely when target/peers/bin/.stamp matches the hash of the inputs below;
#   - `go` under `nice -n 19`: the machine's other builds come first.
# Also Bitnami's integration suite as a test binary (`go test -c -tags integration`), run by
# tests/tests/bitnami.rs with its -kubeconfig, -kubeseal-bin and -controller-bin flags, so the
# tests need no Go. Needs only `go` and the module proxy. Prints what it does and how long it took.
# Usage: tests/peers/build.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
module="$root/tests/peers"
target="${CARGO_TARGET_DIR:-target}"
case "$target" in /*) ;; *) target="$root/$target" ;; esac
out="$target/peers"
bin="$out/bin"
stamp="$bin/.stamp"

# The release go.mod pins; the binaries report it (`kubeseal --version`, `controller --version`),
# as Bitnami's own release build sets it (their Makefile's -X main.VERSION).
version='v0.40.0'
commands=(kubeseal controller)
outputs=("${commands[@]}" integration.test)

say() { printf 'peers: %s\n' "$*"; }
die() { printf 'peers: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is needed to build Bitnami's kubeseal and controller (Debian: apt-get install golang-go; go.mod names the minimum version)"
grep -q "github.com/bitnami-labs/sealed-secrets $version\$" "$module/go.mod" \
    || die "tests/peers/go.mod does not pin sealed-secrets $version; update version in $0"

# Everything that decides the binaries: the pins, the command list, this script, the compiler.
inputs_hash() {
    {
        cat "$module/go.mod" "$module/go.sum" "$module/tools.go" "$module/build.sh"
        GOTOOLCHAIN=local go version
    } | sha256sum | cut -d' ' -f1
}
want="$(inputs_hash)"

built() {
    [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] || return 1
    local c
    for c in "${outputs[@]}"; do [ -x "$bin/$c" ] || return 1; done
}
if [ "${1:-}" != "--force" ] && built; then
    say "kubeseal, controller and integration.test $version in $bin: up to date"
    exit 0
fi

# Shared with tests/kube/build.sh (honouring CARGO_TARGET_DIR the same way).
export GOCACHE="$target/kube/gocache"
export GOMODCACHE="$target/kube/gomodcache"
# No toolchain download: the installed go builds it or says why not. go.sum is complete and is
# not rewritten (-mod=readonly); no VCS stamping, so the git state of the checkout is irrelevant.
export GOTOOLCHAIN=local
export GOFLAGS='-mod=readonly -buildvcs=false'
export CGO_ENABLED=0
mkdir -p "$GOCACHE" "$GOMODCACHE" "$out"

start=$SECONDS
say "building Bitnami's kubeseal, controller and integration suite $version with $(go version | cut -d' ' -f3) (caches in $target/kube; a cold build takes 3-6 minutes on 2 cores)"
work="$(mktemp -d "$out/.bin.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say "downloading modules"
(cd "$module" && nice -n 19 go mod download) || die "go mod download failed (is the module proxy reachable?)"
say "modules: $((SECONDS - start)) s"

say "compiling kubeseal, controller"
(cd "$module" && nice -n 19 go build -trimpath -ldflags "-s -w -X main.VERSION=$version" -o "$work/" \
    github.com/bitnami/sealed-secrets/cmd/kubeseal \
    github.com/bitnami/sealed-secrets/cmd/controller) || die "go build of Bitnami's commands failed"

say "commands: $((SECONDS - start)) s"

# The suite's own package, unmodified: only _test.go files behind the `integration` build tag.
say "compiling the integration suite (go test -c -tags integration)"
(cd "$module" && nice -n 19 go test -c -tags integration -trimpath -ldflags "-s -w" \
    -o "$work/integration.test" github.com/bitnami/sealed-secrets/integration) \
    || die "go test -c of Bitnami's integration package failed"

for c in "${outputs[@]}"; do [ -x "$work/$c" ] || die "the build wrote no $c"; done
mkdir -p "$bin"
for c in "${outputs[@]}"; do mv -f "$work/$c" "$bin/$c"; done
printf '%s\n' "$want" >"$stamp"   # last: an interrupted build is never taken as done
say "built ${outputs[*]} into $bin in $((SECONDS - start)) s"
