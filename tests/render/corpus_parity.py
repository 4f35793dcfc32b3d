"""Fifth part of the parity corpus (written by make_corpus.py), issue 24: how kustomize v5.8.1 treats scalar
text and embedded documents. A JSON patch is read as YAML 1.1 by sigs.k8s.io/yaml, so its mapping keys
``y``/``off``/``010``/``1.50`` become ``"true"``/``"false"``/``"8"``/``"1.5"``; a replacement into YAML held
in a string field (``data.config\\.yaml.db.host``) edits that YAML, keeping its keys' order, styles and tags
(``!!int text``); a resource without apiVersion, or named by a number, is rendered as it is (the apply
stage refuses it); a
strategic-merge patch's scalar takes the style of the field it replaces (a number over a quoted string is a
string, written as in the patch), also in list elements and in JSON files (all strings quoted); the
replicas transformer keeps a string a string; in a kustomization a null where a string goes is ``""``,
an integral float count an integer, and a number where an image field wants a string is refused."""

from __future__ import annotations

_WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.27
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: db
        image: postgres:16
"""

# a null where a string goes is "" (Go's JSON decoding); an integral float count is an integer
_NULLS_AND_NUMBERS = """\
resources:
- workloads.yaml
nameSuffix: ~
namespace: ~
commonLabels:
  team: ~
commonAnnotations:
  note: ~
labels:
- pairs:
    tier: ~
images:
- name: nginx
  newTag: ~
  newName: ~
replicas:
- name: web
  count: 1e2
- name: db
configMapGenerator:
- name: settings
  literals:
  - mode=0x1F
generatorOptions:
  labels:
    generated: ~
"""

# a strategic-merge patch's scalar takes the quoted style of the field it replaces (kyaml FieldSetter), so
# a number patched over a quoted string stays a string, written as in the patch ("0x2F"); annotations a
# patch adds are read again through JSON by a later JSON patch ("1.50" -> "1.5")
_PATCHED = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  annotations:
    keep: "1.50"
spec:
  replicas: "3"
  minReadySeconds: 010
  template:
    metadata:
      labels:
        v: "010"
    spec:
      containers:
      - name: x
        image: nginx
        env:
        - name: A
          value: "0x1F"
        - name: B
          value: 1.50
"""

_PATCH_KUSTOMIZATION = """\
resources:
- r.yaml
patches:
- patch: |-
    apiVersion: apps/v1
    kind: Deployment
    metadata:
      name: d
      annotations:
        new: 1.50
    spec:
      replicas: 5
      minReadySeconds: "7"
      template:
        metadata:
          labels:
            w: 010
        spec:
          containers:
          - name: x
            env:
            - name: A
              value: 0x2F
            - name: C
              value: 1e3
  target: {kind: Deployment}
- target: {kind: Deployment}
  patch: |-
    - op: replace
      path: /metadata/annotations/keep
      value: 2.50
    - op: add
      path: /spec/paused
      value: "true"
    - op: copy
      from: /spec/minReadySeconds
      path: /spec/progressDeadlineSeconds
"""

CASES: dict[str, dict[str, str]] = {
    "parity-json-patch-yaml11-keys": {
        "kustomization.yaml": (
            "resources:\n"
            "- dep.yaml\n"
            "patches:\n"
            "- patch: |-\n"
            "    - op: add\n"
            "      path: /spec/k\n"
            "      value: {y: a, n: b, yes: c, off: d, 1.50: e, 0x1F: f, 010: g, 3."
            '14159265: h, 1e6: i, 2001-12-14: j, key: [on, 0o17, "010"]}\n'
            "  target:\n"
            "    kind: Deployment\n"
        ),
        "dep.yaml": (
            "apiVersion: apps/v1\n"
            "kind: Deployment\n"
            "metadata:\n"
            "  name: d\n"
            "spec:\n"
            "  template:\n"
            "    spec:\n"
            "      containers:\n"
            "      - name: x\n"
            "        image: nginx:1.0\n"
        ),
    },
    "parity-replacement-embedded-yaml": {
        "kustomization.yaml": (
            "resources:\n"
            "- res.yaml\n"
            "replacements:\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.host}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths:\n"
            "    - data.a\\.yaml.database.host\n"
            "    - data.a\\.yaml.database.port\n"
            "    - data.a\\.yaml.database.quoted\n"
            "    - data.a\\.yaml.database.dq\n"
            "    - data.a\\.yaml.database.list.1\n"
            "    - data.a\\.yaml.database.items.[name=two].value\n"
            "    - data.b\\.yaml.z\n"
            "    - data.c\\.yaml.k\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.port}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths:\n"
            "    - data.b\\.yaml.a\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.word}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths:\n"
            "    - data.a\\.yaml.database.flag\n"
            "    - data.a\\.yaml.other\n"
            "    - data.a\\.yaml.database.new\n"
            "    options: {create: true}\n"
        ),
        "res.yaml": (
            "apiVersion: v1\n"
            "kind: ConfigMap\n"
            "metadata:\n"
            "  name: src\n"
            "data:\n"
            "  host: db.example.test\n"
            '  port: "5432"\n'
            '  word: "true"\n'
            "---\n"
            "apiVersion: v1\n"
            "kind: ConfigMap\n"
            "metadata:\n"
            "  name: tgt\n"
            "data:\n"
            "  a.yaml: |\n"
            "    database:\n"
            "        host: placeholder\n"
            "        port: 1\n"
            "        quoted: 'x'\n"
            '        dq: "y"\n'
            "        flag: false\n"
            "        list:\n"
            "        - a\n"
            "        - b\n"
            "        items:\n"
            "          - name: one\n"
            "            value: v1\n"
            "          - name: two\n"
            "            value: v2\n"
            "    other: keep\n"
            "  b.yaml: |-\n"
            "    z: 1\n"
            "    a: 2\n"
            '  c.yaml: "k: v"\n'
        ),
    },
    "parity-replacement-embedded-yaml-styles": {
        "kustomization.yaml": (
            "resources:\n"
            "- res.yaml\n"
            "replacements:\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.host}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths:\n"
            "    - data.four\\.yaml.top.nested.key\n"
            "    - data.four\\.yaml.top.seq.0\n"
            "    - data.four\\.yaml.empty\n"
            "    - data.four\\.yaml.tilde\n"
            "    - data.four\\.yaml.quoted key\n"
            "    - data.four\\.yaml.nested_seq.0.1\n"
            "    - data.four\\.yaml.num\n"
            "    - data.four\\.yaml.ts\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.multi}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths: [data.four\\.yaml.dq key, data.four\\.yaml.colon]\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.long}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths: [data.four\\.yaml.lit, data.four\\.yaml.dash]\n"
            "- source: {kind: ConfigMap, name: src, fieldPath: data.host}\n"
            "  targets:\n"
            "  - select: {kind: ConfigMap, name: tgt}\n"
            "    fieldPaths: [data.four\\.yaml.top.nested, data.four\\.yaml.new.deepe"
            "r, data.four\\.yaml.flow_empty, data.four\\.yaml.newseq.0, 'data.four\\.y"
            "aml.top.seq.[=b]', 'data.four\\.yaml.items.[name=q].v']\n"
            "    options: {create: true}\n"
        ),
        "res.yaml": (
            "apiVersion: v1\n"
            "kind: ConfigMap\n"
            "metadata:\n"
            "  name: src\n"
            "data:\n"
            "  host: db.example.test\n"
            "  multi: |\n"
            "    line one\n"
            "    line two\n"
            '  long: "a very long value that goes well beyond the eighty column lim'
            'it of the go-yaml v2 emitter for sure"\n'
            "---\n"
            "apiVersion: v1\n"
            "kind: Thing\n"
            "metadata:\n"
            "  name: src2\n"
            "spec:\n"
            "  obj:\n"
            "    b: 1\n"
            '    a: "x y"\n'
            "    c: [1, 2]\n"
            '    d: "true"\n'
            "---\n"
            "apiVersion: v1\n"
            "kind: ConfigMap\n"
            "metadata:\n"
            "  name: tgt\n"
            "data:\n"
            "  four.yaml: |\n"
            "    top:\n"
            "        nested:\n"
            "            key: value\n"
            "        seq:\n"
            "            -   a\n"
            "            -   b\n"
            "    empty:\n"
            "    tilde: ~\n"
            "    'quoted key': v\n"
            '    "dq key": v\n'
            "    lit: |\n"
            "      keep\n"
            "      this\n"
            "    nested_seq:\n"
            "    - - x\n"
            "      - y\n"
            "    - - z\n"
            "    flow_empty: {}\n"
            "    flow_empty_seq: []\n"
            "    num: 0x1F\n"
            "    ts: 2001-12-14\n"
            '    colon: "a: b"\n'
            '    dash: "- x"\n'
            '    uni: "héllo"\n'
            "  c.yaml: |\n"
            "    # a comment\n"
            "    k: v\n"
            '  d.yaml: "k: v  # comment"\n'
        ),
    },
    "parity-resource-without-apiversion": {
        "kustomization.yaml": (
            "resources: [r.yaml]\n"
            "namespace: ns\n"
            "namePrefix: p-\n"
            "commonLabels: {a: b}\n"
            'images: [{name: nginx, newTag: "2"}]\n'
        ),
        "r.yaml": (
            "kind: Deployment\n"
            "metadata:\n"
            "  name: d\n"
            "spec:\n"
            "  template:\n"
            "    spec:\n"
            "      containers:\n"
            "      - image: nginx\n"
            "        name: x\n"
            "---\n"
            "kind: randomKind\n"
            "metadata:\n"
            "  name: r\n"
            "spec:\n"
            "  image: nginx\n"
        ),
    },
    "parity-kustomization-null-and-number-values": {
        "kustomization.yaml": _NULLS_AND_NUMBERS,
        "workloads.yaml": _WORKLOADS,
    },
    "parity-replicas-keep-string-text": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nreplicas:\n- name: web\n  count: 4\n"
        "- name: db\n  count: 3\n",
        "workloads.yaml": _WORKLOADS.replace("replicas: 2", "replicas: '2'").replace(
            "replicas: 1", "replicas: ~"
        ),
    },
    "parity-patch-keeps-quoted-style": {
        "kustomization.yaml": _PATCH_KUSTOMIZATION,
        "r.yaml": _PATCHED,
    },
    "parity-patch-keeps-quoted-style-custom-kind": {
        "kustomization.yaml": (
            "resources:\n- r.yaml\npatches:\n- patch: |-\n    apiVersion: x.io/v1\n    k"
            "ind: Thing\n    metadata:\n      name: d\n    spec:\n      replicas: 5\n   "
            '   other: 6\n      x: "7"\n'
        ),
        "r.yaml": (
            "apiVersion: x.io/v1\nkind: Thing\nmetadata:\n  name: d\nspec:\n  replicas: "
            '"3"\n  other: "4"\n  x: 5\n'
        ),
    },
    "parity-patch-quoted-fields": {
        "kustomization.yaml": (
            "resources:\n- r.yaml\npatches:\n- patch: |-\n    apiVersion: x.io/v1\n    k"
            "ind: Thing\n    metadata:\n      name: d\n    spec:\n      a: 5\n      b: 6"
            "\n      c: false\n      d: 7\n      e: 8\n      f: 9\n      g: 10\n      h: "
            "2002-01-01\n"
        ),
        "r.yaml": (
            "apiVersion: x.io/v1\nkind: Thing\nmetadata:\n  name: d\nspec:\n  a: |\n    m"
            'ulti\n    line\n  b: \'single\'\n  c: "true"\n  d: plain\n  e: ""\n  f: "2001-'
            '12-14"\n  g: 2001-12-14\n  h: "x"\n'
        ),
    },
    "parity-patch-json-resource-styles": {
        "kustomization.yaml": (
            "resources:\n- r.json\npatches:\n- patch: |-\n    apiVersion: x.io/v1\n    k"
            "ind: Thing\n    metadata:\n      name: d\n    spec:\n      a: 5\n      b: 6"
            "\n      c: 2001-12-14\n- patch: |-\n    apiVersion: x.io/v1\n    kind: Thi"
            'ng\n    metadata:\n      name: d\n    spec:\n      a: 7\n      b: "8"\n     '
            ' d: "9"\n- patch: |-\n    apiVersion: x.io/v1\n    kind: Thing\n    metada'
            "ta:\n      name: d\n    spec:\n      b: 10\n      d: 11\n"
        ),
        "r.json": (
            '{"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"name": "d"}, '
            '"spec": {"a": "abc", "b": 3, "c": "x"}}\n'
        ),
    },
    "parity-patch-list-elements-keep-style": {
        "kustomization.yaml": (
            "resources:\n- r.yaml\npatches:\n- patch: |-\n    apiVersion: apps/v1\n    k"
            "ind: Deployment\n    metadata:\n      name: d\n    spec:\n      template:\n"
            "        spec:\n          containers:\n          - name: a\n            wo"
            "rkingDir: 5\n            stdin: 6\n            tty: true\n            env"
            ":\n            - name: E\n              value: 1.50\n            - name: "
            "F\n              value: 0x10\n            - name: G\n              value:"
            ' "9"\n          - name: b\n            workingDir: "8"\n- patch: |-\n    a'
            "piVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: d\n  "
            "  spec:\n      template:\n        spec:\n          containers:\n          "
            "- name: b\n            workingDir: 10\n            env:\n            - na"
            "me: H\n              value: 11\n"
        ),
        "r.yaml": (
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  templ"
            "ate:\n    spec:\n      containers:\n      - name: a\n        image: nginx\n"
            "        workingDir: \"123\"\n        stdin: 'x'\n        env:\n        - na"
            "me: E\n          value: 'plain'\n        - name: F\n          value: \"7\"\n"
            "      - name: b\n        image: busybox\n"
        ),
    },
    "parity-empty-json-patches": {
        "kustomization.yaml": "resources:\n- workloads.yaml\npatches:\n- patch: '[]'\n"
        "- patch: '  []  '\n  target:\n    kind: Deployment\n- path: empty.json\n  target:\n"
        "    kind: StatefulSet\n",
        "workloads.yaml": _WORKLOADS,
        "empty.json": "[]\n",
    },
    # kustomize renders a name or namespace written as a number (the apply stage refuses it)
    "parity-resource-name-number": {
        "kustomization.yaml": "resources:\n- r.yaml\n",
        "r.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 5\n  namespace: 010\n--"
            "-\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: 7\nspec:\n  tem"
            "plate:\n    spec:\n      containers:\n      - name: c\n        image: i\n  "
            "      envFrom:\n        - configMapRef:\n            name: 5\n"
        ),
    },
    "parity-resource-name-number-renamed": {
        "kustomization.yaml": ('resources:\n- r.yaml\nnameSuffix: -s\nreplicas:\n- name: "7"\n  count: 2\n'),
        "r.yaml": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 5\n  namespace: 010\n--"
            "-\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: 7\nspec:\n  tem"
            "plate:\n    spec:\n      containers:\n      - name: c\n        image: i\n  "
            "      envFrom:\n        - configMapRef:\n            name: 5\n"
        ),
    },
    # validators run builtin configurations that must not change the objects (but for validated-by)
    "parity-validators": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nvalidators:\n- noop.yaml\n- validated.yaml\n",
        "workloads.yaml": _WORKLOADS,
        "noop.yaml": "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: noop\nlabels: {}\n"
        "fieldSpecs:\n- path: metadata/labels\n",
        "validated.yaml": "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: mark\nlabels:\n"
        "  validated-by: policy\nfieldSpecs:\n- path: metadata/labels\n  create: true\n",
    },
}

#: kustomize reads a kustomization through JSON into Go strings: a number where a string goes is refused
ERRORS: dict[str, dict[str, str]] = {
    "parity-image-tag-number": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nimages:\n- name: nginx\n  newTag: 1.50\n",
        "workloads.yaml": _WORKLOADS,
    },
    "parity-replicas-count-fraction": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nreplicas:\n- name: web\n  count: 1.5\n",
        "workloads.yaml": _WORKLOADS,
    },
    "parity-replicas-on-a-mapping": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nreplicas:\n- name: web\n  count: 4\n",
        "workloads.yaml": _WORKLOADS.replace("replicas: 2", "replicas: {}"),
    },
    "parity-label-flag-not-bool": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nlabels:\n- pairs:\n    a: b\n"
        "  includeSelectors: 'true'\n",
        "workloads.yaml": _WORKLOADS,
    },
    "parity-replacement-option-not-bool": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nreplacements:\n- source:\n    kind: Deployment\n"
        "    fieldPath: metadata.name\n  targets:\n  - select:\n      kind: StatefulSet\n"
        "    fieldPaths:\n    - metadata.annotations.web\n    options:\n      create: 'yes'\n",
        "workloads.yaml": _WORKLOADS,
    },
    "parity-kustomization-name-number": {
        "kustomization.yaml": "metadata:\n  name: 5\nresources:\n- workloads.yaml\n",
        "workloads.yaml": _WORKLOADS,
    },
    "parity-generator-namespace-number": {
        "kustomization.yaml": (
            "configMapGenerator:\n- name: settings\n  namespace: 5\n  literals:\n  - a=b\n"
        ),
    },
    "parity-validator-changes-objects": {
        "kustomization.yaml": "resources:\n- workloads.yaml\nvalidators:\n- labels.yaml\n",
        "workloads.yaml": _WORKLOADS,
        "labels.yaml": "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels:\n  a: b\n"
        "fieldSpecs:\n- path: metadata/labels\n  create: true\n",
    },
}
