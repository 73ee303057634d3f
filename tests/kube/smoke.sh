#!/usr/bin/env bash
# Proves the binaries of tests/kube/build.sh work: starts etcd, kube-apiserver (RBAC, client
# certificates, ServiceAccount tokens) and kube-controller-manager on free loopback ports in a
# temporary directory, waits for /readyz, runs `kubectl get ns`, waits for the controller manager
# to create the `default` ServiceAccount, prints start-up time and resident memory, then stops
# the three processes (SIGTERM, then SIGKILL after a grace period) and removes the directory.
# Keys and certificates are generated at start with openssl and never leave the directory.
# Usage: tests/kube/smoke.sh   (after tests/kube/build.sh). Needs openssl and python3.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin="${SEALBOX_KUBE_BIN:-$PWD/target/kube/bin}"

say() { printf 'smoke: %s\n' "$*"; }
die() { printf 'smoke: error: %s\n' "$*" >&2; exit 1; }

for c in etcd kube-apiserver kube-controller-manager kubectl; do
    [ -x "$bin/$c" ] || die "$bin/$c is missing: run tests/kube/build.sh"
done
command -v openssl >/dev/null || die "openssl is needed to make the test certificates"

dir="$(mktemp -d "${TMPDIR:-/tmp}/sealbox-kube.XXXXXX")"
pids=()
stop() {
    local pid
    # Reverse start order: the controller manager, the API server, then etcd.
    for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
        pid="${pids[i]}"
        kill -TERM "$pid" 2>/dev/null || continue
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$dir"
}
trap stop EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"

# PKI: one CA signs the serving certificate and the two client certificates.
pki="$dir/pki"; mkdir -p "$pki"
ec() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ec "$pki/ca.key"
openssl req -x509 -new -key "$pki/ca.key" -subj "/CN=sealbox-test-ca" -days 1 -out "$pki/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
cert() { # name subject extensions...
    local name="$1" subject="$2"; shift 2
    ec "$pki/$name.key"
    openssl req -new -key "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
    printf '%s\n' "$@" >"$pki/$name.ext"
    openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial \
        -days 1 -extfile "$pki/$name.ext" -out "$pki/$name.crt" 2>/dev/null
}
cert apiserver "/CN=kube-apiserver" "subjectAltName=IP:127.0.0.1,DNS:localhost" "extendedKeyUsage=serverAuth"
cert admin "/O=system:masters/CN=sealbox-test-admin" "extendedKeyUsage=clientAuth"
cert kcm "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
ec "$pki/sa.key"
openssl pkey -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null

kubeconfig() { # user file
    cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: sealbox-real
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $pki/ca.crt
users:
- name: $1
  user:
    client-certificate: $pki/$1.crt
    client-key: $pki/$1.key
contexts:
- name: sealbox-real
  context: {cluster: sealbox-real, user: $1}
current-context: sealbox-real
EOF
}
kubeconfig admin "$dir/admin.kubeconfig"
kubeconfig kcm "$dir/kcm.kubeconfig"
kubectl=("$bin/kubectl" --kubeconfig "$dir/admin.kubeconfig")

ms() { echo $(( $(date +%s%N) / 1000000 )); }
since() { local d=$(( $(ms) - start )); printf '%d.%01d' $((d / 1000)) $((d % 1000 / 100)); }
start=$(ms)
say "etcd on 127.0.0.1:$etcd_port"
"$bin/etcd" --name smoke --data-dir "$dir/etcd" \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "smoke=http://127.0.0.1:$peer_port" --unsafe-no-fsync \
    >"$dir/etcd.log" 2>&1 &
pids+=($!)

say "kube-apiserver on https://127.0.0.1:$api_port"
"$bin/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --endpoint-reconciler-type none \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" \
    --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-signing-key-file "$pki/sa.key" --service-account-key-file "$pki/sa.pub" \
    --service-cluster-ip-range 10.96.0.0/24 \
    --cert-dir "$dir/apiserver-certs" \
    >"$dir/kube-apiserver.log" 2>&1 &
pids+=($!)

ready=""
for _ in $(seq 600); do
    if "${kubectl[@]}" get --raw /readyz >/dev/null 2>&1; then ready=1; break; fi
    for pid in "${pids[@]}"; do
        kill -0 "$pid" 2>/dev/null || { tail -n 30 "$dir"/*.log >&2; die "a process exited during start-up"; }
    done
    sleep 0.1
done
[ -n "$ready" ] || { tail -n 30 "$dir/kube-apiserver.log" >&2; die "no /readyz within 60 s"; }
say "/readyz after $(since) s"

say "kube-controller-manager (no serving port)"
"$bin/kube-controller-manager" \
    --kubeconfig "$dir/kcm.kubeconfig" \
    --use-service-account-credentials \
    --controllers garbage-collector-controller,namespace-controller,deployment-controller,replicaset-controller,serviceaccount-controller,root-ca-certificate-publisher-controller \
    --root-ca-file "$pki/ca.crt" \
    --leader-elect=false \
    --secure-port 0 \
    --flex-volume-plugin-dir "$dir/flexvolume" \
    >"$dir/kube-controller-manager.log" 2>&1 &
pids+=($!)

"${kubectl[@]}" version
"${kubectl[@]}" get ns

sa=""
for _ in $(seq 600); do
    if "${kubectl[@]}" -n default get serviceaccount default >/dev/null 2>&1; then sa=1; break; fi
    kill -0 "${pids[2]}" 2>/dev/null || { tail -n 30 "$dir/kube-controller-manager.log" >&2; die "kube-controller-manager exited"; }
    sleep 0.1
done
[ -n "$sa" ] || { tail -n 30 "$dir/kube-controller-manager.log" >&2; die "no default ServiceAccount within 60 s"; }
say "controller manager working (ServiceAccount default/default) after $(since) s"

sleep "${SMOKE_IDLE_SECONDS:-10}"
total=0
for pid in "${pids[@]}"; do
    rss="$(ps -o rss= -p "$pid")"; total=$((total + rss))
    say "$(ps -o comm= -p "$pid"): RSS $((rss / 1024)) MiB"
done
say "idle RSS of the three: $((total / 1024)) MiB"
say "stopping"
