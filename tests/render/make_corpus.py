"""Write the kustomize parity corpus under tests/render/corpus/ (run once; the files are committed).

Each folder directly under corpus/ (except _bases and _components) is an overlay rendered by both this
renderer and the real kustomize binary; folders under corpus/errors/ must fail in both. The first cases are
defined here, the rest in corpus_extra.py (richer workloads, agent-platform kinds, more errors) and
corpus_vars.py (``vars:`` and building a Component directory), corpus_values.py (values through
patches, replacements and generators), corpus_crds.py (``crds:``), corpus_generators.py (builtin
``generators:``), corpus_buildmeta.py (``buildMetadata``) and corpus_parity.py (scalar text and
embedded documents, issue 24).

Usage: .venv/bin/python tests/render/make_corpus.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent / "corpus"

BASE_AGENTS = {
    "kustomization.yaml": """\
resources:
- workloads.yaml
- platform.yaml
- rbac.yaml
""",
    "workloads.yaml": """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: retriever
  labels:
    app: retriever
spec:
  replicas: 1
  selector:
    matchLabels:
      app: retriever
  template:
    metadata:
      labels:
        app: retriever
    spec:
      serviceAccountName: agent-runner
      initContainers:
      - name: warm
        image: registry.example.test/agents/warmup:1.0.0
      containers:
      - name: retriever
        image: registry.example.test/agents/retriever:2.4.0
        ports:
        - containerPort: 8080
          name: http
        env:
        - name: LOG_LEVEL
          value: info
        - name: TOP_K
          value: "8"
        envFrom:
        - configMapRef:
            name: retriever-settings
        volumeMounts:
        - name: settings
          mountPath: /etc/retriever
      volumes:
      - name: settings
        configMap:
          name: retriever-settings
      - name: creds
        secret:
          secretName: retriever-keys
---
apiVersion: v1
kind: Service
metadata:
  name: retriever
spec:
  selector:
    app: retriever
  ports:
  - port: 80
    targetPort: 8080
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: retriever-settings
data:
  INDEX: docs-v3
  NOTE: "yes"
  EMPTY: ""
  MULTI: |
    line one
    line two
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: compaction
spec:
  schedule: "30 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: compact
            image: registry.example.test/agents/compactor:0.9.1
            envFrom:
            - secretRef:
                name: retriever-keys
""",
    "platform.yaml": """\
apiVersion: kagent.dev/v1alpha2
kind: ModelConfig
metadata:
  name: gpt-mini
spec:
  provider: OpenAI
  model: gpt-4o-mini
  apiKeySecret: openai-key
  apiKeySecretKey: OPENAI_API_KEY
  openAI:
    temperature: "0.2"
    maxTokens: 2048
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: helpdesk
spec:
  type: Declarative
  description: Answers internal helpdesk questions using the docs search tool and a clock, politely.
  declarative:
    modelConfig: gpt-mini
    systemMessage: |-
      You are the helpdesk agent.
      Answer briefly.
    deployment:
      replicas: 2
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: triage-byo
spec:
  type: BYO
  byo:
    deployment:
      image: registry.example.test/triage-agent:1.4.0
      replicas: 1
---
apiVersion: kagent.dev/v1alpha2
kind: RemoteMCPServer
metadata:
  name: docs-search
spec:
  description: Docs search
  protocol: STREAMABLE_HTTP
  url: http://docs-search.tools:8080/mcp
  timeout: 30s
---
apiVersion: kagent.dev/v1alpha1
kind: MCPServer
metadata:
  name: search-v2
spec:
  transportType: http
  httpTransport:
    targetPort: 8000
    path: /mcp
  deployment:
    image: registry.example.test/search-mcp:2.0.0
    port: 8000
    env:
      INDEX_URL: http://search-index.agents:9200
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: clock-mcp
spec:
  parentRefs:
  - name: agw
    namespace: agentgateway-system
  hostnames:
  - clock.mcp.example.internal
  rules:
  - name: weighted
    backendRefs:
    - group: agentgateway.dev
      kind: AgentgatewayBackend
      name: clock-stable
      weight: 90
    - group: agentgateway.dev
      kind: AgentgatewayBackend
      name: clock-canary
      weight: 10
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: clock-stable
spec:
  mcp:
    targets:
    - name: clock
      static:
        host: clock-v1.agents.svc.cluster.local
        port: 3000
        protocol: StreamableHTTP
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata:
  name: clock-mcp-security
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: clock-mcp
""",
    "rbac.yaml": """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: agent-runner
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader-binding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
subjects:
- kind: ServiceAccount
  name: agent-runner
- kind: ServiceAccount
  name: default
""",
}

GATEWAY = """\
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata:
  name: agw
spec:
  gatewayClassName: agentgateway
  listeners:
  - name: http
    port: 8080
    protocol: HTTP
    allowedRoutes:
      namespaces:
        from: All
"""

AGENT_IMAGE_CONFIG = """\
images:
- path: spec/declarative/deployment/image
  group: kagent.dev
  kind: Agent
- path: spec/byo/deployment/image
  group: kagent.dev
  kind: Agent
- path: spec/deployment/image
  group: kagent.dev
  kind: MCPServer
"""

B = "resources:\n- ../_bases/agents\n"

CASES: dict[str, dict[str, str]] = {
    "base-plain": {"kustomization.yaml": B},
    "sort-fifo": {"kustomization.yaml": "sortOptions:\n  order: fifo\n" + B},
    "namespace": {"kustomization.yaml": "namespace: agents-prod\n" + B},
    "namespace-gateway": {
        "kustomization.yaml": "namespace: agentgateway-system\nresources:\n- gateway.yaml\n",
        "gateway.yaml": GATEWAY,
    },
    "name-prefix": {"kustomization.yaml": "namePrefix: prod-\n" + B},
    "name-suffix": {"kustomization.yaml": "nameSuffix: -v2\n" + B},
    "prefix-suffix-namespace": {
        "kustomization.yaml": "namePrefix: a-\nnameSuffix: -z\nnamespace: team\n" + B
    },
    "common-labels": {"kustomization.yaml": 'commonLabels:\n  team: agents\n  tier: "1"\n' + B},
    "labels-plain": {"kustomization.yaml": "labels:\n- pairs:\n    team: agents\n" + B},
    "labels-templates": {
        "kustomization.yaml": "labels:\n- pairs:\n    team: agents\n  includeTemplates: true\n" + B
    },
    "labels-selectors": {
        "kustomization.yaml": "labels:\n- pairs:\n    team: agents\n  includeSelectors: true\n" + B
    },
    "common-annotations": {
        "kustomization.yaml": "commonAnnotations:\n  owner: platform\n  note: 'true'\n" + B
    },
    "images-tag": {
        "kustomization.yaml": B + "images:\n- name: registry.example.test/agents/retriever\n"
        "  newTag: 2.5.0\n- name: registry.example.test/agents/warmup\n  newName: mirror.test/warmup\n"
    },
    "images-digest": {
        "kustomization.yaml": B + "images:\n- name: registry.example.test/agents/compactor\n"
        "  digest: sha256:2b8f3c1d9e0a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9012345678\n"
    },
    "images-agents": {
        "kustomization.yaml": B + "configurations:\n- images-config.yaml\n"
        "images:\n- name: registry.example.test/triage-agent\n  newTag: 1.5.0\n"
        "- name: registry.example.test/search-mcp\n  newName: mirror.test/search-mcp\n  newTag: 2.1.0\n",
        "images-config.yaml": AGENT_IMAGE_CONFIG,
    },
    "replicas": {"kustomization.yaml": B + "replicas:\n- name: retriever\n  count: 3\n"},
    "patch-smp-file": {
        "kustomization.yaml": B + "patches:\n- path: patch.yaml\n",
        "patch.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: retriever\n"
        "spec:\n  template:\n    spec:\n      containers:\n      - name: retriever\n"
        "        env:\n        - name: LOG_LEVEL\n          value: debug\n"
        "        - name: NEW_VAR\n          value: x\n      - name: sidecar\n"
        "        image: busybox:1.36\n",
    },
    "patch-smp-inline-target": {
        "kustomization.yaml": B + "patches:\n- target:\n    kind: Agent\n"
        "  patch: |-\n    apiVersion: kagent.dev/v1alpha2\n    kind: Agent\n"
        "    metadata:\n      name: any\n    spec:\n      description: patched\n"
    },
    "patch-smp-delete-replace": {
        "kustomization.yaml": B + "patchesStrategicMerge:\n- drop.yaml\n",
        "drop.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n"
        "  name: retriever\nspec:\n  template:\n    spec:\n      volumes:\n"
        "      - name: creds\n        $patch: delete\n      containers:\n"
        "      - name: retriever\n        env:\n        - name: MISSING\n"
        "          $patch: delete\n        ports:\n        - $patch: replace\n"
        "        - containerPort: 9090\n          name: alt\n",
    },
    "patch-delete-object": {
        "kustomization.yaml": B + "patches:\n- patch: |-\n    $patch: delete\n"
        "    apiVersion: batch/v1\n    kind: CronJob\n    metadata:\n      name: compaction\n"
    },
    "patch-json6902": {
        "kustomization.yaml": B + "patches:\n- target:\n    kind: Deployment\n    name: retriever\n"
        "  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 4\n"
        "    - op: add\n      path: /metadata/annotations\n      value:\n        a~b/c: d\n"
        "    - op: add\n      path: /metadata/annotations/x.io~1y\n      value: z\n"
        "    - op: remove\n      path: /spec/template/spec/initContainers\n"
    },
    "patch-json6902-legacy": {
        "kustomization.yaml": B + "patchesJson6902:\n- target:\n    group: apps\n"
        "    version: v1\n    kind: Deployment\n    name: retriever\n  path: ops.yaml\n",
        "ops.yaml": '- op: add\n  path: /spec/template/spec/containers/0/args\n  value: ["--verbose"]\n',
    },
    "patch-target-regex-labels": {
        "kustomization.yaml": B + "patches:\n- target:\n    name: clock-.*\n"
        "  patch: |-\n    - op: add\n      path: /metadata/labels\n"
        "      value: {matched: regex}\n- target:\n    labelSelector: app=retriever\n"
        "  patch: |-\n    - op: add\n      path: /metadata/annotations\n"
        "      value: {matched: label}\n"
    },
    "generators": {
        "kustomization.yaml": B + "configMapGenerator:\n- name: agent-config\n  literals:\n"
        "  - MODE=fast\n  - 'QUOTED=\"hello world\"'\n  files:\n  - prompt.txt\n  - custom=extra.txt\n"
        "  envs:\n  - vars.env\nsecretGenerator:\n- name: openai-key\n  literals:\n"
        "  - OPENAI_API_KEY=sk-test\n- name: retriever-keys\n  type: Opaque\n  files:\n  - token.txt\n",
        "prompt.txt": "You are helpful.\nBe brief.\n",
        "extra.txt": "x",
        "vars.env": "# comment\nA=1\n\nB=two words\n",
        "token.txt": "t0k3n",
    },
    "generator-merge": {
        "kustomization.yaml": "resources:\n- ../generators\nconfigMapGenerator:\n"
        "- name: agent-config\n  behavior: merge\n  literals:\n  - MODE=slow\n  - NEW=1\n"
    },
    "generator-options": {
        "kustomization.yaml": B + 'generatorOptions:\n  labels:\n    gen: "yes"\n'
        "  disableNameSuffixHash: true\nconfigMapGenerator:\n- name: plain\n  literals:\n"
        "  - K=V\n- name: hashed\n  options:\n    disableNameSuffixHash: false\n"
        "    annotations:\n      a: b\n  literals:\n  - K=V\n"
    },
    "generator-prefix-nameref": {
        "kustomization.yaml": "namePrefix: p-\nnamespace: ns1\n"
        + B
        + "configMapGenerator:\n- name: retriever-settings\n  behavior: replace\n"
        "  literals:\n  - INDEX=v4\n"
    },
    "nested-overlay": {
        "kustomization.yaml": "resources:\n- ../name-prefix\nnamespace: deep\ncommonLabels:\n  layer: two\n"
    },
    "components": {"kustomization.yaml": B + "components:\n- ../_components/debug\n"},
    "crb-default-subject": {
        "kustomization.yaml": "namespace: agents\nresources:\n- crb.yaml\n",
        "crb.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\n"
        "metadata:\n  name: x\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n"
        "  kind: ClusterRole\n  name: view\nsubjects:\n- kind: ServiceAccount\n"
        "  name: default\n  namespace: other\n",
    },
    "transformers-builtin": {
        "kustomization.yaml": B + "transformers:\n- suffix.yaml\n",
        "suffix.yaml": "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n"
        "  name: s\nprefix: pre-\nfieldSpecs:\n- path: metadata/name\n  kind: ConfigMap\n",
    },
    "replacements": {
        "kustomization.yaml": B + "replacements:\n- source:\n    kind: Service\n    name: retriever\n"
        "    fieldPath: spec.ports.0.port\n  targets:\n  - select:\n      kind: Deployment\n"
        "    fieldPaths:\n    - spec.template.spec.containers.[name=retriever].env.[name=TOP_K].value\n"
    },
    "scalars": {
        "kustomization.yaml": "resources:\n- cm.yaml\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: scalars\n"
        "  annotations:\n    long: " + " ".join(["word"] * 40) + "\n"
        "data:\n  a: 'on'\n  b: 'null'\n  c: '1.5'\n  d: '0x1F'\n  e: '2024-01-02'\n  f: '12:30'\n"
        "  g: '-'\n  h: ': colon'\n  i: '#hash'\n  j: 'trailing '\n  k: \"tab\\there\"\n"
        '  l: "caf\\u00e9"\n  m: "line\\n"\n  n: "two\\n\\n"\n  o: " lead\\nx"\n  p: \'~\'\n'
        "  q: 'a: b'\n  r: \"it's\"\n  s: '@at'\n  t: '1e3'\n  u: 'Yes'\n  v: '0777'\n  w: '08'\n"
        '  x: "' + "long double quoted value with escapes\\t " * 4 + '"\n'
        '  "10": ten\n  "9": nine\n  a10: x\n  a9: y\n  "y": yes-key\n'
        "  nested: |\n    indented\n      more\n",
    },
    "kinds-order": {
        "kustomization.yaml": "resources:\n- many.yaml\n",
        "many.yaml": "".join(
            f"---\napiVersion: {av}\nkind: {k}\nmetadata:\n  name: {n}\n"
            for av, k, n in [
                ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration", "vw"),
                ("apps/v1", "Deployment", "b"),
                ("apps/v1", "Deployment", "a"),
                ("v1", "Namespace", "z"),
                ("v1", "Service", "s"),
                ("kagent.dev/v1alpha2", "Agent", "ag"),
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "c.example.test"),
                ("gateway.networking.k8s.io/v1", "Gateway", "g"),
                ("v1", "ConfigMap", "cm"),
                ("policy/v1", "PodDisruptionBudget", "p"),
                ("v1", "Secret", "sec"),
                ("agentgateway.dev/v1alpha1", "AgentgatewayPolicy", "pol"),
            ]
        ),
    },
}

COMPONENT = {
    "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
    "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n"
    '      path: /spec/template/metadata/annotations\n      value: {debug: "true"}\n'
    "configMapGenerator:\n- name: debug-flags\n  literals:\n  - DEBUG=1\n"
}

ERRORS: dict[str, dict[str, str]] = {
    "missing-resource": {"kustomization.yaml": "resources:\n- nope.yaml\n"},
    "cycle-a": {"kustomization.yaml": "resources:\n- ../cycle-b\n"},
    "cycle-b": {"kustomization.yaml": "resources:\n- ../cycle-a\n"},
    "bad-yaml": {
        "kustomization.yaml": "resources:\n- bad.yaml\n",
        "bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  bad: [unclosed\n",
    },
    "patch-no-target": {
        "kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- patch: |-\n"
        "    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: other\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    },
    "json-patch-missing-path": {
        "kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- target:\n"
        "    kind: ConfigMap\n  patch: |-\n    - op: replace\n      path: /data/nope\n"
        "      value: x\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    },
    "duplicate-resource": {
        "kustomization.yaml": "resources:\n- cm.yaml\n- cm2.yaml\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
        "cm2.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    },
    "outside-root": {"kustomization.yaml": "resources:\n- ../../../../make_corpus.py\n"},
}


def write(base: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        target = base / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def main() -> int:
    import corpus_buildmeta as buildmeta
    import corpus_crds
    import corpus_extra as extra
    import corpus_generators as gens
    import corpus_parity as parity
    import corpus_values as values
    import corpus_vars

    write(HERE / "_bases" / "agents", BASE_AGENTS)
    write(HERE / "_bases" / "workloads", extra.BASE_WORKLOADS)
    write(HERE / "_bases" / "platform", extra.BASE_PLATFORM)
    for name, files in {**values.BASES, **corpus_crds.BASES, **gens.BASES, **buildmeta.BASES}.items():
        write(HERE / "_bases" / name, files)
    write(HERE / "_components" / "debug", COMPONENT)
    for name, files in corpus_vars.BASES.items():
        write(HERE / "_bases" / name, files)
    for name, files in {**extra.COMPONENTS, **corpus_vars.COMPONENTS, **values.COMPONENTS}.items():
        write(HERE / "_components" / name, files)
    for name, files in {
        **CASES,
        **extra.CASES,
        **corpus_vars.CASES,
        **values.CASES,
        **corpus_crds.CASES,
        **gens.CASES,
        **buildmeta.CASES,
        **parity.CASES,
    }.items():
        write(HERE / name, files)
    for name, files in {
        **ERRORS,
        **extra.ERRORS,
        **corpus_vars.ERRORS,
        **values.ERRORS,
        **corpus_crds.ERRORS,
        **gens.ERRORS,
        **parity.ERRORS,
    }.items():
        write(HERE / "errors" / name, files)
    return 0


if __name__ == "__main__":
    sys.exit(main())
