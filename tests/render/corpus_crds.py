"""Fourth part of the parity corpus (written by make_corpus.py): ``crds:``, OpenAPI definitions of custom
resources whose ``x-kubernetes-*`` extensions add field specs (name references, labels, annotations, name
prefixes), read from YAML and from JSON files, in a base and through an overlay."""

from __future__ import annotations

#: OpenAPI definitions (YAML) of an AgentPolicy kind: a ConfigMap reference with the default name key, a
#: Secret reference under ``secretName``, a label selector, an annotation map and an identity field.
POLICY_DEFINITIONS = """\
example.test/agents/v1.AgentPolicy:
  Schema:
    properties:
      apiVersion:
        type: string
      kind:
        type: string
      metadata:
        $ref: k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta
      spec:
        $ref: example.test/agents/v1.AgentPolicySpec
  Dependencies:
  - example.test/agents/v1.AgentPolicySpec
example.test/agents/v1.AgentPolicySpec:
  Schema:
    properties:
      settingsRef:
        x-kubernetes-object-ref-api-version: v1
        x-kubernetes-object-ref-kind: ConfigMap
        $ref: example.test/agents/v1.Ref
      credentials:
        x-kubernetes-object-ref-api-version: v1
        x-kubernetes-object-ref-kind: Secret
        x-kubernetes-object-ref-name-key: secretName
      match:
        x-kubernetes-label-selector: ""
      notes:
        x-kubernetes-annotation: ""
      identity:
        x-kubernetes-identity: ""
      ignored:
        x-kubernetes-object-ref-kind: ConfigMap
example.test/agents/v1.Ref:
  Schema:
    properties:
      name:
        type: string
      nested:
        x-kubernetes-object-ref-api-version: v1
        x-kubernetes-object-ref-kind: Secret
"""

POLICY = """\
apiVersion: agents.example.test/v1
kind: AgentPolicy
metadata:
  name: policy
spec:
  settingsRef:
    name: settings
    nested:
      name: token
  credentials:
    secretName: token
  match:
    app: agent
  notes:
    reviewed: "yes"
  identity: policy
  ignored:
    name: settings
---
apiVersion: agents.example.test/v1
kind: OtherPolicy
metadata:
  name: other
spec:
  settingsRef:
    name: settings
"""

#: The same kind of definitions as JSON (the file starts with ``{``), for a Runner referring to a Service.
RUNNER_DEFINITIONS = """\
{
  "example.test/agents/v1.Runner": {
    "Schema": {
      "properties": {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"$ref": "k8s.io/apimachinery/pkg/apis/meta/v1.ObjectMeta"},
        "spec": {
          "properties": {
            "serviceRef": {
              "x-kubernetes-object-ref-api-version": "v1",
              "x-kubernetes-object-ref-kind": "Service"
            }
          }
        },
        "target": {
          "x-kubernetes-object-ref-api-version": "v1",
          "x-kubernetes-object-ref-kind": "Service"
        }
      }
    },
    "Dependencies": []
  }
}
"""

BASES: dict[str, dict[str, str]] = {
    "crds-runner": {
        "kustomization.yaml": "crds:\n- runner.json\nresources:\n- runner.yaml\nnamePrefix: base-\n",
        "runner.json": RUNNER_DEFINITIONS,
        "runner.yaml": """\
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  ports:
  - port: 80
---
apiVersion: agents.example.test/v1
kind: Runner
metadata:
  name: runner
target:
  name: api
spec:
  serviceRef:
    name: api
""",
    },
}

CASES: dict[str, dict[str, str]] = {
    "crds-name-references": {
        "kustomization.yaml": """\
crds:
- definitions.yaml
resources:
- policy.yaml
namePrefix: pre-
nameSuffix: -suf
commonLabels:
  tier: agents
commonAnnotations:
  owner: core
configMapGenerator:
- name: settings
  literals:
  - mode=strict
secretGenerator:
- name: token
  literals:
  - value=s3cret
""",
        "definitions.yaml": POLICY_DEFINITIONS,
        "policy.yaml": POLICY,
    },
    "crds-overlay": {
        "kustomization.yaml": """\
resources:
- ../_bases/crds-runner
nameSuffix: -prod
patches:
- patch: |-
    apiVersion: v1
    kind: Service
    metadata:
      name: base-api
    spec:
      ports:
      - port: 8080
""",
    },
}

ERRORS: dict[str, dict[str, str]] = {
    "crds-not-definitions": {
        "kustomization.yaml": "crds:\n- crd.yaml\nresources:\n- cm.yaml\n",
        "crd.yaml": "- not\n- a\n- mapping\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
    },
    "crds-empty-file": {  # kustomize panics on an empty file (it looks at its first byte)
        "kustomization.yaml": "crds:\n- crd.yaml\nresources:\n- cm.yaml\n",
        "crd.yaml": "",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n",
    },
}
