package policies.network_test

import data.policies.network

_ns := "agents-dev"

_server := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "clock-mcp", "namespace": _ns},
	"spec": {"template": {
		"metadata": {"labels": {"app.kubernetes.io/name": "clock-mcp", "app.kubernetes.io/component": "mcp-server"}},
		"spec": {"containers": [{"name": "server", "image": "x:1"}]},
	}},
}

_gateway := {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway", "metadata": {"name": "agw", "namespace": _ns}}

_netpol(name, selector, ingress) := {
	"apiVersion": "networking.k8s.io/v1",
	"kind": "NetworkPolicy",
	"metadata": {"name": name, "namespace": _ns},
	"spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
}

_from_gateway := [{"from": [{"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "agw"}}}], "ports": [{"port": 3000}]}]

_inventory(objects) := {"namespace": {_ns: {api: {kind: {o.metadata.name: o |
	some o in objects
	o.apiVersion == api
	o.kind == kind
} |
	some x in objects
	api := x.apiVersion
	kind := x.kind
} |
	some y in objects
	api := y.apiVersion
}}}

_select_clock := {"matchLabels": {"app.kubernetes.io/name": "clock-mcp"}}

test_gateway_only_passes if {
	objects := [_server, _gateway, _netpol("deny", {}, []), _netpol("clock", _select_clock, _from_gateway)]
	count(network.deny_mcp_not_isolated) == 0 with input as _server with data.reconciler.inventory as _inventory(objects)
	count(network.deny_mcp_direct_access) == 0 with input as _server with data.reconciler.inventory as _inventory(objects)
}

test_no_network_policy_denied if {
	objects := [_server, _gateway]
	msgs := network.deny_mcp_not_isolated with input as _server with data.reconciler.inventory as _inventory(objects)
	count(msgs) == 1
}

test_policy_of_another_pod_does_not_isolate if {
	other := _netpol("web", {"matchLabels": {"app.kubernetes.io/name": "web"}}, _from_gateway)
	objects := [_server, _gateway, other]
	count(network.deny_mcp_not_isolated) == 1 with input as _server with data.reconciler.inventory as _inventory(objects)
}

test_match_expressions_select if {
	selector := {"matchExpressions": [{"key": "app.kubernetes.io/component", "operator": "In", "values": ["mcp-server"]}]}
	objects := [_server, _gateway, _netpol("mcp", selector, _from_gateway)]
	count(network.deny_mcp_not_isolated) == 0 with input as _server with data.reconciler.inventory as _inventory(objects)
}

test_other_peer_denied if {
	ingress := [{"from": [{"podSelector": {"matchLabels": {"app": "kagent"}}}]}]
	objects := [_server, _gateway, _netpol("clock", _select_clock, ingress)]
	msgs := network.deny_mcp_direct_access with input as _server with data.reconciler.inventory as _inventory(objects)
	msgs == {`NetworkPolicy clock: ingress[0].from[0] admits pods {"app": "kagent"}: an MCP server is reached only through the gateway ["agw"]`}
}

test_open_ingress_rule_denied if {
	objects := [_server, _gateway, _netpol("clock", _select_clock, [{"ports": [{"port": 3000}]}])]
	some msg in network.deny_mcp_direct_access with input as _server with data.reconciler.inventory as _inventory(objects)
	contains(msg, "ingress[0] admits every source")
}

test_ip_block_and_namespaces_denied if {
	ingress := [{"from": [{"ipBlock": {"cidr": "10.0.0.0/8"}}, {"namespaceSelector": {}}]}]
	objects := [_server, _gateway, _netpol("clock", _select_clock, ingress)]
	msgs := network.deny_mcp_direct_access with input as _server with data.reconciler.inventory as _inventory(objects)
	count(msgs) == 2
}

test_unknown_gateway_is_not_the_gateway if {
	ingress := [{"from": [{"podSelector": {"matchLabels": {"gateway.networking.k8s.io/gateway-name": "rogue"}}}]}]
	objects := [_server, _gateway, _netpol("clock", _select_clock, ingress)]
	count(network.deny_mcp_direct_access) == 1 with input as _server with data.reconciler.inventory as _inventory(objects)
	count(network.deny_mcp_direct_access) == 0 with input as _server with data.reconciler.inventory as _inventory(objects)
		with data.reconciler.environment as "dev"
		with data.environments.dev as {"gateways": ["rogue"]}
}

test_exempt_server_is_warned if {
	ingress := [{"from": [{"podSelector": {"matchLabels": {"app": "kagent"}}}]}]
	objects := [_server, _gateway, _netpol("clock", _select_clock, ingress)]
	env := {"mcp": {"directAccess": {"clock-mcp": "a test"}}}
	count(network.deny_mcp_direct_access) == 0 with input as _server with data.reconciler.inventory as _inventory(objects)
		with data.reconciler.environment as "dev"
		with data.environments.dev as env
	some msg in network.warn_mcp_direct_access with input as _server with data.reconciler.inventory as _inventory(objects)
		with data.reconciler.environment as "dev"
		with data.environments.dev as env
	contains(msg, "(allowed for dev: a test)")
}

test_kmcp_server_pods_by_name if {
	server := {"apiVersion": "kagent.dev/v1alpha1", "kind": "MCPServer", "metadata": {"name": "docs-mcp", "namespace": _ns}, "spec": {"deployment": {}}}
	policy := _netpol("docs", {"matchLabels": {"app.kubernetes.io/name": "docs-mcp"}}, _from_gateway)
	count(network.deny_mcp_not_isolated) == 0 with input as server with data.reconciler.inventory as _inventory([server, _gateway, policy])
	count(network.deny_mcp_not_isolated) == 1 with input as server with data.reconciler.inventory as _inventory([server, _gateway])
}

test_other_objects_are_not_judged if {
	count(network.deny_mcp_not_isolated) == 0 with input as _gateway with data.reconciler.inventory as _inventory([_gateway])
}
