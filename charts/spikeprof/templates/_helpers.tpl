{{/*
The chart name, or nameOverride.
*/}}
{{- define "spikeprof.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, else the release name if it already contains
the chart name, else "<release>-<chart>"; cut to 63 characters (a DNS label).
*/}}
{{- define "spikeprof.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Name of the operator's ClusterRole, Roles and bindings: "<fullname>-controller".
*/}}
{{- define "spikeprof.controllerRoleName" -}}
{{- printf "%s-controller" (include "spikeprof.fullname" . | trunc 52 | trimSuffix "-") -}}
{{- end -}}

{{/*
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "spikeprof.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the operator's pods; they never change across upgrades.
*/}}
{{- define "spikeprof.selectorLabels" -}}
app.kubernetes.io/name: {{ include "spikeprof.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/*
Labels on every object of the release.
*/}}
{{- define "spikeprof.labels" -}}
helm.sh/chart: {{ include "spikeprof.chart" . }}
{{ include "spikeprof.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: spikeprof
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
The ServiceAccount the operator runs as.
*/}}
{{- define "spikeprof.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "spikeprof.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
The operator image: repository@digest, else repository:tag (tag defaults to appVersion).
*/}}
{{- define "spikeprof.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaces the operator serves, checked against watch.mode: a JSON list, empty in cluster
mode. Misconfigurations fail the render with a sentence, since a silently cluster-wide operator
would hold more rights than its user meant to grant.
*/}}
{{- define "spikeprof.watchedNamespaces" -}}
{{- if eq .Values.watch.mode "namespaced" -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.mode=namespaced needs at least one namespace in watch.namespaces" -}}
{{- end -}}
{{- .Values.watch.namespaces | uniq | toJson -}}
{{- else -}}
{{- if .Values.watch.namespaces -}}
{{- fail "watch.namespaces is only used with watch.mode=namespaced; in cluster mode the operator serves every namespace" -}}
{{- end -}}
{{- list | toJson -}}
{{- end -}}
{{- end -}}

{{/*
The operator's RBAC rules, the same in its ClusterRole (cluster mode) and in each Role
(namespaced mode). Each rule is what one part of the operator needs, and nothing more:
- profilingsessions get/list/watch: kopf lists and watches sessions to run one daemon per session;
  patch: kopf writes its finalizer and its bookkeeping annotations (spikeprof.io/...) on them.
- profilingsessions/status get/patch: the operator writes phase, conditions and captures to status.
- pods list/watch: kopf's pod index (the operator never writes to pods, nor reads them one by one).
- events create: kopf posts a new v1 Event per kopf.event() call; it never patches or updates one.
Flag-gated, off by default, for features a session opts into:
- rbac.portForward: pods/portforward create and get, to reach pprof through the API server.
- rbac.workloadPatching: get/patch on the workloads owning pods, to turn profiling on in their
  pod templates (replicasets to walk from a pod to its Deployment).
- rbac.podMetrics: list PodMetrics (metrics.k8s.io), for threshold triggers on metrics-server.
*/}}
{{- define "spikeprof.rules" -}}
- apiGroups: ["spikeprof.io"]
  resources: ["profilingsessions"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["spikeprof.io"]
  resources: ["profilingsessions/status"]
  verbs: ["get", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- if .Values.rbac.podMetrics }}
- apiGroups: ["metrics.k8s.io"]
  resources: ["pods"]
  verbs: ["list"]
{{- end }}
{{- if .Values.rbac.portForward }}
- apiGroups: [""]
  resources: ["pods/portforward"]
  verbs: ["create", "get"]
{{- end }}
{{- if .Values.rbac.workloadPatching }}
- apiGroups: ["apps"]
  resources: ["deployments", "statefulsets", "daemonsets", "replicasets"]
  verbs: ["get", "patch"]
{{- end }}
{{- if .Values.rbac.secrets }}
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get"]
{{- end }}
{{- end -}}

{{/*
The claim mounted at the artifact root, if any.
*/}}
{{- define "spikeprof.claimName" -}}
{{- default (printf "%s-artifacts" (include "spikeprof.fullname" .)) .Values.artifacts.persistence.existingClaim -}}
{{- end -}}
