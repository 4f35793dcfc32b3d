# Model providers and models from an allow-list, where the environment's data has one
# (policies/environments/<env>/data.yaml):
#
#   models:
#     OpenAI: [gpt-4o-mini]         # provider (as ModelConfig spec.provider says it) → models
package policies.models

import data.lib.k8s

_allowed := k8s.env_data.models

deny_model contains msg if {
	input.kind == "ModelConfig"
	provider := object.get(input.spec, "provider", "OpenAI") # kagent's default provider
	not _allowed[provider]
	msg := sprintf(
		"provider %q is not allowed in %s (allowed: %v)",
		[provider, k8s.environment, sort(object.keys(_allowed))],
	)
}

deny_model contains msg if {
	input.kind == "ModelConfig"
	provider := object.get(input.spec, "provider", "OpenAI")
	models := _allowed[provider]
	model := object.get(input.spec, "model", "")
	not model in models
	msg := sprintf("model %q of %s is not allowed in %s (allowed: %v)", [model, provider, k8s.environment, models])
}
