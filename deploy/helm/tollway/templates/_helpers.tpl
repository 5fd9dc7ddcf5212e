{{/* The chart's name, and the name of this release's objects (63 characters at most). */}}
{{- define "tollway.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tollway.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Labels every object carries, and the subset that selects the gateway's pods. */}}
{{- define "tollway.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "tollway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tollway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tollway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tollway.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/* Pods that share a database: anything but SQLite in each pod's own data dir. */}}
{{- define "tollway.sharedDatabase" -}}
{{- if .Values.secrets.databaseUrl.secretName }}true{{ end }}
{{- end }}

{{/* An environment variable from a Secret: (list "NAME" ref optional). */}}
{{- define "tollway.secretEnv" -}}
{{- $name := index . 0 }}
{{- $ref := index . 1 -}}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ required (printf "%s: give the Secret's name" $name) $ref.secretName | quote }}
      key: {{ required (printf "%s: give the key in Secret %s" $name $ref.secretName) $ref.key | quote }}
      {{- if index . 2 }}
      optional: true
      {{- end }}
{{- end }}

{{/* The database URL from its Secret (nothing for SQLite), for the pods and the Job. */}}
{{- define "tollway.databaseEnv" -}}
{{- if .Values.secrets.databaseUrl.secretName -}}
{{ include "tollway.secretEnv" (list "TOLLWAY_DATABASE_URL" .Values.secrets.databaseUrl false) }}
{{- end }}
{{- end }}

{{/* Every setting the gateway takes from Secrets. */}}
{{- define "tollway.secretsEnv" -}}
{{ include "tollway.secretEnv" (list "TOLLWAY_MASTER_KEY" .Values.secrets.masterKey false) }}
{{ include "tollway.secretEnv" (list "TOLLWAY_SECRET_KEY" .Values.secrets.secretKey false) }}
{{- with include "tollway.databaseEnv" . }}
{{ . }}
{{- end }}
{{- if .Values.secrets.redisUrl.secretName }}
{{ include "tollway.secretEnv" (list "TOLLWAY_REDIS_URL" .Values.secrets.redisUrl false) }}
{{- end }}
{{- range .Values.providerKeys }}
{{ include "tollway.secretEnv" (list .env . (.optional | default false)) }}
{{- end }}
{{- end }}

{{/* The volume behind the data dir. */}}
{{- define "tollway.dataVolume" -}}
- name: data
{{- if .Values.persistence.enabled }}
  persistentVolumeClaim:
    claimName: {{ .Values.persistence.existingClaim | default (printf "%s-data" (include "tollway.fullname" .)) }}
{{- else }}
  emptyDir:
    {{- toYaml .Values.persistence.emptyDir | nindent 4 }}
{{- end }}
{{- end }}

{{/* What cannot work, said before anything is applied. */}}
{{- define "tollway.checks" -}}
{{- if not (include "tollway.sharedDatabase" .) }}
{{- if or .Values.autoscaling.enabled (gt (int .Values.replicaCount) 1) }}
{{- fail "secrets.databaseUrl: more than one pod needs a shared database (Postgres); SQLite serves one pod (replicaCount: 1, autoscaling off)" }}
{{- end }}
{{- end }}
{{- if and .Values.metrics.port (eq (int .Values.metrics.port) 8080) }}
{{- fail "metrics.port: must differ from the gateway's port (8080)" }}
{{- end }}
{{- end }}
