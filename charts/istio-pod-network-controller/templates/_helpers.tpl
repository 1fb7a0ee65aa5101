{{- define "ipnc.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ipnc.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ipnc.labels" -}}
app.kubernetes.io/name: {{ include "ipnc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "ipnc.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ipnc.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ipnc.serviceAccountName" -}}
{{- default (include "ipnc.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "ipnc.openshift" -}}
{{- $d := .Values.kubernetesDistribution -}}
{{- if eq $d "OpenShift" -}}true{{- else if eq $d "Kubernetes" -}}{{- else -}}
{{- fail (printf "kubernetesDistribution must be OpenShift or Kubernetes, got %q" $d) -}}
{{- end -}}
{{- end -}}

{{- define "ipnc.criSocket" -}}
{{- if .Values.controller.criSocket -}}{{ .Values.controller.criSocket }}
{{- else if include "ipnc.openshift" . -}}/var/run/crio/crio.sock
{{- else -}}/run/containerd/containerd.sock
{{- end -}}
{{- end -}}
