#!/usr/bin/env bash
# Prints the directory of Bitnami's sealed-secrets Helm chart, as its Go module ships it
# (helm/sealed-secrets in github.com/bitnami-labs/sealed-secrets). Tests read its values.yaml
# and render or install it at run time; nothing of it is committed.
# The module is fetched with `go mod download` (checked against the Go checksum database) into
# target/kube/gomodcache, the cache tests/kube/build.sh uses; a second run makes no network call.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bitnami's newest release; its chart is 2.19.x.
module='github.com/bitnami-labs/sealed-secrets'
version='v0.40.0'

command -v go >/dev/null || { echo "bitnami-chart: go is needed to fetch $module@$version" >&2; exit 1; }
export GOMODCACHE="${GOMODCACHE:-$PWD/target/kube/gomodcache}"
mkdir -p "$GOMODCACHE"
# Outside any module: GOFLAGS=-mod=mod keeps a go.work or GOFLAGS of the caller out of it.
outside="$(mktemp -d)"
trap 'rm -rf "$outside"' EXIT
dir="$(cd "$outside" && GOFLAGS=-mod=mod go mod download -json "$module@$version" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
chart="$dir/helm/sealed-secrets"
[ -f "$chart/values.yaml" ] || { echo "bitnami-chart: no chart in $module@$version (looked in $chart)" >&2; exit 1; }
echo "$chart"
