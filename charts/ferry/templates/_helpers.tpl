{{- define "ferry.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ferry.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ferry.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ferry.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ferry.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{- define "ferry.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "ferry.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* ferry.selector: the selector labels of one component (dict "root" . "component" "agent"). */}}
{{- define "ferry.selector" -}}
app.kubernetes.io/name: {{ include "ferry.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "ferry.agent.name" -}}{{ include "ferry.fullname" . }}-agent{{- end -}}
{{- define "ferry.aggregator.name" -}}{{ include "ferry.fullname" . }}-aggregator{{- end -}}

{{/* ferry.sinks: aggregator.sinks plus the quick-start Elasticsearch sink. */}}
{{- define "ferry.sinks" -}}
{{- $sinks := list -}}
{{- if .Values.elasticsearch.url -}}
{{- $es := dict "name" "elasticsearch" "type" "elasticsearch" "urls" (list .Values.elasticsearch.url) -}}
{{- if .Values.elasticsearch.existingSecret -}}
{{- if eq .Values.elasticsearch.auth "api_key" -}}
{{- $_ := set $es "api_key_file" "/etc/ferry/secrets/elasticsearch/api_key" -}}
{{- else -}}
{{- $_ := set $es "username" "${FERRY_ES_USERNAME}" -}}
{{- $_ := set $es "password_file" "/etc/ferry/secrets/elasticsearch/password" -}}
{{- end -}}
{{- end -}}
{{- if .Values.elasticsearch.caSecret -}}
{{- $_ := set $es "ca_file" "/etc/ferry/secrets/elasticsearch-ca/ca.crt" -}}
{{- end -}}
{{- if .Values.elasticsearch.retention -}}
{{- $_ := set $es "retention" .Values.elasticsearch.retention -}}
{{- end -}}
{{- $sinks = append $sinks $es -}}
{{- end -}}
{{- $sinks = concat $sinks .Values.aggregator.sinks -}}
{{- if not $sinks -}}
{{- fail "no sink: set elasticsearch.url (quick start) or aggregator.sinks" -}}
{{- end -}}
{{- toYaml $sinks -}}
{{- end -}}

{{/* ferry.agentInputs: agent.inputs, the agent's own logs excluded from container inputs. */}}
{{- define "ferry.agentInputs" -}}
{{- $inputs := list -}}
{{- $own := printf "/var/log/containers/%s-*_%s_agent-*.log" (include "ferry.agent.name" .) .Release.Namespace -}}
{{- range .Values.agent.inputs -}}
{{- $in := deepCopy . -}}
{{- if and $.Values.agent.excludeOwnLogs (eq (toString $in.type) "container") -}}
{{- $_ := set $in "exclude" (append (default (list) $in.exclude) $own) -}}
{{- end -}}
{{- $inputs = append $inputs $in -}}
{{- end -}}
{{- toYaml $inputs -}}
{{- end -}}
