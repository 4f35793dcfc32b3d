"""Fourth part of the parity corpus (written by make_corpus.py): ``buildMetadata``. Origin annotations of
files in bases and nested directories, of generated resources and of a generator merged into a base's
ConfigMap; the managed-by label; a base's own ``buildMetadata`` (ignored: the root's is copied over it);
origin annotations already in the input (overwritten when asked for, dropped otherwise); transformer
annotations of the builtin transformers of an overlay."""

from __future__ import annotations

_DEPLOYMENT = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app.kubernetes.io/managed-by: helm
  annotations:
    config.kubernetes.io/origin: |
      path: somewhere/else.yaml
spec:
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      containers:
      - name: web
        image: nginx:1.27
        envFrom:
        - configMapRef:
            name: settings
"""

_NESTED_CM = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: nested
data:
  key: value
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 80
"""

BASES: dict[str, dict[str, str]] = {
    "buildmeta": {
        "kustomization.yaml": "buildMetadata: [transformerAnnotations]\nresources:\n- deployment.yaml\n"
        "- ./nested/../nested/objects.yaml\nconfigMapGenerator:\n- name: settings\n  literals:\n"
        "  - MODE=dev\n",
        "deployment.yaml": _DEPLOYMENT,
        "nested/objects.yaml": _NESTED_CM,
    },
}

CASES: dict[str, dict[str, str]] = {
    "buildmeta-origin-managed-by": {
        "kustomization.yaml": "resources:\n- ../_bases/buildmeta\n- local/extra.yaml\nnamePrefix: p-\n"
        "commonLabels:\n  team: core\nconfigMapGenerator:\n- name: settings\n  behavior: merge\n  literals:\n"
        "  - MODE=prod\n- name: more\n  literals:\n  - A=1\nsecretGenerator:\n- name: token\n  literals:\n"
        "  - T=x\nbuildMetadata: [originAnnotations, managedByLabel, unknownOption]\n",
        "local/extra.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n",
    },
    "buildmeta-transformers-managed-by": {
        "kustomization.yaml": "resources:\n- ../_bases/buildmeta\nnamespace: apps\nnameSuffix: -x\n"
        "labels:\n- pairs:\n    tier: web\n- pairs:\n    owner: me\n  includeSelectors: true\n"
        "commonAnnotations:\n  note: hi\nimages:\n- name: nginx\n  newTag: '1.28'\nreplicas:\n- name: web\n"
        "  count: 2\npatches:\n- patch: |-\n    - op: add\n      path: /spec/ports/0/name\n"
        "      value: http\n  target:\n    kind: Service\nconfigMapGenerator:\n- name: settings\n"
        "  behavior: replace\n  literals:\n  - MODE=prod\n"
        "buildMetadata:\n- managedByLabel\n- transformerAnnotations\n",
    },
}
