"""Field specifications: which fields of which kinds a transformer touches.

A field spec is ``(group, version, kind, path, create)``; empty group/version/kind match anything. ``path`` is
``/``-separated (``\\/`` escapes a slash inside a key); a segment ending in ``[]`` names a list; lists met on
the way are walked element by element (kustomize's fieldspec semantics, api/filters/fieldspec). The default
tables mirror the behaviour of kustomize v5's built-in transformer configuration, with extra entries so the
images inside kagent Agents and kmcp MCPServers are transformed without user configuration.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from reconciler.render.errors import RenderError


@dataclass(frozen=True)
class FieldSpec:
    """One field location: ``path`` inside objects matching group/version/kind (empty = any)."""

    path: str
    group: str = ""
    version: str = ""
    kind: str = ""
    create: bool = False

    def matches(self, group: str, version: str, kind: str) -> bool:
        """Whether an object of the given group/version/kind is selected by this spec."""
        return (
            (not self.group or self.group == group)
            and (not self.version or self.version == version)
            and (not self.kind or self.kind == kind)
        )

    def effectively_equals(self, other: FieldSpec) -> bool:
        """kustomize's ``effectivelyEquals``: same path and this spec's kind selected by ``other``'s."""
        return self.path == other.path and (
            (not other.group or other.group == self.group)
            and (not other.version or other.version == self.version)
            and (not other.kind or other.kind == self.kind)
        )

    def segments(self) -> tuple[str, ...]:
        """The path split like kyaml's ``PathSplitter`` (``\\/`` keeps a slash inside a segment)."""
        return split_path(self.path)


@functools.lru_cache(maxsize=4096)
def split_path(path: str) -> tuple[str, ...]:
    """Split a field-spec path on ``/`` as kyaml's ``PathSplitter`` does.

    A leading ``/`` is dropped; a segment ending in ``\\`` is joined with the next one by a ``/``.
    """
    parts = path.split("/")
    if len(parts) > 1 and parts[0] == "":
        parts = parts[1:]
    out = [parts[0]]
    for part in parts[1:]:
        if out[-1].endswith("\\"):
            out[-1] = out[-1][:-1] + "/" + part
        else:
            out.append(part)
    return tuple(out)


#: ``set_value(container, key)``: called with the mapping or list holding the field and its key or index.
SetFn = Callable[[Any, Any], None]

SCALAR = "scalar"
MAPPING = "mapping"


def apply_fieldspec(
    obj: dict[str, Any],
    spec: FieldSpec,
    set_value: SetFn,
    *,
    create_kind: str | None = None,
    new_scalar: Any = "",
    where: str | None = None,
) -> None:
    """Call ``set_value(container, key)`` for every field ``spec.path`` reaches in ``obj``.

    Follows kustomize's fieldspec filter (api/filters/fieldspec): the object's current group/version/kind
    must match the spec; lists met on the way are walked element by element; a missing field is created
    only when ``spec.create`` is set, ``create_kind`` is given and the segment is not a ``[]`` list segment
    (``create_kind`` for the last segment, mappings before it); a null field on the way becomes an empty
    mapping (or ``create_kind`` at the end) in that case; a scalar created so holds ``new_scalar`` when
    ``set_value`` is called. ``set_value`` is called even when the field's value is null.

    Raises:
        RenderError: when the path runs into a scalar before its end, or has an empty segment.
    """
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    kind = obj.get("kind") or ""
    if not spec.matches(group, version, kind if isinstance(kind, str) else ""):
        return
    segments = spec.segments()
    creating = spec.create and create_kind is not None

    def walk(container: Any, key: Any, idx: int) -> None:
        node = container[key]
        if idx == len(segments):
            set_value(container, key)
            return
        if node is None:
            return
        if isinstance(node, list):
            for i in range(len(node)):
                walk(node, i, idx)
            return
        if not isinstance(node, dict):
            raise RenderError(
                f"considering field '{spec.path}' of object {_describe(obj)}: expected sequence or mapping "
                "node",
                path=where,
            )
        seg = segments[idx]
        is_seq = seg.endswith("[]")
        name = seg[:-2] if is_seq else seg
        if not name:
            raise RenderError(
                f"considering field '{spec.path}' of object {_describe(obj)}: cannot set or create an "
                "empty field name",
                path=where,
            )
        last = idx == len(segments) - 1
        if not creating or is_seq:
            if name not in node:
                return
        elif name not in node or node[name] is None:
            node[name] = (new_scalar if create_kind == SCALAR else {}) if last else {}
        walk(node, name, idx + 1)

    holder = [obj]
    walk(holder, 0, 0)


def _describe(obj: dict[str, Any]) -> str:
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    return f"{obj.get('kind')}/{(meta or {}).get('name')}"


def parse_fieldspecs(raw: Any, *, where: str, strict: bool = True) -> list[FieldSpec]:
    """Parse a YAML list of ``{path, group, version, kind, create}`` mappings.

    ``strict=False`` ignores unknown fields, as kustomize's builtin transformer plugins read their
    configuration (``yaml.Unmarshal``, api/internal/builtins); kustomizations and ``configurations:`` files
    are read strictly.

    Raises:
        RenderError: when an entry is not a mapping, has no string ``path`` or (strict) an unknown field.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RenderError("fieldSpecs must be a list", path=where)
    out: list[FieldSpec] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise RenderError(f"fieldSpecs[{i}] needs a string 'path'", path=where)
        unknown = set(item) - {"path", "group", "version", "kind", "create"}
        if unknown and strict:
            raise RenderError(f"fieldSpecs[{i}]: unknown field(s) {sorted(unknown)}", path=where)
        out.append(
            FieldSpec(
                path=item["path"],
                group=str(item.get("group") or ""),
                version=str(item.get("version") or ""),
                kind=str(item.get("kind") or ""),
                create=bool(item.get("create", False)),
            )
        )
    return out


def merge_fieldspecs(
    existing: list[FieldSpec], incoming: Iterable[FieldSpec], *, where: str | None = None
) -> list[FieldSpec]:
    """kustomize's ``FsSlice.MergeAll``: add each incoming spec unless an existing one is effectively equal.

    Raises:
        RenderError: when an effectively equal spec differs in ``create`` ("conflicting fieldspecs").
    """
    out = list(existing)
    for spec in incoming:
        twin = next((s for s in out if s.effectively_equals(spec)), None)
        if twin is None:
            out.append(spec)
        elif twin in PLATFORM_IMAGE_SPECS and twin != spec:
            out[out.index(twin)] = spec  # a user's own entry for a built-in platform field wins
        elif twin.create != spec.create:
            raise RenderError(f"conflicting fieldspecs for path {spec.path!r}", path=where)
    return out


# -- default tables -----------------------------------------------------------------------------------

_POD_TEMPLATES: list[tuple[str, str, str, str]] = [
    # (prefix up to the pod spec, group, version, kind)
    ("spec", "", "v1", "Pod"),
    ("template/spec", "", "", "PodTemplate"),
    ("spec/template/spec", "", "", "Deployment"),
    ("spec/template/spec", "", "", "ReplicaSet"),
    ("spec/template/spec", "", "", "DaemonSet"),
    ("spec/template/spec", "", "", "StatefulSet"),
    ("spec/template/spec", "", "", "Job"),
    ("spec/jobTemplate/spec/template/spec", "", "", "CronJob"),
]

_WORKLOAD_META: list[tuple[str, str, str, str]] = [
    ("spec/template/metadata", "", "v1", "ReplicationController"),
    ("spec/template/metadata", "", "", "Deployment"),
    ("spec/template/metadata", "", "", "ReplicaSet"),
    ("spec/template/metadata", "", "", "DaemonSet"),
    ("spec/template/metadata", "apps", "", "StatefulSet"),
    ("spec/template/metadata", "batch", "", "Job"),
    ("spec/jobTemplate/metadata", "batch", "", "CronJob"),
    ("spec/jobTemplate/spec/template/metadata", "batch", "", "CronJob"),
]


def _template_labels() -> list[FieldSpec]:
    specs = [FieldSpec("metadata/labels", create=True)]
    for prefix, g, v, k in _WORKLOAD_META:
        specs.append(FieldSpec(f"{prefix}/labels", g, v, k, True))
        if k == "StatefulSet":
            specs.append(FieldSpec("spec/volumeClaimTemplates[]/metadata/labels", "apps", "", k, True))
    return specs


def _common_labels() -> list[FieldSpec]:
    specs = [
        FieldSpec("spec/selector", "", "v1", "Service", True),
        FieldSpec("spec/selector", "", "v1", "ReplicationController", True),
        FieldSpec("spec/selector/matchLabels", "", "", "Deployment", True),
    ]
    affinity = [
        f"spec/template/spec/affinity/{a}/{w}"
        for a in ("podAffinity", "podAntiAffinity")
        for w in (
            "preferredDuringSchedulingIgnoredDuringExecution/podAffinityTerm/labelSelector/matchLabels",
            "requiredDuringSchedulingIgnoredDuringExecution/labelSelector/matchLabels",
        )
    ] + ["spec/template/spec/topologySpreadConstraints/labelSelector/matchLabels"]
    specs += [FieldSpec(p, "apps", "", "Deployment") for p in affinity]
    specs += [
        FieldSpec("spec/selector/matchLabels", "", "", "ReplicaSet", True),
        FieldSpec("spec/selector/matchLabels", "", "", "DaemonSet", True),
        FieldSpec("spec/selector/matchLabels", "apps", "", "StatefulSet", True),
    ]
    specs += [FieldSpec(p, "apps", "", "StatefulSet") for p in affinity]
    specs += [
        FieldSpec("spec/selector/matchLabels", "batch", "", "Job"),
        FieldSpec("spec/jobTemplate/spec/selector/matchLabels", "batch", "", "CronJob"),
        FieldSpec("spec/selector/matchLabels", "policy", "", "PodDisruptionBudget"),
        FieldSpec("spec/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy"),
        FieldSpec("spec/ingress/from/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy"),
        FieldSpec("spec/egress/to/podSelector/matchLabels", "networking.k8s.io", "", "NetworkPolicy"),
    ]
    return specs + _template_labels()


def _common_annotations() -> list[FieldSpec]:
    specs = [FieldSpec("metadata/annotations", create=True)]
    for prefix, _g, v, k in _WORKLOAD_META:
        specs.append(
            FieldSpec(f"{prefix}/annotations", "batch" if k in ("Job", "CronJob") else "", v, k, True)
        )
    return specs


#: Image fields of the agent-platform kinds (kagent Agent, kmcp MCPServer). kustomize's own table does not
#: have them; the renderer ships them so ``images:`` entries reach these images without ``configurations``.
PLATFORM_IMAGE_SPECS: tuple[FieldSpec, ...] = (
    FieldSpec("spec/byo/deployment/image", "kagent.dev", "", "Agent"),
    FieldSpec("spec/declarative/deployment/image", "kagent.dev", "", "Agent"),
    FieldSpec("spec/byo/deployment/extraContainers[]/image", "kagent.dev", "", "Agent"),
    FieldSpec("spec/declarative/deployment/extraContainers[]/image", "kagent.dev", "", "Agent"),
    FieldSpec("spec/deployment/image", "kagent.dev", "", "MCPServer"),
    FieldSpec("spec/deployment/initContainer/image", "kagent.dev", "", "MCPServer"),
    FieldSpec("spec/deployment/sidecars[]/image", "kagent.dev", "", "MCPServer"),
)


def _images() -> list[FieldSpec]:
    specs = [
        FieldSpec(f"{p}/{leaf}", create=True)
        for p in ("spec", "spec/template/spec")
        for leaf in ("containers[]/image", "initContainers[]/image", "volumes[]/image/reference")
    ]
    return specs + list(PLATFORM_IMAGE_SPECS)


def _replicas() -> list[FieldSpec]:
    return [
        FieldSpec("spec/replicas", "", "", k, True)
        for k in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")
    ]


def _var_references() -> list[FieldSpec]:
    """kustomize's default ``varReference`` table (api/internal/konfig/builtinpluginconsts/varreference.go):
    container args, command, env values and mount paths, NFS servers, some Ingress and Service fields, and
    every object's labels and annotations. The CronJob NFS path lacks ``spec/`` there; it is kept as is."""
    leaves = (
        "containers/args",
        "containers/command",
        "containers/env/value",
        "containers/volumeMounts/mountPath",
        "initContainers/args",
        "initContainers/command",
        "initContainers/env/value",
        "initContainers/volumeMounts/mountPath",
    )
    pods = {
        "CronJob": "spec/jobTemplate/spec/template/spec",
        "DaemonSet": "spec/template/spec",
        "Deployment": "spec/template/spec",
        "Job": "spec/template/spec",
        "Pod": "spec",
        "ReplicaSet": "spec/template/spec",
        "StatefulSet": "spec/template/spec",
    }
    specs = [FieldSpec(f"{prefix}/{leaf}", kind=kind) for kind, prefix in pods.items() for leaf in leaves]
    nfs = {
        "CronJob": "spec/jobTemplate/spec/template/volumes/nfs/server",
        "DaemonSet": "spec/template/spec/volumes/nfs/server",
        "Deployment": "spec/template/spec/volumes/nfs/server",
        "Job": "spec/template/spec/volumes/nfs/server",
        "Pod": "spec/volumes/nfs/server",
        "ReplicaSet": "spec/template/spec/volumes/nfs/server",
        "StatefulSet": "spec/volumeClaimTemplates/spec/nfs/server",
        "PersistentVolume": "spec/nfs/server",
    }
    specs += [FieldSpec(path, kind=kind) for kind, path in nfs.items()]
    specs += [
        FieldSpec("spec/template/metadata/annotations", kind="Deployment"),
        FieldSpec("spec/rules/host", kind="Ingress"),
        FieldSpec("spec/tls/hosts", kind="Ingress"),
        FieldSpec("spec/tls/secretName", kind="Ingress"),
        FieldSpec("spec/ports/port", kind="Service"),
        FieldSpec("spec/ports/targetPort", kind="Service"),
        FieldSpec("metadata/labels"),
        FieldSpec("metadata/annotations"),
    ]
    return specs


@dataclass(frozen=True)
class NameRef:
    """Objects of ``kind`` (and group/version) are referred to by name at ``fieldspecs``."""

    kind: str
    group: str = ""
    version: str = ""
    fieldspecs: tuple[FieldSpec, ...] = ()


def _pod_refs(leaves: Iterable[str], *, cronjob_extra: Iterable[str] = ()) -> list[FieldSpec]:
    out: list[FieldSpec] = []
    leaves = list(leaves)
    for prefix, g, v, k in _POD_TEMPLATES:
        for leaf in leaves:
            out.append(FieldSpec(f"{prefix}/{leaf}", g, v, k))
    return out


#: kinds whose pod template is ``spec/template/spec`` (for service account, claim and priority class names)
_POD_TEMPLATE_KINDS = ("StatefulSet", "Deployment", "ReplicationController", "Job", "DaemonSet")


def _configmap_referrers() -> list[FieldSpec]:
    """Where a ConfigMap's name is referred to: pod volumes and environment, nodes, RBAC rules, Ingress
    annotations."""
    leaves = [
        "volumes/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
        "volumes/projected/sources/configMap/name",
    ]
    return [
        *_pod_refs(leaves),
        FieldSpec("spec/configSource/configMap", kind="Node"),
        FieldSpec("rules/resourceNames", kind="Role"),
        FieldSpec("rules/resourceNames", kind="ClusterRole"),
        FieldSpec(
            "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap", kind="Ingress"
        ),
    ]


def _secret_referrers() -> list[FieldSpec]:
    """Where a Secret's name is referred to: pods, Ingress TLS and annotations, service accounts, storage
    classes and volumes, RBAC rules, Knative services."""
    leaves = [
        "volumes/secret/secretName",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
        "volumes/projected/sources/secret/name",
    ]
    return [
        *_pod_refs(leaves),
        FieldSpec("spec/tls/secretName", kind="Ingress"),
        FieldSpec("metadata/annotations/ingress.kubernetes.io\\/auth-secret", kind="Ingress"),
        FieldSpec("metadata/annotations/nginx.ingress.kubernetes.io\\/auth-secret", kind="Ingress"),
        FieldSpec("metadata/annotations/nginx.ingress.kubernetes.io\\/auth-tls-secret", kind="Ingress"),
        FieldSpec("imagePullSecrets/name", kind="ServiceAccount"),
        FieldSpec("parameters/secretName", kind="StorageClass"),
        FieldSpec("parameters/adminSecretName", kind="StorageClass"),
        FieldSpec("parameters/userSecretName", kind="StorageClass"),
        FieldSpec("parameters/secretRef", kind="StorageClass"),
        FieldSpec("rules/resourceNames", kind="Role"),
        FieldSpec("rules/resourceNames", kind="ClusterRole"),
        FieldSpec(
            "spec/template/spec/containers/env/valueFrom/secretKeyRef/name",
            "serving.knative.dev",
            "v1",
            "Service",
        ),
        FieldSpec("spec/azureFile/secretName", kind="PersistentVolume"),
    ]


def _service_account_referrers() -> list[FieldSpec]:
    """Where a ServiceAccount's name is referred to: RBAC subjects and pod templates."""
    return [
        FieldSpec("subjects", "rbac.authorization.k8s.io", "", "RoleBinding"),
        FieldSpec("subjects", "rbac.authorization.k8s.io", "", "ClusterRoleBinding"),
        FieldSpec("spec/serviceAccountName", kind="Pod"),
        FieldSpec("spec/jobTemplate/spec/template/spec/serviceAccountName", kind="CronJob"),
    ] + [FieldSpec("spec/template/spec/serviceAccountName", kind=k) for k in _POD_TEMPLATE_KINDS]


def _claim_referrers() -> list[FieldSpec]:
    """Where a PersistentVolumeClaim's name is referred to: the volumes of pods and pod templates."""
    specs = [
        FieldSpec("spec/volumes/persistentVolumeClaim/claimName", kind="Pod"),
        FieldSpec(
            "spec/jobTemplate/spec/template/spec/volumes/persistentVolumeClaim/claimName", kind="CronJob"
        ),
    ]
    return specs + [
        FieldSpec("spec/template/spec/volumes/persistentVolumeClaim/claimName", kind=k)
        for k in _POD_TEMPLATE_KINDS
    ]


def _priority_class_referrers() -> list[FieldSpec]:
    """Where a PriorityClass's name is referred to: pods and pod templates."""
    specs = [
        FieldSpec("spec/priorityClassName", kind="Pod"),
        FieldSpec("spec/jobTemplate/spec/template/spec/priorityClassName", kind="CronJob"),
    ]
    return specs + [FieldSpec("spec/template/spec/priorityClassName", kind=k) for k in _POD_TEMPLATE_KINDS]


def _service_referrers() -> tuple[FieldSpec, ...]:
    """Where a Service's name is referred to: StatefulSets, Ingress backends, API services, webhooks."""
    return (
        FieldSpec("spec/serviceName", "apps", "", "StatefulSet"),
        FieldSpec("spec/rules/http/paths/backend/serviceName", kind="Ingress"),
        FieldSpec("spec/backend/serviceName", kind="Ingress"),
        FieldSpec("spec/rules/http/paths/backend/service/name", kind="Ingress"),
        FieldSpec("spec/defaultBackend/service/name", kind="Ingress"),
        FieldSpec("spec/service/name", "apiregistration.k8s.io", "", "APIService"),
        FieldSpec(
            "webhooks/clientConfig/service",
            "admissionregistration.k8s.io",
            "",
            "ValidatingWebhookConfiguration",
        ),
        FieldSpec(
            "webhooks/clientConfig/service",
            "admissionregistration.k8s.io",
            "",
            "MutatingWebhookConfiguration",
        ),
    )


def _name_references() -> list[NameRef]:
    """kustomize's built-in ``nameReference`` table: for each kind, the fields that hold names of its
    objects (the api module's ``konfig/builtinpluginconsts`` nameReference defaults)."""
    workload_ref = (FieldSpec("spec/scaleTargetRef/name", kind="HorizontalPodAutoscaler"),)
    rbac = "rbac.authorization.k8s.io"
    return [
        NameRef("Deployment", fieldspecs=workload_ref),
        NameRef("ReplicationController", fieldspecs=workload_ref),
        NameRef("ReplicaSet", fieldspecs=workload_ref),
        NameRef("StatefulSet", fieldspecs=workload_ref),
        NameRef("ConfigMap", version="v1", fieldspecs=tuple(_configmap_referrers())),
        NameRef("Secret", version="v1", fieldspecs=tuple(_secret_referrers())),
        NameRef("Service", version="v1", fieldspecs=_service_referrers()),
        NameRef("Role", group=rbac, fieldspecs=(FieldSpec("roleRef/name", rbac, "", "RoleBinding"),)),
        NameRef(
            "ClusterRole",
            group=rbac,
            fieldspecs=(
                FieldSpec("roleRef/name", rbac, "", "RoleBinding"),
                FieldSpec("roleRef/name", rbac, "", "ClusterRoleBinding"),
            ),
        ),
        NameRef("ServiceAccount", version="v1", fieldspecs=tuple(_service_account_referrers())),
        NameRef("PersistentVolumeClaim", version="v1", fieldspecs=tuple(_claim_referrers())),
        NameRef(
            "PersistentVolume",
            version="v1",
            fieldspecs=(
                FieldSpec("spec/volumeName", kind="PersistentVolumeClaim"),
                FieldSpec("rules/resourceNames", kind="ClusterRole"),
            ),
        ),
        NameRef(
            "StorageClass",
            group="storage.k8s.io",
            version="v1",
            fieldspecs=(
                FieldSpec("spec/storageClassName", kind="PersistentVolume"),
                FieldSpec("spec/storageClassName", kind="PersistentVolumeClaim"),
                FieldSpec("spec/volumeClaimTemplates/spec/storageClassName", kind="StatefulSet"),
            ),
        ),
        NameRef(
            "PriorityClass",
            group="scheduling.k8s.io",
            version="v1",
            fieldspecs=tuple(_priority_class_referrers()),
        ),
        NameRef(
            "IngressClass",
            group="networking.k8s.io/v1",
            version="v1",
            fieldspecs=(FieldSpec("spec/ingressClassName", kind="Ingress"),),
        ),
        NameRef(
            "ValidatingAdmissionPolicy",
            group="admissionregistration.k8s.io",
            fieldspecs=(
                FieldSpec(
                    "spec/policyName", "admissionregistration.k8s.io", "", "ValidatingAdmissionPolicyBinding"
                ),
            ),
        ),
    ]


ORDER_FIRST = (
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
)
_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
#: kustomize's kind ranking (kyaml resid ``typeOrders``): negative first, positive last, 0 otherwise.
TYPE_ORDERS: dict[str, int] = {k: -len(ORDER_FIRST) + i for i, k in enumerate(ORDER_FIRST)} | {
    k: 1 + i for i, k in enumerate(_ORDER_LAST)
}


def gvk_sort_key(group: str, version: str, kind: str) -> tuple[int, str]:
    """Sort key equivalent to kyaml's ``Gvk.IsLessThan`` (kind rank, then ``group_version_kind``)."""
    return (TYPE_ORDERS.get(kind, 0), "_".join([group or "~G", version or "~V", kind or "~K"]))


def _sorted_specs(specs: list[FieldSpec]) -> list[FieldSpec]:
    return sorted(specs, key=lambda s: gvk_sort_key(s.group, s.version, s.kind))


_TABLES = {
    "namePrefix": "name_prefix",
    "nameSuffix": "name_suffix",
    "namespace": "namespace",
    "commonLabels": "common_labels",
    "labels": "labels",
    "templateLabels": "template_labels",
    "commonAnnotations": "common_annotations",
    "varReference": "var_reference",
    "images": "images",
    "replicas": "replicas",
}


@dataclass
class TransformerConfig:
    """The field-spec tables of one build (kustomize's ``TransformerConfig``)."""

    namespace: list[FieldSpec] = field(default_factory=list)
    name_prefix: list[FieldSpec] = field(default_factory=list)
    name_suffix: list[FieldSpec] = field(default_factory=list)
    common_labels: list[FieldSpec] = field(default_factory=list)
    template_labels: list[FieldSpec] = field(default_factory=list)
    labels: list[FieldSpec] = field(default_factory=list)
    common_annotations: list[FieldSpec] = field(default_factory=list)
    var_reference: list[FieldSpec] = field(default_factory=list)
    images: list[FieldSpec] = field(default_factory=list)
    replicas: list[FieldSpec] = field(default_factory=list)
    name_reference: list[NameRef] = field(default_factory=list)

    @staticmethod
    def defaults() -> TransformerConfig:
        """kustomize's built-in tables plus the agent-platform image fields (see :func:`_images`)."""
        return TransformerConfig(
            namespace=_sorted_specs(
                [
                    FieldSpec("metadata/name", "", "", "Namespace", True),
                    FieldSpec("spec/service/namespace", "apiregistration.k8s.io", "", "APIService", True),
                    FieldSpec(
                        "spec/conversion/webhook/clientConfig/service/namespace",
                        "apiextensions.k8s.io",
                        "",
                        "CustomResourceDefinition",
                    ),
                ]
            ),
            name_prefix=[FieldSpec("metadata/name")],
            name_suffix=[FieldSpec("metadata/name")],
            common_labels=_sorted_specs(_common_labels()),
            template_labels=_sorted_specs(_template_labels()),
            common_annotations=_sorted_specs(_common_annotations()),
            images=_sorted_specs(_images()),
            replicas=_sorted_specs(_replicas()),
            var_reference=_sorted_specs(_var_references()),
            name_reference=sorted(_name_references(), key=lambda r: gvk_sort_key(r.group, r.version, r.kind)),
        )

    @staticmethod
    def from_raw(raw: dict[str, Any], *, where: str) -> TransformerConfig:
        """Parse one ``configurations:`` file (kustomize's TransformerConfig YAML, unknown fields refused).

        Raises:
            RenderError: for unknown fields and malformed field specs.
        """
        out = TransformerConfig()
        for key, value in raw.items():
            if key in _TABLES:
                setattr(out, _TABLES[key], _sorted_specs(parse_fieldspecs(value, where=where)))
            elif key == "nameReference":
                if not isinstance(value, list):
                    raise RenderError("nameReference must be a list", path=where)
                refs: list[NameRef] = []
                for entry in value:
                    if not isinstance(entry, dict):
                        raise RenderError("nameReference entries must be mappings", path=where)
                    unknown = set(entry) - {"kind", "group", "version", "fieldSpecs"}
                    if unknown:
                        raise RenderError(f"nameReference: unknown field(s) {sorted(unknown)}", path=where)
                    refs.append(
                        NameRef(
                            str(entry.get("kind") or ""),
                            str(entry.get("group") or ""),
                            str(entry.get("version") or ""),
                            tuple(parse_fieldspecs(entry.get("fieldSpecs"), where=where)),
                        )
                    )
                out.name_reference = sorted(refs, key=lambda r: gvk_sort_key(r.group, r.version, r.kind))
            else:
                raise RenderError(
                    f"unknown field {key!r} in transformer configuration (expected one of "
                    f"{', '.join(sorted([*_TABLES, 'nameReference']))})",
                    path=where,
                )
        return out

    def merge(self, other: TransformerConfig, *, where: str | None = None) -> None:
        """Merge ``other`` into these tables as kustomize's ``TransformerConfig.Merge`` does.

        Raises:
            RenderError: for conflicting field specs (same path and kind, different ``create``).
        """
        for name in _TABLES.values():
            merged = merge_fieldspecs(getattr(self, name), getattr(other, name), where=where)
            setattr(self, name, _sorted_specs(merged))
        refs = list(self.name_reference)
        for ref in other.name_reference:
            for i, existing in enumerate(refs):
                if (existing.group, existing.version, existing.kind) == (ref.group, ref.version, ref.kind):
                    specs = merge_fieldspecs(list(existing.fieldspecs), ref.fieldspecs, where=where)
                    refs[i] = NameRef(existing.kind, existing.group, existing.version, tuple(specs))
                    break
            else:
                refs.append(ref)
        self.name_reference = sorted(refs, key=lambda r: gvk_sort_key(r.group, r.version, r.kind))

    def copy(self) -> TransformerConfig:
        """A copy whose tables can be changed independently."""
        out = TransformerConfig()
        for name in _TABLES.values():
            setattr(out, name, list(getattr(self, name)))
        out.name_reference = list(self.name_reference)
        return out
