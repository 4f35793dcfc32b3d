"""Corpus cases for ``vars:`` and for building a ``kind: Component`` directory (written by make_corpus.py).

The inputs were written from kustomize's behaviour (api/internal/accumulator/resaccumulator.go,
api/filters/refvar, the default varReference table): where ``$(VAR)`` is expanded, how objrefs match
original names, what fieldrefs reach, and which inputs kustomize refuses.
"""

from __future__ import annotations

APP = """\
apiVersion: v1
kind: Service
metadata:
  name: app
  labels:
    app: app
    tier: web
spec:
  selector:
    app: app
  ports:
  - name: http
    port: 8080
    targetPort: http
  - name: metrics
    port: 9090
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels:
    app: app
  annotations:
    upstream: $(APP_SERVICE):$(APP_PORT)
spec:
  selector:
    matchLabels:
      app: app
  template:
    metadata:
      labels:
        app: app
      annotations:
        settings: $(SETTINGS_NAME)
        port: $(APP_PORT)
    spec:
      initContainers:
      - name: wait
        image: registry.example.test/wait:1.0
        args: ["--for=$(APP_SERVICE)", "--timeout=30s"]
      containers:
      - name: app
        image: registry.example.test/app:2.1.0
        command: ["/bin/app", "--config=/etc/$(SETTINGS_NAME)/app.yaml"]
        args:
        - --listen=:$(APP_PORT)
        - --upstream=http://$(APP_SERVICE):$(APP_PORT)/v1
        - $(APP_PORT)
        - --name=$(APP_SERVICE)-$(APP_SERVICE)
        env:
        - name: SERVICE
          value: $(APP_SERVICE)
        - name: PORT
          value: $(APP_PORT)
        - name: URL
          value: http://$(APP_SERVICE).svc:$(APP_PORT)
        - name: LITERAL
          value: plain
        volumeMounts:
        - name: settings
          mountPath: /etc/$(SETTINGS_NAME)
      - name: proxy
        image: registry.example.test/proxy:0.3
        args: ["--target=$(APP_SERVICE)"]
      volumes:
      - name: settings
        configMap:
          name: app-settings
"""

APP_VARS = """\
vars:
- name: APP_SERVICE
  objref:
    apiVersion: v1
    kind: Service
    name: app
- name: APP_PORT
  objref:
    apiVersion: v1
    kind: Service
    name: app
  fieldref:
    fieldpath: spec.ports[0].port
- name: SETTINGS_NAME
  objref:
    apiVersion: v1
    kind: ConfigMap
    name: app-settings
"""

BASES: dict[str, dict[str, str]] = {
    "vars-app": {
        "kustomization.yaml": "resources:\n- app.yaml\nconfigMapGenerator:\n- name: app-settings\n"
        "  literals:\n  - MODE=fast\n" + APP_VARS,
        "app.yaml": APP,
    },
    "vars-other": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: APP_SERVICE\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: other\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: other\nspec:\n  ports:\n"
        "  - port: 80\n",
    },
}

COMPONENTS: dict[str, dict[str, str]] = {
    "vars-db": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "resources:\n- db.yaml\nvars:\n- name: DB_HOST\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: db\n- name: DB_PORT\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: db\n  fieldref:\n    fieldPath: spec.ports.0.port\n"
        "patches:\n- target:\n    kind: Deployment\n    name: app\n  patch: |-\n"
        "    - op: add\n      path: /spec/template/spec/containers/0/env/-\n"
        "      value: {name: DATABASE, value: 'postgres://$(DB_HOST):$(DB_PORT)/app'}\n",
        "db.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  ports:\n  - port: 5432\n",
    },
}

VA = "resources:\n- ../_bases/vars-app\n"

WORKLOADS = """\
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers:
          - name: report
            image: registry.example.test/report:1
            args: ["--target=$(TARGET)", "--port=$(TARGET_PORT)"]
            env:
            - name: TARGET
              value: $(TARGET)
          volumes:
          - name: share
            nfs:
              server: $(TARGET).nfs
              path: /
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: store
spec:
  serviceName: store
  selector:
    matchLabels:
      app: store
  template:
    metadata:
      labels:
        app: store
      annotations:
        not-expanded: $(TARGET)
    spec:
      containers:
      - name: store
        image: registry.example.test/store:1
        command: ["store", "--peer=$(TARGET)"]
        volumeMounts:
        - name: data
          mountPath: /data/$(TARGET)
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      initContainers:
      - name: init
        image: registry.example.test/init:1
        command: ["init", "$(TARGET)"]
        env:
        - name: T
          value: $(TARGET)
      containers:
      - name: agent
        image: registry.example.test/agent:1
        env:
        - name: PORT
          value: $(TARGET_PORT)
---
apiVersion: batch/v1
kind: Job
metadata:
  name: once
  labels:
    target: $(TARGET)
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: once
        image: registry.example.test/once:1
        args: ["$(TARGET)"]
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
  annotations:
    target: $(TARGET)
    port: $(TARGET_PORT)
    port-text: port $(TARGET_PORT)
spec:
  containers:
  - name: debug
    image: registry.example.test/debug:1
    args: ["$(TARGET)"]
  volumes:
  - name: share
    nfs:
      server: $(TARGET)
      path: /
---
apiVersion: v1
kind: Service
metadata:
  name: target
spec:
  ports:
  - port: $(TARGET_PORT)
    targetPort: $(TARGET_PORT)
    name: $(TARGET)
---
apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: rs
spec:
  selector:
    matchLabels:
      app: rs
  template:
    metadata:
      labels:
        app: rs
    spec:
      containers:
      - name: rs
        image: registry.example.test/rs:1
        env:
        - name: T
          value: $(TARGET)
"""

TARGET_VARS = """\
vars:
- name: TARGET
  objref:
    apiVersion: v1
    kind: Service
    name: target
- name: TARGET_PORT
  objref:
    apiVersion: v1
    kind: ConfigMap
    name: ports
  fieldref:
    fieldpath: data.port
"""

PORTS_CM = 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ports\ndata:\n  port: "7000"\n'

TYPED_VARS = "".join(
    f"- name: {name}\n  objref:\n    apiVersion: example.test/v1\n    kind: Tuning\n    name: t\n"
    f"  fieldref:\n    fieldpath: spec.{field}\n"
    for name, field in [
        ("RATIO", "ratio"),
        ("TINY", "tiny"),
        ("BIG", "big"),
        ("WHOLE", "whole"),
        ("FLAG", "flag"),
        ("COUNT", "count"),
        ("NOTHING", "nothing"),
        ("LIST", "list"),
        ("QUOTED", "quoted"),
    ]
)

TYPED = """\
apiVersion: example.test/v1
kind: Tuning
metadata:
  name: t
spec:
  ratio: 1.5
  tiny: 0.00001
  big: 1e21
  whole: 3.0
  flag: false
  count: 12
  nothing: null
  list: [a, b]
  quoted: "0012"
---
apiVersion: v1
kind: Pod
metadata:
  name: p
  annotations:
    ratio: $(RATIO)
    flag: $(FLAG)
    count: $(COUNT)
    nothing: $(NOTHING)
  labels:
    flag: $(FLAG)
    tiny: $(TINY)
spec:
  containers:
  - name: c
    image: registry.example.test/c:1
    env:
    - {name: RATIO, value: $(RATIO)}
    - {name: RATIO_T, value: r=$(RATIO)}
    - {name: TINY, value: $(TINY)}
    - {name: TINY_T, value: t=$(TINY)}
    - {name: BIG, value: $(BIG)}
    - {name: BIG_T, value: b=$(BIG)}
    - {name: WHOLE, value: $(WHOLE)}
    - {name: WHOLE_T, value: w=$(WHOLE)}
    - {name: FLAG, value: $(FLAG)}
    - {name: FLAG_T, value: f=$(FLAG)}
    - {name: COUNT, value: $(COUNT)}
    - {name: NOTHING, value: $(NOTHING)}
    - {name: NOTHING_T, value: n=$(NOTHING)}
    - {name: LIST, value: $(LIST)}
    - {name: LIST_T, value: l=$(LIST)}
    - {name: QUOTED, value: $(QUOTED)}
    - {name: QUOTED_T, value: q=$(QUOTED)}
"""

CASES: dict[str, dict[str, str]] = {
    "vars-base": {"kustomization.yaml": VA},
    "vars-prefix-suffix-namespace": {
        "kustomization.yaml": "namePrefix: team-\nnameSuffix: -v2\nnamespace: apps\n" + VA
    },
    "vars-overlay-objref-into-base": {
        "kustomization.yaml": "namePrefix: prod-\nnamespace: prod\n" + VA + "- job.yaml\nvars:\n"
        "- name: APP_NAMESPACE\n  objref:\n    apiVersion: apps/v1\n    kind: Deployment\n"
        "    name: app\n  fieldref:\n    fieldpath: metadata.namespace\n- name: APP_DEPLOYMENT\n"
        "  objref:\n    kind: Deployment\n    group: apps\n    version: v1\n    name: app\n",
        "job.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: smoke\nspec:\n  template:\n"
        "    spec:\n      restartPolicy: Never\n      containers:\n      - name: smoke\n"
        "        image: registry.example.test/curl:8\n        args:\n"
        "        - http://$(APP_SERVICE).$(APP_NAMESPACE).svc:$(APP_PORT)/healthz\n"
        "        env:\n        - name: DEPLOYMENT\n          value: $(APP_DEPLOYMENT)\n",
    },
    "vars-nested-overlay": {
        "kustomization.yaml": "resources:\n- ../vars-overlay-objref-into-base\nnameSuffix: -eu\n"
        "commonLabels:\n  region: eu\n"
    },
    "vars-workload-kinds": {
        "kustomization.yaml": "resources:\n- workloads.yaml\n- ports.yaml\n" + TARGET_VARS,
        "workloads.yaml": WORKLOADS,
        "ports.yaml": PORTS_CM,
    },
    "vars-configmap-data": {
        "kustomization.yaml": VA + "- cm.yaml\nconfigurations:\n- varref.yaml\n",
        "varref.yaml": "varReference:\n- path: data\n  kind: ConfigMap\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: client\ndata:\n"
        "  ENDPOINT: http://$(APP_SERVICE):$(APP_PORT)\n  PORT: $(APP_PORT)\n  SETTINGS: $(SETTINGS_NAME)\n"
        "  ESCAPED: $$(APP_SERVICE)\n  UNKNOWN: $(NOPE)\n  COUNT: '3'\n",
    },
    "vars-ingress": {
        "kustomization.yaml": "namePrefix: web-\nresources:\n- ingress.yaml\n- svc.yaml\n"
        "secretGenerator:\n- name: tls\n  type: kubernetes.io/tls\n  literals:\n  - tls.crt=CERT\n"
        "  - tls.key=KEY\nvars:\n- name: HOST\n  objref:\n    apiVersion: v1\n    kind: ConfigMap\n"
        "    name: site\n  fieldref:\n    fieldpath: data.host\n- name: TLS_SECRET\n  objref:\n"
        "    apiVersion: v1\n    kind: Secret\n    name: tls\n- name: BACKEND\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: backend\n",
        "ingress.yaml": "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: site\n"
        "  annotations:\n    backend: $(BACKEND)\nspec:\n  tls:\n  - hosts:\n    - $(HOST)\n"
        "    - www.$(HOST)\n    secretName: $(TLS_SECRET)\n  rules:\n  - host: $(HOST)\n    http:\n"
        "      paths:\n      - path: /\n        pathType: Prefix\n        backend:\n          service:\n"
        "            name: backend\n            port:\n              number: 80\n"
        "  - host: api.$(HOST)\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: backend\nspec:\n  ports:\n"
        "  - port: 80\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: site\ndata:\n"
        "  host: shop.example.test\n",
    },
    "vars-fieldref-paths": {
        "kustomization.yaml": VA + "- consumer.yaml\nvars:\n- name: IMAGE\n  objref:\n"
        "    apiVersion: apps/v1\n    kind: Deployment\n    name: app\n  fieldref:\n"
        "    fieldpath: spec.template.spec.containers[0].image\n- name: PROXY_IMAGE\n  objref:\n"
        "    apiVersion: apps/v1\n    kind: Deployment\n    name: app\n  fieldref:\n"
        "    fieldpath: spec.template.spec.containers.[name=proxy].image\n- name: TIER\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: app\n  fieldref:\n"
        "    fieldpath: metadata.labels.tier\n- name: METRICS_NAME\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: app\n  fieldref:\n    fieldpath: spec.ports.1.name\n"
        "- name: LAST_PORT\n  objref:\n    apiVersion: v1\n    kind: Service\n    name: app\n"
        "  fieldref:\n    fieldpath: spec.ports.-.port\n- name: SELECTOR\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: app\n  fieldref:\n"
        "    fieldpath: spec.selector\n- name: OWNER\n  objref:\n    apiVersion: v1\n"
        "    kind: ConfigMap\n    name: facts\n  fieldref:\n"
        "    fieldpath: metadata.annotations.[team.example.test/owner]\n"
        "- name: ENABLED\n  objref:\n    apiVersion: v1\n    kind: ConfigMap\n    name: facts\n"
        "  fieldref:\n    FieldPath: data.enabled\n",
        "consumer.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: facts\n  annotations:\n"
        "    team.example.test/owner: search\n  labels:\n    owner: $(OWNER)\ndata:\n  enabled: 'true'\n"
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: consumer\n  annotations:\n"
        "    image: $(IMAGE)\n    proxy: $(PROXY_IMAGE)\n    tier: $(TIER)\n    metrics: $(METRICS_NAME)\n"
        "    last: $(LAST_PORT)\n    selector: $(SELECTOR)\n    selector-text: is $(SELECTOR)\n"
        "spec:\n  containers:\n  - name: c\n    image: $(IMAGE)\n    env:\n    - name: ENABLED\n"
        "      value: $(ENABLED)\n    - name: OWNER\n      value: owner=$(OWNER)\n",
    },
    "vars-unresolved-escaped": {
        "kustomization.yaml": "resources:\n- pod.yaml\nvars:\n- name: NAME\n  objref:\n"
        "    apiVersion: v1\n    kind: Pod\n    name: shell\n",
        "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: shell\nspec:\n  containers:\n"
        "  - name: sh\n    image: busybox:1.36\n    command: [sh, -c]\n    args:\n"
        "    - echo $(NAME) $$(NAME) $$$(NAME) $(HOME) $HOME $$HOME $( $(NAME\n"
        "    - $(NAME)$(NAME)\n    - $$\n    - $\n    - cost $5 and $(\n    - $(UNDEFINED)\n"
        "    - $()\n    env:\n    - name: RAW\n      value: $(NAME\n    - name: EMPTY\n      value: ''\n",
    },
    "vars-objref-namespace": {
        "kustomization.yaml": "resources:\n- svcs.yaml\nvars:\n- name: EDGE_PORT\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: gw\n    namespace: edge\n  fieldref:\n"
        "    fieldpath: spec.ports[0].port\n- name: CORE_NS\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: gw\n    namespace: default\n  fieldref:\n"
        "    fieldpath: metadata.name\n",
        "svcs.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: gw\n  namespace: edge\nspec:\n"
        "  ports:\n  - port: 443\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: gw\nspec:\n"
        "  ports:\n  - port: 80\n---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: client\nspec:\n"
        '  containers:\n  - name: c\n    image: busybox:1.36\n    args: ["$(EDGE_PORT)", "$(CORE_NS)"]\n',
    },
    "vars-generator-merge": {
        "kustomization.yaml": VA + "configMapGenerator:\n- name: app-settings\n  behavior: merge\n"
        "  literals:\n  - MODE=slow\n"
    },
    "vars-component": {
        "kustomization.yaml": VA + "components:\n- ../_components/vars-db\n",
    },
    "vars-custom-kind": {
        "kustomization.yaml": "resources:\n- agent.yaml\nconfigurations:\n- varref.yaml\nvars:\n"
        "- name: MODEL\n  objref:\n    apiVersion: kagent.dev/v1alpha2\n    kind: ModelConfig\n"
        "    name: mini\n  fieldref:\n    fieldpath: spec.model\n",
        "varref.yaml": "varReference:\n- path: spec/description\n  kind: Agent\n  group: kagent.dev\n"
        "- path: spec/declarative/systemMessage\n  kind: Agent\n",
        "agent.yaml": "apiVersion: kagent.dev/v1alpha2\nkind: ModelConfig\nmetadata:\n  name: mini\n"
        "spec:\n  provider: OpenAI\n  model: gpt-4o-mini\n---\napiVersion: kagent.dev/v1alpha2\n"
        "kind: Agent\nmetadata:\n  name: helper\nspec:\n  description: Uses $(MODEL)\n  declarative:\n"
        "    modelConfig: mini\n    systemMessage: |-\n      You run on $(MODEL).\n      Be brief.\n",
    },
    "vars-typed-values": {
        "kustomization.yaml": "resources:\n- objs.yaml\nvars:\n" + TYPED_VARS,
        "objs.yaml": TYPED,
    },
    "vars-objref-current-name": {
        "kustomization.yaml": VA + "- pod.yaml\nnamePrefix: p-\nvars:\n- name: SERVICE_NOW\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: p-app\n- name: URL_VALUE\n  objref:\n"
        "    apiVersion: apps/v1\n    kind: Deployment\n    name: app\n  fieldref:\n"
        "    fieldpath: spec.template.spec.containers.[name=app].env.[name=URL].value\n",
        "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: probe\nspec:\n  containers:\n"
        "  - name: probe\n    image: registry.example.test/probe:1\n"
        '    args: ["$(SERVICE_NOW)", "$(URL_VALUE)", "$(APP_SERVICE)"]\n',
    },
    "vars-keys-any-case": {
        "kustomization.yaml": "RESOURCES:\n- ../_bases/vars-app\nnameprefix: any-\nNameSuffix: -case\n"
        "Vars:\n- Name: CASE_PORT\n  ObjRef:\n    APIVersion: v1\n    Kind: Service\n    NAME: app\n"
        "  FieldRef:\n    FIELDPATH: spec.ports[1].port\ncommonAnnotations:\n  port: $(CASE_PORT)\n"
    },
    "component-root-plain": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "resources:\n- ../_bases/workloads\nnamePrefix: c-\ncommonLabels:\n  via: component\n"
    },
    "component-root-generators": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "configMapGenerator:\n- name: flags\n  literals:\n  - A=1\n"
        "secretGenerator:\n- name: token\n  literals:\n  - T=x\n"
    },
    "component-root-nested": {
        "kustomization.yaml": "kind: Component\nresources:\n- ../_bases/workloads\ncomponents:\n"
        "- ../_components/debug\n- ../_components/observability\nnamespace: comp\n"
    },
    "component-root-vars": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        + VA
        + "components:\n- ../_components/vars-db\n",
    },
}

ERRORS: dict[str, dict[str, str]] = {
    "vars-duplicate": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: s\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: s\n"
        "  fieldref:\n    fieldpath: spec.ports[0].port\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n",
    },
    "vars-duplicate-overlay": {
        "kustomization.yaml": "resources:\n- ../../_bases/vars-app\nvars:\n- name: APP_PORT\n  objref:\n"
        "    apiVersion: v1\n    kind: Service\n    name: app\n"
    },
    "vars-duplicate-bases": {
        "kustomization.yaml": "resources:\n- ../../_bases/vars-app\n- ../../_bases/vars-other\n"
    },
    "vars-objref-missing": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: nothere\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
    },
    "vars-objref-no-apiversion": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    kind: Service\n"
        "    name: s\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
    },
    "vars-objref-ambiguous": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: s\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: a\n---\n"
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n  namespace: b\n",
    },
    "vars-objref-prefixed-name": {
        "kustomization.yaml": "resources:\n- ../../_bases/vars-app\nnamePrefix: p-\nvars:\n- name: X\n"
        "  objref:\n    apiVersion: v1\n    kind: Service\n    name: p-p-app\n"
    },
    "vars-fieldref-missing": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: s\n  fieldref:\n    fieldpath: spec.ports[3].port\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n  - port: 80\n",
    },
    "vars-args-not-string": {
        "kustomization.yaml": "resources:\n- pod.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Pod\n    name: p\n",
        "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n"
        '    image: busybox:1.36\n    args: ["$(X)", 5]\n',
    },
    "vars-unknown-field": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: Service\n    name: s\n  fieldref:\n    path: spec\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
    },
    "vars-wrong-type": {
        "kustomization.yaml": "resources:\n- svc.yaml\nvars:\n- name: X\n  objref:\n    apiVersion: v1\n"
        "    kind: [Service]\n    name: s\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\n",
    },
    "vars-diamond": {
        "kustomization.yaml": "resources:\n- a\n- b\n",
        "a/kustomization.yaml": "resources:\n- ../../../_bases/vars-app\nnamePrefix: a-\n",
        "b/kustomization.yaml": "resources:\n- ../../../_bases/vars-app\nnamePrefix: b-\n",
    },
    "component-root-merge-missing": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "configMapGenerator:\n- name: absent\n  behavior: merge\n  literals:\n  - A=1\n"
    },
    "component-root-patch-no-target": {
        "kustomization.yaml": "kind: Component\npatches:\n- patch: |-\n    apiVersion: v1\n"
        "    kind: ConfigMap\n    metadata:\n      name: absent\n    data:\n      A: '1'\n"
    },
    "component-root-kustomization-version": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Component\n"
        "resources:\n- ../../_bases/workloads\n"
    },
    "component-root-resource-component": {
        "kustomization.yaml": "kind: Component\nresources:\n- ../../_components/debug\n"
    },
}
