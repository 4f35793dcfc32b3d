"""A full reconcile pass on the real control plane refuses a representative subset of the hostile corpus
committed to a bare Git remote: the pass fails with an error naming the file (or the object the API
server rejected), and NOTHING is applied — no write, the inventory and every live object unchanged, no
object of the hostile commit created — and the pass commits nothing. After each case the valid
repository converges again."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from _hostile_corpus import (
    BASE_RESOURCES,
    ENV,
    Expect,
    K,
    Link,
    RepoCase,
    assert_clear,
    baseline,
    env_cases,
    kust,
    params,
    render_cases,
    resolve_outside,
    write_tree,
)

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.model import Action, ObjectRef
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource
from reconciler.source.bootstrap import commit_and_push, init_repo_with_remote

pytestmark = pytest.mark.integration

ENV_NAME = "hostile"  # its own inventory (reconciler-inventory-hostile), apart from other tests' "dev"
ENV_PATH = f"envs/{ENV_NAME}.yaml"

# Cases of the corpus run through a full pass (id → expectation in the pass, when it differs).
FROM_CORPUS: dict[str, Expect | None] = {
    "render/resource/laughs-10x9": None,
    "render/resource/laughs-in-object": None,
    "render/resource/recursive-map": None,
    "render/resource/deep-flow-seq-100000": None,
    "render/resource/deep-in-object-5000": None,
    "render/resource/dup-nested": None,
    "render/resource/dup-escaped": None,
    "render/resource/utf8-surrogate-in-value": None,
    "render/resource/utf16-le-bom": None,
    "render/resource/char-nul": None,
    "render/resource/syntax-tab-indent": None,
    "render/resource/syntax-unclosed-flow-seq": None,
    "render/resource/doc-top-list": None,
    "render/resource/key-int": None,
    "render/resource/dup-top": None,
    "render/kustomization/utf8-ff-in-value": None,
    "render/kustomization/laughs-2x24": None,
    "render/patch/laughs-10x7": None,
    "render/json6902/deep-flow-seq-10000": None,
    "render/strategic-merge/dup-name": None,
    "escape/dotdot/resources": None,
    "escape/dotdot/configmap-files": None,
    "escape/dotdot/patches-path": None,
    "escape/dotdot/resources-dir": None,
    # committed symlinks that leave the repository are refused by the snapshot already
    "escape/symlink/resources": Expect("overlays/dev/linked", None, ("link", "outside", "absolute")),
    "escape/symlink/dotdot-relative-link": Expect("overlays/dev/linked.yaml", None, ("link", "outside")),
    "remote/resources-0": None,
    "cycle/two": None,
    "kustomization/unknown-field": None,
    "kustomization/helm-charts": None,
    "kustomization/resource-missing": None,
    "patch/json-file/op-unknown": None,
    "patch/json-inline/test-fails": None,
    "patch/smp-file/directive-unknown": None,
    "object/no-kind": None,
    "object/duplicate-of-base": None,
    "env/payload/dup-env-overlay": None,
    "env/field/overlay-dotdot": None,
    "env/field/ignore-bad-regex": None,
    "env/field/namespace-not-dns": None,
}


def _obj_case(cid: str, text: str, expect: Expect) -> RepoCase:
    return RepoCase(
        f"pass/{cid}",
        {K: kust(resources=(*BASE_RESOURCES, "obj.yaml")), "overlays/dev/obj.yaml": text.encode()},
        expect,
    )


# Objects the renderer accepts but the API server rejects: the server-side dry-run runs before any write,
# so nothing of the set is applied; the error names the object ("{ns}" is the test namespace).
SERVER_REJECTED = [
    # rendered as kustomize renders it (`name: 5`); the pass refuses it before anything is applied
    _obj_case(
        "object/name-int",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: 5\n",
        Expect("ConfigMap", None, ("metadata.name must be a string",)),
    ),
    _obj_case(
        "server/service-port-out-of-range",
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: bad-port\nspec:\n  ports:\n  - port: 70000\n",
        Expect("Service/{ns}/bad-port", None, ("port", "invalid")),
    ),
    _obj_case(
        "server/configmap-data-not-string",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-data\ndata:\n  k: {nested: map}\n",
        Expect("ConfigMap/{ns}/bad-data", None, ("data", "invalid", "string")),
    ),
    _obj_case(
        "server/name-uppercase",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n",
        Expect("Bad_Name", None, ("invalid", "name", "lowercase", "subdomain")),
    ),
    _obj_case(
        "server/name-path-traversal",
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: ../../../api/v1/namespaces/default/configmaps/victim\n"
        ),
        Expect("victim", None, ("invalid", "name", "not")),
    ),
    RepoCase(
        "pass/server/name-with-slash-after-a-change",
        {
            K: kust(resources=(*BASE_RESOURCES, "obj.yaml")),
            "overlays/dev/configmap.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n"
            b"data:\n  LOG_LEVEL: debug\n",
            "overlays/dev/obj.yaml": (
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: z/z\ndata: {k: v}\n"
            ),
        },
        Expect("z/z", None, ("invalid", "name", "not found", "/")),
    ),
    _obj_case(
        "server/namespace-path-traversal",
        (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
            "  name: ns-walk\n"
            "  namespace: ../../../api/v1/namespaces/default\n"
        ),
        Expect("ns-walk", None, ("invalid", "namespace", "not")),
    ),
    _obj_case(
        "server/labels-list",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-labels\n  labels: [1]\n",
        Expect("bad-labels", None, ("labels", "invalid", "decode", "cannot")),
    ),
    _obj_case(
        "server/annotations-string",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bad-ann\n  annotations: text\n",
        Expect("bad-ann", None, ("annotations", "invalid", "decode", "cannot")),
    ),
    _obj_case(
        "server/replicas-infinite",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: inf\nspec:\n  replicas: .inf\n"
        "  selector: {matchLabels: {a: b}}\n  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: x}]}\n",
        Expect("inf", None, ("replicas", "invalid", "inf", "json", "number")),
    ),
    _obj_case(
        "server/unknown-kind",
        "apiVersion: example.com/v1\nkind: Nope\nmetadata:\n  name: nope\n",
        Expect("Nope", None, ("serve", "not found", "no matches", "crd")),
    ),
    _obj_case(
        "server/no-api-version",
        "kind: ConfigMap\nmetadata:\n  name: no-api\n",
        Expect("apiVersion", None, ("apiVersion", "invalid")),
    ),
    _obj_case(
        "server/unknown-field",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra-field\nsmuggled: {evil: true}\n",
        Expect("extra-field", None, ("smuggled", "unknown", "not declared", "field")),
    ),
    _obj_case(
        "server/kube-system-object",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: in-kube-system\n  namespace: kube-system\n"
        "data: {k: v}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: bad-port\n"
        "spec:\n  ports:\n  - port: 70000\n",
        Expect("bad-port", None, ("port", "invalid")),
    ),
    RepoCase(
        "pass/git/absolute-symlink-env",
        {ENV: Link("/etc/hostname")},
        Expect(ENV, None, ("link", "absolute")),
    ),
]


@dataclass(frozen=True)
class PassCase:
    id: str
    files: dict[str, Any]
    expect: Expect
    outside: dict[str, bytes]


def _env_renamed(path: str) -> str:
    return ENV_PATH if path == ENV else path


def _pass_cases() -> list[PassCase]:
    corpus = {c.id: c for c in render_cases() + env_cases()}
    chosen: list[RepoCase] = []
    for cid, override in FROM_CORPUS.items():
        case = corpus[cid]
        chosen.append(replace(case, expect=override) if override is not None else case)
    chosen += SERVER_REJECTED
    out = []
    for c in chosen:
        files = {_env_renamed(k): v for k, v in c.files.items()}
        if c.id.startswith("env/field/"):  # an otherwise valid environment, so only the field is at fault
            env = files[ENV_PATH]
            assert isinstance(env, bytes)
            files[ENV_PATH] = env.replace(b"overlay: o\n", b"overlay: overlays/dev\n")
        expect = replace(c.expect, where=_env_renamed(c.expect.where))
        out.append(PassCase(f"pass/{c.id.removeprefix('pass/')}", files, expect, dict(c.outside)))
    return out


CASES = _pass_cases()


def _params() -> list[Any]:
    return params(CASES)


@dataclass
class World:
    """One namespace, one environment repository (bare remote + clone) and a pass context."""

    kube: KubeClient
    namespace: str
    remote: Path
    work: Path
    outside: Path
    ctx: PassContext

    def write(self, files: dict[str, Any]) -> None:
        """Make the clone hold exactly the baseline with ``files`` laid over it."""
        for child in self.work.iterdir():
            if child.name == ".git":
                continue
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        base = {_env_renamed(k): v for k, v in baseline(self.namespace).items()}
        base.update(files)
        write_tree(self.work, {k: v for k, v in resolve_outside(base, self.outside).items() if v is not None})

    def commit(self, message: str) -> str:
        return commit_and_push(self.work, message)

    def remote_head(self) -> str:
        import git

        repo = git.Repo(self.remote)
        try:
            return str(repo.commit("main").hexsha)
        finally:
            repo.close()

    def refs(self) -> list[ObjectRef]:
        ns = self.namespace
        return [
            ObjectRef(kind="ConfigMap", namespace=ns, name="app-config"),
            ObjectRef(kind="Service", namespace=ns, name="app"),
            ObjectRef(group="apps", kind="Deployment", namespace=ns, name="app"),
        ]

    def live_state(self) -> dict[str, Any]:
        """resourceVersion of each baseline object, and every object name of these kinds."""
        state: dict[str, Any] = {}
        for ref in self.refs():
            live = self.kube.get(ref)
            state[str(ref)] = (live or {}).get("metadata", {}).get("resourceVersion")
        for group, kind in (("", "ConfigMap"), ("", "Service"), ("apps", "Deployment")):
            items, _ = self.kube.list(group, "v1", kind, namespace=self.namespace)
            state[f"names/{kind}"] = sorted(i["metadata"]["name"] for i in items)
        items, _ = self.kube.list("", "v1", "ConfigMap", namespace="kube-system")
        state["names/kube-system"] = sorted(i["metadata"]["name"] for i in items)
        return state


@pytest.fixture(scope="module")
def world(kube: KubeClient, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    ns = f"hostile-{uuid.uuid4().hex[:8]}"
    ns_ref = ObjectRef(kind="Namespace", name=ns)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}, ns_ref, field_manager="tests"
    )
    tmp = tmp_path_factory.mktemp("hostile-pass")
    src = tmp / "src"
    write_tree(src, {_env_renamed(k): v for k, v in baseline(ns).items()})
    remote, work = init_repo_with_remote(src, tmp / "repo")
    ctx = PassContext(source=GitSource(str(remote), "main", tmp / "cache"), client=kube)
    w = World(kube, ns, remote, work, tmp / "outside", ctx)
    first = run_pass(ctx, ENV_NAME, with_health=False)
    assert first.ok, first.error
    assert first.changes.count(Action.CREATED) == 3
    try:
        yield w
    finally:
        store_ref = ObjectRef(
            kind="ConfigMap", namespace="reconciler-system", name=f"reconciler-inventory-{ENV_NAME}"
        )
        kube.delete(store_ref)
        kube.delete(ns_ref)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("case", _params())
def test_pass_refuses_and_applies_nothing(case: PassCase, world: World, tmp_path: Path) -> None:
    # start from the converged baseline
    world.write({})
    world.commit(f"baseline before {case.id}")
    again = run_pass(world.ctx, ENV_NAME, with_health=False)
    assert again.ok, f"the baseline did not converge before the case: {again.error}"
    store = InventoryStore(world.kube, source=world.ctx.source.url)
    inventory = store.load(ENV_NAME)
    live = world.live_state()

    write_tree(world.outside, case.outside)
    world.write(case.files)
    sha = world.commit(f"hostile: {case.id}")
    writes_before = {v: world.kube.calls[v] for v in ("apply", "delete", "create", "update")}

    result = run_pass(world.ctx, ENV_NAME, with_health=False)

    assert not result.ok, f"the hostile commit was accepted: {result.changes.summary()}"
    assert result.revision.endswith(sha)
    expect = replace(case.expect, where=case.expect.where.replace("{ns}", world.namespace))
    assert_clear(result.error, expect)
    written = [
        c for c in result.changes.entries if c.action in (Action.CREATED, Action.CONFIGURED, Action.DELETED)
    ]
    assert written == [], f"partial apply: {written}"
    assert {v: world.kube.calls[v] for v in writes_before} == writes_before, (
        "the pass wrote to the API server"
    )
    assert store.load(ENV_NAME) == inventory, "the inventory changed"
    assert world.live_state() == live, "live objects changed"
    assert world.remote_head() == sha, "the pass made a commit"


def test_repository_converges_after_the_corpus(world: World) -> None:
    """After every hostile commit, restoring the valid files converges (the daemon would do it unattended)."""
    world.write({})
    world.commit("restore")
    result = run_pass(world.ctx, ENV_NAME, with_health=False)
    assert result.ok, result.error
    assert all(world.kube.get(r) is not None for r in world.refs())
