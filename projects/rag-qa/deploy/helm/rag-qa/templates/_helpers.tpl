{{/*
Names and labels shared by every object of the chart.
*/}}
{{- define "inference.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "inference.fullname" -}}
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

{{- define "inference.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "inference.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "inference.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "inference.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "inference.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image: a digest pins an exact build; otherwise the tag, by default the chart's
appVersion with "-gpu" for the CUDA image.
*/}}
{{- define "inference.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- $tag := default (printf "%s%s" .Chart.AppVersion (ternary "-gpu" "" .Values.gpu.enabled)) .Values.image.tag }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
Where the service finds its checkpoint inside the pod.
*/}}
{{- define "inference.modelPath" -}}
{{- if eq .Values.model.source "image" }}
{{- .Values.model.imagePath }}
{{- else }}
{{- printf "/models/%s" .Values.model.file }}
{{- end }}
{{- end }}

{{/*
The container security context every container of the chart runs with.
*/}}
{{- define "inference.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/*
The vLLM engine and the in-chart Redis: their own names and selector labels, so the
gateway's Service and policies never select their pods.
*/}}
{{- define "inference.vllm.fullname" -}}
{{- printf "%s-vllm" (include "inference.fullname" . | trunc 58 | trimSuffix "-") }}
{{- end }}

{{- define "inference.vllm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference.name" . | trunc 58 | trimSuffix "-" }}-vllm
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: engine
{{- end }}

{{- define "inference.vllm.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "inference.vllm.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.vllm.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "inference.vllm.image" -}}
{{- if .Values.vllm.image.digest }}
{{- printf "%s@%s" .Values.vllm.image.repository .Values.vllm.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.vllm.image.repository .Values.vllm.image.tag }}
{{- end }}
{{- end }}

{{- define "inference.vllm.url" -}}
{{- printf "http://%s:%d" (include "inference.vllm.fullname" .) (int .Values.vllm.port) }}
{{- end }}

{{- define "inference.vllm.cacheClaim" -}}
{{- default (printf "%s-cache" (include "inference.vllm.fullname" .)) .Values.vllm.modelCache.existingClaim }}
{{- end }}

{{- define "inference.redis.fullname" -}}
{{- printf "%s-redis" (include "inference.fullname" . | trunc 57 | trimSuffix "-") }}
{{- end }}

{{- define "inference.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "inference.name" . | trunc 57 | trimSuffix "-" }}-redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: cache
{{- end }}

{{- define "inference.redis.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "inference.redis.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.redis.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "inference.redis.image" -}}
{{- if .Values.redis.image.digest }}
{{- printf "%s@%s" .Values.redis.image.repository .Values.redis.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.redis.image.repository .Values.redis.image.tag }}
{{- end }}
{{- end }}

{{/*
The vector store. LanceDB: its claim. Milvus: the URI the gateway connects to, the
chart's Milvus (the subchart's Service, named as charts/milvus names it) unless
vectorStore.milvus.uri names an external one.
*/}}
{{- define "inference.lancedb.claim" -}}
{{- default (printf "%s-lancedb" (include "inference.fullname" . | trunc 55 | trimSuffix "-")) .Values.vectorStore.lancedb.persistence.existingClaim }}
{{- end }}

{{- define "inference.milvus.uri" -}}
{{- if .Values.vectorStore.milvus.uri }}
{{- .Values.vectorStore.milvus.uri }}
{{- else }}
{{- printf "http://%s:%d" (printf "%s-milvus" .Release.Name | trunc 63 | trimSuffix "-") 19530 }}
{{- end }}
{{- end }}
