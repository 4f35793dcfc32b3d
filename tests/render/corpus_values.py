"""Third part of the parity corpus (written by make_corpus.py): how values pass through patches, replacements
and generators: nulls a strategic-merge patch keeps or drops, ``$patch`` directives, patch files whose last
block scalar keeps its line breaks, folded block scalars, replacement sources that are empty strings or other
falsy scalars, and generator ``behavior`` values. ``MESSAGES`` names, for some error cases, the words both
kustomize and this renderer must say (checked by test_render_values.py)."""

from __future__ import annotations

#: A ConfigMap whose fields hold nulls written in every way kyaml tells apart.
NULLS_CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: nulls
  annotations:
    empty:
    word: null
    tilde: ~
    title: Null
    tagged: !!null ""
    float: 1.50
    hex: 0x1F
    flag: True
    quoted: "1.50"
  labels:
    team: core
data:
  d1:
  d2: null
  d3: ~
  emptymap: {}
  emptylist: []
  nested:
    inner:
    inner2: null
    deeper:
      x:
      y: ~
  list:
  - a:
    b: null
  - c: ~
"""

#: A Deployment with empty and spelled nulls inside merged lists (containers, env, ports, volumes).
NULLS_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  creationTimestamp: null
  labels:
    app: web
  annotations:
spec:
  replicas: 1
  strategy: {}
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      creationTimestamp:
      labels:
        app: web
    spec:
      volumes:
      - name: cache
        emptyDir: {}
      - name: config
        configMap:
          name: web-config
          items:
      containers:
      - name: web
        image: registry.example.test/web:1.0.0
        args:
        resources: {}
        env:
        - name: MODE
          value: "1"
        - name: FROM
          valueFrom:
        ports:
        - containerPort: 80
          protocol: TCP
        - containerPort: 81
      - name: sidecar
        image: registry.example.test/sidecar:1.0.0
        command: ~
      tolerations:
      - key: dedicated
        operator: Exists
      nodeSelector:
status: {}
"""

SMP_HEAD = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n"


def _inline(text: str, indent: str = "    ") -> str:
    return "".join(indent + line if line.strip() else line for line in text.splitlines(keepends=True))


def _patch_entry(body: str) -> str:
    return "- patch: |-\n" + _inline(SMP_HEAD + body)


#: Block scalars in a patch: the value of key ``s`` of ConfigMap ``cm-N`` in each style.
_BLOCK_BODY = "    line one\n      more indented\n\n    last\n"
_BLOCK_STYLES = ["|", "|-", "|+", ">", ">-", ">+", "|2"]


def _block_patch(n: int, style: str, trail: str) -> str:
    return (
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{n}\ndata:\n  s: {style}\n"
        + _BLOCK_BODY
        + trail
    )


def _block_cases() -> dict[str, dict[str, str]]:
    cms = "".join(
        f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{n}\ndata:\n  a: x\n"
        for n in range(len(_BLOCK_STYLES) * 3)
    )
    files: dict[str, str] = {"cms.yaml": cms}
    inline: dict[str, str] = {"cms.yaml": cms}
    file_entries = []
    inline_entries = []
    psm_files = {"cms.yaml": cms}
    psm_entries = []
    n = 0
    for style in _BLOCK_STYLES:
        for trail in ("", "\n", "\n\n"):
            text = _block_patch(n, style, trail)
            files[f"p{n}.yaml"] = text
            psm_files[f"p{n}.yaml"] = text
            file_entries.append(f"- path: p{n}.yaml\n")
            psm_entries.append(f"- p{n}.yaml\n")
            inline_entries.append("- patch: |+\n" + _inline(text))
            n += 1
    files["kustomization.yaml"] = "resources:\n- cms.yaml\npatches:\n" + "".join(file_entries)
    inline["kustomization.yaml"] = "resources:\n- cms.yaml\npatches:\n" + "".join(inline_entries)
    psm_files["kustomization.yaml"] = "resources:\n- cms.yaml\npatchesStrategicMerge:\n" + "".join(
        psm_entries
    )
    return {
        "values-patch-file-block-scalars": files,
        "values-patch-inline-block-scalars": inline,
        "values-psm-file-block-scalars": psm_files,
    }


FOLDED = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: folded
  annotations:
    note: >
      line one
        more indented
      back
  labels:
    tier: >-
      a
       b
data:
  s: >
    line one
      indented
    back

    last
  t: >
    a
     b
     c
    d
  w: >
    a

      b

    c
  lead: >2
     lead
    x
    y

    z
  keep: >+
    a
      b

  plain: >
    folded into
    one line
"""

REPL_SOURCES = """\
apiVersion: example.test/v1
kind: Settings
metadata:
  name: source
spec:
  empty: ""
  zero: 0
  off: false
  name: ""
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: target
  annotations:
    a: x
data:
  s: abc
  z: "7"
---
apiVersion: example.test/v1
kind: Widget
metadata:
  name: widget
spec:
  text: abc
  count: 3
  enabled: true
  ratio: 2.5
  nothing: null
  map:
    a: b
  list:
  - x
"""


def _replacement(source: str, targets: list[tuple[str, str, bool]]) -> str:
    out = "- " + source.replace("\n", "\n  ").rstrip(" ") + "  targets:\n"
    for kind, path, create in targets:
        out += f"  - select:\n      kind: {kind}\n    fieldPaths:\n    - {path}\n"
        if create:
            out += "    options:\n      create: true\n"
    return out


def _field_source(path: str) -> str:
    return f"source:\n  kind: Settings\n  fieldPath: {path}\n"


REPL_FALSY = (
    "resources:\n- sources.yaml\nreplacements:\n"
    + _replacement(
        _field_source("spec.empty"),
        [
            ("Widget", "spec.text", False),
            ("Widget", "spec.nothing", False),
            ("Widget", "spec.map", False),
            ("Widget", "spec.list", False),
            ("Widget", "spec.created", True),
            ("ConfigMap", "data.s", False),
            ("ConfigMap", "metadata.annotations.a", False),
        ],
    )
    + _replacement(
        _field_source("spec.zero"), [("ConfigMap", "data.z", False), ("Widget", "spec.count", False)]
    )
    + _replacement(
        _field_source("spec.off"), [("ConfigMap", "data.off", True), ("Widget", "spec.enabled", False)]
    )
    + _replacement(_field_source("spec.zero"), [("Widget", "spec.ratio", False)])
)

REPL_SOURCE_VALUES = (
    "resources:\n- sources.yaml\nreplacements:\n"
    + _replacement('sourceValue: ""\n', [("Widget", "spec.map", False), ("Widget", "spec.text", False)])
    + _replacement('sourceValue: "0"\n', [("Widget", "spec.list", False), ("ConfigMap", "data.s", False)])
    + _replacement(
        'sourceValue: "false"\n', [("Widget", "spec.made", True), ("Widget", "spec.enabled", False)]
    )
    + _replacement("sourceValue: '~'\n", [("Widget", "spec.nothing", False), ("ConfigMap", "data.t", True)])
    + _replacement("sourceValue: ''\n", [("ConfigMap", "metadata.annotations.a", False)])
)

GEN_BASE = {
    "kustomization.yaml": "resources:\n- objects.yaml\n",
    "objects.yaml": """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
  labels:
    from: base
  annotations:
    note: base
data:
  A: "1"
  KEEP: kept
binaryData:
  BIN: aGVsbG8=
---
apiVersion: v1
kind: Secret
metadata:
  name: app-tls
type: kubernetes.io/tls
data:
  tls.crt: Y3J0
  tls.key: a2V5
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  template:
    spec:
      containers:
      - name: app
        image: registry.example.test/app:1.0.0
        envFrom:
        - configMapRef:
            name: app-config
        - secretRef:
            name: app-tls
""",
}

GEN_COMPONENT = {
    "kustomization.yaml": """\
apiVersion: kustomize.config.k8s.io/v1alpha1
kind: Component
configMapGenerator:
- name: app-config
  behavior: merge
  literals:
  - FROM_COMPONENT=1
- name: component-only
  behavior: Create
  literals:
  - X=1
secretGenerator:
- name: app-tls
  behavior: replace
  type: kubernetes.io/tls
  literals:
  - tls.crt=component-crt
  - tls.key=component-key
"""
}

#: Strings go-yaml v2 writes in unusual ways: keys over 128 bytes or holding line breaks (written after
#: ``? ``), values starting with a byte order mark (every character escaped), U+2028/U+2029 kept raw in
#: single-quoted and literal text, and U+0085 folded by the JSON round trip.
ODD_STRINGS = (
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: odd-strings\ndata:\n"
    f"  {'k' * 128}: fits\n"
    f"  {'k' * 129}: long\n"
    f"  {'é' * 65}: wide\n"
    f"  {'m' * 130}: |\n    multi\n    line\n"
    '  "a\\rb": cr-key\n'
    '  "a\\Lb": ls-key\n'
    '  bom: "\\uFEFFtext with space"\n'
    '  bom-late: "text\\uFEFF"\n'
    '  ls: "a\\Lb"\n'
    '  ps: "a\\P"\n'
    '  lit: "a\\nb\\Lc\\n"\n'
    '  nel: "a\\Nb"\n'
    '  nel2: "x\\N\\Ny"\n'
    "  nested:\n"
    f"    {'n' * 130}:\n    - x\n    - y\n"
    f"    {'o' * 130}:\n      z: 1\n"
    f"    {'p' * 130}: {{}}\n"
)

BASES: dict[str, dict[str, str]] = {"values-generated": GEN_BASE}
COMPONENTS: dict[str, dict[str, str]] = {"values-generators": GEN_COMPONENT}

CASES: dict[str, dict[str, str]] = {
    "values-smp-target-nulls": {
        "kustomization.yaml": "resources:\n- nulls.yaml\npatches:\n- patch: |-\n    apiVersion: v1\n"
        "    kind: ConfigMap\n    metadata:\n      name: nulls\n    data:\n      touched: x\n",
        "nulls.yaml": NULLS_CM,
    },
    "values-json-patch-target-nulls": {
        "kustomization.yaml": "resources:\n- nulls.yaml\npatches:\n- target:\n    kind: ConfigMap\n"
        "  patch: |-\n    - op: add\n      path: /data/touched\n      value: x\n",
        "nulls.yaml": NULLS_CM,
    },
    "values-transformers-keep-nulls": {
        "kustomization.yaml": "resources:\n- nulls.yaml\n- deployment.yaml\nnamespace: team\n"
        "commonLabels:\n  part-of: values\ncommonAnnotations:\n  owner: core\nimages:\n"
        "- name: registry.example.test/web\n  newTag: 2.0.0\nreplicas:\n- name: web\n  count: 2\n",
        "nulls.yaml": NULLS_CM,
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    "values-smp-list-nulls": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry(
            "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: null\n"
            "        env:\n        - name: MODE\n          value: null\n        - name: EXTRA\n"
            "          value: ~\n        ports:\n        - containerPort: 81\n          name: metrics\n"
        ),
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    "values-smp-directives": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry("spec:\n  strategy:\n    $retainKeys:\n    - type\n    type: Recreate\n")
        + _patch_entry(
            "spec:\n  template:\n    spec:\n      $setElementOrder/containers:\n      - name: sidecar\n"
            "      - name: web\n      containers:\n      - name: sidecar\n"
            "        image: registry.example.test/sidecar:2.0.0\n"
        )
        + _patch_entry(
            "spec:\n  template:\n    spec:\n      containers:\n      - name: web\n"
            "        $deleteFromPrimitiveList/args:\n        - x\n"
        )
        + _patch_entry(
            "spec:\n  template:\n    spec:\n      volumes:\n      - name: config\n        configMap:\n"
            "          items:\n          - key: a\n            path: b\n      - name: cache\n"
            "        $patch: delete\n"
        )
        + _patch_entry("status:\n  $patch: delete\n")
        + _patch_entry(
            "spec:\n  template:\n    metadata:\n      $patch: replace\n      labels:\n        app: web\n"
        ),
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    **_block_cases(),
    "values-folded-scalars": {
        "kustomization.yaml": "resources:\n- folded.yaml\npatches:\n- patch: |-\n    apiVersion: v1\n"
        "    kind: ConfigMap\n    metadata:\n      name: folded\n    data:\n      patched: >\n"
        "        top\n          inner\n        end\n",
        "folded.yaml": FOLDED,
    },
    "values-replacement-falsy-sources": {"kustomization.yaml": REPL_FALSY, "sources.yaml": REPL_SOURCES},
    "values-replacement-source-values": {
        "kustomization.yaml": REPL_SOURCE_VALUES,
        "sources.yaml": REPL_SOURCES,
    },
    "values-generator-behaviors": {
        "kustomization.yaml": "resources:\n- ../_bases/values-generated\nconfigMapGenerator:\n"
        "- name: app-config\n  behavior: merge\n  literals:\n  - A=9\n  - C=3\n  options:\n    labels:\n"
        "      from: overlay\n    annotations:\n      extra: overlay\n- name: fresh-upper\n"
        "  behavior: Merge\n  literals:\n  - K=1\n- name: fresh-empty\n  behavior: ''\n  literals:\n  - K=1\n"
        "- name: fresh-unknown\n  behavior: upsert\n  literals:\n  - K=1\n"
        "secretGenerator:\n- name: app-tls\n  behavior: merge\n  literals:\n  - extra=1\n"
        "- name: fresh-secret\n  behavior: CREATE\n  literals:\n  - K=1\n",
    },
    "values-generator-replace": {
        "kustomization.yaml": "resources:\n- ../_bases/values-generated\nconfigMapGenerator:\n"
        "- name: app-config\n  behavior: replace\n  literals:\n  - ONLY=1\nsecretGenerator:\n"
        "- name: app-tls\n  behavior: replace\n  type: Opaque\n  options:\n    disableNameSuffixHash: true\n"
        "  literals:\n  - token=t\n",
    },
    "values-generator-component": {
        "kustomization.yaml": "resources:\n- ../_bases/values-generated\ncomponents:\n"
        "- ../_components/values-generators\n",
    },
    "values-smp-root-replace": {
        "kustomization.yaml": "resources:\n- cms.yaml\npatches:\n- patch: |-\n    apiVersion: v1\n"
        "    kind: ConfigMap\n    metadata:\n      name: a\n    $patch: replace\n    data:\n      only: x\n"
        "- target:\n    name: b\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n"
        "      name: any\n    $patch: replace\n    data:\n      only: y\npatchesStrategicMerge:\n- |-\n"
        "  apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c\n  $patch: replace\n",
        "cms.yaml": "".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  labels:\n    keep: me\n"
            "data:\n  x: y\n"
            for n in "abc"
        ),
    },
    "values-replacement-create-in-list": {
        "kustomization.yaml": "resources:\n- r.yaml\nreplacements:\n"
        + _replacement(
            "source:\n  kind: ConfigMap\n  fieldPath: data.v\n",
            [
                ("Deployment", "spec.template.spec.containers.[name=a].env.[name=Y].value", True),
                ("Deployment", "spec.template.spec.containers.[name=a].env.[name=NEW].value", True),
                ("Deployment", "spec.template.spec.containers.[name=c].image", True),
            ],
        )
        + _replacement(
            "source:\n  kind: ConfigMap\n  fieldPath: data.e\n",
            [
                ("Deployment", "spec.template.metadata.annotations.x", True),
                ("Deployment", "spec.template.spec.containers.[name=d].args.[=--e]", True),
            ],
        ),
        "r.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n"
        "    spec:\n      containers:\n      - name: a\n        image: img:1\n        env:\n"
        "        - name: X\n          value: '1'\n        - name: Y\n      - name: b\n        image: img:2\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: src\ndata:\n  v: new\n  e: ''\n",
    },
    "values-smp-unnamed-elements": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry("spec:\n  replicas: 2\n")
        + "- target:\n    kind: Service\n  patch: |-\n    apiVersion: v1\n    kind: Service\n"
        "    metadata:\n      name: any\n    spec:\n      ports:\n      - port: 80\n        name: web\n",
        "deployment.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n"
        "  template:\n    spec:\n      containers:\n      - name: web\n        image: web:1\n"
        "        env:\n        - name: A\n          value: a\n        - value: no-name\n"
        "      - image: unnamed:1\n      initContainers:\n      - name: init\n        image: init:1\n"
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 80\n"
        "  - protocol: UDP\n    targetPort: 53\n",
    },
    "values-json-patch-numbers": {
        "kustomization.yaml": "resources:\n- numbers.yaml\npatches:\n- target:\n    kind: ConfigMap\n"
        "  patch: |-\n    - op: add\n      path: /data/huge\n      value: 12345678901234567890\n"
        "    - op: copy\n      from: /data/missing\n      path: /data/copied\n",
        "numbers.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: numbers\ndata:\n"
        "  exact: 9007199254740993\n  small: 42\n  float: 1.50\n",
    },
    "values-big-floats": {
        "kustomization.yaml": "resources:\n- floats.yaml\n",
        "floats.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: floats\ndata:\n"
        "  a: 1.2345678901234567e19\n  b: 9007199254740993.0\n  c: 9.223372036854775807e18\n"
        "  d: -9.3e18\n  e: 1.8446744073709552e19\n  f: 123456789012345678901234.0\n"
        "  g: 18446744073709551615\n  h: 4.5e15\n",
    },
    "values-timestamps": {
        "kustomization.yaml": "resources:\n- times.yaml\nreplacements:\n"
        + _replacement(
            "source:\n  kind: ConfigMap\n  name: times\n  fieldPath: data.date\n",
            [
                ("Event", "spec.when", False),
                ("Event", "spec.label", False),
                ("Event", "spec.created", True),
            ],
        )
        + "patches:\n- target:\n    kind: Event\n  patch: |-\n    - op: add\n      path: /spec/patched\n"
        "      value: 2024-05-06\n",
        "times.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: times\n  labels:\n"
        "    day: 2024-01-02\n  annotations:\n    day: 2024-01-02\ndata:\n  date: 2024-01-02\n"
        "  short: 2024-1-2\n  utc: 2024-01-02T10:00:00Z\n  zone: 2024-01-02t10:00:00.123000+05:30\n"
        "  spaced: 2024-01-02 1:2:3.5\n  comma: 2024-01-02T10:00:00,5Z\n"
        "  nanos: 2024-01-02T10:00:00.1234567891Z\n  minus-zero: 2024-01-02T10:00:00-00:00\n"
        "  leap: 2024-02-29\n  not-leap: 2023-02-29\n  bad-day: 2024-02-30\n"
        "  bad-hour: 2024-01-02T24:00:00Z\n"
        "  zone-no-t: 2024-01-02 10:00:00Z\n  no-seconds: 2024-01-02T10:00Z\n  quoted: '2024-01-02'\n"
        "---\napiVersion: example.test/v1\nkind: Event\nmetadata:\n  name: event\nspec:\n"
        "  when: 1999-12-31\n  label: text\n",
    },
    "values-replacement-create-delimiter": {
        "kustomization.yaml": "resources:\n- cms.yaml\nreplacements:\n"
        + "".join(
            "- source:\n    kind: ConfigMap\n    name: "
            + n
            + "\n  targets:\n  - select:\n      kind: ConfigMap\n"
            "    fieldPaths:\n    - metadata.annotations.visited-by\n    options:\n      delimiter: ','\n"
            "      index: -1\n      create: true\n"
            for n in ("one", "two")
        ),
        "cms.yaml": "".join(
            f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n" for n in ("one", "two")
        ),
    },
    "values-kustomization-repeated-keys": {
        "kustomization.yaml": "namePrefix: first-\nresources:\n- cm.yaml\nnamePrefix: second-\n"
        "configMapGenerator:\n- name: gen\n  literals:\n  - A=1\n  literals:\n  - B=2\n"
        "patches:\n- target:\n    kind: ConfigMap\n    name: cm\n  patch: |-\n    - op: add\n"
        "      path: /data/k\n      value: first\n      value: second\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: x\n",
    },
    "values-empty-patch-files": {
        "kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- path: empty.yaml\n- path: comments.yaml\n"
        "- path: blank.yaml\n- path: separators.yaml\n  target:\n    kind: ConfigMap\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: x\n",
        "empty.yaml": "",
        "comments.yaml": "# nothing to patch\n",
        "blank.yaml": "\n   \n",
        "separators.yaml": "---\n---\n",
    },
    "values-plugin-configs-ignore-unknown-fields": {
        "kustomization.yaml": "resources:\n- cm.yaml\ntransformers:\n- prefix.yaml\n- replace.yaml\n"
        "replacements:\n- path: replacement.yaml\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: x\n  b: y\n  c: z\n",
        "prefix.yaml": "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n  name: prefix\n"
        "prefix: p-\nfieldSpecs:\n- path: metadata/name\n  name: ignored\n",
        "replace.yaml": "apiVersion: builtin\nkind: ReplacementTransformer\nmetadata:\n  name: replace\n"
        "replacements:\n- source:\n    kind: ConfigMap\n    fieldPath: data.a\n  ignored: 1\n  targets:\n"
        "  - select:\n      kind: ConfigMap\n    fieldPaths:\n    - data.b\n",
        "replacement.yaml": "source:\n  kind: ConfigMap\n  fieldPath: data.a\ntargets:\n- select:\n"
        "    kind: ConfigMap\n  fieldPaths:\n  - data.c\nignored: true\n",
    },
    "values-rolebinding-subject-namespaces": {
        "kustomization.yaml": "namespace: apps\nnamePrefix: p-\nresources:\n- rbac.yaml\n",
        "rbac.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata:\n  name: role\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nsubjects:\n"
        "- kind: ServiceAccount\n  name: sa\n  namespace: ''\nroleRef:\n"
        "  apiGroup: rbac.authorization.k8s.io\n  kind: Role\n  name: role\n",
    },
    "values-replacement-into-json-text": {
        "kustomization.yaml": "resources:\n- app.yaml\nreplacements:\n"
        + _replacement(
            "source:\n  kind: ConfigMap\n  name: settings\n  fieldPath: data.host\n",
            [
                ("ConfigMap", "data.config\\.json.server.host", False),
                ("ConfigMap", "data.compact\\.json.hosts.1", False),
                ("ConfigMap", "data.config\\.json.server.added", True),
                ("Deployment", "metadata.annotations.settings.host", False),
            ],
        ),
        "app.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n"
        '  host: db.example.test\n  config.json: |-\n    {\n      "server": {\n        "port": 8080,\n'
        '        "host": "REPLACE",\n        "ratio": 1.0,\n        "big": 1e3,\n        "html": "<a&b>"\n'
        '      },\n      "list": [1, 2.5, true, null]\n    }\n'
        '  compact.json: \'{"hosts":["a","b"],"z":{}}\'\n'
        "---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\n  annotations:\n"
        '    settings: \'{"host": "old", "port": 1}\'\n',
    },
    "values-odd-strings": {"kustomization.yaml": "resources:\n- odd.yaml\n", "odd.yaml": ODD_STRINGS},
    "values-generator-same-kustomization": {
        "kustomization.yaml": "configMapGenerator:\n- name: layered\n  literals:\n  - A=1\n"
        "- name: layered\n  behavior: merge\n  literals:\n  - B=2\n- name: layered\n  behavior: replace\n"
        "  literals:\n  - C=3\n",
    },
}

_WIDGET = (
    "apiVersion: example.test/v1\nkind: Widget\nmetadata:\n  name: widget\nspec:\n  count: 3\n"
    "  nothing: null\n"
)

ERRORS: dict[str, dict[str, str]] = {
    "values-rolebinding-subject-namespace-null": {
        "kustomization.yaml": "resources:\n- rbac.yaml\n",
        "rbac.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n---\n"
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata:\n  name: rb\nsubjects:\n"
        "- kind: ServiceAccount\n  name: sa\n  namespace:\nroleRef:\n  apiGroup: rbac.authorization.k8s.io\n"
        "  kind: Role\n  name: role\n",
    },
    "values-replacement-text-into-timestamp": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement("sourceValue: soon\n", [("Widget", "spec.when", False)]),
        "widget.yaml": _WIDGET + "  when: 2024-01-02\n",
    },
    "values-smp-directive-null": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry("  labels:\n    $patch: null\n    extra: x\n"),
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    "values-smp-directive-empty": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry(
            "spec:\n  template:\n    spec:\n      containers:\n      - $patch:\n      - name: x\n"
        ),
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    "values-smp-directive-tilde": {
        "kustomization.yaml": "resources:\n- deployment.yaml\npatches:\n"
        + _patch_entry("spec:\n  strategy:\n    $patch: ~\n"),
        "deployment.yaml": NULLS_DEPLOYMENT,
    },
    "values-replacement-source-null": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement(
            "source:\n  kind: Widget\n  fieldPath: spec.nothing\n", [("Widget", "spec.count", False)]
        ),
        "widget.yaml": _WIDGET,
    },
    "values-replacement-source-empty-map": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement("source:\n  kind: Widget\n  fieldPath: spec.map\n", [("Widget", "spec.count", False)]),
        "widget.yaml": _WIDGET + "  map: {}\n",
    },
    "values-replacement-empty-into-int": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement('sourceValue: ""\n', [("Widget", "spec.count", False)]),
        "widget.yaml": _WIDGET,
    },
    "values-replacement-text-into-null": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement("sourceValue: abc\n", [("Widget", "spec.nothing", False)]),
        "widget.yaml": _WIDGET,
    },
    "values-replacement-false-into-int": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement("source:\n  kind: Widget\n  fieldPath: spec.off\n", [("Widget", "spec.count", False)]),
        "widget.yaml": _WIDGET + "  off: false\n",
    },
    "values-replacement-source-value-number": {
        "kustomization.yaml": "resources:\n- widget.yaml\nreplacements:\n"
        + _replacement("sourceValue: 0\n", [("Widget", "spec.count", False)]),
        "widget.yaml": _WIDGET,
    },
    "values-generator-unspecified-exists": {
        "kustomization.yaml": "resources:\n- ../../_bases/values-generated\nconfigMapGenerator:\n"
        "- name: app-config\n  behavior: Merge\n  literals:\n  - A=2\n",
    },
    "values-generator-empty-exists": {
        "kustomization.yaml": "resources:\n- ../../_bases/values-generated\nsecretGenerator:\n"
        "- name: app-tls\n  behavior: ''\n  literals:\n  - A=2\n",
    },
    "values-generator-behavior-bool": {
        "kustomization.yaml": "configMapGenerator:\n- name: a\n  behavior: true\n  literals:\n  - A=2\n",
    },
}

_UNSPECIFIED = "can not use behavior: 'unspecified', behavior must be merge or replace"

#: Words the error of each case must contain, in kustomize's message and in ours.
MESSAGES: dict[str, str] = {
    "values-rolebinding-subject-namespace-null": "Invalid Input: namespace is blank for resource",
    "values-replacement-text-into-timestamp": "cannot decode !!str `soon` as a !!timestamp",
    "values-smp-directive-null": "unknown patch strategy 'null'",
    "values-smp-directive-empty": "unknown patch strategy ''",
    "values-smp-directive-tilde": "unknown patch strategy '~'",
    "values-replacement-source-null": "fieldPath `spec.nothing` is missing for replacement source",
    "values-replacement-source-empty-map": "fieldPath `spec.map` is missing for replacement source",
    "values-replacement-empty-into-int": "cannot decode !!null `` as a !!int",
    "values-replacement-text-into-null": "cannot decode !!str `abc` as a !!null",
    "values-replacement-false-into-int": "cannot decode !!bool `false` as a !!int",
    "values-replacement-source-value-number": "json: cannot unmarshal number into Go struct field "
    "ReplacementField.replacements.Replacement.sourceValue of type string",
    "values-generator-unspecified-exists": _UNSPECIFIED,
    "values-generator-empty-exists": _UNSPECIFIED,
    "values-generator-behavior-bool": "json: cannot unmarshal bool into Go struct field "
    "ConfigMapArgs.configMapGenerator.GeneratorArgs.behavior of type string",
}
