{{/*
Names and labels shared by every template. Names are cut to 63 characters,
the limit of a DNS label and of a label value.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "loanops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-loanops", or the release name alone when it already holds the chart name. */}}
{{- define "loanops.fullname" -}}
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

{{/* "<fullname>-<suffix>", cut so that the suffix always survives. */}}
{{- define "loanops.suffixed" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $room := sub 62 (len $suffix) | int -}}
{{- printf "%s-%s" (include "loanops.fullname" $root | trunc $room | trimSuffix "-") $suffix -}}
{{- end -}}

{{/* Labels of every object; the chart version is here, never in selectors. */}}
{{- define "loanops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "loanops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: loanops
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The operator pod's selector labels; immutable once installed. */}}
{{- define "loanops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "loanops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* The ServiceAccount the operator runs as. */}}
{{- define "loanops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "loanops.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from {registry, repository, tag, digest}: the digest wins,
then the image's tag, then imageTag, then the chart's appVersion. Called with
(list $image $root).
*/}}
{{- define "loanops.image" -}}
{{- $image := index . 0 -}}
{{- $root := index . 1 -}}
{{- $ref := printf "%s/%s" $image.registry $image.repository | trimPrefix "/" -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $ref $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $ref ($image.tag | default $root.Values.imageTag | default $root.Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* True (non-empty) when the operator watches only the listed namespaces. */}}
{{- define "loanops.namespaced" -}}
{{- if .Values.operator.watchNamespaces -}}true{{- end -}}
{{- end -}}

{{/*
The labels the operator puts on every prediction server pod it creates (see
operator/): the PodMonitor and the dashboard select on them.
*/}}
{{- define "loanops.serverPodLabels" -}}
app.kubernetes.io/name: loanops-server
app.kubernetes.io/managed-by: loanops
{{- end -}}

{{/*
What the operator may do with the objects it reconciles and creates, grouped by
purpose. The same rules go into a namespaced Role per watched namespace or into
one ClusterRole. No wildcards and no Secrets: Jobs and servers read Secrets
through secretKeyRef, which needs no right of the operator's.
*/}}
{{- define "loanops.rbacRules" -}}
# Its own resources: watched, and annotated by kopf (progress and the last
# handled spec); the user's spec is never written.
- apiGroups: ["loanops.io"]
  resources: ["loanmodels", "driftpolicies"]
  verbs: ["get", "list", "watch", "patch"]
# Conditions, champion, outcomes: the status subresource only.
- apiGroups: ["loanops.io"]
  resources: ["loanmodels/status", "driftpolicies/status"]
  verbs: ["get", "patch", "update"]
# Training Jobs: created once under a deterministic name, deleted to retrain.
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "watch", "create", "delete"]
# Drift-check CronJobs of DriftPolicies, kept in line with their schedule.
- apiGroups: ["batch"]
  resources: ["cronjobs"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
# Prediction server Deployments, rolled to an exact model version.
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
# The Service in front of each server Deployment.
- apiGroups: [""]
  resources: ["services"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Job pods: their termination message carries the training outcome.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch"]
# Events on LoanModels and DriftPolicies (kopf posts to both APIs).
- apiGroups: ["", "events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/*
kopf's discovery of the resources it serves: it watches CRDs so that it notices
them being added or removed. Cluster-scoped, read-only, no object contents.
*/}}
{{- define "loanops.crdDiscoveryRule" -}}
# CRDs: kopf watches them to notice its resources being added or removed.
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["list", "watch"]
{{- end -}}

{{/*
A CRD from files/crds/ with the chart's labels and annotations merged in:
Argo CD applies it in an earlier sync wave than everything else, and the keep
policy survives `helm uninstall`. Called with (list $root "files/crds/NAME").
*/}}
{{- define "loanops.crd" -}}
{{- $root := index . 0 -}}
{{- $crd := $root.Files.Get (index . 1) | fromYaml -}}
{{- /* The CRD's own labels (component: crd) win over the chart's. */ -}}
{{- $labels := merge ($crd.metadata.labels | default dict) (include "loanops.labels" $root | fromYaml) -}}
{{- $annotations := dict "argocd.argoproj.io/sync-wave" "-10" -}}
{{- if $root.Values.crds.keep -}}
{{- /* Helm's keep policy, and its Argo CD equivalent (which ignores Helm's). */ -}}
{{- $_ := set $annotations "helm.sh/resource-policy" "keep" -}}
{{- $_ := set $annotations "argocd.argoproj.io/sync-options" "Delete=false,Prune=false" -}}
{{- end -}}
{{- $_ := set $crd.metadata "labels" $labels -}}
{{- $_ := set $crd.metadata "annotations" (merge $annotations ($crd.metadata.annotations | default dict)) -}}
{{- toYaml $crd -}}
{{- end -}}
