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
The pod's user and filesystem group, and the three probes of the service's container.
*/}}
{{- define "inference.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .Values.podSecurityContext.runAsUser }}
runAsGroup: {{ .Values.podSecurityContext.runAsGroup }}
fsGroup: {{ .Values.podSecurityContext.fsGroup }}
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "inference.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.startup.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.startup.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.startup.failureThreshold }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  periodSeconds: {{ .Values.probes.liveness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.liveness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.liveness.failureThreshold }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  periodSeconds: {{ .Values.probes.readiness.periodSeconds }}
  timeoutSeconds: {{ .Values.probes.readiness.timeoutSeconds }}
  failureThreshold: {{ .Values.probes.readiness.failureThreshold }}
{{- end }}

{{/*
The environment variables the service reads from Secrets, comma-separated (checkov's
annotation names them), and whether the pod must run as one replica (a store on a
ReadWriteOnce volume, say): each from the values that call for it.
*/}}
{{- define "inference.secretEnv" -}}
{{- $names := list }}
{{- if .Values.apiKeys }}
{{- $names = append $names "APP_API_KEYS" }}
{{- end }}
{{- if and (not .Values.redis.enabled) (not .Values.redis.url) .Values.redis.existingSecret }}
{{- $names = append $names "APP_REDIS_URL" }}
{{- end }}
{{- if and (eq .Values.vectorStore.backend "milvus") .Values.vectorStore.milvus.tokenSecret }}
{{- $names = append $names "APP_MILVUS_TOKEN" }}
{{- end }}
{{- join ", " $names }}
{{- end }}

{{- define "inference.singleReplica" -}}
{{- /* LanceDB is a folder with one writer. */}}
{{- if eq .Values.vectorStore.backend "lancedb" }}true{{ end }}
{{- end }}

{{/*
What the service scales on besides CPU, for the notes.
*/}}
{{- define "inference.scalingSignal" -}}
{{- $signals := list }}
{{- $signals = append $signals "open streams" }}
{{- join " and " $signals }}
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
