{{/* Chart name, overridable. */}}
{{- define "sealbox.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the Deployment, Services, ServiceAccount and roles. The default fullnameOverride keeps
the Service at kubeseal's default name, sealed-secrets-controller.
*/}}
{{- define "sealbox.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sealbox.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sealbox.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sealbox.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sealbox.labels" -}}
helm.sh/chart: {{ include "sealbox.chart" . }}
{{ include "sealbox.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "sealbox.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sealbox.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sealbox.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
What the controller does in every namespace it watches: the ClusterRole's rules, or each
namespaced Role's with allNamespaces=false. Same rules, same reasons as
deploy/kustomize/base/cluster-role.yaml (.ci/manifests.sh checks they stay equal).
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
