package policies.secrets_test

import data.policies.secrets

_secret(field, values) := {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s", "namespace": "a"}, field: values}

test_plaintext_string_data_denied if {
	msgs := secrets.deny_plaintext_secret with input as _secret("stringData", {"OPENAI_API_KEY": "sk-123"})
	count(msgs) == 1
	some msg in msgs
	startswith(msg, "stringData.OPENAI_API_KEY is plain text in Git")
}

test_plaintext_data_denied if {
	count(secrets.deny_plaintext_secret) == 1 with input as _secret("data", {"token": "c2VjcmV0"})
}

test_sops_encrypted_values_pass if {
	enc := "ENC[AES256_GCM,data:Tr7o=,iv:1=,tag:2=,type:str]"
	count(secrets.deny_plaintext_secret) == 0 with input as _secret("stringData", {"k": enc})
	count(secrets.deny_plaintext_secret) == 0 with input as _secret("data", {"k": enc})
}

test_a_secret_without_values_passes if {
	count(secrets.deny_plaintext_secret) == 0 with input as {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}}
	count(secrets.deny_plaintext_secret) == 0 with input as _secret("stringData", {"k": ""})
}

test_other_kinds_are_not_judged if {
	count(secrets.deny_plaintext_secret) == 0 with input as {"kind": "ConfigMap", "data": {"k": "v"}}
}
