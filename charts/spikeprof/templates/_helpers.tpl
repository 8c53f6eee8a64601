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

{{/*
"true" when the operator runs as shards (sharding.shards above 1, a StatefulSet), else "".
*/}}
{{- define "spikeprof.sharded" -}}
{{- if gt (int .Values.sharding.shards) 1 -}}true{{- end -}}
{{- end -}}

{{/*
How many operator pods run: the shards, else the Deployment's replicas.
*/}}
{{- define "spikeprof.pods" -}}
{{- if include "spikeprof.sharded" . -}}
{{- .Values.sharding.shards | int -}}
{{- else -}}
{{- .Values.replicas | int -}}
{{- end -}}
{{- end -}}

{{/*
How the replicas share the work: "shards" (a Lease per shard), "leader" (one Lease, one
holder acts) or "" (no Lease: one replica owns every namespace). Contradictions fail the render,
since two operators without a Lease would both act on every session.
*/}}
{{- define "spikeprof.leaseMode" -}}
{{- if include "spikeprof.sharded" . -}}
shards
{{- else if .Values.leaderElection.enabled -}}
leader
{{- else if gt (int .Values.replicas) 1 -}}
{{- fail "replicas above 1 needs leaderElection.enabled: without a Lease every replica would act on every session" -}}
{{- end -}}
{{- end -}}

{{/*
The Lease of active/standby, and the prefix of the shards' Leases. The prefix is also the value
of their spikeprof.io/shard-group label, so it is cut to fit a label value (63 characters).
*/}}
{{- define "spikeprof.leaderLease" -}}
{{- printf "%s-leader" (include "spikeprof.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}
{{- define "spikeprof.shardLeasePrefix" -}}
{{- printf "%s-shard" (include "spikeprof.fullname" . | trunc 57 | trimSuffix "-") -}}
{{- end -}}

{{/*
The readiness probe means what it says: /readyz on the alert receiver's port answers 200 only
while this pod serves (the leader, or a live shard). Without a receiver (alerts.enabled off)
there is no /readyz, and kopf's /healthz (the process runs) stands in; then nothing routes by
readiness. "true" when readiness is leadership or shard liveness.
*/}}
{{- define "spikeprof.readinessServes" -}}
{{- if and .Values.readinessProbe.enabled .Values.alerts.enabled -}}true{{- end -}}
{{- end -}}

{{/*
Whether every running operator pod is Ready: shards are (each live shard serves), as is every
replica when readiness is not leadership; a standby is not. A PodDisruptionBudget counts Ready
pods, so it only means something when they all are (see podDisruptionBudget in values.yaml).
*/}}
{{- define "spikeprof.everyPodReady" -}}
{{- if or (include "spikeprof.sharded" .) (not (include "spikeprof.readinessServes" .)) -}}true{{- end -}}
{{- end -}}

{{/*
A claim shared by more than one operator pod must be mountable by all of them (ReadWriteMany):
a ReadWriteOnce claim would keep a standby or shard on another node from ever starting.
*/}}
{{- define "spikeprof.checkSharedClaim" -}}
{{- $persistence := .Values.artifacts.persistence -}}
{{- if and $persistence.enabled (not $persistence.existingClaim) (gt (include "spikeprof.pods" . | int) 1) (not (has "ReadWriteMany" $persistence.accessModes)) -}}
{{- fail "artifacts.persistence with more than one operator pod needs accessModes [ReadWriteMany]: every replica or shard writes artifacts to the one claim" -}}
{{- end -}}
{{- end -}}

{{/*
The pod's affinity: affinity from values, plus preferred anti-affinity between the operator's
pods when more than one runs (unless affinity.podAntiAffinity is given), so that one node's
loss does not take every replica or shard. Empty with one pod and no affinity.
*/}}
{{- define "spikeprof.affinity" -}}
{{- $affinity := deepCopy .Values.affinity -}}
{{- $key := .Values.podAntiAffinity.topologyKey -}}
{{- if and $key (gt (include "spikeprof.pods" . | int) 1) (not (hasKey $affinity "podAntiAffinity")) -}}
{{- $term := dict "labelSelector" (dict "matchLabels" (include "spikeprof.selectorLabels" . | fromYaml)) "topologyKey" $key -}}
{{- $_ := set $affinity "podAntiAffinity" (dict "preferredDuringSchedulingIgnoredDuringExecution" (list (dict "weight" 100 "podAffinityTerm" $term))) -}}
{{- end -}}
{{- if $affinity -}}
{{- toYaml $affinity -}}
{{- end -}}
{{- end -}}

{{/*
The Lease rules of the operator's Role in the release namespace (see controller-leases-role.yaml).
*/}}
{{- define "spikeprof.leaseVerbs" -}}
{{- if eq (include "spikeprof.leaseMode" .) "shards" -}}
["get", "create", "update", "list"]
{{- else -}}
["get", "create", "update"]
{{- end -}}
{{- end -}}
