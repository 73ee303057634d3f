"""Bitnami values-file parity of the Sealbox chart. Used by .ci/manifests.sh.

    bitnami_values.py coverage BITNAMI_VALUES CHART_VALUES CI_VALUES
        Every key of Bitnami's chart values.yaml (read from its Go module at run time, never
        committed) is a value of the Sealbox chart (CHART_VALUES) and is set in CI_VALUES, the
        Bitnami values file the chart is rendered with.
    bitnami_values.py check RENDERED CI_VALUES --release NAME
        Each value of CI_VALUES landed where Bitnami's chart puts it, in the objects
        `helm template NAME deploy/helm/sealbox -f CI_VALUES` rendered.
"""

import argparse
import json
import sys

import yaml

# Maps whose keys are free-form (any field of a security context, any resource): Bitnami's
# defaults name some keys, the Sealbox chart need not default the same ones.
FREE_FORM = {"podSecurityContext", "containerSecurityContext", "resources"}


class Failure(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Failure(message)


def load_values(path):
    with open(path, encoding="utf-8") as file:
        return yaml.safe_load(file) or {}


def leaf_paths(values, prefix=()):
    """Paths to the leaves: scalars, lists and empty maps."""
    for key, value in values.items():
        path = prefix + (key,)
        if isinstance(value, dict) and value:
            yield from leaf_paths(value, path)
        else:
            yield path


def has_path(values, path):
    for key in path:
        if not isinstance(values, dict) or key not in values:
            return False
        values = values[key]
    return True


def coverage(bitnami_path, chart_path, ci_path):
    bitnami, chart, ci = load_values(bitnami_path), load_values(chart_path), load_values(ci_path)
    paths = list(leaf_paths(bitnami))
    expect(len(paths) > 100, f"{bitnami_path}: only {len(paths)} keys; is it Bitnami's values.yaml?")
    unknown = [p for p in paths if not has_path(chart, p) and not (p[0] in FREE_FORM and has_path(chart, p[:1]))]
    expect(not unknown, f"{chart_path} lacks Bitnami's values: {', '.join('.'.join(p) for p in unknown)}")
    unset = [p for p in paths if not has_path(ci, p)]
    expect(not unset, f"{ci_path} does not set Bitnami's values: {', '.join('.'.join(p) for p in unset)}")
    print(f"ok: all {len(paths)} keys of Bitnami's values.yaml are chart values and set in {ci_path}")


def without(mapping, key):
    return {k: v for k, v in mapping.items() if k != key}


def subset(small, big, what):
    for key, value in (small or {}).items():
        expect((big or {}).get(key) == value, f"{what}: {key}={value!r} missing (got {(big or {}).get(key)!r})")


class Rendered:
    def __init__(self, path):
        with open(path, encoding="utf-8") as file:
            self.docs = [d for d in yaml.safe_load_all(file) if d]

    def all(self, kind):
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind, name, namespace=None):
        found = [
            d for d in self.all(kind)
            if d["metadata"]["name"] == name and (namespace is None or d["metadata"].get("namespace") == namespace)
        ]
        expect(len(found) == 1, f"expected one {kind} {namespace or ''}/{name}, found {len(found)}")
        return found[0]


def flags_of(values):
    """The controller flags Bitnami's chart makes of these values, as `--flag=value`."""
    joined = lambda m: {f"{k}={v}" for k, v in m.items()}
    flags = {
        "--key-prefix": values["secretName"],
        "--update-status": str(values["updateStatus"]).lower(),
        "--key-renew-period": values["keyrenewperiod"],
        "--key-ttl": values["keyttl"],
        "--key-cutoff-time": values["keycutofftime"],
        "--rate-limit": str(values["rateLimit"]),
        "--rate-limit-burst": str(values["rateLimitBurst"]),
        "--additional-namespaces": ",".join(values["additionalNamespaces"]),
        "--log-level": values["logLevel"],
        "--log-format": values["logFormat"],
        "--listen-addr": f":{values['containerPorts']['http']}",
        "--listen-metrics-addr": f":{values['containerPorts']['metrics']}",
        "--max-unseal-retries": str(values["maxRetries"]),
        "--kubeclient-qps": str(values["kubeClientQPS"]),
        "--kubeclient-burst": str(values["kubeClientBurst"]),
    }
    switches = {"--skip-recreate": values["skipRecreate"], "--watch-for-secrets": values["watchForSecrets"],
                "--log-info-stdout": values["logInfoStdout"]}
    sets = {"--privatekey-labels": joined(values["privateKeyLabels"]),
            "--privatekey-annotations": joined(values["privateKeyAnnotations"])}
    return flags, switches, sets


def check_args(container, values):
    args = {}
    for arg in container["args"]:
        name, _, value = arg.partition("=")
        expect(name not in args, f"flag {name} given twice")
        args[name] = value
    flags, switches, sets = flags_of(values)
    for name, value in flags.items():
        expect(args.get(name) == value, f"controller flag {name}: expected {value!r}, got {args.get(name)!r}")
    for name, on in switches.items():
        expect((args.get(name) == "true") == on, f"controller switch {name}: expected {on}, got {args.get(name)!r}")
    for name, pairs in sets.items():
        got = set(filter(None, args.get(name, "").split(",")))
        expect(got == pairs, f"controller flag {name}: expected {sorted(pairs)}, got {sorted(got)}")
    # Bitnami: additionalNamespaces restricts the watch to the home namespace and those.
    expect(args.get("--all-namespaces") == "false", "additionalNamespaces must restrict the watch (--all-namespaces=false)")


def check_pod(deployment, values):
    spec = deployment["spec"]
    expect(spec["revisionHistoryLimit"] == values["revisionHistoryLimit"], "revisionHistoryLimit")
    expect(spec["selector"]["matchLabels"] == {"app.kubernetes.io/name": "sealed-secrets",
                                               "app.kubernetes.io/instance": deployment["_release"]},
           f"the Deployment selector must be Bitnami's, got {spec['selector']['matchLabels']}")
    pod = spec["template"]
    subset(values["podLabels"], pod["metadata"]["labels"], "podLabels")
    subset(values["podAnnotations"], pod["metadata"].get("annotations"), "podAnnotations")
    ps = pod["spec"]
    image = values["image"]
    (container,) = ps["containers"]
    expect(container["image"] == f"{image['registry']}/{image['repository']}:{image['tag']}", f"image {container['image']}")
    expect(container["imagePullPolicy"] == image["pullPolicy"], "image.pullPolicy")
    expect([s["name"] for s in ps.get("imagePullSecrets", [])] == image["pullSecrets"], "image.pullSecrets")
    # Helm merges a values file's maps into the chart's defaults: Sealbox's hardening stays
    # beside what the file sets (a key set to null removes it).
    subset(without(values["podSecurityContext"], "enabled"), ps.get("securityContext"), "podSecurityContext")
    subset(without(values["containerSecurityContext"], "enabled"), container.get("securityContext"), "containerSecurityContext")
    expect(container.get("resources") == values["resources"], "resources")
    for key in ("priorityClassName", "runtimeClassName", "affinity", "nodeSelector", "tolerations", "dnsPolicy", "hostUsers"):
        expect(ps.get(key) == values[key], f"{key}: expected {values[key]!r}, got {ps.get(key)!r}")
    expect(ps.get("hostNetwork", False) == values["hostNetwork"], "hostNetwork")
    expect(ps.get("volumes") == values["additionalVolumes"], "additionalVolumes")
    expect(container.get("volumeMounts") == values["additionalVolumeMounts"], "additionalVolumeMounts")
    expect(ps["serviceAccountName"] == values["serviceAccount"]["name"], "serviceAccount.name")
    ports = {p["name"]: p for p in container["ports"]}
    for name in ("http", "metrics"):
        expect(ports[name]["containerPort"] == values["containerPorts"][name], f"containerPorts.{name}")
        host = values["hostPorts"][name]
        expect(ports[name].get("hostPort") == (host or None), f"hostPorts.{name}")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"), ("startupProbe", "/healthz")):
        want = without(values[probe], "enabled")
        got = container.get(probe) or {}
        expect(got.get("httpGet", {}).get("path") == path, f"{probe} must GET {path}")
        expect(without(got, "httpGet") == want, f"{probe}: expected {want}, got {without(got, 'httpGet')}")
    return container


def check_common(rendered, values, own_namespaced, extra_names):
    for doc in rendered.docs:
        meta = doc["metadata"]
        if meta["name"] in extra_names:  # extraDeploy: the user's objects, as given
            continue
        subset(values["commonLabels"], meta.get("labels"), f"commonLabels on {doc['kind']} {meta['name']}")
        subset(values["commonAnnotations"], meta.get("annotations"), f"commonAnnotations on {doc['kind']} {meta['name']}")
    for kind, name in own_namespaced:
        doc = rendered.one(kind, name)
        expect(doc["metadata"]["namespace"] == values["namespace"], f"{kind} {name} not in namespace {values['namespace']}")


def check(path, ci_path, release):
    values = load_values(ci_path)
    r = Rendered(path)
    full = values["fullnameOverride"]
    ns = values["namespace"]

    deployment = r.one("Deployment", full, ns)
    deployment["_release"] = release
    container = check_pod(deployment, values)
    check_args(container, values)

    extra = r.one("ConfigMap", f"{full}-extra", ns)
    expect(extra["data"]["release"] == release, "extraDeploy is rendered with tpl")

    service = r.one("Service", full, ns)
    sv = values["service"]
    expect(service["spec"]["type"] == sv["type"], "service.type")
    (port,) = service["spec"]["ports"]
    expect(port["port"] == sv["port"] and port.get("nodePort") == sv["nodePort"], "service.port/nodePort")
    subset(sv["annotations"], service["metadata"].get("annotations"), "service.annotations")
    metrics = r.one("Service", f"{full}-metrics", ns)
    mv = values["metrics"]["service"]
    expect(metrics["spec"]["type"] == mv["type"] and metrics["spec"]["ports"][0]["port"] == mv["port"], "metrics.service")
    subset(mv["annotations"], metrics["metadata"].get("annotations"), "metrics.service.annotations")

    iv = values["ingress"]
    ingress = r.one("Ingress", full, ns)
    spec = ingress["spec"]
    expect(spec.get("ingressClassName") == iv["ingressClassName"], "ingress.ingressClassName")
    subset(iv["annotations"], ingress["metadata"].get("annotations"), "ingress.annotations")
    hosts = {rule["host"]: rule["http"]["paths"] for rule in spec["rules"]}
    main = hosts[iv["hostname"]]
    expect(main[-1]["path"] == iv["path"] and main[-1]["pathType"] == iv["pathType"], "ingress.path/pathType")
    expect(main[-1]["backend"]["service"] == {"name": full, "port": {"name": "http"}}, "ingress backend")
    expect(main[:-1] == iv["extraPaths"], "ingress.extraPaths")
    for extra_host in iv["extraHosts"]:
        expect(hosts.get(extra_host["name"], [{}])[0].get("path") == extra_host["path"], f"ingress.extraHosts {extra_host['name']}")
    expect(spec["tls"] == [{"hosts": [iv["hostname"]], "secretName": f"{iv['hostname']}-tls"}] + iv["extraTls"], "ingress.tls/extraTls")
    self_signed = r.one("Secret", f"{iv['hostname']}-tls", ns)
    expect(set(self_signed["data"]) == {"tls.crt", "tls.key", "ca.crt"}, "ingress.selfSigned makes a TLS Secret")
    for secret in iv["secrets"]:
        expect(r.one("Secret", secret["name"], ns)["type"] == "kubernetes.io/tls", f"ingress.secrets {secret['name']}")

    egress = values["networkPolicy"]["egress"]
    policy = r.one("NetworkPolicy", full, ns)
    expect(policy["spec"]["policyTypes"] == ["Ingress", "Egress"], "networkPolicy.egress.enabled")
    expect(policy["spec"]["egress"] == [{"to": [{"ipBlock": {"cidr": egress["kubeapiCidr"]}}],
                                         "ports": [{"protocol": "TCP", "port": egress["kubeapiPort"]}]}],
           f"networkPolicy.egress: {policy['spec']['egress']}")
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    expect(ingress_ports == {"http", "metrics"}, "the NetworkPolicy admits the API and metrics ports")

    sa = values["serviceAccount"]
    account = r.one("ServiceAccount", sa["name"], ns)
    subset(sa["labels"], account["metadata"]["labels"], "serviceAccount.labels")
    subset(sa["annotations"], account["metadata"]["annotations"], "serviceAccount.annotations")

    rbac = values["rbac"]
    expect(not r.all("ClusterRole") and not r.all("ClusterRoleBinding"), "rbac.namespacedRoles: no cluster-wide RBAC")
    for namespace in [ns] + values["additionalNamespaces"]:
        r.one("Role", rbac["namespacedRolesName"], namespace)
        binding = r.one("RoleBinding", full, namespace)
        expect(binding["roleRef"]["name"] == rbac["namespacedRolesName"], f"RoleBinding {namespace}/{full} roleRef")
        expect(binding["subjects"] == [{"kind": "ServiceAccount", "name": sa["name"], "namespace": ns}],
               f"RoleBinding {namespace}/{full} subjects")
    key_admin = r.one("Role", f"{full}-key-admin", ns)
    expect(key_admin["rules"][0]["resources"] == ["secrets"], "the key-admin Role")
    proxier = r.one("RoleBinding", f"{full}-service-proxier", ns)
    expect(proxier["subjects"] == yaml.safe_load(rbac["serviceProxier"]["subjects"]), "rbac.serviceProxier.subjects")
    for doc in r.all("Role") + r.all("RoleBinding"):
        subset(rbac["labels"], doc["metadata"]["labels"], f"rbac.labels on {doc['kind']} {doc['metadata']['name']}")

    m = values["metrics"]
    rule = r.one("PrometheusRule", full, m["prometheusRule"]["namespace"])
    expect(rule["spec"]["groups"] == m["prometheusRule"]["groups"], "metrics.prometheusRule.groups")
    subset(m["prometheusRule"]["labels"], rule["metadata"]["labels"], "metrics.prometheusRule.labels")
    subset(m["prometheusRule"]["annotations"], rule["metadata"]["annotations"], "metrics.prometheusRule.annotations")
    sm = m["serviceMonitor"]
    monitor = r.one("ServiceMonitor", full, sm["namespace"])
    (endpoint,) = monitor["spec"]["endpoints"]
    for key in ("interval", "scrapeTimeout", "honorLabels", "metricRelabelings", "relabelings"):
        expect(endpoint.get(key) == sm[key], f"metrics.serviceMonitor.{key}: expected {sm[key]!r}, got {endpoint.get(key)!r}")
    expect(monitor["spec"]["namespaceSelector"] == {"matchNames": [ns]}, "the ServiceMonitor looks in the controller's namespace")
    subset(sm["labels"], monitor["metadata"]["labels"], "metrics.serviceMonitor.labels")
    subset(sm["annotations"], monitor["metadata"]["annotations"], "metrics.serviceMonitor.annotations")
    db = m["dashboards"]
    (dashboard,) = [d for d in r.all("ConfigMap") if d["metadata"]["namespace"] == db["namespace"]]
    subset(db["labels"], dashboard["metadata"]["labels"], "metrics.dashboards.labels")
    subset(db["annotations"], dashboard["metadata"]["annotations"], "metrics.dashboards.annotations")
    (document,) = dashboard["data"].values()
    panels = json.loads(document)["panels"]
    expect(any("sealed_secrets_controller_condition_info" in t["expr"] for p in panels for t in p["targets"]),
           "the dashboard shows sealed_secrets_controller_condition_info")

    pdb = r.one("PodDisruptionBudget", full, ns)
    expect(pdb["spec"].get("maxUnavailable") == values["pdb"]["maxUnavailable"] and "minAvailable" not in pdb["spec"], "pdb")

    own = [("Deployment", full), ("Service", full), ("NetworkPolicy", full), ("Ingress", full)]
    check_common(r, values, own, {extra["metadata"]["name"]})
    print(f"ok: {len(r.docs)} objects; every Bitnami value took effect")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    c = commands.add_parser("coverage")
    c.add_argument("bitnami")
    c.add_argument("chart")
    c.add_argument("ci")
    k = commands.add_parser("check")
    k.add_argument("rendered")
    k.add_argument("ci")
    k.add_argument("--release", required=True)
    args = parser.parse_args()
    try:
        if args.command == "coverage":
            coverage(args.bitnami, args.chart, args.ci)
        else:
            check(args.rendered, args.ci, args.release)
    except Failure as failure:
        print(f"error: bitnami_values {args.command}: {failure}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
