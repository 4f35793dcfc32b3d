# Helpers shared by the policies of this directory: the containers an object runs (in plain workloads
# and in kagent/kmcp resources), the pod labels of MCP servers, image references and label selectors.
# A package without deny/violation/warn rules: reconciler loads it but reports nothing from it.
package lib.k8s

# the environment of the pass (reconciler puts it in data.reconciler.environment)
default environment := ""

environment := data.reconciler.environment

# the per-environment data of this directory (policies/environments/<env>/*.yaml), {} when none
default env_data := {}

env_data := data.environments[environment]

# every rendered object of the pass (for rules that look across objects)
default objects := []

objects := data.reconciler.objects

# the rendered objects of one apiVersion and kind in one namespace, by name (reconciler's
# data.reconciler.inventory, shaped like Gatekeeper's data.inventory: cheaper than walking every object)
namespaced(namespace, api_version, kind) := object.get(
	data.reconciler.inventory.namespace,
	[namespace, api_version, kind],
	{},
)

pod_workloads := {"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "ReplicationController", "Job"}

# the pod spec of a workload, with where it is in the object
pod_spec(obj) := [obj.spec.template.spec, "spec.template.spec"] if obj.kind in pod_workloads

pod_spec(obj) := [obj.spec.jobTemplate.spec.template.spec, "spec.jobTemplate.spec.template.spec"] if {
	obj.kind == "CronJob"
}

pod_spec(obj) := [obj.spec, "spec"] if obj.kind == "Pod"

# the pod labels of a workload (kmcp labels an MCPServer's pods with its name)
pod_labels(obj) := object.get(obj.spec.template, ["metadata", "labels"], {}) if obj.kind in pod_workloads

pod_labels(obj) := object.union(
	object.get(obj.spec, ["deployment", "labels"], {}),
	{"app.kubernetes.io/name": obj.metadata.name, "app.kubernetes.io/instance": obj.metadata.name},
) if {
	obj.kind == "MCPServer"
}

# the containers an object runs: [{"path", "name", "image", "resources"}]; image "" when the
# controller picks it (a declarative kagent Agent runs kagent's own runtime image)
containers(obj) := array.concat(_pod_containers(obj), _platform_containers(obj))

_pod_containers(obj) := [c |
	[spec, at] := pod_spec(obj)
	some field in ["initContainers", "containers", "ephemeralContainers"]
	some i, ctr in object.get(spec, field, [])
	c := _container(sprintf("%s.%s[%d]", [at, field, i]), ctr, object.get(ctr, "image", ""))
]

_platform_containers(obj) := array.concat(_deployment_blocks(obj), _extra_containers(obj))

# kagent Agent (spec.declarative.deployment / spec.byo.deployment) and kmcp MCPServer (spec.deployment)
_deployment_blocks(obj) := [c |
	obj.kind == "Agent"
	some kind in ["declarative", "byo"]
	block := obj.spec[kind]
	deployment := object.get(block, "deployment", {})
	image := object.get(deployment, "image", "")
	c := _container(sprintf("spec.%s.deployment", [kind]), deployment, image)
] if obj.kind == "Agent"

_deployment_blocks(obj) := [_container("spec.deployment", d, object.get(d, "image", _kmcp_default(d)))] if {
	obj.kind == "MCPServer"
	d := object.get(obj.spec, "deployment", {})
}

_deployment_blocks(obj) := [] if not obj.kind in {"Agent", "MCPServer"}

# kmcp injects an image for uvx and npx servers when none is given
_kmcp_default(d) := object.get({"uvx": "ghcr.io/astral-sh/uv:debian", "npx": "node:24-alpine3.21"}, object.get(d, "cmd", ""), "")

_extra_containers(obj) := [c |
	obj.kind in {"Agent", "MCPServer"}
	some at, list in _extra_lists(obj)
	some i, ctr in list
	c := _container(sprintf("%s[%d]", [at, i]), ctr, object.get(ctr, "image", ""))
]

_extra_lists(obj) := {sprintf("spec.%s.deployment.extraContainers", [kind]): list |
	some kind in ["declarative", "byo"]
	list := obj.spec[kind].deployment.extraContainers
} if obj.kind == "Agent"

_extra_lists(obj) := {"spec.deployment.sidecars": object.get(obj.spec, ["deployment", "sidecars"], [])} if {
	obj.kind == "MCPServer"
}

_container(path, ctr, image) := {
	"path": path,
	"name": object.get(ctr, "name", ""),
	"image": image,
	"resources": object.get(ctr, "resources", {}),
}

# an MCP server: a kmcp MCPServer, or a workload whose pods are labelled as one
is_mcp_server(obj) if obj.kind == "MCPServer"

is_mcp_server(obj) if {
	obj.kind in pod_workloads
	pod_labels(obj)["app.kubernetes.io/component"] == "mcp-server"
}

# an agent: a kagent Agent, or a workload whose pods are labelled as one
is_agent(obj) if obj.kind == "Agent"

is_agent(obj) if {
	obj.kind in pod_workloads
	pod_labels(obj)["app.kubernetes.io/component"] == "agent"
}

# "Kind/namespace/name" of an object
ref(obj) := sprintf("%s/%s/%s", [obj.kind, ns, obj.metadata.name]) if {
	ns := object.get(obj.metadata, "namespace", "")
	ns != ""
}

ref(obj) := sprintf("%s/%s", [obj.kind, obj.metadata.name]) if object.get(obj.metadata, "namespace", "") == ""

# image references: [name, tag, digest] ("" when absent); the tag is after the last ':' of the
# last path segment, the digest after '@'
image_parts(image) := [name, tag, digest] if {
	[without_digest, digest] := _split_digest(image)
	[name, tag] := _split_tag(without_digest)
}

_split_digest(image) := [parts[0], parts[1]] if {
	parts := split(image, "@")
	count(parts) == 2
}

_split_digest(image) := [image, ""] if not contains(image, "@")

_split_tag(ref) := [trim_suffix(ref, concat("", [":", tag])), tag] if {
	segments := split(ref, "/")
	last := segments[count(segments) - 1]
	contains(last, ":")
	tag := split(last, ":")[1]
}

_split_tag(ref) := [ref, ""] if {
	segments := split(ref, "/")
	not contains(segments[count(segments) - 1], ":")
}

is_pinned(image) if regex.match(`@sha256:[0-9a-f]{64}$`, image)

# label selector semantics (matchLabels and matchExpressions), for NetworkPolicy podSelectors
selects(selector, labels) if {
	every k, v in object.get(selector, "matchLabels", {}) {
		labels[k] == v
	}
	every e in object.get(selector, "matchExpressions", []) {
		_expression(e, labels)
	}
}

_expression(e, labels) if {
	e.operator == "In"
	labels[e.key] in e.values
}

_expression(e, labels) if {
	e.operator == "NotIn"
	not labels[e.key] in e.values
}

_expression(e, labels) if {
	e.operator == "Exists"
	_ = labels[e.key]
}

_expression(e, labels) if {
	e.operator == "DoesNotExist"
	not labels[e.key]
}
