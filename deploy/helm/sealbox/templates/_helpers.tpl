{{/*
The name in the selector label app.kubernetes.io/name: Bitnami's chart name, so that
`helm upgrade` over a Bitnami release keeps the Deployment's (immutable) selector.
*/}}
{{- define "sealbox.name" -}}
{{- default "sealed-secrets" .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Deployment, Services, ServiceAccount and roles. The default fullnameOverride keeps
the Service at kubeseal's default name, sealed-secrets-controller; without it the name is
derived from the release as Bitnami's chart does.
*/}}
{{- define "sealbox.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "sealbox.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the controller and its objects live. */}}
{{- define "sealbox.namespace" -}}
{{- default .Release.Namespace .Values.namespace }}
{{- end }}

{{- define "sealbox.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Bitnami's selector labels, exactly: the Deployment's selector cannot change. */}}
{{- define "sealbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealbox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Labels of every object: the standard ones and commonLabels. */}}
{{- define "sealbox.labels" -}}
helm.sh/chart: {{ include "sealbox.chart" . }}
{{ include "sealbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sealed-secrets
{{- with .Values.commonLabels }}
{{ include "sealbox.render" (dict "value" . "context" $) }}
{{- end }}
{{- end }}

{{/*
An object's metadata.labels and metadata.annotations: the common ones plus `labels` and
`annotations` of the object's own values. Usage:
  {{- include "sealbox.metadata" (dict "context" $ "labels" .Values.x.labels "annotations" .Values.x.annotations) | nindent 2 }}
*/}}
{{- define "sealbox.metadata" -}}
labels:
  {{- include "sealbox.labels" .context | nindent 2 }}
  {{- with .labels }}
  {{- include "sealbox.render" (dict "value" . "context" $.context) | nindent 2 }}
  {{- end }}
{{- $annotations := merge (dict) (.annotations | default dict) (.context.Values.commonAnnotations | default dict) }}
{{- with $annotations }}
annotations:
  {{- include "sealbox.render" (dict "value" . "context" $.context) | nindent 2 }}
{{- end }}
{{- end }}

{{/* A value that may hold templates (a string, or anything as YAML), as Bitnami renders them. */}}
{{- define "sealbox.render" -}}
{{- if typeIs "string" .value }}
{{- tpl .value .context }}
{{- else }}
{{- tpl (.value | toYaml) .context }}
{{- end }}
{{- end }}

{{- define "sealbox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sealbox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sealbox.image" -}}
{{- $repository := .Values.image.repository }}
{{- with .Values.image.registry }}
{{- $repository = printf "%s/%s" . $repository }}
{{- end }}
{{- printf "%s:%s" $repository (default .Chart.AppVersion (toString .Values.image.tag)) }}
{{- end }}

{{/*
Whether the controller watches only some namespaces: the release namespace and
additionalNamespaces (Bitnami: additionalNamespaces restricts the watch), or allNamespaces=false.
*/}}
{{- define "sealbox.restricted" -}}
{{- if or (not .Values.allNamespaces) .Values.additionalNamespaces }}true{{ end }}
{{- end }}

{{/* The namespaces the controller watches when restricted. */}}
{{- define "sealbox.watchedNamespaces" -}}
{{- concat (list (include "sealbox.namespace" .)) .Values.additionalNamespaces | uniq | toJson }}
{{- end }}

{{/*
Whether the unsealing rules are Roles in each watched namespace rather than a ClusterRole:
rbac.namespacedRoles (Bitnami), or allNamespaces=false (Sealbox: least privilege).
*/}}
{{- define "sealbox.namespacedRoles" -}}
{{- if or .Values.rbac.namespacedRoles (not .Values.allNamespaces) }}true{{ end }}
{{- end }}

{{/* `k=v,k=v` for --privatekey-labels/--privatekey-annotations; values must be strings. */}}
{{- define "sealbox.keyValues" -}}
{{- $pairs := list }}
{{- range $key, $value := .map }}
{{- if not (and $value (kindIs "string" $value)) }}
{{- fail (printf "%s.%s: values must be non-empty strings" $.name $key) }}
{{- end }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
A probe from its values: `enabled` dropped, the check added. Usage:
  {{ include "sealbox.probe" (dict "probe" .Values.livenessProbe "custom" .Values.customLivenessProbe "path" "/healthz" "name" "livenessProbe" "context" $) }}
*/}}
{{- define "sealbox.probe" -}}
{{- if .probe.enabled }}
{{ .name }}:
  {{- include "sealbox.render" (dict "value" (omit .probe "enabled") "context" .context) | nindent 2 }}
  httpGet:
    path: {{ .path }}
    port: http
{{- else if .custom }}
{{ .name }}:
  {{- include "sealbox.render" (dict "value" .custom "context" .context) | nindent 2 }}
{{- end }}
{{- end }}

{{/*
What the controller does in every namespace it watches: the ClusterRole's rules, or each
namespaced Role's. Same rules, same reasons as deploy/kustomize/base/cluster-role.yaml
(.ci/manifests.sh checks they stay equal).
*/}}
{{- define "sealbox.unsealerRules" -}}
# list + watch: the controller's cache of SealedSecrets. get adds nothing list does not
# already allow, and keeps a single-object read from failing.
- apiGroups: [bitnami.com]
  resources: [sealedsecrets]
  verbs: [get, list, watch]
# patch: the Synced condition is written with a merge patch of the status subresource.
- apiGroups: [bitnami.com]
  resources: [sealedsecrets/status]
  verbs: [patch]
# get: read the existing Secret before writing, to refuse one we do not own.
# list + watch: owned Secrets are watched (metadata only) so drift is corrected.
# patch: Secrets are written with server-side apply, and leftover keys pruned with a merge
#   patch. create: an apply that creates the Secret is also authorized as create.
# No update: nothing is replaced. No delete: garbage collection removes a Secret with its
#   SealedSecret through the ownerReference.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
# create: Unsealed / ErrUnsealFailed / ErrUpdateFailed events. patch: kube-rs's Recorder
# patches an event it already sent to count a repeat. Only events.k8s.io/v1: the Recorder
# never writes core/v1 events.
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Contradictions and values that cannot work, refused with the reason. */}}
{{- define "sealbox.checks" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: replicas without a leader would all unseal and renew keys" }}
{{- end }}
{{- if .Values.rbac.pspEnabled }}
{{- fail "rbac.pspEnabled: PodSecurityPolicy was removed in Kubernetes 1.25 and this chart supports >= 1.29; use Pod Security admission (the pod meets the restricted profile)" }}
{{- end }}
{{- if and .Values.kubeVersion (semverCompare "<1.29.0-0" .Values.kubeVersion) }}
{{- fail (printf "kubeVersion %s: this chart supports Kubernetes >= 1.29" .Values.kubeVersion) }}
{{- end }}
{{- if regexMatch "(^|/)bitnami/sealed-secrets-controller$" .Values.image.repository }}
{{- fail "image.repository names Bitnami's controller image: this chart runs Sealbox's controller with Sealbox's flags; drop image from your values (or name a Sealbox image)" }}
{{- end }}
{{- if and (ne (toString .Values.pdb.minAvailable) "") (ne (toString .Values.pdb.maxUnavailable) "") }}
{{- fail "pdb: set minAvailable or maxUnavailable, not both (set the other to \"\")" }}
{{- end }}
{{- end }}
