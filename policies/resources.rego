# CPU and memory limits on every container of an agent or an MCP server: kagent Agents
# (spec.declarative.deployment / spec.byo.deployment resources), kmcp MCPServers (spec.deployment) and
# workloads whose pods are labelled app.kubernetes.io/component: agent or mcp-server.
package policies.resources

import data.lib.k8s

deny_missing_limits contains msg if {
	_agent_or_mcp(input)
	some c in k8s.containers(input)
	some resource in ["cpu", "memory"]
	not c.resources.limits[resource]
	msg := sprintf("%s: no %s limit (resources.limits.%s)", [_where(c), resource, resource])
}

_agent_or_mcp(obj) if k8s.is_agent(obj)

_agent_or_mcp(obj) if k8s.is_mcp_server(obj)

_where(c) := sprintf("%s (container %s)", [c.path, c.name]) if c.name != ""

_where(c) := c.path if c.name == ""
