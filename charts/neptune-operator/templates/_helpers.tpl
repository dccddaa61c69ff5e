{{/* Chart name. */}}
{{- define "neptune-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified release name. */}}
{{- define "neptune-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "neptune-operator.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "neptune-operator.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* Common labels. */}}
{{- define "neptune-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "neptune-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels. */}}
{{- define "neptune-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "neptune-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Service account name. */}}
{{- define "neptune-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "neptune-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Image reference. */}}
{{- define "neptune-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Rules for what the operator does in a namespace where apps run (operator/src), and nothing more:
- streambatchapps: its controller lists and watches them; `delete` is TTL cleanup
  (ttlSecondsAfterFinished).
- streambatchapps/status: written by server-side apply, a PATCH.
- streambatchapps/finalizers: `update` lets it set blockOwnerDeletion on the owner references of
  the pods and Service it creates, which clusters with the OwnerReferencesPermissionEnforcement
  admission plugin (e.g. OpenShift) require.
- pods: the controller lists and watches the pods it owns; server-side apply creates them (authorized
  as `create` when the pod does not exist, else `patch`); failed or surplus executors are deleted.
- services: the driver's headless Service, watched and server-side applied; never deleted by the
  operator (owner references let the garbage collector do it).
- networkpolicies: each app's <app>-neptune, written by server-side apply (only when
  networkPolicy.enabled); deleted with the app by the garbage collector.
- events.k8s.io events: the kube-runtime Recorder creates an Event and patches it when it repeats.
*/}}
{{- define "neptune-operator.appRules" -}}
- apiGroups: ["neptune.dev"]
  resources: ["streambatchapps"]
  verbs: ["list", "watch", "delete"]
- apiGroups: ["neptune.dev"]
  resources: ["streambatchapps/status"]
  verbs: ["patch"]
- apiGroups: ["neptune.dev"]
  resources: ["streambatchapps/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "create", "patch"]
# The app's credentials Secret (<app>-tls): written by server-side apply; read for its admin
# token when a live scheduling change is posted to the driver.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "create", "patch"]
{{- if .Values.networkPolicy.enabled }}
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["create", "patch"]
{{- end }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
Peers admitted to the apps' HTTP ports (JSON for NEPTUNE_NETWORK_POLICY_HTTP_FROM): the
networkPolicy.httpFrom list, plus this operator's own pods (it reads every driver's /status)
whenever the list is not empty; an empty list admits any source.
*/}}
{{- define "neptune-operator.httpFrom" -}}
{{- if .Values.networkPolicy.httpFrom -}}
{{- $self := dict "namespaceSelector" (dict "matchLabels" (dict "kubernetes.io/metadata.name" .Release.Namespace)) "podSelector" (dict "matchLabels" (include "neptune-operator.selectorLabels" . | fromYaml)) -}}
{{- append .Values.networkPolicy.httpFrom $self | toJson -}}
{{- else -}}
[]
{{- end -}}
{{- end }}
