{{/* Labels of a component: name and component are the role (router, worker, ...). */}}
{{- define "infermesh.labels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/component: {{ .component | default .name }}
app.kubernetes.io/part-of: infermesh
app.kubernetes.io/instance: {{ .instance | default .name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{- define "infermesh.image" -}}
{{ .repository }}:{{ .tag }}
{{- end }}

{{/* The NATS URL the services use. */}}
{{- define "infermesh.natsUrl" -}}
{{- if .Values.nats.enabled -}}
{{ if .Values.meshTls.enabled }}tls{{ else }}nats{{ end }}://nats:4222
{{- else -}}
{{ required "nats.url is required when nats.enabled is false" .Values.nats.url }}
{{- end -}}
{{- end }}

{{- define "infermesh.streamReplicas" -}}
{{- if .Values.nats.streamReplicas -}}
{{ .Values.nats.streamReplicas }}
{{- else if .Values.nats.enabled -}}
{{ .Values.nats.replicas }}
{{- else -}}
1
{{- end -}}
{{- end }}

{{- define "infermesh.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "infermesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Pod-level settings every infermesh pod shares. */}}
{{- define "infermesh.podCommon" -}}
automountServiceAccountToken: false
# Service links would inject e.g. ROUTER_PORT=tcp://10.x.y.z:8001, clashing with the services' settings.
enableServiceLinks: false
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
securityContext:
  {{- include "infermesh.podSecurityContext" . | nindent 2 }}
{{- end }}

{{/* env of every infermesh container: service name, mesh TLS files, health port, NATS user (args: root, role). */}}
{{- define "infermesh.meshEnv" -}}
- name: OTEL_SERVICE_NAME
  value: infermesh-{{ .role }}
{{- if .root.Values.meshTls.enabled }}
- name: MESH_TLS_CA_FILE
  value: /var/run/secrets/infermesh/tls/ca.crt
- name: MESH_TLS_CERT_FILE
  value: /var/run/secrets/infermesh/tls/tls.crt
- name: MESH_TLS_KEY_FILE
  value: /var/run/secrets/infermesh/tls/tls.key
{{- end }}
# kubelet's gRPC probes speak no TLS: grpc.health.v1 alone, in plaintext, on its own port.
- name: GRPC_HEALTH_PORT
  value: "8086"
{{- if ne .role "preprocessor" }}
- name: NATS_USER
  value: {{ .role }}
- name: NATS_PASSWORD_FILE
  value: /var/run/secrets/infermesh/nats/password
{{- end }}
{{- end }}

{{- define "infermesh.meshMounts" -}}
{{- if .root.Values.meshTls.enabled }}
- name: tls
  mountPath: /var/run/secrets/infermesh/tls
  readOnly: true
{{- end }}
{{- if ne .role "preprocessor" }}
- name: nats-password
  mountPath: /var/run/secrets/infermesh/nats
  readOnly: true
{{- end }}
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* Volumes: the pod's certificate (spiffe://infermesh/<role>/<name>), its NATS password, /tmp. */}}
{{- define "infermesh.meshVolumes" -}}
{{- if .root.Values.meshTls.enabled }}
- name: tls
  csi:
    driver: csi.cert-manager.io
    readOnly: true
    volumeAttributes:
      csi.cert-manager.io/issuer-name: {{ .root.Values.meshTls.issuer.name }}
      csi.cert-manager.io/issuer-kind: {{ .root.Values.meshTls.issuer.kind }}
      csi.cert-manager.io/uri-sans: "spiffe://infermesh/{{ .role }}/{{ .name }}"
      csi.cert-manager.io/key-usages: "server auth,client auth,digital signature"
      csi.cert-manager.io/fs-group: "1000"
      csi.cert-manager.io/duration: {{ .root.Values.meshTls.duration | quote }}
{{- end }}
{{- if ne .role "preprocessor" }}
- name: nats-password
  secret:
    secretName: {{ .root.Values.nats.usersSecret }}
    defaultMode: 0440
    items:
      - key: {{ .role }}
        path: password
{{- end }}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "infermesh.probes" -}}
livenessProbe:
  grpc:
    port: 8086
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  grpc:
    port: 8086
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 2
{{- end }}

{{- define "infermesh.command" -}}
command: ["node", "--import", "@infermesh/telemetry/register", "services/{{ . }}/dist/main.js"]
{{- end }}
