{{/*
Milvus's name, <release>-milvus: the parent chart's gateway connects to this Service.
*/}}
{{- define "milvus.fullname" -}}
{{- printf "%s-milvus" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "milvus.selectorLabels" -}}
app.kubernetes.io/name: milvus
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: vector-store
{{- end }}

{{- define "milvus.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "milvus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "milvus.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end }}
{{- end }}

{{- define "milvus.claim" -}}
{{- default (printf "%s-data" (include "milvus.fullname" .)) .Values.persistence.existingClaim }}
{{- end }}
