#!/usr/bin/env bash
# Builds the real control plane for the tier-4 tests (see TESTING.md) from the Go module proxy:
# etcd, kube-apiserver, kube-controller-manager and kubectl, pinned by tests/kube/go.mod and
# go.sum, into target/kube/bin/.
#   - GOCACHE and GOMODCACHE live under target/kube/, so a second run on the same machine only
#     links (a cold build took 22 minutes on 2 busy cores and peaked at 2.7 GB in the linker);
#   - skipped entirely when target/kube/bin/.stamp matches the hash of the inputs below;
#   - `go` under `nice -n 19`: the machine's other builds come first.
# Needs only `go` (the version go.mod names or later) and the module proxy. Prints what it does
# and how long it took. Usage: tests/kube/build.sh [--force]
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
module="$root/tests/kube"
out="$root/target/kube"
bin="$out/bin"
stamp="$bin/.stamp"

# The Kubernetes release the module pins (go.mod); it also names the binaries' version
# (otherwise they report v0.0.0-master, and kubectl's version skew check cannot read it).
kube_version='v1.37.2'
commands=(etcd kube-apiserver kube-controller-manager kubectl)

say() { printf 'kube: %s\n' "$*"; }
die() { printf 'kube: error: %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "go is needed to build the control plane (Debian: apt-get install golang-go; go.mod names the minimum version)"
grep -q "k8s.io/kubernetes $kube_version\$" "$module/go.mod" \
    || die "tests/kube/go.mod does not pin k8s.io/kubernetes $kube_version; update kube_version in $0"

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
    for c in "${commands[@]}"; do [ -x "$bin/$c" ] || return 1; done
}
if [ "${1:-}" != "--force" ] && built; then
    say "etcd, kube-apiserver, kube-controller-manager and kubectl $kube_version in target/kube/bin: up to date"
    exit 0
fi

export GOCACHE="$out/gocache"
export GOMODCACHE="$out/gomodcache"
# No toolchain download: the installed go builds it or says why not. go.sum is complete and is
# not rewritten (-mod=readonly); no VCS stamping, so the git state of the checkout is irrelevant.
export GOTOOLCHAIN=local
export GOFLAGS='-mod=readonly -buildvcs=false'
export CGO_ENABLED=0
mkdir -p "$GOCACHE" "$GOMODCACHE" "$out"

# What `kubectl version` and /version report; Kubernetes' own build sets the same variables.
minor="${kube_version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$kube_version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean"
done

start=$SECONDS
say "building etcd, kube-apiserver, kube-controller-manager, kubectl $kube_version with $(go version | cut -d' ' -f3) (caches in target/kube; a cold build takes 15-25 minutes on 2 cores)"
work="$(mktemp -d "$out/.bin.XXXXXX")"
trap 'rm -rf "$work"' EXIT

say "downloading modules"
(cd "$module" && nice -n 19 go mod download) || die "go mod download failed (is the module proxy reachable?)"
say "modules: $((SECONDS - start)) s"

say "compiling kube-apiserver, kube-controller-manager, kubectl"
(cd "$module" && nice -n 19 go build -trimpath -ldflags "$ldflags" -o "$work/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl) || die "go build of the Kubernetes commands failed"
say "Kubernetes commands: $((SECONDS - start)) s"

# etcd's root package is its main; built alone so the binary is named etcd, not server.
say "compiling etcd"
(cd "$module" && nice -n 19 go build -trimpath -ldflags "-s -w" -o "$work/etcd" go.etcd.io/etcd/server/v3) \
    || die "go build of etcd failed"

for c in "${commands[@]}"; do [ -x "$work/$c" ] || die "the build wrote no $c"; done
mkdir -p "$bin"
for c in "${commands[@]}"; do mv -f "$work/$c" "$bin/$c"; done
printf '%s\n' "$want" >"$stamp"   # last: an interrupted build is never taken as done
say "built ${commands[*]} into target/kube/bin in $((SECONDS - start)) s"
