{{/* Names: the usual Helm conventions, truncated to Kubernetes' 63 characters. */}}
{{- define "identity-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "identity-operator.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "identity-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "identity-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "identity-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "identity-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "identity-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "identity-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "identity-operator.leaseName" -}}
{{- default (include "identity-operator.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "identity-operator.image" -}}
{{- $repo := required "image.repository is required: the registry and name you pushed the operator image to (see the README's \"Container image\")" .Values.image.repository }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" $repo .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
policy/v1 exists from Kubernetes 1.21 and policy/v1beta1 was removed in 1.25. The API list
decides when Helm knows the cluster (install, upgrade, template --validate, Argo CD); a
client-only `helm template` knows no kinds, so the Kubernetes version decides there.
*/}}
{{- define "identity-operator.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" -}}
policy/v1
{{- else if .Capabilities.APIVersions.Has "policy/v1beta1/PodDisruptionBudget" -}}
policy/v1beta1
{{- else if semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end }}

{{/*
What the operator does in a watched namespace — the same rules for the ClusterRole and for
each Role of watchNamespaces:
- its six kinds: watched and patched (finalizers are added and removed with JSON patches: the
  cleanup finalizer of the managed kinds, the in-use finalizer of IdentityApis); every kind's
  status is written with server-side apply. The operator never writes a spec.
- Secrets: watched as metadata only, a value read with `get` just before it is sent; `patch`
  for the in-use finalizer of the Secrets holding an IdentityApi's credentials; create only
  with rbac.secretWrites (AdminApiApp's shared-secret Secret, server-side apply, which creates
  the Secret when it is missing).
- ConfigMaps: `get` of the one an AdminApiApp names in spec.logoFrom (not watched).
- events.k8s.io Events: created, and patched when the same Event repeats.
*/}}
{{- define "identity-operator.rules" -}}
- apiGroups: [identity.operator.dev]
  resources: [identityapis, identitybackends, orgconnections, ldapsettings, adminapiapps, authenticationsettings]
  verbs: [get, list, watch]
- apiGroups: [identity.operator.dev]
  resources: [identityapis, identitybackends, orgconnections, ldapsettings, adminapiapps, authenticationsettings]
  verbs: [patch]
- apiGroups: [identity.operator.dev]
  resources: [identityapis/status, identitybackends/status, orgconnections/status, ldapsettings/status, adminapiapps/status, authenticationsettings/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, patch]
{{- if .Values.rbac.secretWrites }}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end }}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/*
What ClusterIdentityApis need beyond a namespace, in the one ClusterRole (also with
watchNamespaces, whose Roles cannot grant it): the cluster-scoped kind itself (watched, its
in-use finalizer patched, its status written) and namespaces' labels (metadata, for
allowedNamespaces.selector). Their Secrets are read in the credentials namespace only, through
the Role there (rbac.yaml), never cluster-wide for this purpose.
*/}}
{{- define "identity-operator.clusterRules" -}}
- apiGroups: [identity.operator.dev]
  resources: [clusteridentityapis]
  verbs: [get, list, watch, patch]
- apiGroups: [identity.operator.dev]
  resources: [clusteridentityapis/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch]
{{- end }}

{{/* The namespace of ClusterIdentityApis' Secrets: clusterIdentityApi.credentialsNamespace,
else the release namespace. */}}
{{- define "identity-operator.credentialsNamespace" -}}
{{- .Values.clusterIdentityApi.credentialsNamespace | default .Release.Namespace -}}
{{- end }}

{{/* The flags of `identity-operator run` (the image's entrypoint). */}}
{{- define "identity-operator.args" -}}
- {{ printf "--metrics-addr=0.0.0.0:%d" (int .Values.operator.metricsPort) | quote }}
- {{ printf "--log-format=%s" .Values.operator.logFormat | quote }}
- {{ printf "--resync-interval=%s" .Values.operator.resyncInterval | quote }}
- {{ printf "--max-concurrent-reconciles=%d" (int .Values.operator.maxConcurrentReconciles) | quote }}
- {{ printf "--deletion-grace-period=%s" .Values.operator.deletionGracePeriod | quote }}
- {{ printf "--credentials-namespace=%s" (include "identity-operator.credentialsNamespace" .) | quote }}
{{- with .Values.operator.selector }}
- {{ printf "--selector=%s" . | quote }}
{{- end }}
{{- range .Values.watchNamespaces }}
- {{ printf "--namespace=%s" . | quote }}
{{- end }}
{{- if .Values.leaderElection.enabled }}
- --leader-election
- {{ printf "--lease-name=%s" (include "identity-operator.leaseName" .) | quote }}
- {{ printf "--lease-duration-seconds=%d" (int .Values.leaderElection.leaseDurationSeconds) | quote }}
{{- end }}
{{- range .Values.operator.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
