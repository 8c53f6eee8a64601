{{/*
The operator's pod template, the same in the Deployment (one replica, or active/standby)
and in the StatefulSet (shards).
*/}}
{{- define "spikeprof.podTemplate" -}}
{{- $namespaces := include "spikeprof.watchedNamespaces" . | fromJsonArray -}}
{{- $leaseMode := include "spikeprof.leaseMode" . -}}
metadata:
  labels:
    {{- include "spikeprof.labels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "spikeprof.serviceAccountName" . }}
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  containers:
    - name: controller
      image: {{ include "spikeprof.image" . | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      command: ["spikeprof"]
      args:
        - run
        - --liveness=http://0.0.0.0:{{ .Values.health.port }}/healthz
        {{- range $namespaces }}
        - --namespace={{ . }}
        {{- end }}
        {{- if .Values.operator.verbose }}
        - --verbose
        {{- end }}
        {{- with .Values.operator.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        # Who this replica is, and where the Leases live (the downward API): every mode sets
        # them, so that a Lease or an event names the pod.
        - name: SPIKEPROF_IDENTITY
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: SPIKEPROF_LEASE_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        {{- if eq $leaseMode "leader" }}
        - name: SPIKEPROF_LEADER_ELECTION_LEASE
          value: {{ include "spikeprof.leaderLease" . | quote }}
        {{- else if eq $leaseMode "shards" }}
        - name: SPIKEPROF_SHARD_LEASE_PREFIX
          value: {{ include "spikeprof.shardLeasePrefix" . | quote }}
        {{- end }}
        {{- if $leaseMode }}
        {{- with .Values.leaderElection }}
        {{- if not (lt (float64 .renewDeadlineSeconds) (float64 .leaseSeconds)) }}
        {{- fail "leaderElection.renewDeadlineSeconds must be below leaderElection.leaseSeconds: a holder that cannot renew must stop before another replica may take over" }}
        {{- end }}
        {{- if not (lt (float64 .retrySeconds) (float64 .renewDeadlineSeconds)) }}
        {{- fail "leaderElection.retrySeconds must be below leaderElection.renewDeadlineSeconds: the holder must get to renew before its deadline" }}
        {{- end }}
        - name: SPIKEPROF_LEASE_SECONDS
          value: {{ .leaseSeconds | quote }}
        - name: SPIKEPROF_RENEW_DEADLINE_SECONDS
          value: {{ .renewDeadlineSeconds | quote }}
        - name: SPIKEPROF_LEASE_RETRY_SECONDS
          value: {{ .retrySeconds | quote }}
        {{- end }}
        {{- end }}
        - name: SPIKEPROF_ARTIFACT_ROOT
          value: {{ .Values.artifacts.root | quote }}
        - name: SPIKEPROF_METRICS_PORT
          value: {{ ternary .Values.metrics.port 0 .Values.metrics.enabled | quote }}
        - name: SPIKEPROF_METRICS_ADDRESS
          value: {{ .Values.metrics.address | quote }}
        - name: SPIKEPROF_MAX_CONCURRENT_PODS
          value: {{ .Values.operator.maxConcurrentPods | quote }}
        - name: SPIKEPROF_POLL_SECONDS
          value: {{ .Values.operator.pollSeconds | quote }}
        {{- if .Values.ui.enabled }}
        - name: SPIKEPROF_UI_PORT
          value: {{ .Values.ui.port | quote }}
        - name: SPIKEPROF_UI_ADDRESS
          value: "0.0.0.0"
        {{- if .Values.ui.tokenSecret }}
        - name: SPIKEPROF_UI_TOKEN_FILE
          value: /etc/spikeprof/ui-token/token
        {{- end }}
        {{- end }}
        - name: SPIKEPROF_ALERTS_PORT
          value: {{ ternary .Values.alerts.port 0 .Values.alerts.enabled | quote }}
        {{- if and .Values.alerts.enabled .Values.alerts.tokenSecret }}
        - name: SPIKEPROF_ALERTS_TOKEN_FILE
          value: /etc/spikeprof/alerts-token/token
        {{- end }}
        {{- if and .Values.alerts.enabled .Values.alerts.tlsSecret }}
        - name: SPIKEPROF_ALERTS_TLS_CERT
          value: /etc/spikeprof/alerts-tls/tls.crt
        - name: SPIKEPROF_ALERTS_TLS_KEY
          value: /etc/spikeprof/alerts-tls/tls.key
        {{- end }}
        {{- with .Values.prometheus.url }}
        - name: SPIKEPROF_PROMETHEUS_URL
          value: {{ . | quote }}
        {{- end }}
        {{- if .Values.prometheus.tokenSecret }}
        - name: SPIKEPROF_PROMETHEUS_TOKEN_FILE
          value: /etc/spikeprof/prometheus-token/token
        {{- end }}
        # The root filesystem is read-only: anything written under $HOME lands in /tmp.
        - name: HOME
          value: /tmp
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      {{- with .Values.objectStore.existingSecret }}
      # Object-store credentials, for the upcoming output.objectStore (not read yet).
      envFrom:
        - secretRef:
            name: {{ . }}
      {{- end }}
      ports:
        - name: health
          containerPort: {{ .Values.health.port }}
          protocol: TCP
        {{- if .Values.metrics.enabled }}
        - name: metrics
          containerPort: {{ .Values.metrics.port }}
          protocol: TCP
        {{- end }}
        {{- if .Values.alerts.enabled }}
        - name: alerts
          containerPort: {{ .Values.alerts.port }}
          protocol: TCP
        {{- end }}
        {{- if .Values.ui.enabled }}
        - name: ui
          containerPort: {{ .Values.ui.port }}
          protocol: TCP
        {{- end }}
      {{- with .Values.livenessProbe }}
      {{- if .enabled }}
      livenessProbe:
        httpGet:
          path: /healthz
          port: health
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.readinessProbe }}
      {{- if .enabled }}
      readinessProbe:
        httpGet:
          {{- if include "spikeprof.readinessServes" $ }}
          # 200 only while this pod serves: the leader, or a live shard.
          path: /readyz
          port: alerts
          {{- if $.Values.alerts.tlsSecret }}
          scheme: HTTPS
          {{- end }}
          {{- else }}
          # No alert receiver, so no /readyz: the process runs (nothing routes by readiness).
          path: /healthz
          port: health
          {{- end }}
        initialDelaySeconds: {{ .initialDelaySeconds }}
        periodSeconds: {{ .periodSeconds }}
        timeoutSeconds: {{ .timeoutSeconds }}
        failureThreshold: {{ .failureThreshold }}
      {{- end }}
      {{- end }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: artifacts
          mountPath: {{ .Values.artifacts.root }}
        {{- if and .Values.alerts.enabled .Values.alerts.tokenSecret }}
        - name: alerts-token
          mountPath: /etc/spikeprof/alerts-token
          readOnly: true
        {{- end }}
        {{- if and .Values.alerts.enabled .Values.alerts.tlsSecret }}
        - name: alerts-tls
          mountPath: /etc/spikeprof/alerts-tls
          readOnly: true
        {{- end }}
        {{- if .Values.prometheus.tokenSecret }}
        - name: prometheus-token
          mountPath: /etc/spikeprof/prometheus-token
          readOnly: true
        {{- end }}
        {{- if and .Values.ui.enabled .Values.ui.tokenSecret }}
        - name: ui-token
          mountPath: /etc/spikeprof/ui-token
          readOnly: true
        {{- end }}
  volumes:
    {{- if and .Values.alerts.enabled .Values.alerts.tokenSecret }}
    - name: alerts-token
      secret:
        secretName: {{ .Values.alerts.tokenSecret }}
    {{- end }}
    {{- if and .Values.alerts.enabled .Values.alerts.tlsSecret }}
    - name: alerts-tls
      secret:
        secretName: {{ .Values.alerts.tlsSecret }}
    {{- end }}
    {{- if and .Values.ui.enabled .Values.ui.tokenSecret }}
    - name: ui-token
      secret:
        secretName: {{ .Values.ui.tokenSecret }}
    {{- end }}
    {{- if .Values.prometheus.tokenSecret }}
    - name: prometheus-token
      secret:
        secretName: {{ .Values.prometheus.tokenSecret }}
    {{- end }}
    - name: tmp
      {{- if .Values.tmpSizeLimit }}
      emptyDir:
        sizeLimit: {{ .Values.tmpSizeLimit }}
      {{- else }}
      emptyDir: {}
      {{- end }}
    - name: artifacts
      {{- if .Values.artifacts.persistence.enabled }}
      persistentVolumeClaim:
        claimName: {{ include "spikeprof.claimName" . }}
      {{- else if .Values.artifacts.emptyDirSizeLimit }}
      emptyDir:
        sizeLimit: {{ .Values.artifacts.emptyDirSizeLimit }}
      {{- else }}
      emptyDir: {}
      {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "spikeprof.affinity" . }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}
