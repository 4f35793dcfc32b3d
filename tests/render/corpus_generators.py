"""Fourth part of the parity corpus (written by make_corpus.py): ``generators:`` with kustomize's builtin
ConfigMapGenerator and SecretGenerator configurations, from a file, inline, and from a kustomization
directory, merging into generated objects; a generator that is no builtin is refused by both."""

from __future__ import annotations

#: A kustomization directory whose output is generator configurations (its namePrefix renames them).
BASES: dict[str, dict[str, str]] = {
    "gen-configs": {
        "kustomization.yaml": "namePrefix: cfg-\nresources:\n- generators.yaml\n",
        "generators.yaml": """\
apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: tuning
literals:
- TOP_K=8
- TEMPERATURE="0.2"
---
apiVersion: builtin
kind: SecretGenerator
metadata:
  name: creds
  namespace: agents
type: kubernetes.io/basic-auth
literals:
- username=agent
- password=hunter2
""",
    },
    "gen-generated": {
        "kustomization.yaml": """\
configMapGenerator:
- name: settings
  literals:
  - LOG_LEVEL=info
  - MODE=fast
resources:
- deploy.yaml
""",
        "deploy.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: retriever
spec:
  selector:
    matchLabels:
      app: retriever
  template:
    metadata:
      labels:
        app: retriever
    spec:
      containers:
      - name: retriever
        image: registry.example.test/agents/retriever:2.4.0
        envFrom:
        - configMapRef:
            name: settings
""",
    },
}

CASES: dict[str, dict[str, str]] = {
    "gen-builtin-file": {
        "kustomization.yaml": """\
namePrefix: app-
generatorOptions:
  labels:
    from-options: "yes"
generators:
- generators.yaml
resources:
- deploy.yaml
""",
        "generators.yaml": """\
apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: prompts
  namespace: ignored-by-name
name: prompts
files:
- system.txt
- greeting=hello.txt
options:
  labels:
    kind: prompts
  annotations:
    note: from-file
---
apiVersion: builtin
kind: SecretGenerator
metadata:
  name: token-config
name: token
envs:
- token.env
options:
  disableNameSuffixHash: true
""",
        "system.txt": "You are a careful agent.\nAnswer briefly.\n",
        "hello.txt": "hi there",
        "token.env": "# a comment\nTOKEN=abc123\nEMPTY\n",
        "deploy.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: planner
spec:
  selector:
    matchLabels:
      app: planner
  template:
    metadata:
      labels:
        app: planner
    spec:
      containers:
      - name: planner
        image: registry.example.test/agents/planner:1.0.0
        envFrom:
        - secretRef:
            name: token
      volumes:
      - name: prompts
        configMap:
          name: prompts
""",
    },
    "gen-builtin-inline-merge": {
        "kustomization.yaml": """\
resources:
- ../_bases/gen-generated
generators:
- |-
  apiVersion: builtin
  kind: ConfigMapGenerator
  metadata:
    name: settings
  behavior: merge
  literals:
  - MODE=thorough
  - EXTRA=1
- |-
  apiVersion: builtin
  kind: ConfigMapGenerator
  metadata:
    name: flags
  literals:
  - NEW_UI=true
  options:
    immutable: true
""",
    },
    "gen-builtin-directory": {
        "kustomization.yaml": """\
namespace: agents
generators:
- ../_bases/gen-configs
""",
    },
}

ERRORS: dict[str, dict[str, str]] = {
    "gen-config-without-name": {
        "kustomization.yaml": "generators:\n- gen.yaml\n",
        "gen.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nname: x\nliterals:\n- A=1\n",
    },
    "gen-plugin-refused": {
        "kustomization.yaml": "generators:\n- plugin.yaml\n",
        "plugin.yaml": "apiVersion: example.test/v1\nkind: PromptGenerator\nmetadata:\n  name: p\n",
    },
}
