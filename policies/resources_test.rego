package policies.resources_test

import data.policies.resources

_limits := {"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "50m", "memory": "64Mi"}}

_mcp_deployment(resources) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "clock-mcp", "namespace": "agents-dev"},
	"spec": {"template": {
		"metadata": {"labels": {"app.kubernetes.io/component": "mcp-server"}},
		"spec": {"containers": [{"name": "server", "image": "x:1", "resources": resources}]},
	}},
}

_agent(resources) := {
	"apiVersion": "kagent.dev/v1alpha2",
	"kind": "Agent",
	"metadata": {"name": "helpdesk", "namespace": "agents-dev"},
	"spec": {"type": "Declarative", "declarative": {"modelConfig": "m", "deployment": {"resources": resources}}},
}

test_mcp_server_with_limits_passes if {
	count(resources.deny_missing_limits) == 0 with input as _mcp_deployment(_limits)
}

test_mcp_server_without_cpu_limit_denied if {
	msgs := resources.deny_missing_limits with input as _mcp_deployment({"limits": {"memory": "128Mi"}})
	msgs == {"spec.template.spec.containers[0] (container server): no cpu limit (resources.limits.cpu)"}
}

test_mcp_server_without_resources_denied_twice if {
	count(resources.deny_missing_limits) == 2 with input as _mcp_deployment({})
}

test_declarative_agent_limits if {
	count(resources.deny_missing_limits) == 0 with input as _agent(_limits)
	msgs := resources.deny_missing_limits with input as _agent({"requests": {"cpu": "100m"}})
	count(msgs) == 2
	some msg in msgs
	startswith(msg, "spec.declarative.deployment: no")
}

test_declarative_agent_without_deployment_block_denied if {
	agent := json.patch(_agent({}), [{"op": "remove", "path": "/spec/declarative/deployment"}])
	count(resources.deny_missing_limits) == 2 with input as agent
}

test_mcpserver_and_its_sidecars if {
	server := {
		"apiVersion": "kagent.dev/v1alpha1",
		"kind": "MCPServer",
		"metadata": {"name": "docs-mcp", "namespace": "agents-dev"},
		"spec": {"deployment": {
			"image": "x:1",
			"resources": _limits,
			"sidecars": [{"name": "proxy", "image": "y:1"}],
		}},
	}
	msgs := resources.deny_missing_limits with input as server
	count(msgs) == 2
	some msg in msgs
	startswith(msg, "spec.deployment.sidecars[0] (container proxy)")
}

test_other_workloads_are_not_judged if {
	web := json.patch(_mcp_deployment({}), [{
		"op": "replace",
		"path": "/spec/template/metadata/labels",
		"value": {"app.kubernetes.io/name": "web"},
	}])
	count(resources.deny_missing_limits) == 0 with input as web
}
