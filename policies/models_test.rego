package policies.models_test

import data.policies.models

_model(spec) := {"apiVersion": "kagent.dev/v1alpha2", "kind": "ModelConfig", "metadata": {"name": "m"}, "spec": spec}

_prod := {"models": {"OpenAI": ["gpt-4o-mini"], "Anthropic": ["claude-sonnet-4"]}}

test_allowed_model_passes if {
	count(models.deny_model) == 0 with input as _model({"provider": "OpenAI", "model": "gpt-4o-mini"})
		with data.reconciler.environment as "prod"
		with data.environments.prod as _prod
}

test_model_not_in_the_list_denied if {
	msgs := models.deny_model with input as _model({"provider": "OpenAI", "model": "gpt-5"})
		with data.reconciler.environment as "prod"
		with data.environments.prod as _prod
	msgs == {`model "gpt-5" of OpenAI is not allowed in prod (allowed: ["gpt-4o-mini"])`}
}

test_provider_not_in_the_list_denied if {
	msgs := models.deny_model with input as _model({"provider": "Ollama", "model": "llama3"})
		with data.reconciler.environment as "prod"
		with data.environments.prod as _prod
	msgs == {`provider "Ollama" is not allowed in prod (allowed: ["Anthropic", "OpenAI"])`}
}

test_default_provider_is_openai if {
	count(models.deny_model) == 0 with input as _model({"model": "gpt-4o-mini"})
		with data.reconciler.environment as "prod"
		with data.environments.prod as _prod
}

test_no_list_no_restriction if {
	count(models.deny_model) == 0 with input as _model({"provider": "Ollama", "model": "llama3"})
		with data.reconciler.environment as "dev"
		with data.environments.dev as {}
}

test_the_shipped_prod_list_admits_the_example if {
	count(models.deny_model) == 0 with input as _model({"provider": "OpenAI", "model": "gpt-4o-mini"})
		with data.reconciler.environment as "prod"
}
