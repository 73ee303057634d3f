#!/usr/bin/env bash
# Prints the path of Bitnami's controller.yaml as its release ships it, rendered here from the
# jsonnet in its Go module (controller.jsonnet, as its Makefile does with kubecfg), as a v1 List
# in JSON. tests/tests/kustomize_migration.rs applies it, then deploy/kustomize/base over it.
# Nothing of Bitnami's is committed: the module comes from `go mod download`
# (.ci/bitnami-chart.sh), go-jsonnet from the Go module proxy (built once under
# target/ci-tools), and the rendering lands under target/bitnami.
set -euo pipefail
cd "$(dirname "$0")/.."

jsonnet_version='v0.22.0'
# Bitnami's release tag of the module .ci/bitnami-chart.sh fetches, for the image (the pods
# never run in the tests: there is no kubelet).
bitnami_version='0.40.0'

die() { printf 'bitnami-controller-yaml: %s\n' "$*" >&2; exit 1; }
command -v go >/dev/null || die "go is needed to build go-jsonnet"
command -v python3 >/dev/null || die "python3 is needed to flatten the objects"

chart="$(.ci/bitnami-chart.sh)" || die "cannot fetch Bitnami's module (.ci/bitnami-chart.sh)"
module="$(cd "$chart/../.." && pwd)"
[ -f "$module/controller.jsonnet" ] || die "no controller.jsonnet in $module"

export GOMODCACHE="${GOMODCACHE:-$PWD/target/kube/gomodcache}"
export GOCACHE="${GOCACHE:-$PWD/target/kube/gocache}"
tools="$PWD/target/ci-tools/go-jsonnet-$jsonnet_version"
if [ ! -x "$tools/jsonnet" ]; then
    mkdir -p "$tools"
    outside="$(mktemp -d)"
    trap 'rm -rf "$outside"' EXIT
    (cd "$outside" && GOFLAGS=-mod=mod GOBIN="$tools" go install \
        "github.com/google/go-jsonnet/cmd/jsonnet@$jsonnet_version") \
        || die "go install go-jsonnet@$jsonnet_version failed"
fi

out_dir="$PWD/target/bitnami"
out="$out_dir/controller-v$bitnami_version.json"
mkdir -p "$out_dir"
work="$(mktemp -d "$out_dir/.render.XXXXXX")"
trap 'rm -rf "$work"' EXIT
# kubecfg's native library, which the jsonnet imports for parseYaml: go-jsonnet's standard
# library parses YAML itself (kubecfg returns every document of the stream, as an array).
cat > "$work/kubecfg.libsonnet" <<'EOF'
{ parseYaml(text):: local parsed = std.parseYaml(text); if std.isArray(parsed) then parsed else [parsed] }
EOF
"$tools/jsonnet" -J "$work" \
    --ext-str "CONTROLLER_IMAGE=docker.io/bitnami/sealed-secrets-controller:$bitnami_version" \
    --ext-str IMAGE_PULL_POLICY= \
    "$module/controller.jsonnet" > "$work/raw.json" \
    || die "rendering $module/controller.jsonnet failed"
# kubecfg's flattening: every nested value with apiVersion and kind is one object.
python3 - "$work/raw.json" "$work/list.json" <<'EOF'
import json, sys

def objects(value):
    if isinstance(value, dict):
        if "apiVersion" in value and "kind" in value:
            yield value
        else:
            for key in sorted(value):
                yield from objects(value[key])
    elif isinstance(value, list):
        for item in value:
            yield from objects(item)

with open(sys.argv[1]) as raw:
    items = list(objects(json.load(raw)))
with open(sys.argv[2], "w") as out:
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, out, indent=1)
EOF
mv "$work/list.json" "$out"
echo "$out"
