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

{{- /* "true" on OpenShift, "" on Kubernetes (values.schema.json admits only these two). */ -}}
{{- define "ipnc.openshift" -}}
{{- if eq .Values.kubernetesDistribution "OpenShift" -}}true{{- end -}}
{{- end -}}

{{- /* The CRI socket's path on the node: "unix://" stripped (the schema admits "/path" and "unix:///path"). */ -}}
{{- define "ipnc.criSocketPath" -}}
{{- $s := .Values.controller.criSocket | trimPrefix "unix://" -}}
{{- if not $s -}}
{{- $s = ternary "/var/run/crio/crio.sock" "/run/containerd/containerd.sock" (eq (include "ipnc.openshift" .) "true") -}}
{{- end -}}
{{- if or (contains "/../" (printf "%s/" $s)) (contains "/./" (printf "%s/" $s)) (contains "//" $s) -}}
{{- fail (printf "controller.criSocket must be a normalized absolute path, got %q" .Values.controller.criSocket) -}}
{{- end -}}
{{- $s -}}
{{- end -}}

{{- /* Whether the locator talks to the CRI runtime (then, and only then, its socket is mounted). */ -}}
{{- define "ipnc.usesCri" -}}
{{- if ne .Values.controller.locator "cgroup" -}}true{{- end -}}
{{- end -}}

{{- /*
Capabilities, measured (unshare -n + setpriv --bounding-set, iptables 1.8.9, nft 1.0.6): SYS_ADMIN for setns() into
the pod netns; SYS_PTRACE to open /proc/<pid>/ns/net of a process of another uid (pause runs as 65535); NET_ADMIN
for netfilter and routes; NET_RAW only for legacy x_tables (libiptc opens a SOCK_RAW socket: the iptc and restore
backends, and auto, which may pick them); nf_tables over netlink needs no NET_RAW.
*/ -}}
{{- define "ipnc.capabilities" -}}
{{- if eq .Values.controller.backend "nft" -}}[NET_ADMIN, SYS_ADMIN, SYS_PTRACE]
{{- else -}}[NET_ADMIN, NET_RAW, SYS_ADMIN, SYS_PTRACE]
{{- end -}}
{{- end -}}

{{- define "ipnc.seLinuxType" -}}
{{- if .Values.seLinuxType -}}{{ .Values.seLinuxType }}
{{- else if include "ipnc.openshift" . -}}spc_t
{{- end -}}
{{- end -}}

{{- /* repository:tag, or repository@digest when a digest is given. Arg: (dict "img" .Values.image "ctx" $) */ -}}
{{- define "ipnc.image" -}}
{{- if .img.digest -}}
{{- printf "%s@%s" .img.repository .img.digest -}}
{{- else -}}
{{- printf "%s:%s" .img.repository (default .ctx.Chart.AppVersion .img.tag) -}}
{{- end -}}
{{- end -}}

{{- /* Whether the API server serves ValidatingAdmissionPolicy (GA in admissionregistration.k8s.io/v1). */ -}}
{{- define "ipnc.admissionPolicy" -}}
{{- if and .Values.admissionPolicy.enabled (.Capabilities.APIVersions.Has "admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy") -}}true{{- end -}}
{{- end -}}

{{- /*
The Istio injection template (a pod-shaped strategic-merge overlay) that turns the injector's
istio-validation init container into the waiter. Istio's injector always moves the container named
istio-validation to the front of initContainers, so the waiter runs before istio-proxy (native sidecar) and
before every application init container. It reuses the injector's own istio-podinfo Downward API volume.
*/ -}}
{{- define "ipnc.injectionTemplate" -}}
spec:
  initContainers:
    - name: istio-validation
      image: {{ include "ipnc.image" (dict "img" .Values.waiter.image "ctx" .) }}
      command: [/usr/local/bin/waiter]
      args:
        - --file=/etc/istio/pod/annotations
        - --timeout={{ .Values.waiter.timeoutSeconds }}s
      securityContext:
        runAsUser: {{ .Values.waiter.runAsUser }}
        runAsGroup: {{ .Values.waiter.runAsGroup }}
        runAsNonRoot: true
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        privileged: false
        capabilities:
          drop: [ALL]
        seccompProfile:
          type: RuntimeDefault
      volumeMounts:
        - name: istio-podinfo
          mountPath: /etc/istio/pod
          readOnly: true
{{- end -}}
