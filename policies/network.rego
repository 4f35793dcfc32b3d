# MCP servers are reachable only through the gateway: a NetworkPolicy with Ingress selects the
# server's pods, and every NetworkPolicy that selects them admits only the gateway's proxy pods
# (a podSelector on gateway.networking.k8s.io/gateway-name naming a rendered Gateway, or a name in
# the environment's data gateways: [...]). A server the environment's data lists under
# mcp.directAccess (name → why) is only warned about:
#
#   mcp:
#     directAccess:
#       everything: the reference server, called by kagent directly
package policies.network

import data.lib.k8s

_gateway_label := "gateway.networking.k8s.io/gateway-name"

_namespace := object.get(input.metadata, "namespace", "")

# NetworkPolicies of the input's namespace that restrict ingress to its pods
_selecting contains np if {
	k8s.is_mcp_server(input)
	labels := k8s.pod_labels(input)
	some np in k8s.namespaced(_namespace, "networking.k8s.io/v1", "NetworkPolicy")
	"Ingress" in object.get(np.spec, "policyTypes", ["Ingress"])
	k8s.selects(object.get(np.spec, "podSelector", {}), labels)
}

_gateways contains name if {
	some name, _ in k8s.namespaced(_namespace, "gateway.networking.k8s.io/v1", "Gateway")
}

_gateways contains name if some name in object.get(k8s.env_data, "gateways", [])

_exempt := object.get(k8s.env_data, ["mcp", "directAccess", input.metadata.name], null)

# what each selecting NetworkPolicy admits besides the gateway
_openings contains sprintf("NetworkPolicy %s: %s", [np.metadata.name, why]) if {
	some np in _selecting
	some i, rule in object.get(np.spec, "ingress", [])
	some why in _non_gateway(rule, i)
}

_non_gateway(rule, i) := {sprintf("ingress[%d] admits every source", [i])} if {
	count(object.get(rule, "from", [])) == 0
}

_non_gateway(rule, i) := {sprintf("ingress[%d].from[%d] admits %s", [i, j, _peer(peer)]) |
	some j, peer in rule.from
	not _is_gateway(peer)
} if {
	count(object.get(rule, "from", [])) > 0
}

_is_gateway(peer) if {
	not peer.ipBlock
	not peer.namespaceSelector
	peer.podSelector.matchLabels[_gateway_label] in _gateways
}

_peer(peer) := sprintf("addresses %s", [object.get(peer.ipBlock, "cidr", "?")]) if peer.ipBlock

_peer(peer) := sprintf("pods %v of namespaces %v", [_labels(peer.podSelector), _labels(peer.namespaceSelector)]) if {
	not peer.ipBlock
	peer.podSelector
	peer.namespaceSelector
}

_peer(peer) := sprintf("pods %v", [_labels(peer.podSelector)]) if {
	not peer.ipBlock
	not peer.namespaceSelector
	peer.podSelector
}

_peer(peer) := sprintf("every pod of namespaces %v", [_labels(peer.namespaceSelector)]) if {
	not peer.ipBlock
	not peer.podSelector
	peer.namespaceSelector
}

_labels(selector) := object.union(
	object.get(selector, "matchLabels", {}),
	{e.key: sprintf("%s %v", [e.operator, object.get(e, "values", [])]) | some e in object.get(selector, "matchExpressions", [])},
)

deny_mcp_not_isolated contains msg if {
	k8s.is_mcp_server(input)
	count(_selecting) == 0
	msg := "no NetworkPolicy restricts ingress to this MCP server's pods: every pod can call it; admit only the gateway"
}

deny_mcp_direct_access contains msg if {
	_exempt == null
	some opening in _openings
	msg := sprintf("%s: an MCP server is reached only through the gateway %v", [opening, sort([g | some g in _gateways])])
}

warn_mcp_direct_access contains msg if {
	_exempt != null
	some opening in _openings
	msg := sprintf("%s (allowed for %s: %s)", [opening, k8s.environment, _exempt])
}
