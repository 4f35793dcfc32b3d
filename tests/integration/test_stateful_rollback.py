"""A stateful agent (a LangGraph-style StatefulSet with a ``checkpoints`` volume claim per replica) through
promotion, rollback and prune on the real control plane and real Git, with no mocks.

The StatefulSet controller of kube-controller-manager creates the claims ``checkpoints-langgraph-<n>`` from
``volumeClaimTemplates``; the local cluster's default StorageClass (kube-controller-manager's host-path
provisioner) binds each to a PersistentVolume whose directory is on this machine, so the test writes into
it what the agent would (a checkpoint by v1, a schema migration by v2: kwok's pods run no processes) and
reads it back after each step.

What is checked:

* a promotion (``reconciler promote``), a manual rollback (``reconciler rollback``: a ``git revert`` of the
  promotion) and an automatic one (the health gate of a promotion whose pods an admission policy refuses
  times out; ``onFailure: revert``) each change only the pod template: the StatefulSet, the claims and
  the volumes are the same objects (UIDs) throughout, never deleted, the data written by either version
  is still there, and the controller replaces the pods one at a time, highest ordinal first (seen in a
  watch of the pods);
* the claims are never in the inventory and never written by a pass; a pass right after a rollback, with
  nothing cached, compares everything and writes nothing (no drift reported for the controller's
  defaults);
* removing the StatefulSet from Git prunes it and its pods, not its claims (``whenDeleted: Retain``);
* a change of ``volumeClaimTemplates`` (immutable) fails the pass naming the object and the field, and
  applies nothing; with the opt-in ``reconciler.dev/recreate: "true"`` the StatefulSet is recreated without
  deleting its claims even when it says ``whenDeleted: Delete`` (deleted with ``propagationPolicy:
  Orphan``, its pods and claims adopted by the new one); a recreate for a new selector, which must delete
  the pods, is refused while the claims are the StatefulSet's dependents;
* a ``rollouts:`` entry for a StatefulSet app fails the pass (progressive delivery canaries Deployments).
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from reconciler_testing import EnvRepo
from reconciler_testing import until_sync as _poll
from typer.testing import CliRunner

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.cluster.manager import RECREATE_ANNOTATION, ApplyError, ResourceManager, prepare
from reconciler.model import Action, Environment, HealthState, HealthStatus, ObjectRef, PassResult
from reconciler.promote.auto import AutoRollback
from reconciler.promote.cli import register
from reconciler.promote.records import Outcome
from reconciler.reconcile import PassContext, load_environments, run_pass, wait_for_health
from reconciler.source import GitSource
from reconciler.source.gitops import GitWriter

pytestmark = pytest.mark.integration

AGENT = "ghcr.io/acme/langgraph-agent"
V1 = f"{AGENT}:1.0.0@sha256:" + "a" * 64
V2 = f"{AGENT}:1.1.0@sha256:" + "b" * 64
BAD = "sha256:" + "c" * 64
V3 = f"{AGENT}:1.2.0@{BAD}"
STS = "langgraph"
CLAIMS = ("checkpoints-langgraph-0", "checkpoints-langgraph-1")
WRITES = ("apply", "delete", "dry-run", "create", "update", "patch")
GATE_TIMEOUT = 20  # seconds: a good rollout of two kwok pods takes about one; the bad one waits all 20

VAP = ObjectRef(group="admissionregistration.k8s.io", kind="ValidatingAdmissionPolicy", name="")
VAPB = ObjectRef(group="admissionregistration.k8s.io", kind="ValidatingAdmissionPolicyBinding", name="")


def _statefulset(retention: str = "", storage: str = "1Gi", annotations: str = "") -> str:
    return f"""\
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: langgraph
  labels: {{app.kubernetes.io/name: langgraph}}{annotations}
spec:
  serviceName: langgraph
  replicas: 2{retention}
  selector:
    matchLabels: {{app.kubernetes.io/name: langgraph}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: langgraph}}
    spec:
      containers:
      - name: agent
        image: {AGENT}:0.0.1
        env:
        - {{name: LANGGRAPH_CHECKPOINT_DIR, value: /var/lib/langgraph}}
        ports:
        - {{name: http, containerPort: 8000}}
        volumeMounts:
        - {{name: checkpoints, mountPath: /var/lib/langgraph}}
  volumeClaimTemplates:
  - metadata:
      name: checkpoints
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests: {{storage: {storage}}}
"""


SERVICE = """\
apiVersion: v1
kind: Service
metadata:
  name: langgraph
  labels: {app.kubernetes.io/name: langgraph}
spec:
  clusterIP: None
  selector: {app.kubernetes.io/name: langgraph}
  ports:
  - {name: http, port: 8000, targetPort: http}
"""


def _configmap(checkpointer: str = "filesystem") -> str:
    return (
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: langgraph-config\n"
        "  labels: {app.kubernetes.io/name: langgraph}\n"
        f"data:\n  CHECKPOINTER: {checkpointer}\n"
    )


def _overlay(image: str) -> str:
    name_tag, _, digest = image.partition("@")
    tag = name_tag.rsplit(":", 1)[1]
    return (
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n- ../base\n"
        f"images:\n- name: {AGENT}\n  newTag: {tag}\n  digest: {digest}\n"
    )


BASE = "resources:\n- configmap.yaml\n- service.yaml\n- statefulset.yaml\n"


def _write_repo(repo: EnvRepo, ns: str, *, retention: str = "", rollouts: str = "") -> None:
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {ns}-dev\nsync: {{interval: 3600}}\npromotion: {{via: push}}\n",
    )
    repo.write(
        "envs/staging.yaml",
        f"overlay: overlays/staging\nnamespace: {ns}\nsync: {{interval: 3600, allowMassPrune: true}}\n"
        f"health: {{timeout: {GATE_TIMEOUT}, noControllerAfter: 5}}\n"
        "promotion: {from: dev, via: push, requireHealth: any}\nonFailure: revert\n" + rollouts,
    )
    repo.write("overlays/base/kustomization.yaml", BASE)
    repo.write("overlays/base/configmap.yaml", _configmap())
    repo.write("overlays/base/service.yaml", SERVICE)
    repo.write("overlays/base/statefulset.yaml", _statefulset(retention))
    repo.write("overlays/dev/kustomization.yaml", _overlay(V2))
    repo.write("overlays/staging/kustomization.yaml", _overlay(V1))


# -- the cluster side ---------------------------------------------------------------------------------


@pytest.fixture
def staging_ns(kube: KubeClient, env_repo: EnvRepo) -> Iterator[str]:
    """staging's namespace, and an admission policy that refuses pods of the known bad release (digest
    ``c…``) in it: the StatefulSet controller cannot create them, so the StatefulSet stays Progressing.
    Afterwards the namespace (with its claims, and so their volumes) and the inventory go."""
    ns = f"t-sts-{uuid.uuid4().hex[:8]}"
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
        ObjectRef(kind="Namespace", name=ns),
        field_manager="tests",
    )
    policy = VAP.model_copy(update={"name": f"deny-bad-agent-{ns}"})
    binding = VAPB.model_copy(update={"name": policy.name})
    kube.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": policy.name},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"!object.spec.containers.exists(c, c.image.contains('{BAD}'))",
                        "message": "this agent release is known bad",
                    }
                ],
            },
        },
        policy,
        field_manager="tests",
    )
    kube.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": binding.name},
            "spec": {
                "policyName": policy.name,
                "validationActions": ["Deny"],
                "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            },
        },
        binding,
        field_manager="tests",
    )
    time.sleep(1.5)  # the API server loads admission policies asynchronously
    yield ns
    kube.delete(binding)
    kube.delete(policy)
    volumes, _ = kube.list("", "v1", "PersistentVolume")
    for v in volumes:  # the files this test wrote (the provisioner removes a volume's directory later)
        if (v["spec"].get("claimRef") or {}).get("namespace") == ns:
            path = str((v["spec"].get("hostPath") or {}).get("path", ""))
            if path and Path(path).is_dir():
                for f in Path(path).iterdir():
                    f.unlink()
    kube.delete(ObjectRef(kind="Namespace", name=ns))
    InventoryStore(kube, source=str(env_repo.remote)).delete("staging")


def _sts_ref(ns: str) -> ObjectRef:
    return ObjectRef(group="apps", kind="StatefulSet", namespace=ns, name=STS)


def _claim_ref(ns: str, name: str) -> ObjectRef:
    return ObjectRef(kind="PersistentVolumeClaim", namespace=ns, name=name)


def _image(kube: KubeClient, ns: str) -> str:
    live = kube.get(_sts_ref(ns)) or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def _claims(kube: KubeClient, ns: str) -> dict[str, dict[str, Any]]:
    """Every claim of the StatefulSet, once the controller created and the provisioner bound each."""

    def bound() -> dict[str, dict[str, Any]] | None:
        out = {name: kube.get(_claim_ref(ns, name)) for name in CLAIMS}
        if all(c and (c.get("status") or {}).get("phase") == "Bound" for c in out.values()):
            return {k: v for k, v in out.items() if v is not None}
        return None

    found: dict[str, dict[str, Any]] = _poll(bound, 60, f"claims {CLAIMS} created and Bound")
    return found


def _versions(kube: KubeClient, ns: str) -> dict[str, str]:
    """claim → its resourceVersion (changes with any write to it)."""
    return {n: str((kube.get(_claim_ref(ns, n)) or {})["metadata"]["resourceVersion"]) for n in CLAIMS}


def _identity(claims: dict[str, dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """claim → (uid, the volume it is bound to)."""
    return {name: (c["metadata"]["uid"], c["spec"]["volumeName"]) for name, c in claims.items()}


def _assert_same_claims(kube: KubeClient, ns: str, before: dict[str, tuple[str, str]]) -> None:
    """The very claims of ``before`` (same UIDs, same volumes), not being deleted, still Bound."""
    for name, (uid, volume) in before.items():
        live = kube.get(_claim_ref(ns, name))
        assert live is not None, f"claim {name} was deleted"
        meta = live["metadata"]
        assert meta["uid"] == uid, f"claim {name} was deleted and created again"
        assert "deletionTimestamp" not in meta, f"claim {name} is being deleted"
        assert live["spec"]["volumeName"] == volume and live["status"]["phase"] == "Bound"
        assert kube.get(ObjectRef(kind="PersistentVolume", name=volume)) is not None


def _volume_dir(kube: KubeClient, claim: dict[str, Any]) -> Path | None:
    """The host-path directory of the claim's volume (kube-controller-manager's provisioner makes it on
    this machine); ``None`` when the cluster is not local (RECONCILER_TEST_KUBECONFIG elsewhere)."""
    pv = kube.get(ObjectRef(kind="PersistentVolume", name=claim["spec"]["volumeName"])) or {}
    path = Path(str(((pv.get("spec") or {}).get("hostPath") or {}).get("path", "")))
    if str(path) != "." and path.is_dir():
        return path
    assert os.environ.get("RECONCILER_TEST_KUBECONFIG"), f"volume of {claim['metadata']['name']}: {pv}"
    return None


def _pods(kube: KubeClient, ns: str) -> dict[str, dict[str, Any]]:
    items, _ = kube.list("", "v1", "Pod", namespace=ns, label_selector="app.kubernetes.io/name=langgraph")
    return {p["metadata"]["name"]: p for p in items}


def _serving(pod: dict[str, Any]) -> bool:
    conds = (pod.get("status") or {}).get("conditions") or []
    ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conds)
    return ready and "deletionTimestamp" not in pod["metadata"]


class PodWatch:
    """Every change of the namespace's pods while a rollout runs, from a watch in a thread of its own
    (own client): after each event, which pod (UID) is under each name and whether it serves (Ready,
    not terminating). Polling would miss most of it: kwok replaces a pod within milliseconds."""

    def __init__(self, kubeconfig: Path, ns: str) -> None:
        self.client = KubeClient(kubeconfig)
        self.ns = ns
        items, self.rv = self.client.list("", "v1", "Pod", namespace=ns)
        self.pods = {p["metadata"]["name"]: p for p in items}
        self.before = {n: p["metadata"]["uid"] for n, p in self.pods.items()}
        #: after each event: (type, name, uid, terminating) and name → (uid, serving) of every pod
        self.steps: list[tuple[tuple[str, str, str, bool], dict[str, tuple[str, bool]]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for etype, pod in self.client.watch(
                "", "v1", "Pod", resource_version=self.rv, namespace=self.ns, timeout_seconds=1
            ):
                meta = pod["metadata"]
                self.rv = meta.get("resourceVersion", self.rv)
                if etype == "BOOKMARK":
                    continue
                if etype == "DELETED":
                    self.pods.pop(meta["name"], None)
                else:
                    self.pods[meta["name"]] = pod
                event = (etype, meta["name"], meta["uid"], etype == "DELETED" or "deletionTimestamp" in meta)
                self.steps.append(
                    (event, {n: (p["metadata"]["uid"], _serving(p)) for n, p in self.pods.items()})
                )

    def __enter__(self) -> PodWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.client.close()

    def first(self, pred: Callable[[tuple[str, str, str, bool], dict[str, tuple[str, bool]]], bool]) -> int:
        """The index of the first step for which ``pred(event, pods)`` holds (-1: none)."""
        return next((i for i, (event, pods) in enumerate(self.steps) if pred(event, pods)), -1)


def _serves_anew(pods: dict[str, tuple[str, bool]], name: str, old_uid: str) -> bool:
    """Whether a new pod (not ``old_uid``) serves under ``name`` in a step of :class:`PodWatch`."""
    uid, serving = pods.get(name, ("", False))
    return serving and uid not in ("", old_uid)


# -- the Git side -------------------------------------------------------------------------------------


def _cli(*args: str) -> dict[str, Any]:
    """``reconciler <args> -o json``; the parsed output."""
    app = typer.Typer()
    register(app)
    res = CliRunner().invoke(app, [*args, "-o", "json"])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    return out


def _pull(repo: EnvRepo) -> None:
    """Bring the person's clone up to the remote (the CLI and the daemon's side push there too)."""
    for args in (["fetch", "-q", "origin"], ["reset", "-q", "--hard", "origin/main"]):
        subprocess.run(["git", *args], cwd=repo.work, capture_output=True, check=True)


def _message(remote: Path, sha: str) -> str:
    return subprocess.run(
        ["git", "log", "-1", "--format=%B", sha], cwd=remote, capture_output=True, text=True, check=True
    ).stdout


def _waiter(ctx: PassContext, env: Environment) -> Callable[[float], dict[str, HealthStatus]]:
    """The health gate's wait, as the daemon gives it to AutoRollback: until settled or ``timeout``."""

    def wait(timeout: float) -> dict[str, HealthStatus]:
        refs = [d.ref for d in ctx.last_desired.get(env.name, [])]
        deadline = time.monotonic() + timeout
        while True:
            health = wait_for_health(
                ctx.client, refs, timeout=min(1.0, max(0.0, deadline - time.monotonic())), interval=0.3
            )
            if all(h.state is not HealthState.PROGRESSING for h in health.values()):
                return health
            if time.monotonic() >= deadline:
                return health

    return wait


class Staging:
    """staging's passes, each followed by the health gate and its record as the daemon does
    (AutoRollback.after_pass with the waiter above)."""

    def __init__(self, repo: EnvRepo, kube: KubeClient, tmp_path: Path) -> None:
        self.repo, self.kube, self.tmp = repo, kube, tmp_path
        url = str(repo.remote)
        self.ctx = PassContext(source=GitSource(url, "main", tmp_path / "pass-cache"), client=kube)
        self.auto = AutoRollback(GitWriter(url, "main", tmp_path / "auto", backoff=0.05))
        reader = GitWriter(url, "main", tmp_path / "envs-reader")
        reader.sync()
        self.env = load_environments(reader.workdir)["staging"]
        self.cli = ["--repo", url, "--cache-dir", str(tmp_path / "cli")]

    def settle(self) -> tuple[PassResult, Outcome | None, list[str]]:
        """One pass of the branch head, then the gate: (result, outcome, revert commits pushed)."""
        result = run_pass(self.ctx, "staging", trigger="test")
        assert result.ok, result.error
        decision = self.auto.after_pass(self.env, result, _waiter(self.ctx, self.env))
        assert not decision.error, decision.error
        return result, decision.outcome, decision.revert_commits

    def noop_pass(self, kubeconfig: Path) -> PassResult:
        """A pass by a fresh process (its own client, clone and caches: every object compared again)
        that must change nothing and write nothing."""
        client = KubeClient(kubeconfig)
        try:
            ctx = PassContext(
                source=GitSource(str(self.repo.remote), "main", self.tmp / f"noop-{uuid.uuid4().hex[:6]}"),
                client=client,
            )
            result = run_pass(ctx, "staging", trigger="test")
            writes = {v: client.calls[v] for v in WRITES if client.calls[v]}
        finally:
            client.close()
        assert result.ok, result.error
        changed = [(str(c.ref), c.action.value, c.message) for c in result.changes.entries]
        assert all(c.action is Action.UNCHANGED for c in result.changes.entries), changed
        assert len(result.changes.entries) == 3 and writes == {}, (changed, writes)
        return result


def _assert_not_in_inventory(kube: KubeClient, repo: EnvRepo, ns: str) -> None:
    entries = InventoryStore(kube, source=str(repo.remote)).load("staging").entries
    assert entries, "staging has no inventory"
    assert not [e for e in entries if e.kind == "PersistentVolumeClaim" or e.name.startswith("checkpoints")]
    assert not [e for e in entries if e.kind == "Pod"]


# -- the tests ----------------------------------------------------------------------------------------


def test_rollback_keeps_the_statefulset_its_claims_and_their_data(
    env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, staging_ns: str, tmp_path: Path
) -> None:
    ns = staging_ns
    _write_repo(env_repo, ns)
    env_repo.commit("a LangGraph agent with a checkpoints claim per replica")
    staging = Staging(env_repo, kube, tmp_path)

    # v1: the pass applies the StatefulSet; its controller creates one claim per replica from the template
    result, outcome, _ = staging.settle()
    assert outcome is Outcome.HEALTHY
    assert {str(c.ref) for c in result.changes.entries} == {
        f"ConfigMap/{ns}/langgraph-config",
        f"Service/{ns}/langgraph",
        f"StatefulSet/{ns}/langgraph",
    }
    sts = kube.get(_sts_ref(ns)) or {}
    sts_uid = sts["metadata"]["uid"]
    assert sts["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Retain",
    }
    assert sts["spec"]["podManagementPolicy"] == "OrderedReady"  # the API server's defaults
    assert _image(kube, ns) == V1
    claims = _claims(kube, ns)
    ids = _identity(claims)
    for claim in claims.values():  # created by the controller from the template: not ours, not owned
        assert "ownerReferences" not in claim["metadata"], claim["metadata"]
        assert not any(m.get("manager") == "reconciler" for m in claim["metadata"]["managedFields"])
    _assert_not_in_inventory(kube, env_repo, ns)
    dirs = {name: _volume_dir(kube, c) for name, c in claims.items()}
    for name, d in dirs.items():  # what v1 writes: a checkpoint per replica
        if d is not None:
            (d / "checkpoint.json").write_text(json.dumps({"thread": name, "schema": 1}))

    # v2: promoted from dev (a commit in Git), applied; the controller replaces the pods, not the claims
    promoted = _cli("promote", "dev", "staging", "--app", "langgraph", "--push", *staging.cli)
    assert promoted["commit"]
    _, outcome, _ = staging.settle()
    assert outcome is Outcome.HEALTHY
    assert _image(kube, ns) == V2
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == sts_uid
    _assert_same_claims(kube, ns, ids)
    for d in dirs.values():  # what v2 writes: a migration of the checkpoint schema
        if d is not None:
            (d / "schema-v2.migrated").write_text("2")

    # the manual rollback: `reconciler rollback` reverts the promotion in Git; the pass applies v1 again
    pods_v2 = {n: p["metadata"]["uid"] for n, p in _pods(kube, ns).items()}
    assert sorted(pods_v2) == ["langgraph-0", "langgraph-1"]
    rolled = _cli("rollback", "staging", "--reason", "v2 answers wrong", "--push", *staging.cli)
    assert rolled["reverted"] == [promoted["commit"]] and len(rolled["commits"]) == 1
    revert = _message(env_repo.remote, rolled["commits"][0])
    assert f"This reverts commit {promoted['commit']}." in revert
    assert f"Rollback-Of: {promoted['commit']}" in revert
    with PodWatch(kubeconfig, ns) as watch:
        result, outcome, _ = staging.settle()
        _poll(lambda: len(watch.steps) >= 8, 10, "the pod events of the rollout")
    assert outcome is Outcome.HEALTHY
    assert result.revision.endswith(rolled["commits"][0])
    changed = {str(c.ref): c.message for c in result.changes.entries if c.action is Action.CONFIGURED}
    assert list(changed) == [f"StatefulSet/{ns}/langgraph"], changed  # the pod template, nothing else
    assert changed[f"StatefulSet/{ns}/langgraph"] == "spec.template.spec.containers[name=agent].image"
    live = kube.get(_sts_ref(ns)) or {}
    assert live["metadata"]["uid"] == sts_uid and "deletionTimestamp" not in live["metadata"]
    assert _image(kube, ns) == V1
    _assert_same_claims(kube, ns, ids)
    pods_v1 = _pods(kube, ns)
    assert all(pods_v1[n]["metadata"]["uid"] != uid for n, uid in pods_v2.items())
    assert all(p["spec"]["containers"][0]["image"] == V1 for p in pods_v1.values())
    # the controller replaced the pods one at a time, the highest ordinal first: langgraph-0 began to go
    # only once the new langgraph-1 served, and one pod served at every moment
    assert watch.before == pods_v2
    new_1_serves = watch.first(lambda _e, pods: _serves_anew(pods, "langgraph-1", pods_v2["langgraph-1"]))
    old_0_goes = watch.first(lambda e, _pods: e[1:] == ("langgraph-0", pods_v2["langgraph-0"], True))
    assert 0 <= new_1_serves < old_0_goes, watch.steps
    assert all(any(serving for _uid, serving in pods.values()) for _e, pods in watch.steps), watch.steps
    # each pod mounts its own claim again, and the data of both versions is on it: nothing is undone
    for pod in pods_v1.values():
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert (
            volumes["checkpoints"]["persistentVolumeClaim"]["claimName"]
            == f"checkpoints-{pod['metadata']['name']}"
        )
    for name, d in dirs.items():
        if d is not None:
            assert json.loads((d / "checkpoint.json").read_text()) == {"thread": name, "schema": 1}
            assert (d / "schema-v2.migrated").read_text() == "2"
    _assert_not_in_inventory(kube, env_repo, ns)
    # a pass of the same revision compares everything again and changes nothing: no drift is seen in
    # the controller's defaults (retention policy, the templates' volumeMode and status) or the claims
    claims_rv = _versions(kube, ns)
    generation = live["metadata"]["generation"]
    staging.noop_pass(kubeconfig)
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["generation"] == generation
    assert _versions(kube, ns) == claims_rv  # the claims were not written either

    # the automatic rollback: a bad release is promoted; its pods are refused, the gate times out and the
    # daemon's side reverts the promotion in Git; the revert is applied like any commit
    _pull(env_repo)
    env_repo.write("overlays/dev/kustomization.yaml", _overlay(V3))
    env_repo.commit("dev: langgraph agent 1.2.0")
    bad = _cli("promote", "dev", "staging", "--app", "langgraph", "--push", *staging.cli)
    _, outcome, reverts = staging.settle()
    assert outcome is Outcome.TIMED_OUT and len(reverts) == 1, (outcome, reverts)
    assert _image(kube, ns) == V3  # applied; the controller could not create its pods
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == sts_uid
    _assert_same_claims(kube, ns, ids)
    auto = _message(env_repo.remote, reverts[0])
    assert f"Rollback-Of: {bad['commit']}" in auto and "Rollback-By: reconciler" in auto
    result, outcome, more = staging.settle()
    assert outcome is Outcome.HEALTHY and not more
    assert result.revision.endswith(reverts[0])
    assert _image(kube, ns) == V1
    assert all(p["spec"]["containers"][0]["image"] == V1 for p in _pods(kube, ns).values())
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == sts_uid
    _assert_same_claims(kube, ns, ids)
    staging.noop_pass(kubeconfig)

    # the agent leaves Git: prune deletes the StatefulSet (and Kubernetes its pods), never its claims
    _pull(env_repo)
    env_repo.write("overlays/base/kustomization.yaml", "resources:\n- configmap.yaml\n")
    env_repo.remove("overlays/base/service.yaml")
    env_repo.remove("overlays/base/statefulset.yaml")
    env_repo.commit("retire the langgraph agent")
    result = run_pass(staging.ctx, "staging", trigger="test")
    assert result.ok, result.error
    deleted = sorted(str(c.ref) for c in result.changes.entries if c.action is Action.DELETED)
    assert deleted == [f"Service/{ns}/langgraph", f"StatefulSet/{ns}/langgraph"]
    _poll(lambda: kube.get(_sts_ref(ns)) is None and not _pods(kube, ns), 60, "StatefulSet and pods gone")
    _assert_same_claims(kube, ns, ids)
    for name, d in dirs.items():
        if d is not None:
            assert json.loads((d / "checkpoint.json").read_text()) == {"thread": name, "schema": 1}
    entries = InventoryStore(kube, source=str(env_repo.remote)).load("staging").entries
    assert [str(e) for e in entries] == [f"ConfigMap/{ns}/langgraph-config"]


def test_changed_volume_claim_templates_fail_the_pass_and_recreate_keeps_the_claims(
    env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, staging_ns: str, tmp_path: Path
) -> None:
    ns = staging_ns
    retention = "\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}"
    _write_repo(env_repo, ns, retention=retention)
    env_repo.commit("a LangGraph agent whose claims go with the StatefulSet")
    staging = Staging(env_repo, kube, tmp_path)
    result, outcome, _ = staging.settle()
    assert outcome is Outcome.HEALTHY
    sts = kube.get(_sts_ref(ns)) or {}
    sts_uid, generation = sts["metadata"]["uid"], sts["metadata"]["generation"]
    claims = _claims(kube, ns)
    ids = _identity(claims)
    for claim in claims.values():  # whenDeleted: Delete: the controller makes the StatefulSet own them
        assert [o["uid"] for o in claim["metadata"]["ownerReferences"]] == [sts_uid]
    dirs = {name: _volume_dir(kube, c) for name, c in claims.items()}
    for d in dirs.values():
        if d is not None:
            (d / "checkpoint.json").write_text("{}")
    inventory = InventoryStore(kube, source=str(env_repo.remote)).load("staging")

    # a bigger claim template, a new image and a ConfigMap change in one commit: the API server refuses to
    # change volumeClaimTemplates, so the pass fails before any write, naming object and field
    env_repo.write("overlays/base/statefulset.yaml", _statefulset(retention, storage="2Gi"))
    env_repo.write("overlays/base/configmap.yaml", _configmap("postgres"))
    env_repo.write("overlays/staging/kustomization.yaml", _overlay(V2))
    env_repo.commit("bigger checkpoint volumes, agent 1.1.0, postgres")
    for _ in range(2):  # and again on the next pass: refused the same way, nothing deleted
        result = run_pass(staging.ctx, "staging", trigger="test")
        assert not result.ok
        assert f"StatefulSet/{ns}/langgraph" in result.error, result.error
        assert "spec.volumeClaimTemplates" in result.error and "nothing applied" in result.error
        assert RECREATE_ANNOTATION in result.error and len(result.error) < 1500, result.error
        live = kube.get(_sts_ref(ns)) or {}
        assert live["metadata"]["uid"] == sts_uid and live["metadata"]["generation"] == generation
        assert _image(kube, ns) == V1
        cm = kube.get(ObjectRef(kind="ConfigMap", namespace=ns, name="langgraph-config")) or {}
        assert cm["data"] == {"CHECKPOINTER": "filesystem"}
        _assert_same_claims(kube, ns, ids)
        assert InventoryStore(kube, source=str(env_repo.remote)).load("staging") == inventory

    # asked for in Git: recreate. The StatefulSet is a new object; its claims are not deleted (it says
    # whenDeleted: Delete, and a Foreground delete would take them): the new one adopts them
    annotation = f'\n  annotations: {{{RECREATE_ANNOTATION}: "true"}}'
    env_repo.write("overlays/base/statefulset.yaml", _statefulset(retention, "2Gi", annotation))
    env_repo.commit("recreate the StatefulSet for its new claim template")
    result, outcome, _ = staging.settle()
    assert outcome is Outcome.HEALTHY
    live = kube.get(_sts_ref(ns)) or {}
    new_uid = live["metadata"]["uid"]
    assert new_uid != sts_uid
    assert live["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert _image(kube, ns) == V2
    _assert_same_claims(kube, ns, ids)
    claims = _claims(kube, ns)
    for claim in claims.values():  # the existing claims keep their size: a template only makes new ones
        assert claim["spec"]["resources"]["requests"]["storage"] == "1Gi"
        assert [o["uid"] for o in claim["metadata"]["ownerReferences"]] == [new_uid]
    for d in dirs.values():
        if d is not None:
            assert (d / "checkpoint.json").read_text() == "{}"
    assert all(p["spec"]["containers"][0]["image"] == V2 for p in _pods(kube, ns).values())
    staging.noop_pass(kubeconfig)  # and the annotation stays in Git without recreating it again
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == new_uid


def test_a_rollout_entry_for_a_statefulset_app_fails_the_pass(
    env_repo: EnvRepo, kube: KubeClient, staging_ns: str, tmp_path: Path
) -> None:
    rollouts = (
        "rollouts:\n- app: langgraph\n  route: langgraph\n"
        "  strategy: {canary: {steps: [50, 100], interval: 10}}\n"
        "  analysis:\n    prometheus: http://127.0.0.1:9\n"
        "    queries: [{name: errors, query: 'vector(0)', max: 0.05}]\n"
    )
    _write_repo(env_repo, staging_ns, rollouts=rollouts)
    env_repo.commit("a canary for the StatefulSet agent")
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", tmp_path / "c"), client=kube)
    result = run_pass(ctx, "staging", trigger="test")
    assert not result.ok
    assert (
        "envs/staging.yaml: rollouts[app=langgraph]: langgraph is a StatefulSet; "
        "rollouts canary Deployments only" in result.error
    )
    assert kube.get(_sts_ref(staging_ns)) is None  # nothing applied


def _with_selector(ns: str, retention: str, track: str) -> dict[str, Any]:
    """The StatefulSet as a pass sends it, recreate annotation on, selecting pods ``track: <track>``."""
    from ruamel.yaml import YAML

    annotation = f'\n  annotations: {{{RECREATE_ANNOTATION}: "true"}}'
    obj: dict[str, Any] = YAML(typ="safe").load(_statefulset(retention, annotations=annotation))
    obj["metadata"]["namespace"] = ns
    obj["spec"]["selector"]["matchLabels"]["track"] = track
    obj["spec"]["template"]["metadata"]["labels"]["track"] = track
    return obj


def test_recreating_a_statefulset_with_a_new_selector_never_deletes_its_claims(
    kube: KubeClient, staging_ns: str
) -> None:
    """A new selector cannot adopt the old pods, so a recreate deletes them (Foreground); it is refused
    while the claims are the StatefulSet's dependents (``whenDeleted: Delete``), and goes ahead, keeping
    the claims, once ``whenDeleted: Retain`` was applied in place and the controller released them."""
    ns = staging_ns
    manager = ResourceManager(kube)
    delete = "\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Delete, whenScaled: Retain}"
    retain = "\n  persistentVolumeClaimRetentionPolicy: {whenDeleted: Retain, whenScaled: Retain}"
    manager.apply_set(prepare([_with_selector(ns, delete, "a")]))
    uid = (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"]
    ids = _identity(_claims(kube, ns))

    with pytest.raises(ApplyError) as refused:
        manager.apply_set(prepare([_with_selector(ns, delete, "b")]))
    message = str(refused.value)
    assert f"StatefulSet/{ns}/langgraph" in message and "nothing applied" in message
    assert ", ".join(CLAIMS) in message and "whenDeleted: Retain" in message, message
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == uid
    _assert_same_claims(kube, ns, ids)

    # whenDeleted: Retain first (an update in place); the controller drops its owner references
    changes, _ = manager.apply_set(prepare([_with_selector(ns, retain, "a")]))
    assert [c.action for c in changes.entries] == [Action.CONFIGURED]
    assert (kube.get(_sts_ref(ns)) or {})["metadata"]["uid"] == uid
    _poll(
        lambda: all(not c["metadata"].get("ownerReferences") for c in _claims(kube, ns).values()),
        30,
        "claims released by the StatefulSet controller",
    )
    old_pods = {n: p["metadata"]["uid"] for n, p in _pods(kube, ns).items()}
    changes, _ = manager.apply_set(prepare([_with_selector(ns, retain, "b")]))
    assert [c.action for c in changes.entries] == [Action.CONFIGURED]
    live = kube.get(_sts_ref(ns)) or {}
    assert live["metadata"]["uid"] != uid and live["spec"]["selector"]["matchLabels"]["track"] == "b"
    _assert_same_claims(kube, ns, ids)
    pods = _poll(lambda: len(_pods(kube, ns)) == 2 and _pods(kube, ns), 60, "the new StatefulSet's pods")
    assert all(p["metadata"]["labels"]["track"] == "b" for p in pods.values())
    assert all(p["metadata"]["uid"] != old_pods.get(n) for n, p in pods.items())
    for pod in pods.values():  # the new pods mount the same claims
        volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
        assert (
            volumes["checkpoints"]["persistentVolumeClaim"]["claimName"]
            == f"checkpoints-{pod['metadata']['name']}"
        )
    _assert_same_claims(kube, ns, ids)
