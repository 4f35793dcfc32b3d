# An Agent's tool grants come from its environment's allow-list
# (policies/environments/<env>/data.yaml, toolGrants):
#
#   toolGrants:
#     servers:                      # "Kind/name" (or "Kind/namespace/name" across namespaces) → tools
#       RemoteMCPServer/platform-tools: [clock_get_current_time]
#       MCPServer/docs-mcp: ["*"]   # "*": every tool, also an entry without toolNames
#     agents: [research]            # Agents that may be used as tools (type: Agent)
package policies.tools

import data.lib.k8s

_grants := object.get(k8s.env_data, "toolGrants", null)

_tools := object.get(input.spec, ["declarative", "tools"], []) if input.kind == "Agent"

deny_tool_grant contains msg if {
	input.kind == "Agent"
	count(_tools) > 0
	_grants == null
	msg := sprintf(
		"the Agent uses tools, and environment %q has no tool allow-list (toolGrants in policies/environments/%s/)",
		[k8s.environment, k8s.environment],
	)
}

deny_tool_grant contains msg if {
	input.kind == "Agent"
	_grants != null
	some i, tool in _tools
	server := tool.mcpServer
	key := _server_key(server)
	allowed := object.get(_grants, ["servers", key], [])
	not "*" in allowed
	some name in _names(server)
	not name in allowed
	msg := sprintf(
		"spec.declarative.tools[%d]: tool %q of %s is not in %s's allow-list (toolGrants.servers[%q]: %v)",
		[i, name, key, k8s.environment, key, allowed],
	)
}

deny_tool_grant contains msg if {
	input.kind == "Agent"
	_grants != null
	some i, tool in _tools
	server := tool.mcpServer
	key := _server_key(server)
	allowed := object.get(_grants, ["servers", key], [])
	not "*" in allowed
	count(object.get(server, "toolNames", [])) == 0
	msg := sprintf(
		"spec.declarative.tools[%d]: every tool of %s is granted (no toolNames), and %s's allow-list does not say \"*\" for it",
		[i, key, k8s.environment],
	)
}

deny_tool_grant contains msg if {
	input.kind == "Agent"
	_grants != null
	some i, tool in _tools
	agent := tool.agent.name
	not agent in object.get(_grants, "agents", [])
	msg := sprintf(
		"spec.declarative.tools[%d]: Agent %q as a tool is not in %s's allow-list (toolGrants.agents)",
		[i, agent, k8s.environment],
	)
}

_names(server) := object.get(server, "toolNames", [])

# kagent's default kind is MCPServer; a reference into another namespace names it
_server_key(server) := sprintf("%s/%s/%s", [_kind(server), server.namespace, server.name]) if {
	object.get(server, "namespace", "") != ""
	server.namespace != object.get(input.metadata, "namespace", "")
}

_server_key(server) := sprintf("%s/%s", [_kind(server), server.name]) if {
	object.get(server, "namespace", "") in {"", object.get(input.metadata, "namespace", "")}
}

_kind(server) := k if {
	k := object.get(server, "kind", "")
	k != ""
}

_kind(server) := "MCPServer" if object.get(server, "kind", "") == ""
