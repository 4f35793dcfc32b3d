package policies.images_test

import data.policies.images

_deployment(image) := {
	"apiVersion": "apps/v1",
	"kind": "Deployment",
	"metadata": {"name": "web", "namespace": "agents-prod"},
	"spec": {"template": {"spec": {"containers": [{"name": "server", "image": image}]}}},
}

_pinned := "ghcr.io/acme/clock-mcp:0.1.0@sha256:4c5e8f2a9b1d3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"

test_latest_tag_denied if {
	msgs := images.deny_latest_tag with input as _deployment("ghcr.io/acme/clock-mcp:latest")
	count(msgs) == 1
	some msg in msgs
	contains(msg, "spec.template.spec.containers[0]")
	contains(msg, "latest")
}

test_no_tag_is_latest if {
	count(images.deny_latest_tag) == 1 with input as _deployment("ghcr.io/acme/clock-mcp")
}

test_registry_port_is_not_a_tag if {
	count(images.deny_latest_tag) == 1 with input as _deployment("registry.local:5000/clock-mcp")
	count(images.deny_latest_tag) == 0 with input as _deployment("registry.local:5000/clock-mcp:1.2.3")
}

test_version_tag_allowed if {
	count(images.deny_latest_tag) == 0 with input as _deployment("ghcr.io/acme/clock-mcp:0.1.0")
}

test_digest_without_tag_is_not_latest if {
	image := "ghcr.io/acme/clock-mcp@sha256:4c5e8f2a9b1d3e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e0f"
	count(images.deny_latest_tag) == 0 with input as _deployment(image)
}

test_byo_agent_image_checked if {
	agent := {
		"apiVersion": "kagent.dev/v1alpha2",
		"kind": "Agent",
		"metadata": {"name": "research", "namespace": "agents-dev"},
		"spec": {"type": "BYO", "byo": {"deployment": {"image": "ghcr.io/acme/research-agent:latest"}}},
	}
	some msg in images.deny_latest_tag with input as agent
	startswith(msg, "spec.byo.deployment:")
}

test_digest_required_where_the_environment_says_so if {
	msgs := images.deny_unpinned_image with input as _deployment("ghcr.io/acme/clock-mcp:0.1.0")
		with data.reconciler.environment as "prod"
		with data.environments.prod as {"images": {"requireDigest": true}}
	count(msgs) == 1
	some msg in msgs
	contains(msg, "not pinned by digest, which prod requires")
}

test_pinned_image_passes if {
	count(images.deny_unpinned_image) == 0 with input as _deployment(_pinned)
		with data.reconciler.environment as "prod"
		with data.environments.prod as {"images": {"requireDigest": true}}
}

test_tags_allowed_where_no_digest_is_required if {
	count(images.deny_unpinned_image) == 0 with input as _deployment("ghcr.io/acme/clock-mcp:0.1.1")
		with data.reconciler.environment as "dev"
		with data.environments.dev as {"images": {"requireDigest": false}}
	count(images.deny_unpinned_image) == 0 with input as _deployment("ghcr.io/acme/clock-mcp:0.1.1")
		with data.reconciler.environment as "test"
}

test_mcpserver_without_image_cannot_be_pinned if {
	server := {
		"apiVersion": "kagent.dev/v1alpha1",
		"kind": "MCPServer",
		"metadata": {"name": "clock", "namespace": "agents-prod"},
		"spec": {"deployment": {"cmd": "uvx", "args": ["mcp-server-time"]}},
	}
	msgs := images.deny_unpinned_image with input as server
		with data.reconciler.environment as "prod"
		with data.environments.prod as {"images": {"requireDigest": true}}
	some msg in msgs
	contains(msg, "ghcr.io/astral-sh/uv:debian")
}

test_init_containers_checked if {
	pod := {
		"apiVersion": "v1",
		"kind": "Pod",
		"metadata": {"name": "p", "namespace": "a"},
		"spec": {"initContainers": [{"name": "init", "image": "busybox"}], "containers": [{"name": "c", "image": "busybox:1.36"}]},
	}
	msgs := images.deny_latest_tag with input as pod
	count(msgs) == 1
	some msg in msgs
	startswith(msg, "spec.initContainers[0]")
}
