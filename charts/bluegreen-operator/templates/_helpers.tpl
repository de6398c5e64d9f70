{{/* The objects' names are fixed: the Lease, the Role naming it and the admission policy
are the operator's own, one install per cluster (or per namespace when namespaced). */}}
{{- define "bluegreen-operator.name" -}}bluegreen-operator{{- end }}

{{/* Labels of every object: deploy/'s part-of, and Helm's standard ones. */}}
{{- define "bluegreen-operator.labels" -}}
app.kubernetes.io/part-of: bluegreen-operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* The operator's pods (selectors are immutable: the same as deploy/'s). */}}
{{- define "bluegreen-operator.selector" -}}
app.kubernetes.io/name: bluegreen-operator
app.kubernetes.io/component: operator
{{- end }}

{{/* What the operator may do (deploy/README.md explains every rule), for its ClusterRole or,
namespaced, its Role. */}}
{{- define "bluegreen-operator.rules" -}}
rules:
  - apiGroups: ["bluegreen.dev"]
    resources: ["bluegreenapps"]
    verbs: ["get", "list", "watch"]
  - apiGroups: ["bluegreen.dev"]
    resources: ["bluegreenapps/status"]
    verbs: ["patch"]
  - apiGroups: ["bluegreen.dev"]
    resources: ["bluegreenapps/finalizers"]
    verbs: ["update"]
  - apiGroups: ["apps"]
    resources: ["deployments"]
    verbs: ["get", "list", "watch", "create", "update"]
  - apiGroups: ["apps"]
    resources: ["replicasets"]
    verbs: ["list", "watch"]
  - apiGroups: [""]
    resources: ["services"]
    verbs: ["get", "list", "watch", "create", "update"]
  - apiGroups: ["networking.k8s.io"]
    resources: ["ingresses"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["gateway.networking.k8s.io"]
    resources: ["httproutes"]
    verbs: ["get", "list", "watch", "create", "update", "delete"]
  - apiGroups: ["gateway.networking.k8s.io"]
    resources: ["gateways"]
    verbs: ["list", "watch"]
  - apiGroups: ["discovery.k8s.io"]
    resources: ["endpointslices"]
    verbs: ["list", "watch"]
  - apiGroups: ["batch"]
    resources: ["jobs"]
    verbs: ["list", "watch", "create", "delete"]
  - apiGroups: [""]
    resources: ["events"]
    verbs: ["create"]
  - apiGroups: [""]
    resources: ["configmaps", "secrets"]
    resourceNames: ["bluegreen-notifications"]
    verbs: ["get"]
{{- end }}
