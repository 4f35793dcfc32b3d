# No plaintext Secret data in Git: a rendered Secret may carry data/stringData only as values
# SOPS-encrypted (ENC[...], as `sops --encrypt` writes them); its values are otherwise put in the
# cluster out of band (or by an operator such as External Secrets) and Git declares the Secret only.
# Empty values are allowed (they hold nothing).
package policies.secrets

deny_plaintext_secret contains msg if {
	input.kind == "Secret"
	some field in ["data", "stringData"]
	some key, value in object.get(input, field, {})
	value != ""
	not _sops(value)
	msg := sprintf(
		"%s.%s is plain text in Git: encrypt it with SOPS, or drop the value from Git and put it in the cluster out of band",
		[field, key],
	)
}

_sops(value) if regex.match(`^ENC\[[A-Z0-9_]+,data:`, value)
