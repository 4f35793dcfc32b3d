# Images: never a moving ":latest" (or no tag at all, which means latest), and pinned by digest where
# the environment's data says so (policies/environments/<env>/data.yaml: images.requireDigest).
package policies.images

import data.lib.k8s

deny_latest_tag contains msg if {
	some c in k8s.containers(input)
	c.image != ""
	[_, tag, digest] := k8s.image_parts(c.image)
	tag == "latest"
	msg := sprintf("%s: image %q uses the moving tag latest; name a version", [c.path, c.image])
}

deny_latest_tag contains msg if {
	some c in k8s.containers(input)
	c.image != ""
	[_, "", ""] = k8s.image_parts(c.image)
	msg := sprintf("%s: image %q has no tag (that is latest); name a version", [c.path, c.image])
}

deny_unpinned_image contains msg if {
	k8s.env_data.images.requireDigest == true
	some c in k8s.containers(input)
	c.image != ""
	not k8s.is_pinned(c.image)
	msg := sprintf(
		"%s: image %q is not pinned by digest, which %s requires (promote it, or add digest: to the overlay's images: entry)",
		[c.path, c.image, k8s.environment],
	)
}

deny_unpinned_image contains msg if {
	k8s.env_data.images.requireDigest == true
	some c in k8s.containers(input)
	c.image == ""
	input.kind == "MCPServer"
	msg := sprintf("%s: no image (kmcp picks one), which %s cannot pin by digest", [c.path, k8s.environment])
}
