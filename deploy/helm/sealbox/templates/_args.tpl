{{/*
The controller's arguments from the values, one `--flag=value` each. Flags whose value is ""
(or false, for Bitnami's off-by-default switches) are left out so the controller's own default
applies. Bitnami's --skip-recreate, --key-ttl, --privatekey-labels, --privatekey-annotations,
--log-info-stdout, --max-unseal-retries, --watch-for-secrets, --kubeclient-qps and
--kubeclient-burst are rendered only when their value is set: a controller that predates them
refuses unknown flags, so the defaults never name them.
*/}}
{{- define "sealbox.args" -}}
{{- $flags := list }}
{{- $flags = append $flags (printf "--listen-addr=:%d" (int .Values.containerPorts.http)) }}
{{- $flags = append $flags (printf "--listen-metrics-addr=:%d" (int .Values.containerPorts.metrics)) }}
{{- $flags = append $flags (printf "--leader-elect=%t" .Values.leaderElection.enabled) }}
{{- $flags = append $flags (printf "--key-prefix=%s" .Values.secretName) }}
{{- with toString .Values.keyrenewperiod }}
{{- $flags = append $flags (printf "--key-renew-period=%s" .) }}
{{- end }}
{{- with .Values.keyttl }}
{{- $flags = append $flags (printf "--key-ttl=%s" .) }}
{{- end }}
{{- with .Values.keycutofftime }}
{{- $flags = append $flags (printf "--key-cutoff-time=%s" .) }}
{{- end }}
{{- with .Values.myCN }}
{{- $flags = append $flags (printf "--my-cn=%s" .) }}
{{- end }}
{{- with .Values.privateKeyLabels }}
{{- $flags = append $flags (printf "--privatekey-labels=%s" (include "sealbox.keyValues" (dict "map" . "name" "privateKeyLabels"))) }}
{{- end }}
{{- with .Values.privateKeyAnnotations }}
{{- $flags = append $flags (printf "--privatekey-annotations=%s" (include "sealbox.keyValues" (dict "map" . "name" "privateKeyAnnotations"))) }}
{{- end }}
{{- with toString .Values.rateLimit }}
{{- $flags = append $flags (printf "--rate-limit=%s" .) }}
{{- end }}
{{- with toString .Values.rateLimitBurst }}
{{- $flags = append $flags (printf "--rate-limit-burst=%s" .) }}
{{- end }}
{{- /* --all-namespaces=false as well as the list: the same watch whichever meaning of
  --additional-namespaces the controller has (Bitnami's restricts the watch by itself). */}}
{{- $flags = append $flags (printf "--all-namespaces=%t" (not (include "sealbox.restricted" .))) }}
{{- with .Values.additionalNamespaces }}
{{- $flags = append $flags (printf "--additional-namespaces=%s" (join "," .)) }}
{{- end }}
{{- with .Values.labelSelector }}
{{- $flags = append $flags (printf "--label-selector=%s" .) }}
{{- end }}
{{- $flags = append $flags (printf "--update-status=%t" .Values.updateStatus) }}
{{- if .Values.skipRecreate }}
{{- $flags = append $flags "--skip-recreate=true" }}
{{- end }}
{{- if .Values.watchForSecrets }}
{{- $flags = append $flags "--watch-for-secrets=true" }}
{{- end }}
{{- with toString .Values.maxRetries }}
{{- $flags = append $flags (printf "--max-unseal-retries=%s" .) }}
{{- end }}
{{- with toString .Values.kubeClientQPS }}
{{- $flags = append $flags (printf "--kubeclient-qps=%s" .) }}
{{- end }}
{{- with toString .Values.kubeClientBurst }}
{{- $flags = append $flags (printf "--kubeclient-burst=%s" .) }}
{{- end }}
{{- with .Values.logLevel }}
{{- $flags = append $flags (printf "--log-level=%s" .) }}
{{- end }}
{{- with .Values.logFormat }}
{{- $flags = append $flags (printf "--log-format=%s" .) }}
{{- end }}
{{- if .Values.logInfoStdout }}
{{- $flags = append $flags "--log-info-stdout=true" }}
{{- end }}
{{- range .Values.extraArgs }}
{{- $flags = append $flags . }}
{{- end }}
{{- range $flags }}
- {{ . | quote }}
{{- end }}
{{- end }}
