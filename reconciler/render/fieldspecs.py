"""Field specifications: which fields of which kinds a transformer touches.

A field spec is ``(group, version, kind, path, create)``; empty group/version/kind match anything. ``path`` is
``/``-separated (``\\/`` escapes a slash inside a key); a segment ending in ``[]`` names a list; lists met on
the way are walked element by element (kustomize's fieldspec semantics, api/filters/fieldspec). The default
tables mirror the behaviour of kustomize v5's built-in transformer configuration, with extra entries so the
images inside kagent Agents and kmcp MCPServers are transformed without user configuration.
"""

from __future__ import annotations

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


def split_path(path: str) -> list[str]:
    """Split a field-spec path on ``/`` honouring ``\\/`` escapes."""
    parts: list[str] = []
    cur = ""
    i = 0
    while i < len(path):
        if path[i] == "\\" and i + 1 < len(path) and path[i + 1] == "/":
            cur += "/"
            i += 2
            continue
        if path[i] == "/":
            parts.append(cur)
            cur = ""
        else:
            cur += path[i]
        i += 1
    parts.append(cur)
    return [p for p in parts if p != ""]


SetFn = Callable[[dict[str, Any] | list[Any], str | int, Any], None]


def apply_fieldspec(
    obj: dict[str, Any],
    spec: FieldSpec,
    visit: Callable[[Any, dict[str, Any] | list[Any], str | int], None],
    *,
    create_value: Callable[[], Any] | None = None,
) -> None:
    """Call ``visit(value, parent, key)`` for every field ``spec.path`` reaches in ``obj``.

    Missing intermediate fields are created as mappings (and the leaf as ``create_value()``) only when
    ``spec.create`` is true; otherwise the branch is skipped. Lists met on the way are walked.
    """
    segments = split_path(spec.path)

    def walk(node: Any, idx: int) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item, idx)
            return
        if not isinstance(node, dict):
            return
        seg = segments[idx]
        is_list = seg.endswith("[]")
        key = seg[:-2] if is_list else seg
        last = idx == len(segments) - 1
        if key not in node or node[key] is None:
            if not spec.create or create_value is None or any(s.endswith("[]") for s in segments[idx:]):
                return
            if last:
                if create_value is None:
                    return
                node[key] = create_value()
            else:
                node[key] = [] if is_list else {}
        if last:
            value = node[key]
            if is_list and isinstance(value, list):
                for i in range(len(value)):
                    visit(value[i], value, i)
            else:
                visit(value, node, key)
            return
        walk(node[key], idx + 1)

    if segments:
        walk(obj, 0)


def parse_fieldspecs(raw: Any, *, where: str) -> list[FieldSpec]:
    """Parse a YAML list of ``{path, group, version, kind, create}`` mappings.

    Raises:
        RenderError: when an entry is not a mapping or has no string ``path``.
    """
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise RenderError("fieldSpecs must be a list", path=where)
    out: list[FieldSpec] = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict) or not isinstance(item.get("path"), str):
            raise RenderError(f"fieldSpecs[{i}] needs a string 'path'", path=where)
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


def _images() -> list[FieldSpec]:
    specs = [
        FieldSpec(f"{p}/{leaf}", create=True)
        for p in ("spec", "spec/template/spec")
        for leaf in ("containers[]/image", "initContainers[]/image", "volumes[]/image/reference")
    ]
    # agent-platform kinds (kagent Agent, kmcp MCPServer): not in kustomize's table; built in here.
    specs += [
        FieldSpec("spec/declarative/deployment/image", "kagent.dev", "", "Agent"),
        FieldSpec("spec/byo/deployment/image", "kagent.dev", "", "Agent"),
        FieldSpec("spec/deployment/image", "kagent.dev", "", "MCPServer"),
    ]
    return specs


def _replicas() -> list[FieldSpec]:
    return [
        FieldSpec("spec/replicas", "", "", k, True)
        for k in ("Deployment", "ReplicationController", "ReplicaSet", "StatefulSet")
    ]


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


def _name_references() -> list[NameRef]:
    workload_ref = (FieldSpec("spec/scaleTargetRef/name", kind="HorizontalPodAutoscaler"),)
    cm_leaves = [
        "volumes/configMap/name",
        "containers/env/valueFrom/configMapKeyRef/name",
        "initContainers/env/valueFrom/configMapKeyRef/name",
        "containers/envFrom/configMapRef/name",
        "initContainers/envFrom/configMapRef/name",
        "volumes/projected/sources/configMap/name",
    ]
    secret_leaves = [
        "volumes/secret/secretName",
        "containers/env/valueFrom/secretKeyRef/name",
        "initContainers/env/valueFrom/secretKeyRef/name",
        "containers/envFrom/secretRef/name",
        "initContainers/envFrom/secretRef/name",
        "imagePullSecrets/name",
        "volumes/projected/sources/secret/name",
    ]
    cm = [
        *_pod_refs(cm_leaves),
        FieldSpec("spec/configSource/configMap", kind="Node"),
        FieldSpec("rules/resourceNames", kind="Role"),
        FieldSpec("rules/resourceNames", kind="ClusterRole"),
        FieldSpec(
            "metadata/annotations/nginx.ingress.kubernetes.io\\/fastcgi-params-configmap", kind="Ingress"
        ),
    ]
    secret = [
        *_pod_refs(secret_leaves),
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
    sa_kinds = ["StatefulSet", "Deployment", "ReplicationController", "Job", "DaemonSet"]
    sa = [
        FieldSpec("subjects", "rbac.authorization.k8s.io", "", "RoleBinding"),
        FieldSpec("subjects", "rbac.authorization.k8s.io", "", "ClusterRoleBinding"),
        FieldSpec("spec/serviceAccountName", kind="Pod"),
        FieldSpec("spec/jobTemplate/spec/template/spec/serviceAccountName", kind="CronJob"),
    ] + [FieldSpec("spec/template/spec/serviceAccountName", kind=k) for k in sa_kinds]
    pvc = [
        FieldSpec("spec/volumes/persistentVolumeClaim/claimName", kind="Pod"),
        FieldSpec(
            "spec/jobTemplate/spec/template/spec/volumes/persistentVolumeClaim/claimName", kind="CronJob"
        ),
    ]
    pvc += [FieldSpec("spec/template/spec/volumes/persistentVolumeClaim/claimName", kind=k) for k in sa_kinds]
    prio = [
        FieldSpec("spec/priorityClassName", kind="Pod"),
        FieldSpec("spec/jobTemplate/spec/template/spec/priorityClassName", kind="CronJob"),
    ]
    prio += [FieldSpec("spec/template/spec/priorityClassName", kind=k) for k in sa_kinds]
    rbac = "rbac.authorization.k8s.io"
    return [
        NameRef("Deployment", fieldspecs=workload_ref),
        NameRef("ReplicationController", fieldspecs=workload_ref),
        NameRef("ReplicaSet", fieldspecs=workload_ref),
        NameRef("StatefulSet", fieldspecs=workload_ref),
        NameRef("ConfigMap", version="v1", fieldspecs=tuple(cm)),
        NameRef("Secret", version="v1", fieldspecs=tuple(secret)),
        NameRef(
            "Service",
            version="v1",
            fieldspecs=(
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
            ),
        ),
        NameRef("Role", group=rbac, fieldspecs=(FieldSpec("roleRef/name", rbac, "", "RoleBinding"),)),
        NameRef(
            "ClusterRole",
            group=rbac,
            fieldspecs=(
                FieldSpec("roleRef/name", rbac, "", "RoleBinding"),
                FieldSpec("roleRef/name", rbac, "", "ClusterRoleBinding"),
            ),
        ),
        NameRef("ServiceAccount", version="v1", fieldspecs=tuple(sa)),
        NameRef("PersistentVolumeClaim", version="v1", fieldspecs=tuple(pvc)),
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
        NameRef("PriorityClass", group="scheduling.k8s.io", version="v1", fieldspecs=tuple(prio)),
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


@dataclass
class TransformerConfig:
    """The field-spec tables of one build (defaults merged with ``configurations:`` files)."""

    namespace: list[FieldSpec] = field(
        default_factory=lambda: [
            FieldSpec("metadata/name", "", "", "Namespace", True),
            FieldSpec("spec/service/namespace", "apiregistration.k8s.io", "", "APIService", True),
            FieldSpec(
                "spec/conversion/webhook/clientConfig/service/namespace",
                "apiextensions.k8s.io",
                "",
                "CustomResourceDefinition",
            ),
        ]
    )
    name_prefix: list[FieldSpec] = field(default_factory=lambda: [FieldSpec("metadata/name")])
    name_suffix: list[FieldSpec] = field(default_factory=lambda: [FieldSpec("metadata/name")])
    common_labels: list[FieldSpec] = field(default_factory=_common_labels)
    template_labels: list[FieldSpec] = field(default_factory=_template_labels)
    labels: list[FieldSpec] = field(default_factory=list)
    common_annotations: list[FieldSpec] = field(default_factory=_common_annotations)
    images: list[FieldSpec] = field(default_factory=_images)
    replicas: list[FieldSpec] = field(default_factory=_replicas)
    name_reference: list[NameRef] = field(default_factory=_name_references)

    def merge_raw(self, raw: dict[str, Any], *, where: str) -> None:
        """Merge one ``configurations:`` file (kustomize's TransformerConfig YAML) into these tables."""
        table = {
            "namespace": self.namespace,
            "namePrefix": self.name_prefix,
            "nameSuffix": self.name_suffix,
            "commonLabels": self.common_labels,
            "templateLabels": self.template_labels,
            "labels": self.labels,
            "commonAnnotations": self.common_annotations,
            "images": self.images,
            "replicas": self.replicas,
        }
        for key, value in raw.items():
            if key in table:
                target = table[key]
                for spec in parse_fieldspecs(value, where=where):
                    if spec not in target:
                        target.append(spec)
            elif key == "nameReference":
                if not isinstance(value, list):
                    raise RenderError("nameReference must be a list", path=where)
                for entry in value:
                    if not isinstance(entry, dict) or not isinstance(entry.get("kind"), str):
                        raise RenderError("nameReference entries need a 'kind'", path=where)
                    specs = tuple(parse_fieldspecs(entry.get("fieldSpecs"), where=where))
                    self.merge_nameref(
                        NameRef(
                            entry["kind"],
                            str(entry.get("group") or ""),
                            str(entry.get("version") or ""),
                            specs,
                        )
                    )
            elif key in ("varReference",):
                continue
            else:
                raise RenderError(f"unknown transformer configuration field {key!r}", path=where)

    def merge_nameref(self, ref: NameRef) -> None:
        """Add the field specs of ``ref`` to an existing entry for the same kind, or append it."""
        for i, existing in enumerate(self.name_reference):
            if (existing.kind, existing.group, existing.version) == (ref.kind, ref.group, ref.version):
                merged = list(existing.fieldspecs) + [
                    s for s in ref.fieldspecs if s not in existing.fieldspecs
                ]
                self.name_reference[i] = NameRef(ref.kind, ref.group, ref.version, tuple(merged))
                return
        self.name_reference.append(ref)

    def merge(self, other: TransformerConfig) -> None:
        """Merge another configuration's tables into this one (no duplicates)."""
        for name in (
            "namespace",
            "name_prefix",
            "name_suffix",
            "common_labels",
            "template_labels",
            "labels",
            "common_annotations",
            "images",
            "replicas",
        ):
            mine: list[FieldSpec] = getattr(self, name)
            for spec in getattr(other, name):
                if spec not in mine:
                    mine.append(spec)
        for ref in other.name_reference:
            self.merge_nameref(ref)


# Kinds of the built-in Kubernetes API that are cluster-scoped, keyed by kind (kustomize decides with its
# embedded OpenAPI document; custom resources of unknown kinds count as namespaced).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "APIService",
        "CertificateSigningRequest",
        "ClusterRole",
        "ClusterRoleBinding",
        "ComponentStatus",
        "CSIDriver",
        "CSINode",
        "CustomResourceDefinition",
        "FlowSchema",
        "IngressClass",
        "MutatingAdmissionPolicy",
        "MutatingAdmissionPolicyBinding",
        "MutatingWebhookConfiguration",
        "Namespace",
        "Node",
        "PersistentVolume",
        "PodSecurityPolicy",
        "PriorityClass",
        "PriorityLevelConfiguration",
        "RuntimeClass",
        "SelfSubjectAccessReview",
        "SelfSubjectRulesReview",
        "StorageClass",
        "SubjectAccessReview",
        "TokenReview",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
        "ValidatingWebhookConfiguration",
        "VolumeAttachment",
        "ClusterTrustBundle",
        "StorageVersionMigration",
        "VolumeAttributesClass",
        "DeviceClass",
        "IPAddress",
        "ServiceCIDR",
        "SelfSubjectReview",
    }
)


def is_cluster_scoped(kind: str) -> bool:
    """Whether objects of ``kind`` have no namespace (built-in cluster-scoped kinds only)."""
    return kind in CLUSTER_SCOPED_KINDS
