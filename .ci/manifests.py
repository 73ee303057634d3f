"""Checks on rendered deploy/ manifests that a schema cannot express. Used by .ci/manifests.sh.

    manifests.py check FILE --name NAME --namespace NS [--replicas N] [--uid UID] [--volumes]
        The contract users rely on: kubeseal's Service and port name, selectors that match the
        pods, the pod's security settings and probes, RBAC bound to the controller's account,
        the service-proxier role.
    manifests.py same-rbac FILE FILE
        Both renderings grant the same rules (the kustomize base and the Helm chart).
    manifests.py served SERVED_LIST FILE OUT
        Copies to OUT the documents whose apiVersion and kind the API server serves (one
        "apiVersion kind" per line in SERVED_LIST); prints `skipped: ...` for the others.
"""

import argparse
import json
import sys

import yaml

CLUSTER_SCOPED = {
    "CustomResourceDefinition",
    "ClusterRole",
    "ClusterRoleBinding",
    "Namespace",
}


class Failure(Exception):
    pass


def load(path):
    with open(path, encoding="utf-8") as file:
        return [d for d in yaml.safe_load_all(file) if d]


def ident(doc):
    meta = doc.get("metadata", {})
    ns = meta.get("namespace")
    return f"{doc.get('kind')} {ns + '/' if ns else ''}{meta.get('name')}"


def find(docs, kind, name, namespace=None):
    for doc in docs:
        meta = doc["metadata"]
        if doc["kind"] == kind and meta["name"] == name and (
            namespace is None or meta.get("namespace") == namespace
        ):
            return doc
    raise Failure(f"no {kind} {namespace + '/' if namespace else ''}{name}")


def expect(condition, message):
    if not condition:
        raise Failure(message)


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


def check(path, name, namespace, replicas, uid=65532, volumes=False):
    docs = load(path)
    seen = set()
    for doc in docs:
        for field in ("apiVersion", "kind"):
            expect(doc.get(field), f"a document without {field}: {json.dumps(doc)[:120]}")
        expect(doc.get("metadata", {}).get("name"), f"{doc['kind']} without a name")
        key = ident(doc)
        expect(key not in seen, f"{key} rendered twice")
        seen.add(key)
        if doc["kind"] not in CLUSTER_SCOPED and doc["kind"] != "ServiceMonitor":
            expect(doc["metadata"].get("namespace"), f"{key} has no namespace")

    deployment = find(docs, "Deployment", name, namespace)
    spec = deployment["spec"]
    if replicas is not None:
        expect(spec.get("replicas") == replicas, f"Deployment replicas {spec.get('replicas')}, expected {replicas}")
    pod = spec["template"]
    pod_labels = pod["metadata"].get("labels", {})
    expect(subset(spec["selector"]["matchLabels"], pod_labels), "Deployment selector does not match its pods")

    # kubeseal and sealbox: /api/v1/namespaces/NS/services/http:NAME:http/proxy/v1/...
    service = find(docs, "Service", name, namespace)
    first = service["spec"]["ports"][0]
    expect(first.get("name") == "http", f"Service {name}'s first port must be named http (kubeseal puts its name in the proxy path)")
    expect(first.get("targetPort") == "http", "Service port http must target the container port http")
    expect(subset(service["spec"]["selector"], pod_labels), f"Service {name} selects no controller pod")
    metrics = find(docs, "Service", f"{name}-metrics", namespace)
    expect(any(p.get("name") == "metrics" for p in metrics["spec"]["ports"]), "metrics Service has no port named metrics")
    expect(subset(metrics["spec"]["selector"], pod_labels), "metrics Service selects no controller pod")

    for doc in docs:
        if doc["kind"] == "PodDisruptionBudget":
            expect(subset(doc["spec"]["selector"]["matchLabels"], pod_labels), f"{ident(doc)} selects no controller pod")
        if doc["kind"] == "NetworkPolicy":
            expect(subset(doc["spec"]["podSelector"].get("matchLabels"), pod_labels), f"{ident(doc)} selects no controller pod")
        if doc["kind"] == "ServiceMonitor":
            expect(subset(doc["spec"]["selector"]["matchLabels"], metrics["metadata"].get("labels", {})),
                   f"{ident(doc)} does not select the metrics Service")
            expect(any(e.get("port") == "metrics" for e in doc["spec"]["endpoints"]), f"{ident(doc)} scrapes no metrics port")

    pod_spec = pod["spec"]
    pod_security = pod_spec.get("securityContext", {})
    expect(pod_security.get("runAsNonRoot") is True, "pod securityContext.runAsNonRoot must be true")
    expect(pod_security.get("seccompProfile", {}).get("type") == "RuntimeDefault", "pod seccompProfile must be RuntimeDefault")
    # Only volumes the values add (additionalVolumes): the controller writes no files.
    expect(volumes or not pod_spec.get("volumes"), "the controller needs no volumes (it writes no files)")
    containers = pod_spec["containers"]
    expect(len(containers) == 1, "one container expected")
    container = containers[0]
    security = container.get("securityContext", {})
    expect(security.get("runAsNonRoot") is True and security.get("runAsUser") == uid, f"container must run as uid {uid}, non-root")
    expect(security.get("allowPrivilegeEscalation") is False, "allowPrivilegeEscalation must be false")
    expect(security.get("readOnlyRootFilesystem") is True, "readOnlyRootFilesystem must be true")
    expect(security.get("capabilities", {}).get("drop") == ["ALL"], "capabilities must drop ALL")
    expect(security.get("seccompProfile", {}).get("type") == "RuntimeDefault", "container seccompProfile must be RuntimeDefault")
    resources = container.get("resources", {})
    for kind in ("requests", "limits"):
        for resource in ("cpu", "memory"):
            expect(resources.get(kind, {}).get(resource), f"resources.{kind}.{resource} is not set")
    container_ports = {p["name"]: p for p in container.get("ports", [])}
    expect({"http", "metrics"} <= container_ports.keys(), "container ports http and metrics are required")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        get = container.get(probe, {}).get("httpGet", {})
        expect(get.get("path") == path and get.get("port") == "http", f"{probe} must GET {path} on port http")
    env = {e["name"]: e for e in container.get("env", [])}
    field = env.get("POD_NAMESPACE", {}).get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
    expect(field == "metadata.namespace", "POD_NAMESPACE must come from the downward API (metadata.namespace)")

    # RBAC, when rendered: the pod's account is bound, and users may reach the proxy endpoints.
    account = pod_spec.get("serviceAccountName")
    expect(account, "the pod names no serviceAccountName")
    bindings = [d for d in docs if d["kind"] in ("RoleBinding", "ClusterRoleBinding")]
    if bindings:
        bound = [
            b for b in bindings
            if any(s.get("kind") == "ServiceAccount" and s.get("name") == account and s.get("namespace") == namespace
                   for s in b.get("subjects", []))
        ]
        expect(any(b["kind"] == "ClusterRoleBinding" for b in bound)
               or any(b["kind"] == "RoleBinding" and b["metadata"]["namespace"] == namespace for b in bound),
               f"ServiceAccount {account} is not bound to any role")
        for binding in bound:
            ref = binding["roleRef"]
            ref_ns = None if ref["kind"] == "ClusterRole" else binding["metadata"]["namespace"]
            role = find(docs, ref["kind"], ref["name"], ref_ns)
            expect(role.get("rules"), f"{ident(role)} has no rules")
        find(docs, "ServiceAccount", account, namespace)
        proxy_name = f"http:{name}:http"
        proxier = [
            b for b in bindings
            if b["kind"] == "RoleBinding" and b["metadata"]["namespace"] == namespace
            and any(s.get("kind") == "Group" and s.get("name") == "system:authenticated" for s in b.get("subjects", []))
        ]
        if proxier:
            role = find(docs, "Role", proxier[0]["roleRef"]["name"], namespace)
            granted = {
                verb
                for rule in role["rules"]
                if "services/proxy" in rule.get("resources", []) and proxy_name in rule.get("resourceNames", [])
                for verb in rule.get("verbs", [])
            }
            expect({"get", "create"} <= granted, f"{ident(role)} must grant get and create on services/proxy {proxy_name}")
            for rule in role["rules"]:
                expect(rule.get("resourceNames"), f"{ident(role)} grants authenticated users a rule without resourceNames")
    rbac = "RBAC bound" if bindings else "no RBAC rendered"
    print(f"ok: {len(docs)} objects; Service {namespace}/{name} port http; pod hardened; {rbac}")


def normalized_rules(path):
    rules = []
    for doc in load(path):
        if doc["kind"] in ("ClusterRole", "Role"):
            role = sorted(
                json.dumps({k: sorted(v) for k, v in rule.items()}, sort_keys=True) for rule in doc.get("rules", [])
            )
            rules.append((doc["kind"], role))
    return sorted(rules)


def same_rbac(first, second):
    a, b = normalized_rules(first), normalized_rules(second)
    if a != b:
        only_a = [r for r in a if r not in b]
        only_b = [r for r in b if r not in a]
        raise Failure(
            f"RBAC rules differ.\n  only in {first}: {json.dumps(only_a, indent=1)}\n  only in {second}: {json.dumps(only_b, indent=1)}"
        )
    print(f"ok: {len(a)} roles grant the same rules")


def served(served_list, path, out):
    with open(served_list, encoding="utf-8") as file:
        kinds = {tuple(line.split()) for line in file if line.strip()}
    kept = []
    for doc in load(path):
        if (doc["apiVersion"], doc["kind"]) in kinds:
            kept.append(doc)
            continue
        group = doc["apiVersion"].rpartition("/")[0]
        if group and "." in group and not group.endswith(".k8s.io"):
            why = f"{doc['kind']} is a custom resource whose CRD is not installed there"
        else:
            why = f"the API double does not serve {doc['kind']} yet"
        print(f"skipped: {ident(doc)} ({doc['apiVersion']}): {why}")
    with open(out, "w", encoding="utf-8") as file:
        yaml.safe_dump_all(kept, file, sort_keys=False)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("check")
    c.add_argument("file")
    c.add_argument("--name", required=True)
    c.add_argument("--namespace", required=True)
    c.add_argument("--replicas", type=int)
    c.add_argument("--uid", type=int, default=65532, help="the container's runAsUser")
    c.add_argument("--volumes", action="store_true", help="the values add volumes")
    r = commands.add_parser("same-rbac")
    r.add_argument("first")
    r.add_argument("second")
    s = commands.add_parser("served")
    s.add_argument("served_list")
    s.add_argument("file")
    s.add_argument("out")
    args = parser.parse_args()
    try:
        if args.command == "check":
            check(args.file, args.name, args.namespace, args.replicas, args.uid, args.volumes)
        elif args.command == "same-rbac":
            same_rbac(args.first, args.second)
        else:
            served(args.served_list, args.file, args.out)
    except Failure as failure:
        print(f"error: {args.command} {getattr(args, 'file', '')}: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
