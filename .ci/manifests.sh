#!/usr/bin/env bash
# Renders and validates everything in deploy/: the generated CRD is current, the kustomize base
# and the Helm chart render (default and non-default values, and a Bitnami values file naming
# every key of Bitnami's chart, each checked to take effect), every document passes the
# Kubernetes schemas strictly, the contract users rely on holds (.ci/manifests.py), and the
# API double accepts a server-side dry-run apply of it all, and the Argo CD health check in
# deploy/argocd passes its tests under lua5.4.
# Installs its tools with .ci/tools.sh. Rendered files are left in target/ci-manifests/.
set -euo pipefail
cd "$(dirname "$0")/.."

.ci/tools.sh
bin="$PWD/target/ci-tools/bin"
kubectl="$bin/kubectl"
helm="$bin/helm"
python="$bin/manifests-python"
out="$PWD/target/ci-manifests"
rm -rf "$out"
mkdir -p "$out"

# Schemas of the oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and of kubectl's.
kube_versions=(1.29.0 1.35.0)
crd=deploy/crds/sealedsecrets.bitnami.com.yaml
chart=deploy/helm/sealbox

started=$SECONDS
step_started=$SECONDS
step() {
    printf '\n--> manifests: %s\n' "$*"
    step_started=$SECONDS
}
done_step() { printf '    (%ss)\n' "$((SECONDS - step_started))"; }
die() {
    printf 'manifests: error: %s\n' "$*" >&2
    exit 1
}

# Helm variants: name, values file (- for defaults), release namespace, expected Service name,
# replicas, the namespace the objects land in (- for the release namespace), and extra
# arguments of `manifests.py check` (- for none; commas for spaces).
helm_variants=(
    "default - kube-system sealed-secrets-controller 2 - -"
    "ha $chart/ci/ha-values.yaml kube-system sealed-secrets-controller 3 - -"
    "monitoring $chart/ci/monitoring-values.yaml kube-system sealed-secrets-controller 2 - -"
    "namespaced $chart/ci/namespaced-values.yaml sealbox sealbox 2 - -"
    "minimal $chart/ci/minimal-values.yaml kube-system sealed-secrets-controller 1 - -"
    # Bitnami's uid and its /tmp volume, as a Bitnami values file has them.
    "bitnami $chart/ci/bitnami-values.yaml kube-system sealed-secrets-controller 2 sealbox --uid,1001,--volumes"
)

step "versions agree (workspace, Chart.yaml appVersion, kustomize image tag)"
workspace_version="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version *= *"\(.*\)"/\1/p' Cargo.toml)"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$chart/Chart.yaml")"
kustomize_tag="$(sed -n 's/^ *newTag: *//p' deploy/kustomize/base/kustomization.yaml)"
[ -n "$workspace_version" ] || die "cannot read [workspace.package] version from Cargo.toml"
[ "$app_version" = "$workspace_version" ] \
    || die "$chart/Chart.yaml appVersion is '$app_version', the workspace version is '$workspace_version'"
[ "$kustomize_tag" = "$workspace_version" ] \
    || die "deploy/kustomize/base/kustomization.yaml newTag is '$kustomize_tag', the workspace version is '$workspace_version'"
echo "    $workspace_version everywhere"
done_step

step "CRD drift: $crd is what crdgen generates"
cargo run --quiet --locked -p sealbox-crds --bin crdgen >"$out/crd.generated.yaml" \
    || die "crdgen failed (cargo run -p sealbox-crds --bin crdgen)"
[ -f "$crd" ] || die "$crd is missing; run: cargo run -p sealbox-crds --bin crdgen > $crd"
if ! diff -u "$crd" "$out/crd.generated.yaml"; then
    die "$crd is out of date with the SealedSecret types; run: cargo run -p sealbox-crds --bin crdgen > $crd"
fi
# The chart cannot read files outside its directory, so it carries a copy.
if ! diff -u "$crd" "$chart/files/crds/sealedsecrets.bitnami.com.yaml"; then
    die "the chart's CRD copy differs; run: cp $crd $chart/files/crds/"
fi
echo "    generated CRD, committed CRD and the chart's copy are identical"
done_step

step "kubectl kustomize: base, and base + network-policy component"
"$kubectl" kustomize deploy/kustomize/base >"$out/kustomize-base.yaml" \
    || die "kubectl kustomize deploy/kustomize/base failed"
"$kubectl" kustomize deploy/kustomize/overlays/network-policy >"$out/kustomize-network-policy.yaml" \
    || die "kubectl kustomize deploy/kustomize/overlays/network-policy failed"
grep -q '^kind: NetworkPolicy$' "$out/kustomize-network-policy.yaml" \
    || die "the network-policy overlay rendered no NetworkPolicy"
for file in "$out"/kustomize-*.yaml; do
    echo "    $(basename "$file"): $(grep -c '^kind:' "$file") objects"
done
done_step

step "helm lint and helm template"
for variant in "${helm_variants[@]}"; do
    read -r name values namespace _ _ _ _ <<<"$variant"
    args=(--namespace "$namespace")
    [ "$values" = - ] || args+=(--values "$values")
    "$helm" lint --strict --quiet "$chart" "${args[@]}" >"$out/helm-lint-$name.log" 2>&1 \
        || { cat "$out/helm-lint-$name.log"; die "helm lint failed for values '$name'"; }
    "$helm" template sealbox "$chart" "${args[@]}" >"$out/helm-$name.yaml" \
        || die "helm template failed for values '$name'"
    echo "    $name: lint ok, $(grep -c '^kind:' "$out/helm-$name.yaml") objects"
done
# Values that must be refused, with the reason in the error.
refused() {
    local why="$1"
    shift
    local error
    if error="$("$helm" template sealbox "$chart" --namespace kube-system "$@" 2>&1)"; then
        die "helm template accepted $* (expected: $why)"
    fi
    grep -q "$why" <<<"$error" || die "helm template refused $* without saying '$why': $error"
    echo "    refused as expected: $*"
}
refused "needs leaderElection.enabled=true" --set replicaCount=2 --set leaderElection.enabled=false
refused "additional properties 'replicas' not allowed" --set replicas=3   # values.schema.json
refused "PodSecurityPolicy was removed" --set rbac.pspEnabled=true
refused "names Bitnami's controller image" --set image.registry=docker.io --set image.repository=bitnami/sealed-secrets-controller
refused "set minAvailable or maxUnavailable, not both" --set pdb.maxUnavailable=1
refused "supports Kubernetes >= 1.29" --set kubeVersion=1.28.0
refused "set kubeapiCidr and kubeapiPort" --set networkPolicy.enabled=true --set networkPolicy.egress.enabled=true
refused "values must be non-empty strings" --set-json 'privateKeyLabels={"n":1}'
# createController=false: the rest of the release without the controller.
"$helm" template sealbox "$chart" --namespace kube-system --set createController=false >"$out/helm-no-controller.yaml" \
    || die "helm template --set createController=false failed"
! grep -q -e '^kind: Deployment$' -e '^kind: Service$' "$out/helm-no-controller.yaml" \
    || die "createController=false still rendered the Deployment or a Service"
echo "    createController=false: no Deployment, no Service"
done_step

step "Bitnami values: every key of Bitnami's chart is a value here, and each takes effect"
# Bitnami's chart from its Go module (.ci/bitnami-chart.sh; read, never committed).
bitnami_chart="$(.ci/bitnami-chart.sh)" || die "cannot fetch Bitnami's chart (.ci/bitnami-chart.sh)"
printf '    coverage: '
"$python" .ci/bitnami_values.py coverage "$bitnami_chart/values.yaml" "$chart/values.yaml" "$chart/ci/bitnami-values.yaml" \
    || die "the chart does not take every Bitnami value"
printf '    helm-bitnami.yaml: '
"$python" .ci/bitnami_values.py check "$out/helm-bitnami.yaml" "$chart/ci/bitnami-values.yaml" --release sealbox \
    || die "a Bitnami value did not take effect (rendered: $out/helm-bitnami.yaml)"
done_step

step "kubernetes-validate --strict (Kubernetes ${kube_versions[*]})"
for version in "${kube_versions[@]}"; do
    # Custom resources (the ServiceMonitor) have no bundled schema: the tool warns and skips them.
    "$bin/kubernetes-validate" --strict --quiet --kubernetes-version "$version" "$out"/kustomize-*.yaml "$out"/helm-*.yaml \
        || die "schema validation against Kubernetes $version failed (files in $out)"
    echo "    $version: every document valid"
done
done_step

step "contract checks (.ci/manifests.py)"
for file in "$out"/kustomize-*.yaml; do
    printf '    %s: ' "$(basename "$file")"
    "$python" .ci/manifests.py check "$file" --name sealed-secrets-controller --namespace kube-system --replicas 2
done
for variant in "${helm_variants[@]}"; do
    read -r name _ namespace service replicas objects extra <<<"$variant"
    [ "$objects" = - ] || namespace="$objects"
    extra_args=()
    [ "$extra" = - ] || IFS=, read -r -a extra_args <<<"$extra"
    printf '    helm-%s.yaml: ' "$name"
    "$python" .ci/manifests.py check "$out/helm-$name.yaml" --name "$service" --namespace "$namespace" --replicas "$replicas" "${extra_args[@]}"
done
printf '    kustomize base vs Helm defaults: '
"$python" .ci/manifests.py same-rbac "$out/kustomize-base.yaml" "$out/helm-default.yaml"
done_step

step "server-side dry-run apply against the API double"
cargo build --quiet --locked -p sealbox-tests --bin sealbox-api-double \
    || die "cannot build the API double (cargo build -p sealbox-tests --bin sealbox-api-double)"
double_dir="$(mktemp -d)"
kubeconfig="$double_dir/kubeconfig"
"${CARGO_TARGET_DIR:-target}/debug/sealbox-api-double" --kubeconfig "$kubeconfig" >"$double_dir/double.log" 2>&1 &
double_pid=$!
trap 'kill "$double_pid" 2>/dev/null || true; rm -rf "$double_dir"' EXIT
for _ in $(seq 1 100); do
    [ -s "$kubeconfig" ] && break
    kill -0 "$double_pid" 2>/dev/null || { cat "$double_dir/double.log"; die "the API double exited"; }
    sleep 0.1
done
[ -s "$kubeconfig" ] || die "the API double wrote no kubeconfig within 10s"
k() { "$kubectl" --kubeconfig "$kubeconfig" "$@"; }
# What the double serves, as "apiVersion kind" (the last three columns: APIVERSION NAMESPACED KIND).
k api-resources --no-headers | awk '{print $(NF-2), $NF}' | sort -u >"$out/served.txt"
# Namespaces the variants install into; a real cluster would have them too. (Applied from YAML:
# `kubectl create namespace` sends protobuf, which the double does not read.)
for namespace in sealbox team-a team-b monitoring; do
    printf 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: %s\n---\n' "$namespace"
done | k apply --server-side --field-manager=sealbox-ci -f - >/dev/null \
    || die "the API double refused to create the test namespaces"
for file in "$out"/kustomize-*.yaml "$out"/helm-*.yaml; do
    name="$(basename "$file" .yaml)"
    echo "    $name:"
    "$python" .ci/manifests.py served "$out/served.txt" "$file" "$out/dry-run-$name.yaml" | sed 's/^/      /'
    k apply --server-side --dry-run=server --field-manager=sealbox-ci -f "$out/dry-run-$name.yaml" \
        >"$out/dry-run-$name.log" 2>&1 \
        || { sed 's/^/      /' "$out/dry-run-$name.log"; die "server-side dry-run apply of $name was refused"; }
    echo "      applied (dry run): $(grep -c 'serverside-applied' "$out/dry-run-$name.log") objects"
done
# A dry run must leave nothing behind.
left="$(k get deployments,services,serviceaccounts,customresourcedefinitions -A --no-headers 2>/dev/null \
    | grep -e sealed-secrets -e sealbox || true)"
[ -z "$left" ] || die "the dry run left objects behind: $left"
done_step

step "Argo CD health check (deploy/argocd) under lua5.4: Argo CD's cases and the controller's objects"
SEALBOX_LUA_REQUIRED=1 cargo test --quiet --locked -p sealbox-tests --test argocd 2>&1 | sed 's/^/    /' \
    || die "the Argo CD health check test failed (cargo test -p sealbox-tests --test argocd)"
done_step

printf '\nmanifests: all checks passed in %ss\n' "$((SECONDS - started))"
