package policies.tools_test

import data.policies.tools

_agent(tools) := {
	"apiVersion": "kagent.dev/v1alpha2",
	"kind": "Agent",
	"metadata": {"name": "helpdesk", "namespace": "agents-dev"},
	"spec": {"type": "Declarative", "declarative": {"modelConfig": "m", "tools": tools}},
}

_mcp(kind, name, names) := {"type": "McpServer", "mcpServer": {"apiGroup": "kagent.dev", "kind": kind, "name": name, "toolNames": names}}

_grants := {"toolGrants": {
	"servers": {"RemoteMCPServer/everything": ["echo", "add"], "MCPServer/docs-mcp": ["*"]},
	"agents": ["research"],
}}

test_granted_tools_pass if {
	agent := _agent([
		_mcp("RemoteMCPServer", "everything", ["echo", "add"]),
		_mcp("MCPServer", "docs-mcp", ["search"]),
		{"type": "Agent", "agent": {"name": "research"}},
	])
	count(tools.deny_tool_grant) == 0 with input as agent
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
}

test_tool_outside_the_list_denied if {
	msgs := tools.deny_tool_grant with input as _agent([_mcp("RemoteMCPServer", "everything", ["echo", "printEnv"])])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
	count(msgs) == 1
	some msg in msgs
	contains(msg, `tool "printEnv" of RemoteMCPServer/everything is not in dev's allow-list`)
}

test_unknown_server_denied if {
	count(tools.deny_tool_grant) == 1 with input as _agent([_mcp("RemoteMCPServer", "shell", ["run"])])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
}

test_every_tool_needs_a_star if {
	all_tools := {"type": "McpServer", "mcpServer": {"kind": "RemoteMCPServer", "name": "everything"}}
	msgs := tools.deny_tool_grant with input as _agent([all_tools])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
	some msg in msgs
	contains(msg, "every tool of RemoteMCPServer/everything is granted")
	docs := {"type": "McpServer", "mcpServer": {"name": "docs-mcp"}} # kind defaults to MCPServer
	count(tools.deny_tool_grant) == 0 with input as _agent([docs])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
}

test_agent_as_tool_must_be_listed if {
	msgs := tools.deny_tool_grant with input as _agent([{"type": "Agent", "agent": {"name": "shell-agent"}}])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
	some msg in msgs
	contains(msg, `Agent "shell-agent" as a tool`)
}

test_another_namespace_is_a_different_grant if {
	tool := {"type": "McpServer", "mcpServer": {"kind": "RemoteMCPServer", "name": "everything", "namespace": "shared", "toolNames": ["echo"]}}
	msgs := tools.deny_tool_grant with input as _agent([tool])
		with data.reconciler.environment as "dev"
		with data.environments.dev as _grants
	some msg in msgs
	contains(msg, "RemoteMCPServer/shared/everything")
}

test_no_allow_list_denies_tools if {
	msgs := tools.deny_tool_grant with input as _agent([_mcp("RemoteMCPServer", "everything", ["echo"])])
		with data.reconciler.environment as "qa"
	some msg in msgs
	contains(msg, `environment "qa" has no tool allow-list`)
}

test_agent_without_tools_passes_anywhere if {
	count(tools.deny_tool_grant) == 0 with input as _agent([]) with data.reconciler.environment as "qa"
}

test_shipped_lists_admit_the_demo_rename if {
	tool := _mcp("RemoteMCPServer", "everything", ["echo", "get-sum"])
	count(tools.deny_tool_grant) == 0 with input as _agent([tool]) with data.reconciler.environment as "dev"
}
