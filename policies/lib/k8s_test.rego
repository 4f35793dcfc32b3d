package lib.k8s_test

import data.lib.k8s

test_image_parts if {
	k8s.image_parts("nginx") == ["nginx", "", ""]
	k8s.image_parts("nginx:1.27") == ["nginx", "1.27", ""]
	k8s.image_parts("registry.local:5000/team/app") == ["registry.local:5000/team/app", "", ""]
	k8s.image_parts("registry.local:5000/team/app:2.0") == ["registry.local:5000/team/app", "2.0", ""]
	k8s.image_parts("ghcr.io/a/b:1.0@sha256:abc") == ["ghcr.io/a/b", "1.0", "sha256:abc"]
	k8s.image_parts("ghcr.io/a/b@sha256:abc") == ["ghcr.io/a/b", "", "sha256:abc"]
}

test_selects if {
	labels := {"app": "web", "tier": "front"}
	k8s.selects({}, labels)
	k8s.selects({"matchLabels": {"app": "web"}}, labels)
	not k8s.selects({"matchLabels": {"app": "api"}}, labels)
	k8s.selects({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["front", "back"]}]}, labels)
	not k8s.selects({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["front"]}]}, labels)
	k8s.selects({"matchExpressions": [{"key": "app", "operator": "Exists"}]}, labels)
	k8s.selects({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
	not k8s.selects({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)
}

test_containers_of_every_kind if {
	cron := {"kind": "CronJob", "metadata": {"name": "c"}, "spec": {"jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "x", "image": "x:1"}]}}}}}}
	[c] := k8s.containers(cron)
	c.path == "spec.jobTemplate.spec.template.spec.containers[0]"
	agent := {"kind": "Agent", "metadata": {"name": "a"}, "spec": {"declarative": {"deployment": {"extraContainers": [{"name": "side", "image": "s:1"}]}}}}
	{c.path | some c in k8s.containers(agent)} == {"spec.declarative.deployment", "spec.declarative.deployment.extraContainers[0]"}
	count(k8s.containers({"kind": "ConfigMap", "metadata": {"name": "c"}})) == 0
}

test_ref if {
	k8s.ref({"kind": "Deployment", "metadata": {"name": "web", "namespace": "ns"}}) == "Deployment/ns/web"
	k8s.ref({"kind": "Namespace", "metadata": {"name": "ns"}}) == "Namespace/ns"
}
