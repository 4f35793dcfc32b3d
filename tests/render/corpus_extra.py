"""Second half of the parity corpus (written by make_corpus.py): richer workloads, agent-platform kinds,
every transformer option the renderer implements, and more inputs kustomize refuses."""

from __future__ import annotations

WORKLOADS = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
  labels:
    app: api
  annotations:
    team.example.test/owner: search
spec:
  replicas: 2
  selector:
    matchLabels:
      app: api
  template:
    metadata:
      labels:
        app: api
    spec:
      serviceAccountName: api-sa
      priorityClassName: high
      imagePullSecrets:
      - name: pull-creds
      affinity:
        podAntiAffinity:
          requiredDuringSchedulingIgnoredDuringExecution:
          - topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                app: api
      topologySpreadConstraints:
      - maxSkew: 1
        topologyKey: topology.kubernetes.io/zone
        whenUnsatisfiable: ScheduleAnyway
        labelSelector:
          matchLabels:
            app: api
      tolerations:
      - key: dedicated
        operator: Equal
        value: agents
        effect: NoSchedule
      initContainers:
      - name: migrate
        image: registry.example.test/api-migrate:1.0.0
        envFrom:
        - secretRef:
            name: api-secret
      containers:
      - name: api
        image: registry.example.test/api:3.1.0
        args: ["--port=8080", "--metrics=9090"]
        ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        - name: metrics
          containerPort: 9090
        env:
        - name: MODE
          value: serve
        - name: DB_HOST
          valueFrom:
            configMapKeyRef:
              name: api-config
              key: DB_HOST
        - name: DB_PASSWORD
          valueFrom:
            secretKeyRef:
              name: api-secret
              key: password
        envFrom:
        - configMapRef:
            name: api-config
        - secretRef:
            name: api-secret
        volumeMounts:
        - name: config
          mountPath: /etc/api
        - name: bundle
          mountPath: /etc/bundle
        - name: data
          mountPath: /var/lib/api
      - name: proxy
        image: reg.example.test/proxy@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef
      volumes:
      - name: config
        configMap:
          name: api-config
      - name: bundle
        projected:
          sources:
          - configMap:
              name: api-config
          - secret:
              name: api-secret
          - serviceAccountToken:
              path: token
      - name: data
        persistentVolumeClaim:
          claimName: data
---
apiVersion: v1
kind: Service
metadata:
  name: api
spec:
  selector:
    app: api
  ports:
  - name: http
    port: 80
    targetPort: http
    protocol: TCP
  - name: metrics
    port: 9090
  - name: dns-udp
    port: 53
    protocol: UDP
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: api
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: api
  minReplicas: 2
  maxReplicas: 6
  metrics:
  - type: Resource
    resource:
      name: cpu
      target:
        type: Utilization
        averageUtilization: 70
---
apiVersion: batch/v1
kind: CronJob
metadata:
  name: report
spec:
  schedule: "0 6 * * 1"
  jobTemplate:
    spec:
      template:
        metadata:
          labels:
            job: report
        spec:
          serviceAccountName: api-sa
          restartPolicy: Never
          containers:
          - name: report
            image: registry.example.test/report:0.4.2
            envFrom:
            - configMapRef:
                name: api-config
            volumeMounts:
            - name: config
              mountPath: /etc/report
          volumes:
          - name: config
            configMap:
              name: api-config
          - name: out
            persistentVolumeClaim:
              claimName: data
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: store
spec:
  serviceName: api
  replicas: 1
  selector:
    matchLabels:
      app: store
  template:
    metadata:
      labels:
        app: store
    spec:
      containers:
      - name: store
        image: registry.example.test/store:5.0
        volumeMounts:
        - name: pages
          mountPath: /data
  volumeClaimTemplates:
  - metadata:
      name: pages
    spec:
      storageClassName: fast
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
---
apiVersion: batch/v1
kind: Job
metadata:
  name: seed
spec:
  template:
    spec:
      restartPolicy: OnFailure
      containers:
      - name: seed
        image: registry.example.test/api-migrate:1.0.0
        args: [seed]
---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-agent
spec:
  selector:
    matchLabels:
      app: node-agent
  template:
    metadata:
      labels:
        app: node-agent
    spec:
      containers:
      - name: agent
        image: registry.example.test/node-agent:2
---
apiVersion: v1
kind: Pod
metadata:
  name: debug
spec:
  containers:
  - name: shell
    image: registry.example.test/toolbox:1.2
  ephemeralContainers:
  - name: probe
    image: registry.example.test/toolbox:1.2
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: api
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: api
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: api
spec:
  podSelector:
    matchLabels:
      app: api
  ingress:
  - from:
    - podSelector:
        matchLabels:
          role: gateway
---
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: api
spec:
  ingressClassName: public
  tls:
  - hosts: [api.example.test]
    secretName: api-tls
  rules:
  - host: api.example.test
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: api
            port:
              name: http
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingWebhookConfiguration
metadata:
  name: api-validate
webhooks:
- name: validate.api.example.test
  admissionReviewVersions: [v1]
  sideEffects: None
  clientConfig:
    service:
      name: api
      namespace: default
      path: /validate
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: data
spec:
  storageClassName: fast
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 5Gi
"""

CLUSTER = """\
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: fast
provisioner: example.test/fast
---
apiVersion: scheduling.k8s.io/v1
kind: PriorityClass
metadata:
  name: high
value: 1000
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata:
  name: public
spec:
  controller: example.test/ingress
"""

RBAC = """\
apiVersion: v1
kind: ServiceAccount
metadata:
  name: api-sa
imagePullSecrets:
- name: pull-creds
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: api-reader
rules:
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [api-config]
  verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: api-reader
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: api-reader
subjects:
- kind: ServiceAccount
  name: api-sa
- kind: ServiceAccount
  name: default
- kind: ServiceAccount
  name: scraper
  namespace: observability
- kind: User
  name: jane@example.test
  apiGroup: rbac.authorization.k8s.io
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: api-nodes
rules:
- apiGroups: [""]
  resources: [nodes]
  verbs: [list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: api-nodes
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: api-nodes
subjects:
- kind: ServiceAccount
  name: api-sa
  namespace: default
- kind: Group
  name: system:authenticated
  apiGroup: rbac.authorization.k8s.io
"""

CONFIG = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: api-config
data:
  DB_HOST: db.internal
  LOG_FORMAT: json
---
apiVersion: v1
kind: Secret
metadata:
  name: api-secret
type: Opaque
stringData:
  password: hunter2
"""

BASE_WORKLOADS = {
    "kustomization.yaml": "resources:\n- workloads.yaml\n- cluster.yaml\n- rbac.yaml\n- config.yaml\n",
    "workloads.yaml": WORKLOADS,
    "cluster.yaml": CLUSTER,
    "rbac.yaml": RBAC,
    "config.yaml": CONFIG,
}

PLATFORM = """\
apiVersion: v1
kind: Secret
metadata:
  name: openai-key
type: Opaque
stringData:
  OPENAI_API_KEY: sk-test-key
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: helpdesk-prompt
data:
  system: |-
    You are the helpdesk agent.
    Answer briefly and cite the docs.
---
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
apiVersion: kagent.dev/v1alpha1
kind: MCPServer
metadata:
  name: clock-v1
spec:
  transportType: stdio
  stdioTransport: {}
  deployment:
    image: registry.example.test/mcp-clock:1.0.0
    cmd: uvx
    args: ["mcp-server-time"]
    port: 3000
    env:
      TZ: UTC
      LOG_LEVEL: info
    secretRefs:
    - name: openai-key
    configMapRefs:
    - name: helpdesk-prompt
---
apiVersion: kagent.dev/v1alpha2
kind: RemoteMCPServer
metadata:
  name: docs-search
spec:
  description: Internal documentation search
  protocol: STREAMABLE_HTTP
  url: http://docs-mcp.tools.svc.cluster.local:8080/mcp
  timeout: 30s
  headersFrom:
  - name: Authorization
    valueFrom:
      type: Secret
      name: openai-key
      key: OPENAI_API_KEY
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: helpdesk
  annotations:
    kagent.dev/owner: platform
spec:
  type: Declarative
  description: Answers questions about time zones and internal docs
  declarative:
    modelConfig: gpt-mini
    systemMessageFrom:
      type: ConfigMap
      name: helpdesk-prompt
      key: system
    tools:
    - type: McpServer
      mcpServer:
        apiGroup: kagent.dev
        kind: MCPServer
        name: clock-v1
        toolNames: [get_current_time, convert_time]
    - type: McpServer
      mcpServer:
        apiGroup: kagent.dev
        kind: RemoteMCPServer
        name: docs-search
        toolNames: [search_docs]
    - type: Agent
      agent:
        name: triage-byo
    deployment:
      replicas: 2
      imagePullSecrets:
      - name: pull-creds
      env:
      - name: LOG_LEVEL
        value: info
      - name: OPENAI_API_KEY
        valueFrom:
          secretKeyRef:
            name: openai-key
            key: OPENAI_API_KEY
      resources:
        requests:
          cpu: 100m
          memory: 256Mi
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: triage-byo
spec:
  type: BYO
  description: Ticket triage agent
  byo:
    deployment:
      image: registry.example.test/triage-agent:1.4.0
      replicas: 1
      env:
      - name: MODEL_NAME
        value: gpt-4o-mini
---
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
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata:
  name: mcp
spec:
  parentRefs:
  - name: agw
  hostnames:
  - mcp.example.internal
  rules:
  - name: clock
    matches:
    - path:
        type: PathPrefix
        value: /clock
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
        backendRef:
          name: clock-v1
        port: 3000
        path: /mcp
        protocol: StreamableHTTP
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayBackend
metadata:
  name: clock-canary
  labels:
    track: canary
spec:
  mcp:
    sessionRouting: Stateful
    failureMode: FailOpen
    targets:
    - name: clock
      static:
        host: clock-v2.agents.svc.cluster.local
        port: 3000
---
apiVersion: agentgateway.dev/v1alpha1
kind: AgentgatewayPolicy
metadata:
  name: mcp-auth
  annotations:
    policy.example.test/tier: gold
spec:
  targetRefs:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    name: mcp
  traffic:
    cors:
      allowOrigins: ["https://portal.example.test"]
      maxAge: 60
---
apiVersion: gateway.networking.k8s.io/v1beta1
kind: ReferenceGrant
metadata:
  name: allow-routes
spec:
  from:
  - group: gateway.networking.k8s.io
    kind: HTTPRoute
    namespace: agentgateway-system
  to:
  - group: agentgateway.dev
    kind: AgentgatewayBackend
"""

BASE_PLATFORM = {"kustomization.yaml": "resources:\n- platform.yaml\n", "platform.yaml": PLATFORM}

# A transformer configuration teaching kustomize (the reference) the name references and images of the
# agent-platform kinds. The renderer ships the same entries built in; the overlays that use it compare
# both with it present.
PLATFORM_CONFIG = """\
nameReference:
- kind: Secret
  version: v1
  fieldSpecs:
  - path: spec/apiKeySecret
    kind: ModelConfig
  - path: spec/deployment/secretRefs/name
    kind: MCPServer
  - path: spec/headersFrom/valueFrom/name
    kind: RemoteMCPServer
  - path: spec/declarative/deployment/env/valueFrom/secretKeyRef/name
    kind: Agent
  - path: spec/declarative/deployment/imagePullSecrets/name
    kind: Agent
- kind: ConfigMap
  version: v1
  fieldSpecs:
  - path: spec/declarative/systemMessageFrom/name
    kind: Agent
  - path: spec/deployment/configMapRefs/name
    kind: MCPServer
- kind: ModelConfig
  group: kagent.dev
  fieldSpecs:
  - path: spec/declarative/modelConfig
    kind: Agent
- kind: MCPServer
  group: kagent.dev
  fieldSpecs:
  - path: spec/declarative/tools/mcpServer/name
    kind: Agent
- kind: RemoteMCPServer
  group: kagent.dev
  fieldSpecs:
  - path: spec/declarative/tools/mcpServer/name
    kind: Agent
- kind: Agent
  group: kagent.dev
  fieldSpecs:
  - path: spec/declarative/tools/agent/name
    kind: Agent
- kind: Gateway
  group: gateway.networking.k8s.io
  fieldSpecs:
  - path: spec/parentRefs/name
    kind: HTTPRoute
- kind: AgentgatewayBackend
  group: agentgateway.dev
  fieldSpecs:
  - path: spec/rules/backendRefs/name
    kind: HTTPRoute
- kind: HTTPRoute
  group: gateway.networking.k8s.io
  fieldSpecs:
  - path: spec/targetRefs/name
    kind: AgentgatewayPolicy
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

W = "resources:\n- ../_bases/workloads\n"
P = "resources:\n- ../_bases/platform\n"
WP = "resources:\n- ../_bases/workloads\n- ../_bases/platform\n"
PC = "configurations:\n- platform-config.yaml\n"

CASES: dict[str, dict[str, str]] = {
    "wl-base": {"kustomization.yaml": W},
    "wl-namespace": {"kustomization.yaml": "namespace: search\n" + W},
    "wl-prefix-suffix": {"kustomization.yaml": "namePrefix: team-\nnameSuffix: -v1\n" + W},
    "wl-prefix-namespace": {"kustomization.yaml": "namePrefix: p-\nnamespace: prod\n" + W},
    "wl-generators-nameref": {
        "kustomization.yaml": "namePrefix: gen-\n"
        "resources:\n- ../_bases/workloads\n"
        "configMapGenerator:\n- name: api-config\n  behavior: replace\n  literals:\n"
        "  - DB_HOST=db.prod\n  - LOG_FORMAT=text\n"
        "secretGenerator:\n- name: api-secret\n  behavior: merge\n  literals:\n  - password=s3cret\n"
        "- name: api-tls\n  type: kubernetes.io/tls\n  files:\n  - tls.crt\n  - tls.key\n"
        "- name: pull-creds\n  type: kubernetes.io/dockerconfigjson\n  files:\n"
        "  - .dockerconfigjson=docker.json\n",
        "tls.crt": "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n",
        "tls.key": "-----BEGIN PRIVATE KEY-----\nMIIEfake\n-----END PRIVATE KEY-----\n",
        "docker.json": '{"auths":{"registry.example.test":{"auth":"dXNlcjpwYXNz"}}}\n',
    },
    "wl-labels-selectors": {
        "kustomization.yaml": W + "labels:\n- pairs:\n    app.kubernetes.io/part-of: search\n"
        "  includeSelectors: true\n"
    },
    "wl-labels-templates": {
        "kustomization.yaml": W + "labels:\n- pairs:\n    tier: backend\n  includeTemplates: true\n"
        "- pairs:\n    plain: only-meta\n"
    },
    "wl-labels-fields": {
        "kustomization.yaml": W + "labels:\n- pairs:\n    release: r7\n  fields:\n"
        "  - path: spec/template/metadata/labels\n    kind: Deployment\n    create: true\n"
        "  - path: spec/selector\n    kind: Service\n"
    },
    "wl-common-labels": {"kustomization.yaml": W + "commonLabels:\n  app.kubernetes.io/name: search\n"},
    "wl-common-annotations": {
        "kustomization.yaml": W + "commonAnnotations:\n  example.test/commit: 0a1b2c\n"
        "  example.test/multi: |\n    line one\n    line two\n"
    },
    "images-ephemeral": {
        "kustomization.yaml": W + "images:\n- name: registry.example.test/toolbox\n  newTag: '2.0'\n"
        "- name: registry.example.test/api-migrate\n  newName: mirror.example.test/api-migrate\n"
    },
    "images-tag-digest": {
        "kustomization.yaml": W + "images:\n- name: registry.example.test/api\n  newTag: 3.2.0\n"
        "  digest: sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"
        "- name: reg.example.test/proxy\n  newTag: v9\n"
        "- name: registry.example.test/store\n"
        "  digest: sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"
        "- name: registry.example.test/report\n  newName: mirror.example.test/report\n"
        '- name: registry.example.test/node-agent\n  newTag: "3@sha256:cccccccccccccccccccccccccccccccc'
        'cccccccccccccccccccccccccccccccc"\n'
    },
    "images-chain-suffix": {
        "kustomization.yaml": W + "images:\n- name: registry.example.test/api\n"
        "  newName: registry.example.test/api-next\n- name: registry.example.test/api-next\n  newTag: rc1\n"
        "- name: registry.example.test/report\n  tagSuffix: -debug\n"
        "- name: registry.example.test/api-migrate\n  tagSuffix: -fips\n"
    },
    "images-port-registry": {
        "kustomization.yaml": "resources:\n- pods.yaml\nimages:\n- name: localhost:5000/agent\n"
        "  newTag: '7'\n"
        "- name: busybox\n  newName: mirror.example.test/library/busybox\n- name: nginx\n  digest: sha256:"
        "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd\n",
        "pods.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: mixed\nspec:\n  initContainers:\n"
        "  - name: a\n    image: localhost:5000/agent:6\n  - name: b\n    image: busybox\n  containers:\n"
        "  - name: c\n    image: nginx:1.27\n  - name: d\n    image: nginx-extra:1\n  - name: e\n"
        "    image: docker.io/library/busybox:1.36\n  - name: f\n    image: busybox:1.36@sha256:"
        "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee\n",
    },
    "images-platform": {
        "kustomization.yaml": P + PC + "images:\n- name: registry.example.test/triage-agent\n"
        "  newTag: 1.5.0\n- name: registry.example.test/mcp-clock\n  newName: mirror.example.test/mcp-clock\n"
        "  digest: sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff\n",
        "platform-config.yaml": PLATFORM_CONFIG,
    },
    "replicas-several": {
        "kustomization.yaml": "namePrefix: r-\n" + W + "replicas:\n- name: api\n  count: 5\n"
        "- name: store\n  count: 3\n"
    },
    "patch-annotation-selector": {
        "kustomization.yaml": WP + "patches:\n- target:\n"
        "    annotationSelector: team.example.test/owner=search\n  patch: |-\n    - op: add\n"
        "      path: /metadata/labels/selected\n      value: by-annotation\n"
        "- target:\n    kind: Service\n    annotationSelector: '!team.example.test/owner'\n  patch: |-\n"
        "    - op: add\n      path: /metadata/annotations\n      value: {unowned: 'true'}\n"
    },
    "patch-regex-targets": {
        "kustomization.yaml": P + "patches:\n- target:\n    kind: AgentgatewayBackend\n"
        "    name: clock-(stable|canary)\n  patch: |-\n    - op: add\n      path: /metadata/labels\n"
        "      value: {family: clock}\n- target:\n    group: kagent.dev\n    version: v1alpha2\n"
        "    name: '.*-byo|help.*'\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n"
        "      value: {regex: matched}\n- target:\n    labelSelector: track in (canary, beta)\n"
        "  patch: |-\n    - op: replace\n      path: /spec/mcp/failureMode\n      value: FailClosed\n"
    },
    "patch-smp-service-ports": {
        "kustomization.yaml": W + "patches:\n- path: svc.yaml\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\nspec:\n  ports:\n"
        "  - port: 80\n    targetPort: 8081\n  - name: dns-tcp\n    port: 53\n    protocol: TCP\n"
        "  - port: 9090\n    $patch: delete\n",
    },
    "patch-smp-lists": {
        "kustomization.yaml": W + "patches:\n- path: dep.yaml\n",
        "dep.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
        "  finalizers: [example.test/cleanup]\nspec:\n  template:\n    spec:\n"
        "      tolerations:\n      - key: spot\n        operator: Exists\n"
        "      imagePullSecrets:\n      - name: extra-creds\n      containers:\n      - name: api\n"
        "        args: [--port=8081]\n        ports:\n        - containerPort: 9090\n          name: prom\n"
        "        env:\n        - name: EXTRA\n          value: '1'\n        - name: MODE\n"
        "          value: debug\n"
        "        volumeMounts:\n        - mountPath: /etc/api\n          readOnly: true\n"
        "        - mountPath: /tmp\n          name: scratch\n      volumes:\n      - name: scratch\n"
        "        emptyDir: {}\n      topologySpreadConstraints:\n"
        "      - topologyKey: topology.kubernetes.io/zone\n"
        "        whenUnsatisfiable: ScheduleAnyway\n        maxSkew: 2\n",
    },
    "patch-smp-crd-lists": {
        "kustomization.yaml": P + "patches:\n- path: agent.yaml\n- path: mcp.yaml\n",
        "agent.yaml": "apiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata:\n  name: helpdesk\nspec:\n"
        "  declarative:\n    tools:\n    - type: McpServer\n      mcpServer:\n        name: clock-v1\n"
        "        toolNames: [get_current_time]\n    deployment:\n      env:\n      - name: LOG_LEVEL\n"
        "        value: debug\n",
        "mcp.yaml": "apiVersion: kagent.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: clock-v1\nspec:\n"
        "  deployment:\n    env:\n      LOG_LEVEL: debug\n      TZ: null\n    replicas: 3\n",
    },
    "patch-smp-directives": {
        "kustomization.yaml": W + "patchesStrategicMerge:\n- directives.yaml\n",
        "directives.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
        "  annotations: null\nspec:\n  template:\n    spec:\n      affinity:\n        $patch: delete\n"
        "      containers:\n      - name: proxy\n        $patch: delete\n      - name: api\n"
        "        resources:\n          $patch: replace\n          limits:\n            memory: 1Gi\n"
        "        env:\n        - $patch: replace\n        - name: ONLY\n          value: this\n"
        "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: api-config\ndata:\n  $patch: replace\n"
        "  FRESH: 'yes'\n",
    },
    "patch-json6902-ops": {
        "kustomization.yaml": W + "patches:\n- target:\n    kind: ConfigMap\n    name: api-config\n"
        "  path: ops.json\n- target:\n    kind: Deployment\n  patch: |-\n"
        "    - op: add\n      path: /spec/template/spec/containers/-\n"
        "      value: {name: tail, image: busybox}\n"
        "    - op: add\n      path: /spec/template/spec/containers/0/env/0\n"
        "      value: {name: FIRST, value: '1'}\n"
        "    - op: test\n      path: /spec/template/spec/containers/0/name\n      value: api\n",
        "ops.json": '[{"op": "add", "path": "/data/a~1b", "value": "slash"},\n'
        ' {"op": "add", "path": "/data/c~0d", "value": "tilde"},\n'
        ' {"op": "copy", "from": "/data/DB_HOST", "path": "/data/DB_HOST_COPY"},\n'
        ' {"op": "move", "from": "/data/LOG_FORMAT", "path": "/data/FORMAT"},\n'
        ' {"op": "add", "path": "/metadata/annotations", "value": {"x.example.test/y": "z"}}]\n',
    },
    "patch-rename": {
        "kustomization.yaml": W + "patches:\n- target:\n    kind: ConfigMap\n    name: api-config\n"
        "  patch: |-\n    - op: replace\n      path: /metadata/name\n      value: api-settings\n"
    },
    "patch-multidoc-inline": {
        "kustomization.yaml": P + "patches:\n- patch: |-\n    apiVersion: kagent.dev/v1alpha2\n"
        "    kind: Agent\n    metadata:\n      name: triage-byo\n    spec:\n      description: patched\n"
        "- patch: |-\n    apiVersion: gateway.networking.k8s.io/v1\n    kind: HTTPRoute\n"
        "    metadata:\n      name: mcp\n    spec:\n"
        "      hostnames: [a.example.internal, b.example.internal]\n"
    },
    "components-patching": {
        "kustomization.yaml": W + "components:\n- ../_components/observability\n- ../_components/debug\n"
    },
    "components-generator-merge": {
        "kustomization.yaml": "resources:\n- ../generators\ncomponents:\n- ../_components/config-merge\n"
    },
    "generator-replace-across": {
        "kustomization.yaml": "resources:\n- ../generator-options\nconfigMapGenerator:\n- name: hashed\n"
        "  behavior: replace\n  literals:\n  - NEW=only\n- name: plain\n  behavior: merge\n"
        "  options:\n    labels:\n      merged: 'true'\n  literals:\n  - K=W\n"
    },
    "secret-types-options": {
        "kustomization.yaml": "generatorOptions:\n  annotations:\n    note: generated\n  immutable: true\n"
        "secretGenerator:\n- name: tls\n  type: kubernetes.io/tls\n  files:\n  - tls.crt\n  - tls.key\n"
        "- name: basic\n  type: kubernetes.io/basic-auth\n  literals:\n  - username=admin\n"
        "  - password=pa=ss\n  options:\n    disableNameSuffixHash: true\n    labels:\n      kind: basic\n"
        "- name: envs\n  envs:\n  - a.env\n  - b.env\nconfigMapGenerator:\n- name: bin\n  files:\n"
        "  - blob.bin\n  - empty.txt\n",
        "tls.crt": "CERT\n",
        "tls.key": "KEY\n",
        "a.env": "A=1\nexport_ok=2\n  SPACED= kept \nNOVALUE\n",
        "b.env": "B='single quoted'\nC=\"double quoted\"\nD=\n",
        "blob.bin": "",
        "empty.txt": "",
    },
    "generator-namespaced": {
        "kustomization.yaml": "namespace: gen-ns\nconfigMapGenerator:\n- name: settings\n  namespace: other\n"
        "  literals:\n  - A=1\n- name: local\n  literals:\n  - B=2\nresources:\n- pod.yaml\n",
        "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n"
        "    image: busybox\n    envFrom:\n    - configMapRef:\n        name: local\n"
        "    - configMapRef:\n        name: settings\n",
    },
    "replacements-delimiter-create": {
        "kustomization.yaml": W + "replacements:\n- source:\n    kind: Deployment\n    name: api\n"
        "    fieldPath: spec.template.spec.containers.[name=api].image\n    options:\n      delimiter: ':'\n"
        "      index: 1\n  targets:\n  - select:\n      kind: ConfigMap\n    fieldPaths:\n"
        "    - data.API_VERSION\n    options:\n      create: true\n  - select:\n      kind: Deployment\n"
        "    reject:\n    - name: api\n    fieldPaths:\n    - metadata.annotations.api-version\n"
        "    options:\n      create: true\n- source:\n    kind: Service\n    name: api\n"
        "    fieldPath: metadata.name\n  targets:\n  - select:\n      kind: ConfigMap\n"
        "      name: api-config\n"
        "    fieldPaths:\n    - data.DB_HOST\n    options:\n      delimiter: '.'\n      index: 0\n"
        "  - select:\n      kind: StatefulSet\n    fieldPaths:\n    - spec.template.spec.containers.0.image\n"
        "    options:\n      delimiter: '/'\n      index: 5\n"
    },
    "replacements-generated-source": {
        "kustomization.yaml": W + "configMapGenerator:\n- name: endpoints\n  literals:\n"
        "  - url=http://api.search:80\nreplacements:\n- path: repl.yaml\n",
        "repl.yaml": "source:\n  kind: ConfigMap\n  name: endpoints\n  fieldPath: data.url\ntargets:\n"
        "- select:\n    kind: Deployment\n    name: api\n  fieldPaths:\n"
        "  - spec.template.spec.containers.[name=api].env.[name=MODE].value\n",
    },
    "configurations-platform": {
        "kustomization.yaml": "namePrefix: prod-\nnamespace: agents-prod\n"
        + P
        + PC
        + "secretGenerator:\n- name: openai-key\n  behavior: replace\n  literals:\n"
        "  - OPENAI_API_KEY=sk-prod\nconfigMapGenerator:\n- name: helpdesk-prompt\n  behavior: replace\n"
        "  literals:\n  - system=Be brief.\n",
        "platform-config.yaml": PLATFORM_CONFIG,
    },
    "configurations-crd-images": {
        "kustomization.yaml": "resources:\n- crs.yaml\nconfigurations:\n- images.yaml\nimages:\n"
        "- name: registry.example.test/runner\n  newTag: '9'\n",
        "images.yaml": "images:\n- path: spec/runner/image\n  kind: Pipeline\n- path: spec/steps[]/image\n"
        "  kind: Pipeline\n",
        "crs.yaml": "apiVersion: ci.example.test/v1\nkind: Pipeline\nmetadata:\n  name: build\nspec:\n"
        "  runner:\n    image: registry.example.test/runner:8\n  steps:\n"
        "  - image: registry.example.test/runner:8\n  - image: other/tool:1\n",
    },
    "platform-base": {"kustomization.yaml": P},
    "platform-namespace-prefix": {
        "kustomization.yaml": "namespace: agents-staging\nnamePrefix: stg-\nnameSuffix: -b\n" + P + PC,
        "platform-config.yaml": PLATFORM_CONFIG,
    },
    "platform-labels-annotations": {
        "kustomization.yaml": P + "labels:\n- pairs:\n    platform.example.test/env: dev\n"
        "  includeSelectors: true\ncommonAnnotations:\n  platform.example.test/rev: '42'\n"
    },
    "platform-patches": {
        "kustomization.yaml": P + "patches:\n- target:\n    kind: HTTPRoute\n    name: mcp\n  patch: |-\n"
        "    - op: replace\n      path: /spec/rules/0/backendRefs/0/weight\n      value: 50\n"
        "    - op: replace\n      path: /spec/rules/0/backendRefs/1/weight\n      value: 50\n"
        "- target:\n    group: agentgateway.dev\n    kind: AgentgatewayPolicy\n  patch: |-\n"
        "    apiVersion: agentgateway.dev/v1alpha1\n    kind: AgentgatewayPolicy\n    metadata:\n"
        "      name: ignored\n    spec:\n      traffic:\n        rateLimit:\n          local:\n"
        "          - requests: 100\n            unit: Minutes\n"
    },
    "cluster-scope-kinds": {
        "kustomization.yaml": "namespace: scoped\nresources:\n- kinds.yaml\n",
        "kinds.yaml": "".join(
            f"---\napiVersion: {av}\nkind: {k}\nmetadata:\n  name: {n}\n"
            for av, k, n in [
                ("v1", "Namespace", "team-a"),
                ("rbac.authorization.k8s.io/v1", "ClusterRole", "cr"),
                ("rbac.authorization.k8s.io/v1beta1", "ClusterRole", "cr-beta"),
                ("storage.k8s.io/v1", "StorageClass", "sc"),
                ("storage.k8s.io/v1", "CSIDriver", "csi"),
                ("scheduling.k8s.io/v1", "PriorityClass", "pc"),
                ("apiextensions.k8s.io/v1", "CustomResourceDefinition", "things.example.test"),
                ("gateway.networking.k8s.io/v1", "GatewayClass", "agentgateway"),
                ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema", "fs"),
                ("flowcontrol.apiserver.k8s.io/v1beta1", "FlowSchema", "fs-beta"),
                ("node.k8s.io/v1", "RuntimeClass", "rc"),
                ("v1", "PersistentVolume", "pv"),
                ("v1", "Node", "n1"),
                ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy", "vap"),
                ("certificates.k8s.io/v1", "CertificateSigningRequest", "csr"),
                ("apiregistration.k8s.io/v1", "APIService", "v1.things.example.test"),
                ("v1", "ConfigMap", "cm"),
                ("example.test/v1", "Namespace", "custom-namespace-kind"),
            ]
        ),
    },
    "namespace-object-rename": {
        "kustomization.yaml": "namespace: renamed\nnamePrefix: x-\nresources:\n- ns.yaml\n",
        "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: original\n---\napiVersion: v1\n"
        "kind: ServiceAccount\nmetadata:\n  name: sa\n  namespace: original\n",
    },
    "sort-legacy-custom": {
        "kustomization.yaml": WP + "sortOptions:\n  order: legacy\n  legacySortOptions:\n"
        "    orderFirst: [Agent, ModelConfig, Secret]\n    orderLast: [ConfigMap, Deployment]\n"
    },
    "local-config-list": {
        "kustomization.yaml": "resources:\n- list.yaml\n- local.yaml\n",
        "list.yaml": "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n"
        "  metadata:\n    name: from-list-a\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n"
        "    name: from-list-b\n  data:\n    k: v\n",
        "local.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local-only\n  annotations:\n"
        "    config.kubernetes.io/local-config: 'true'\n---\napiVersion: v1\nkind: ConfigMap\n"
        "metadata:\n  name: kept\n",
    },
    "nested-three-levels": {
        "kustomization.yaml": "resources:\n- mid\nnameSuffix: -top\ncommonLabels:\n  level: top\n",
        "mid/kustomization.yaml": "resources:\n- ../../_bases/workloads\nnamePrefix: mid-\nnamespace: mid\n"
        "configMapGenerator:\n- name: api-config\n  behavior: merge\n  literals:\n  - EXTRA=1\n",
    },
    "transformers-inline": {
        "kustomization.yaml": W + "transformers:\n- |-\n  apiVersion: builtin\n  kind: NamespaceTransformer\n"
        "  metadata:\n    name: ns\n    namespace: inline-ns\n  setRoleBindingSubjects: allServiceAccounts\n"
        "- |-\n  apiVersion: builtin\n  kind: LabelTransformer\n  metadata:\n    name: lbl\n  labels:\n"
        "    via: inline\n  fieldSpecs:\n  - path: metadata/labels\n    create: true\n"
        "- annotate.yaml\n",
        "annotate.yaml": "apiVersion: builtin\nkind: AnnotationsTransformer\nmetadata:\n  name: a\n"
        "annotations:\n  via: file\nfieldSpecs:\n- path: metadata/annotations\n  kind: Service\n"
        "  create: true\n",
    },
    "transformers-unset-only": {
        "kustomization.yaml": "resources:\n- cms.yaml\ntransformers:\n- ns.yaml\n",
        "cms.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: keep\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        "ns.yaml": "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: ns\n"
        "  namespace: filled\nunsetOnly: true\n",
    },
    "crb-subjects-nameref": {
        "kustomization.yaml": "namespace: agents\nnamePrefix: pre-\nresources:\n- ../_bases/workloads\n"
        "patches:\n- target:\n    kind: ClusterRoleBinding\n  patch: |-\n    - op: add\n"
        "      path: /subjects/-\n"
        "      value: {kind: ServiceAccount, name: default, namespace: kube-system}\n"
    },
    "scalars-unquoted": {
        "kustomization.yaml": "resources:\n- cm.yaml\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: unquoted\n  annotations:\n"
        "    a: 0777\n    b: 0o17\n    c: 0x1F\n    d: 1_000\n    e: yes\n    f: on\n    g: 1e3\n"
        "    h: .5\n    i: +1\n    j: -0\n    k: 2024-01-02\n    l: 12:30\n    m: ~\n    n: true\n"
        "    o: 2024-01-02T10:00:00Z\n    p: 1.0\n    q: -.inf\n    r: .NaN\n    s: 0b101\n    t: 00\n"
        "    u: 1__0\n    v: 9223372036854775808\n    w: 3.14159265358979323846\n    x: 1e400\n"
        "    y: TRUE\n    z: Null\n"
        "data:\n  folded: >\n    folded text\n    continues here\n\n    new paragraph\n"
        "  keep: |+\n    trailing newlines\n\n\n  strip: |-\n    no newline\n"
        '  unicode: "\\u00e9\\U0001F600 \\t tab"\n'
        "  long: " + "x" * 120 + "\n  spaces: '  leading and trailing  '\n  quote: \"'\"\n  dq: '\"'\n"
        "  colon: 'key: value'\n  hash: 'a #b'\n  star: '*ref'\n  amp: '&anchor'\n  bang: '!tag'\n"
        "  pct: '%x'\n  tick: '`x'\n  pipe: '|x'\n  gt: '>x'\n  qm: '? x'\n  dash: '- x'\n"
        "  brace: '{x}'\n  bracket: '[x]'\n  comma: 'a, b'\n  ctrl: \"\\x01\"\n  nbsp: \"a\\u00a0b\"\n",
    },
    "anchors-aliases": {
        "kustomization.yaml": "resources:\n- anchors.yaml\n",
        "anchors.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: anchors\n  labels: &labels\n"
        "    app: x\n    tier: y\n  annotations: *labels\ndata:\n  a: &v shared\n  b: *v\n",
    },
    "secret-long-values": {
        "kustomization.yaml": "secretGenerator:\n- name: long\n  literals:\n"
        "  - TOKEN=" + "abcdefghij" * 8 + "\n  - SHORT=abc\n  files:\n  - cert.pem\n"
        "configMapGenerator:\n- name: blob\n  files:\n  - blob.bin\n",
        "cert.pem": "-----BEGIN CERTIFICATE-----\n"
        + ("MIIB" * 20 + "\n") * 3
        + "-----END CERTIFICATE-----\n",
        "blob.bin": "",
    },
    "smp-list-directives": {
        "kustomization.yaml": W + "patches:\n- path: p.yaml\n",
        "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\n"
        "  finalizers: [b.example.test/x, a.example.test/y]\nspec:\n  template:\n    spec:\n"
        "      volumes:\n      - $patch: delete\n      initContainers:\n      - $patch: replace\n"
        "      - name: fresh-init\n        image: busybox\n      containers:\n      - name: api\n"
        "        ports:\n        - containerPort: 8080\n          protocol: TCP\n          hostPort: 18080\n",
    },
    "patch-allow-name-change": {
        "kustomization.yaml": W + "patches:\n- options:\n    allowNameChange: true\n  patch: |-\n"
        "    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: api-config\n"
        "    $patch: merge\n- target:\n    kind: Secret\n  options:\n    allowNameChange: true\n"
        "  patch: |-\n    apiVersion: v1\n    kind: Secret\n    metadata:\n      name: renamed-secret\n",
    },
    "patch-sm-inline-legacy": {
        "kustomization.yaml": W + "patchesStrategicMerge:\n- |-\n  apiVersion: v1\n  kind: Service\n"
        "  metadata:\n    name: api\n  spec:\n    type: NodePort\n"
    },
    "labels-and-common-labels": {
        "kustomization.yaml": W + "commonLabels:\n  env: dev\nlabels:\n- pairs:\n    team: search\n"
        "  includeTemplates: true\n"
    },
    "kustomization-yml-bases": {
        "kustomization.yml": "bases:\n- ../_bases/platform\nnamePrefix: b-\n",
    },
    "json6902-negative-index": {
        "kustomization.yaml": W + "patches:\n- target:\n    kind: Deployment\n    name: api\n  patch: |-\n"
        "    - op: remove\n      path: /spec/template/spec/containers/-1\n"
        "    - op: replace\n      path: /spec/template/spec/containers/0/args/-1\n"
        "      value: --metrics=9191\n"
        "    - op: add\n      path: /spec/template/spec/containers/0/args/-1\n      value: --verbose\n"
        "    - op: add\n      path: /spec/template/spec/tolerations/-\n"
        "      value: {key: gpu, operator: Exists}\n"
    },
    "service-ports-protocols": {
        "kustomization.yaml": "resources:\n- svc.yaml\npatches:\n- path: p.yaml\n",
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  ports:\n"
        "  - name: dns-udp\n    port: 53\n    protocol: UDP\n  - name: web\n    port: 80\n"
        "  - name: alt\n    port: 8080\n    protocol: TCP\n",
        "p.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: dns\nspec:\n  ports:\n"
        "  - name: dns-tcp\n    port: 53\n    protocol: TCP\n  - port: 80\n    targetPort: 8081\n"
        "  - port: 8080\n    nodePort: 30080\n",
    },
    "nameref-prefix-disambiguation": {
        "kustomization.yaml": "resources:\n- a\n- b\n",
        "a/kustomization.yaml": "namePrefix: a-\nresources:\n- ../app\n",
        "b/kustomization.yaml": "namePrefix: b-\nresources:\n- ../app\n",
        "app/kustomization.yaml": "resources:\n- app.yaml\nconfigMapGenerator:\n- name: config\n  literals:\n"
        "  - K=V\n",
        "app/app.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n"
        "  selector:\n    matchLabels: {app: app}\n  template:\n    metadata:\n      labels: {app: app}\n"
        "    spec:\n      containers:\n      - name: app\n        image: app:1\n        envFrom:\n"
        "        - configMapRef:\n            name: config\n",
    },
    "images-noop-and-newname-digest": {
        "kustomization.yaml": W + "images:\n- name: registry.example.test/store\n"
        "- name: reg.example.test/proxy\n  newName: mirror.example.test/proxy\n"
    },
    "replacements-sourcevalue-reject": {
        "kustomization.yaml": W + "replacements:\n- sourceValue: pinned\n  targets:\n  - select:\n"
        "      kind: ConfigMap|Secret\n    reject:\n    - name: api-secret\n    fieldPaths:\n"
        "    - metadata.annotations.pinned\n    options:\n      create: true\n- source:\n"
        "    kind: Service\n    name: api\n    fieldPath: spec.ports.[name=http].port\n  targets:\n"
        "  - select:\n      kind: HorizontalPodAutoscaler\n    fieldPaths:\n    - spec.minReplicas\n"
        "  - select:\n      name: api\n      kind: Deployment\n    fieldPaths:\n"
        "    - spec.template.spec.containers.[name=api].env.[name=MODE].value\n",
    },
    "rolebinding-subjects-none": {
        "kustomization.yaml": W + "transformers:\n- ns.yaml\n",
        "ns.yaml": "apiVersion: builtin\nkind: NamespaceTransformer\nmetadata:\n  name: ns\n"
        "  namespace: quiet\nsetRoleBindingSubjects: none\nfieldSpecs:\n- path: metadata/name\n"
        "  kind: Namespace\n  create: true\n",
    },
    "annotations-empty-map": {
        "kustomization.yaml": "namespace: ns2\nresources:\n- cms.yaml\n",
        "cms.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations: {}\n"
        "  labels: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n"
        "    config.kubernetes.io/local-config: 'false'\n",
    },
    "transformers-patch-configs": {
        "kustomization.yaml": W + "transformers:\n- patches.yaml\n",
        "patches.yaml": "apiVersion: builtin\nkind: PatchTransformer\nmetadata:\n  name: p1\n"
        "target:\n  kind: Deployment\npatch: |-\n  - op: add\n    path: /metadata/labels/patched\n"
        "    value: 'yes'\n---\napiVersion: builtin\nkind: ImageTagTransformer\nmetadata:\n  name: img\n"
        "imageTag:\n  name: registry.example.test/api\n  newTag: from-transformer\n---\n"
        "apiVersion: builtin\nkind: ReplicaCountTransformer\nmetadata:\n  name: rc\nreplica:\n"
        "  name: store\n  count: 4\nfieldSpecs:\n- path: spec/replicas\n  kind: StatefulSet\n"
        "  create: true\n",
    },
    "json6902-yaml11-values": {
        "kustomization.yaml": "resources:\n- cm.yaml\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n"
        "    - op: add\n      path: /data/date\n      value: 2024-01-02\n    - op: add\n"
        "      path: /data/yes\n      value: yes\n    - op: add\n      path: /data/oct\n      value: 0777\n"
        "    - op: add\n      path: /metadata/labels\n      value: {'on': 'off', '1.50': x}\n",
        "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: values\ndata: {}\n",
    },
}

COMPONENTS: dict[str, dict[str, str]] = {
    "observability": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "resources:\n- monitor.yaml\nlabels:\n- pairs:\n    observed: 'true'\npatches:\n"
        "- path: sidecar.yaml\n",
        "monitor.yaml": "apiVersion: monitoring.example.test/v1\nkind: ServiceMonitor\nmetadata:\n"
        "  name: api\nspec:\n  selector:\n    matchLabels:\n      app: api\n  endpoints:\n"
        "  - port: metrics\n",
        "sidecar.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: api\nspec:\n  template:\n"
        "    spec:\n      containers:\n      - name: exporter\n"
        "        image: registry.example.test/exporter:0.1\n",
    },
    "config-merge": {
        "kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
        "configMapGenerator:\n- name: agent-config\n  behavior: merge\n  literals:\n  - FROM_COMPONENT=1\n"
        "secretGenerator:\n- name: openai-key\n  behavior: replace\n  literals:\n"
        "  - OPENAI_API_KEY=sk-component\n"
    },
}

ERRORS: dict[str, dict[str, str]] = {
    "remote-resource": {
        "kustomization.yaml": "resources:\n- https://127.0.0.1:1/example/repo//base?ref=v1\n"
    },
    "component-wrong-kind": {"kustomization.yaml": "components:\n- ../../_bases/workloads\n"},
    "resource-is-component": {"kustomization.yaml": "resources:\n- ../../_components/debug\n"},
    "replacement-source-missing": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\nreplacements:\n- source:\n"
        "    kind: Service\n    name: nope\n  targets:\n  - select:\n      kind: ConfigMap\n"
        "    fieldPaths:\n    - data.X\n"
    },
    "generator-merge-missing": {
        "kustomization.yaml": "configMapGenerator:\n- name: ghost\n  behavior: merge\n  literals:\n  - A=1\n"
    },
    "json-patch-bad-op": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\npatches:\n- target:\n    kind: Service\n"
        "  patch: |-\n    - op: frobnicate\n      path: /spec\n"
    },
    "no-kustomization": {"kustomization.yaml": "resources:\n- empty-dir\n", "empty-dir/README": "nothing\n"},
    "namespace-conflict": {
        "kustomization.yaml": "namespace: same\nresources:\n- cms.yaml\n",
        "cms.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: one\n---\n"
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: two\n",
    },
    "duplicate-yaml-key": {
        "kustomization.yaml": "resources:\n- dup.yaml\n",
        "dup.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
    },
    "generator-file-missing": {
        "kustomization.yaml": "configMapGenerator:\n- name: a\n  files:\n  - missing.txt\n"
    },
    "unknown-kustomization-field": {"kustomization.yaml": "resourcez:\n- a.yaml\n"},
    "parent-dir-resource": {"kustomization.yaml": "resources:\n- ..\n"},
    "patch-file-outside-dir": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\npatches:\n"
        "- path: ../../_bases/workloads/config.yaml\n"
    },
    "generator-duplicate-key": {
        "kustomization.yaml": "configMapGenerator:\n- name: a\n  literals:\n  - K=1\n  - K=2\n"
    },
    "smp-unknown-directive": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\npatches:\n- patch: |-\n"
        "    apiVersion: v1\n    kind: Service\n    metadata:\n      name: api\n    spec:\n"
        "      $patch: explode\n"
    },
    "replicas-no-matching-kind": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\nreplicas:\n- name: node-agent\n"
        "  count: 2\n"
    },
    "patch-path-and-inline": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\npatches:\n- path: p.yaml\n"
        "  patch: |-\n    - op: remove\n      path: /spec\n",
        "p.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: api\n",
    },
    "kustomization-empty": {"kustomization.yaml": "# nothing here\n"},
    "wrong-api-version": {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1\nresources: []\n"},
    "namespace-not-string": {"kustomization.yaml": "namespace: n\nresources: []\n"},
    "replacement-two-sources": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\nreplacements:\n- source:\n"
        "    kind: ConfigMap\n  targets:\n  - select:\n      kind: Service\n    fieldPaths:\n"
        "    - metadata.annotations.x\n"
    },
    "image-entry-unknown-field": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\nimages:\n- name: x\n  newVersion: '2'\n"
    },
    "smp-multidoc-with-target": {
        "kustomization.yaml": "resources:\n- ../../_bases/workloads\npatches:\n- target:\n    kind: Service\n"
        "  patch: |-\n    apiVersion: v1\n    kind: Service\n    metadata:\n      name: a\n    ---\n"
        "    apiVersion: v1\n    kind: Service\n    metadata:\n      name: b\n"
    },
    "list-not-mapping": {"kustomization.yaml": "resources:\n- list.yaml\n", "list.yaml": "- a\n- b\n"},
}
