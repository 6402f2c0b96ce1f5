{{- define "shopfloor.name" -}}shopfloor-operator{{- end -}}

{{/* Cluster-scoped objects carry the release, so two releases (e.g. per-site operators) never collide. */}}
{{- define "shopfloor.clusterName" -}}
{{- if eq .Release.Name "shopfloor" -}}shopfloor-operator{{- else -}}{{ printf "%s-shopfloor-operator" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "shopfloor.labels" -}}
app.kubernetes.io/name: {{ include "shopfloor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: shopfloor
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}

{{- define "shopfloor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "shopfloor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "shopfloor.mapValue" -}}
{{- $pairs := list -}}
{{- range $key, $value := . -}}{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
