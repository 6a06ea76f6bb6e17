{{/* Chart name, truncated to the 63 characters a label value allows. */}}
{{- define "kelix-serve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart, or the release alone when it already contains the chart name. */}}
{{- define "kelix-serve.fullname" -}}
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

{{- define "kelix-serve.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: stable across upgrades. */}}
{{- define "kelix-serve.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kelix-serve.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "kelix-serve.labels" -}}
helm.sh/chart: {{ include "kelix-serve.chart" . }}
{{ include "kelix-serve.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: inference-server
{{- end }}

{{- define "kelix-serve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "kelix-serve.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "kelix-serve.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* The Secret holding the API keys file. */}}
{{- define "kelix-serve.apiKeysSecret" -}}
{{- .Values.apiKeys.existingSecret | default (printf "%s-api-keys" (include "kelix-serve.fullname" .)) }}
{{- end }}

{{/* KELIX_MODEL_DIR as the server sees it. */}}
{{- define "kelix-serve.modelDir" -}}
{{- if eq .Values.model.source "image" }}
{{- .Values.model.imagePath }}
{{- else if .Values.model.subPath }}
{{- printf "%s/%s" (.Values.model.mountPath | trimSuffix "/") (.Values.model.subPath | trimPrefix "/") }}
{{- else }}
{{- .Values.model.mountPath }}
{{- end }}
{{- end }}

{{/*
Checks values that the schema cannot: the grace period must cover preStop and the drain,
a model source needs its settings, and the PDB needs exactly one bound.
*/}}
{{- define "kelix-serve.validate" -}}
{{- $drainSeconds := div (add .Values.server.drainTimeoutMs 999) 1000 }}
{{- $needed := add .Values.shutdown.preStopSleepSeconds $drainSeconds }}
{{- if le (int .Values.shutdown.terminationGracePeriodSeconds) (int $needed) }}
{{- fail (printf "shutdown.terminationGracePeriodSeconds (%d) must exceed shutdown.preStopSleepSeconds + server.drainTimeoutMs in seconds (%d): Kubernetes would kill the pod mid-drain" (int .Values.shutdown.terminationGracePeriodSeconds) (int $needed)) }}
{{- end }}
{{- if and (eq .Values.model.source "pvc") (not .Values.model.pvc.claimName) }}
{{- fail "model.source is pvc: set model.pvc.claimName" }}
{{- end }}
{{- if and (eq .Values.model.source "initContainer") (not .Values.model.initContainer.image) }}
{{- fail "model.source is initContainer: set model.initContainer.image" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (not (kindIs "invalid" .Values.podDisruptionBudget.minAvailable)) (not (kindIs "invalid" .Values.podDisruptionBudget.maxUnavailable)) }}
{{- fail "podDisruptionBudget: set maxUnavailable or minAvailable, not both (set the other to null)" }}
{{- end }}
{{- if and .Values.apiKeys.enabled (not .Values.apiKeys.existingSecret) (not .Values.apiKeys.keys) }}
{{- fail "apiKeys.enabled: set apiKeys.keys or apiKeys.existingSecret" }}
{{- end }}
{{- end }}
