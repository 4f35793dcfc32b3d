"""One reconcile pass over one environment, as a straight line (ARCHITECTURE.md §3).

fetch → snapshot → render → identify/validate → plan → staged apply → prune → inventory → health.
Nothing is written to the cluster unless the whole desired set rendered and validated; the one
exception is the cluster-scoped stage (Namespaces, CRDs ...), validated itself and written before the
objects that cannot be dry-run without it (:meth:`ResourceManager.apply_set`), and recorded in the
inventory first.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.cluster import ownership
from reconciler.cluster.client import UNREACHABLE, KubeClient
from reconciler.cluster.health import McpProbe, judge
from reconciler.cluster.inventory import InventoryStore
from reconciler.cluster.manager import (
    ApplyError,
    Desired,
    PruneBlocked,
    ResourceManager,
    SyncCache,
    identify,
    mass_prune_guard,
    prepare,
    read_live,
    stale_entries,
)
from reconciler.cluster.targets import ClusterTargets, Target
from reconciler.errors import ConfigError, KubeError, NotFoundError, ReconcilerError
from reconciler.failpoints import failpoint
from reconciler.model import (
    SETTLED_STATES,
    Action,
    ChangeSet,
    DriftMode,
    Environment,
    HealthState,
    HealthStatus,
    Inventory,
    ObjectRef,
    PassResult,
    Revision,
    ToolContractPolicy,
    ref_of,
    sensitive,
)
from reconciler.policy import PolicyEvaluator
from reconciler.probe.contract import ContractReport, ServerRef
from reconciler.probe.service import ProbeService, secret_reader, service_from_env
from reconciler.reconcile import toolgate
from reconciler.reconcile.environments import load_environment
from reconciler.reconcile.rollouts import LaidOver, PlanError, lay_over
from reconciler.render import RemoteOptions, RenderCache, RenderError, SopsFiles, build
from reconciler.render import sops as _sops
from reconciler.render.helm import environment_options as helm_options
from reconciler.render.remote import environment_options as remote_options
from reconciler.source import GitSource, Snapshot


@dataclass
class PassContext:
    """What a pass needs, shared across passes of one daemon."""

    source: GitSource
    client: KubeClient
    cache: RenderCache = field(default_factory=RenderCache)
    on_drift: Callable[[str, ObjectRef, list[str]], None] | None = None
    last_desired: dict[str, list[Desired]] = field(default_factory=dict)
    sync_cache: SyncCache = field(default_factory=SyncCache)
    #: judges MCP servers and agents by speaking MCP and A2A to them, and Agents' tool contracts
    #: (reconciler.probe.service); None when neither $RECONCILER_PROBE_ADDRESSES nor
    #: $RECONCILER_PROBE_DIRECT is set
    probes: ProbeService | None = field(default_factory=service_from_env)

    def __post_init__(self) -> None:
        if self.targets is None:
            self.targets = ClusterTargets(self.client)
        if self.probes is not None and self.probes.secrets is None:
            client = self.client

            def get(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
                try:
                    return client.get(ObjectRef(kind=kind, namespace=namespace, name=name))
                except KubeError:
                    return None

            self.probes.secrets = secret_reader(get)

    #: each environment's rollouts as the last pass laid them over its desired set (reconcile/rollouts.py)
    rollouts: dict[str, LaidOver] = field(default_factory=dict)
    #: the default Prometheus of rollout analysis (the daemon's --prometheus)
    prometheus_url: str | None = None
    #: the environments' Rego policies, evaluated by OPA before any write (reconciler.policy)
    policy: PolicyEvaluator = field(default_factory=PolicyEvaluator)
    #: the local age key file for SOPS-encrypted manifests (--sops-age-key-file,
    #: $RECONCILER_SOPS_AGE_KEY_FILE or $SOPS_AGE_KEY_FILE; reconciler.render.sops)
    sops_key_file: Path | None = field(default_factory=_sops.local_key_file)
    #: files already decrypted, by (content digest, keys digest)
    sops_memo: _sops.SopsMemo = field(default_factory=_sops.SopsMemo)

    #: each environment's target cluster (reconciler.cluster.targets); default: made from ``client`` (the
    #: daemon's own cluster, whose kubeconfig file also holds the contexts environments may name)
    targets: ClusterTargets | None = None
    #: the target cluster of each environment's ``last_desired``
    last_target: dict[str, Target] = field(default_factory=dict)
    #: the live copies each environment's last pass judged its health from (read after its writes), by
    #: key; the daemon takes them into its drift watches' view (and removes them from here)
    last_live: dict[str, dict[tuple[str, str, str, str], dict[str, Any]]] = field(default_factory=dict)

    @property
    def clusters(self) -> ClusterTargets:
        """The target clusters' registry (made in ``__post_init__`` when not given)."""
        assert self.targets is not None
        return self.targets

    def client_for(self, env: Environment | None) -> KubeClient:
        """The client of ``env``'s target cluster (:meth:`ClusterTargets.client_for`).

        Raises:
            ConfigError: an unknown context or an unusable kubeconfig Secret.
            KubeError: the kubeconfig Secret cannot be read.
        """
        return self.clusters.client_for(env)

    @property
    def mcp_probe(self) -> ProbeService | None:
        """The probe service, as health assessment takes it."""
        return self.probes


def _env_file(snapshot: Snapshot, env_name: str) -> Environment:
    path = snapshot.root / "envs" / f"{env_name}.yaml"
    if not path.exists():
        raise ConfigError(f"envs/{env_name}.yaml does not exist at {snapshot.revision}")
    env = load_environment(path, shown=f"envs/{env_name}.yaml")
    return env


def _namespaced(client: KubeClient, obj: dict[str, Any], crd_scopes: dict[tuple[str, str], bool]) -> bool:
    ref = ref_of(obj)
    if (ref.group, ref.kind) in crd_scopes:
        return crd_scopes[(ref.group, ref.kind)]
    try:
        return client.resource(ref.group, ref.version, ref.kind).namespaced
    except NotFoundError:
        raise ApplyError(
            f"{ref}: the cluster does not serve {ref.api_version} {ref.kind}, and no CRD in the "
            "desired set defines it"
        ) from None


def render_environment(
    env: Environment,
    snapshot: Snapshot,
    *,
    cache: RenderCache | None = None,
    tree_id: str | None = None,
    remote: RemoteOptions | None = None,
    enable_helm: bool = False,
    sops: SopsFiles | None = None,
) -> list[dict[str, Any]]:
    """Render the environment's overlay from the snapshot (not from any working copy).

    Remote bases are fetched as ``remote`` allows (default: :func:`remote_options` of ``env``); each one
    used is appended to ``remote.used``. Helm charts are inflated when the environment's ``render.helm``
    enables them, or ``enable_helm`` (:func:`reconciler.render.helm.environment_options`); pulled charts go
    to the cache directory of ``remote``. SOPS-encrypted files stay encrypted; those read are recorded in
    ``sops`` for :func:`reconciler.render.sops.decrypt_objects`.

    Raises:
        RenderError: naming the file and line at fault.
    """
    root = snapshot.root
    overlay = root / env.overlay
    if not overlay.is_dir():
        raise RenderError(
            f"overlay {env.overlay!r} of environment {env.name!r} is not a directory",
            path=str(Path(env.overlay)),
        )
    if remote is None:
        remote = remote_options(env)
    return build(
        overlay,
        root=root,
        cache=cache,
        tree_id=tree_id,
        remote=remote,
        helm=helm_options(env, remote.cache_dir, enable=enable_helm),
        sops=sops,
    )


def decryptor_for(ctx: PassContext, env: Environment) -> _sops.Decryptor:
    """The SOPS decryptor of ``env``: the identities of the local key file (``ctx.sops_key_file``) and of
    the Secret ``env.decryption.secretRef`` names (keys ending in ``.agekey``), read now.

    Raises:
        ConfigError: the key file or the Secret holds something that is no age identity, or the Secret
            cannot be read.
    """
    keys = _sops.AgeKeys()
    notes: list[str] = []
    try:
        if ctx.sops_key_file is not None:
            if ctx.sops_key_file.exists():
                keys = keys + _sops.load_key_file(ctx.sops_key_file)
            else:
                notes.append(f"the local age key file {ctx.sops_key_file} does not exist")
        ref = env.decryption.secret_ref if env.decryption is not None else None
        if ref is not None:
            where = f"Secret {ref.namespace}/{ref.name}"
            try:
                secret = ctx.client.get(ObjectRef(kind="Secret", namespace=ref.namespace, name=ref.name))
            except KubeError as exc:
                raise ConfigError(f"decryption.secretRef: {where} cannot be read: {exc}") from None
            if secret is None:
                notes.append(f"{where} (decryption.secretRef of envs/{env.name}.yaml) does not exist")
            else:
                found = _sops.keys_from_secret(secret, where=where)
                if not found:
                    notes.append(f"{where} has no key ending in {_sops.AGE_KEY_SUFFIX}")
                keys = keys + found
    except _sops.KeyError_ as exc:
        raise ConfigError(f"SOPS age keys: {exc}") from None
    return _sops.Decryptor(keys, memo=ctx.sops_memo, notes=notes)


def default_namespaces(client: KubeClient, env: Environment, objects: list[dict[str, Any]]) -> None:
    """Give namespaced objects without a namespace the environment's namespace (in place).

    Raises:
        ApplyError: when an object has no identity (:func:`identify`: e.g. no apiVersion, which the
            renderer allows as kustomize does), before anything is written.
    """
    for obj in objects:
        identify(obj)
    if not env.namespace:
        return
    scopes: dict[tuple[str, str], bool] = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            scopes[(str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", "")))] = (
                spec.get("scope") == "Namespaced"
            )
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if not meta.get("namespace") and _namespaced(client, obj, scopes):
            meta["namespace"] = env.namespace


def assess_health(
    client: KubeClient,
    refs: list[ObjectRef],
    *,
    no_controller_after: float = 60.0,
    probe: McpProbe | None = None,
    known: Mapping[tuple[str, str, str, str], dict[str, Any]] | None = None,
    seen: dict[tuple[str, str, str, str], dict[str, Any]] | None = None,
) -> dict[str, HealthStatus]:
    """Health of each object, read live: one list call per (kind, namespace) with several objects, a get
    otherwise (:func:`reconciler.cluster.manager.read_live`); related Deployments fetched on demand.
    An object whose read failed is Unverified, naming the error; one that is absent is Failed ("not
    found"). ``probe`` also judges RemoteMCPServers by speaking MCP (see
    :func:`reconciler.cluster.health.assess`). ``known``: live copies by key that the caller read a
    moment ago and nothing wrote since (a pass's objects it left unchanged); those are not read again.
    ``seen``: filled with the live copies judged (read or known), by key."""

    def lookup(ref: ObjectRef) -> dict[str, Any] | None:
        try:
            return client.get(ref)
        except KubeError:
            return None

    have = known or {}
    found, errors = read_live(client, [r for r in refs if r.key not in have], unserved_kind_fails=True)
    found.update({r.key: have[r.key] for r in refs if r.key in have})
    if seen is not None:
        seen.update(found)
    out: dict[str, HealthStatus] = {}
    lives: dict[str, dict[str, Any]] = {}
    for ref in refs:
        if ref.key in errors:
            message = f"cannot be read: {errors[ref.key]}"
            out[str(ref)] = HealthStatus(state=HealthState.UNVERIFIED, message=message)
        elif ref.key not in found:
            out[str(ref)] = HealthStatus(state=HealthState.FAILED, message="not found")
        else:
            lives[str(ref)] = found[ref.key]
    if isinstance(probe, ProbeService):  # every endpoint at once, so judging below reads the cache
        probe.prefetch(lives.values())
    for key, live in lives.items():
        out[key] = judge(live, lookup=lookup, no_controller_after=no_controller_after, probe=probe)
    return {str(ref): out[str(ref)] for ref in refs if str(ref) in out}


def run_pass(
    ctx: PassContext,
    env_name: str,
    *,
    revision: Revision | None = None,
    trigger: str = "manual",
    dry_run: bool = False,
    with_health: bool = True,
) -> PassResult:
    """Reconcile one environment once and return the result (never raises for pass failures).

    The stages, each a function of its own: :func:`_render_judged` (render, policies, SOPS),
    :func:`_lay_rollouts`, :func:`_guard` (ownership, mass prune, tool contract: before the first write),
    :func:`_apply_record` (apply, prune, inventory) and the health read.

    Args:
        ctx: source, client and caches.
        env_name: the environment (``envs/<env_name>.yaml`` at the revision).
        revision: a revision already fetched; ``None`` fetches the branch.
        trigger: why the pass runs (poll, git-push, drift …), recorded in the result.
        dry_run: plan only; nothing is written (server-side dry-run for changed objects).
        with_health: read each object's health after applying.
    """
    started = time.time()
    t0 = time.monotonic()
    result = PassResult(environment=env_name, ok=False, started_at=started, duration=0.0, trigger=trigger)
    snapshot_root = ""
    try:
        rev = revision or ctx.source.fetch()
        failpoint("fetch")
        result.revision = str(rev)
        snapshot = ctx.source.snapshot(rev)
        snapshot_root = str(snapshot.root)
        env = _env_file(snapshot, env_name)
        target = ctx.clusters.target_of(env)
        result.cluster = target.label
        client = ctx.clusters.client_of(target, env_name)
        judged = _render_judged(ctx, env, snapshot, rev, client, result)
        if judged is None:  # a policy denied it
            return _finish(result, snapshot_root, t0)
        objects, digest_key = judged
        objects = _lay_rollouts(ctx, env, client, objects, str(rev), dry_run)
        desired = prepare(objects, env.sync.ignore)
        failpoint("render")
        store = InventoryStore(
            client, source=ctx.source.url, on_written=ctx.clusters.inventory_written(target)
        )
        original = store.load(env_name)
        manager = ResourceManager(client, sync_cache=ctx.sync_cache)
        manager.secret_digest_key = digest_key  # no plain hash of a decrypted Secret in the inventory
        live = manager.live_index(d.ref for d in desired)
        inventory, blocked = _guard(ctx, env, client, manager, desired, live, original, result)
        if blocked:
            result.blocked = True
            result.error = blocked
            if dry_run:  # show what the guard stops: the plan, with the deletions marked blocked
                result.changes, _ = manager.apply_set(
                    desired, inventory=inventory, correct_drift=False, dry_run=True, live=live
                )
                if env.sync.prune:
                    for ref in stale_entries(inventory, desired):
                        result.changes.add(ref, Action.DELETED, message=f"blocked: {blocked}")
            return _finish(result, snapshot_root, t0)
        error = _apply_record(
            ctx, env, str(rev), store, manager, desired, live, original, inventory, result, dry_run
        )
        if not dry_run:
            ctx.last_desired[env_name] = desired
            ctx.last_target[env_name] = target
        if with_health and not dry_run:
            # what the pass read and did not write is judged from that reading: a no-op pass reads once
            untouched = {c.ref.key for c in result.changes.entries if c.action is Action.UNCHANGED}
            seen: dict[tuple[str, str, str, str], dict[str, Any]] = {}
            result.health = assess_health(
                client,
                [d.ref for d in desired],
                no_controller_after=env.health.no_controller_after,
                probe=ctx.mcp_probe,
                known={k: v for k, v in live.items() if k in untouched},
                seen=seen,
            )
            ctx.last_live[env_name] = seen
        failed = [c for c in result.changes.entries if c.action is Action.FAILED]
        if failed:
            error = "; ".join(c.message for c in failed)
        result.error = error
        result.ok = not error
    except ApplyError as exc:
        result.error = str(exc)
        result.changes = exc.changes if exc.changes.entries else result.changes
    except (ReconcilerError, RenderError, PlanError) as exc:
        result.error = str(exc)
    result.error = _naming_cluster(result.cluster, result.error)
    return _finish(result, snapshot_root, t0)


def _render_judged(
    ctx: PassContext,
    env: Environment,
    snapshot: Snapshot,
    rev: Revision,
    client: KubeClient,
    result: PassResult,
) -> tuple[list[dict[str, Any]], bytes | None] | None:
    """Render ``env`` at ``rev``, give objects without a namespace the default one, let the environment's
    policies judge the rendered objects (ciphertext included), then decrypt its SOPS files. Returns the
    objects and the key for the inventory's Secret digests (``None``: nothing was decrypted), or ``None``
    when a policy denied the render (``result`` then says why and is Blocked). Records the remote bases
    used and the policy findings and warnings in ``result``.

    Raises:
        RenderError: the render failed (naming the file).
        ReconcilerError: a policy evaluation failed, or no key opens a SOPS file / its MAC is wrong.
    """
    remote = remote_options(env, ctx.source.cache_dir)
    encrypted = SopsFiles()
    objects = render_environment(
        env,
        snapshot,
        cache=ctx.cache,
        tree_id=ctx.source.tree_digest(rev.sha, "") or None,
        remote=remote,
        sops=encrypted,
    )
    result.remote_bases = list(remote.used)  # what reproduces this render: commits and digests
    default_namespaces(client, env, objects)
    # Policies judge the rendered objects before anything is written, rollout state included: a deny
    # blocks the pass, an evaluation that fails (syntax, timeout, runtime error) fails it.
    judged = ctx.policy.check(snapshot.root, env, objects)
    if judged is not None:
        result.policy = judged.findings
        result.warnings.extend(f"policy warn: {f}" for f in judged.warnings)
        if not judged.ok:
            result.blocked = True
            result.error = judged.summary()
            return None
    # SOPS: decrypted after the policies judged the ciphertext, before anything is written; a file no key
    # opens or whose MAC does not match fails the pass here, with nothing applied.
    digest_key: bytes | None = None
    if encrypted.files:
        decryptor = decryptor_for(ctx, env)
        if _sops.decrypt_objects(objects, encrypted, decryptor):
            digest_key = decryptor.keys.digest_key()
    return objects, digest_key


def _lay_rollouts(
    ctx: PassContext,
    env: Environment,
    client: KubeClient,
    objects: list[dict[str, Any]],
    revision: str,
    dry_run: bool,
) -> list[dict[str, Any]]:
    """The objects to apply: ``objects`` with ``env``'s rollouts in progress laid over them
    (reconcile/rollouts.py; remembered in ``ctx.rollouts``), or ``objects`` when it has none."""
    if not env.rollouts:
        ctx.rollouts.pop(env.name, None)
        return objects
    laid = lay_over(
        client, ctx.source.url, env, objects, revision, dry_run=dry_run, prometheus=ctx.prometheus_url
    )
    ctx.rollouts[env.name] = laid
    return laid.objects


def _guard(
    ctx: PassContext,
    env: Environment,
    client: KubeClient,
    manager: ResourceManager,
    desired: list[Desired],
    live: dict[tuple[str, str, str, str], dict[str, Any]],
    original: Inventory,
    result: PassResult,
) -> tuple[Inventory, str]:
    """The guards that run before the first write, so a pass they stop writes nothing and is Blocked (the
    revision never half applied, never recorded as applied): objects another environment's inventory
    holds (ownership), the mass-prune guard, the tool contract (``enforce`` blocks, ``warn`` adds a
    warning to ``result``). Returns the inventory this pass may prune from (``original`` without objects
    another inventory holds and this one no longer wants: those only leave ours) and why the pass is
    blocked (``""``: it is not). ``live``: the live copies of ``desired`` by key
    (:meth:`ResourceManager.live_index`, read once for the guards and the apply)."""
    # the inventories as the daemon's watch holds them (none read per pass), else listed
    watched = ctx.clusters.inventories(ctx.clusters.target_of(env))
    keys = wanted(desired)
    asked = set(keys) | {r.key for r in original.entries}  # what the guards below look up
    others = ownership.other_inventories(client, env.name, ctx.source.url, items=watched)
    held = ownership.holders(others, only=asked)
    found = ownership.conflicts(((d.ref, d.obj) for d in desired), live, held)
    inventory = original.model_copy(
        update={"entries": [r for r in original.entries if r.key not in held or r.key in keys]}
    )
    blocked = ownership.describe(env.name, found) if found else ""
    if not blocked and env.sync.prune and not env.sync.allow_mass_prune:
        stale = stale_entries(inventory, desired)
        moved = set(manager.same_objects(stale, desired)) if stale else set()
        blocked = mass_prune_guard(inventory, desired, allow_mass_prune=False, moved=moved)
    if not blocked and ctx.probes is not None and env.health.tool_contract is not ToolContractPolicy.OFF:
        report = contract_before_apply(ctx, env, desired, inventory)
        if not report.ok:
            message = f"tool contract: {report.summary()}"
            if env.health.tool_contract is ToolContractPolicy.ENFORCE:
                blocked = message
            else:
                result.warnings.append(message)
    return inventory, blocked


def _apply_record(
    ctx: PassContext,
    env: Environment,
    revision: str,
    store: InventoryStore,
    manager: ResourceManager,
    desired: list[Desired],
    live: dict[tuple[str, str, str, str], dict[str, Any]],
    original: Inventory,
    inventory: Inventory,
    result: PassResult,
    dry_run: bool,
) -> str:
    """Apply ``desired`` in dependency order, prune what left Git (when ``env.sync.prune``) and store the
    new inventory (not in a dry run); ``live`` is what the guards read (no write since). Objects about to
    be created enter the stored inventory before each batch of writes (write-ahead), so a pass that dies
    half-way leaves none of them untracked. The changeset goes to ``result.changes``. Returns the prune
    guard's refusal (``""``: none).

    Raises:
        ApplyError: a write failed in a way that stops the pass.
    """
    env_name = env.name

    def on_drift(ref: ObjectRef, paths: list[str]) -> None:
        if ctx.on_drift is not None:
            ctx.on_drift(env_name, ref, paths)

    stored = [original]  # the inventory as the cluster holds it, after each write-ahead save

    def record_intent(creating: list[ObjectRef]) -> None:
        # Write-ahead: objects about to be created enter the stored inventory before each batch of writes
        # (the cluster-scoped stage, then the rest), so a pass that dies half-way (API server gone) or
        # fails validation after the cluster-scoped stage leaves none of them untracked; the next good
        # pass keeps those still desired and prunes those that left Git. The revision is stored too, so a
        # daemon whose drift watch sees these writes knows they come from another revision.
        current = stored[-1]
        known = {r.key for r in current.entries}
        new = [r for r in creating if r.key not in known]
        if new or current.revision != revision:
            update = {"entries": [*current.entries, *new], "revision": revision}
            saved = current.model_copy(update=update)
            store.save(saved, previous=current)
            stored.append(saved)
            failpoint("inventory")

    changes, digests = manager.apply_set(
        desired,
        inventory=inventory,
        correct_drift=env.sync.drift is DriftMode.CORRECT,
        dry_run=dry_run,
        on_drift=on_drift,
        before_write=record_intent,
        live=live,
    )
    result.changes = changes
    keep: list[ObjectRef] = []
    error = ""
    if env.sync.prune:
        try:
            pruned, keep = manager.prune(
                inventory, desired, allow_mass_prune=env.sync.allow_mass_prune, dry_run=dry_run
            )
            result.changes.entries.extend(pruned.entries)
        except PruneBlocked as exc:  # the guard before the first write counts the same way, so this is a
            error = str(exc)  # safety net: nothing is deleted and the pass fails
            keep = exc.keep
    if not dry_run:
        entries = [d.ref for d in desired] + keep
        store.save(
            Inventory(environment=env_name, revision=revision, entries=entries, digests=dict(digests)),
            previous=stored[-1],
        )
        failpoint("record")
    return error


def contract_before_apply(
    ctx: PassContext, env: Environment, desired: list[Desired], inventory: Inventory
) -> ContractReport:
    """The tool contract of the desired Agents against their servers' current tool lists
    (:func:`reconciler.reconcile.toolgate.apply_check`)."""
    assert ctx.probes is not None
    client = ctx.client_for(env)
    refs = {(d.ref.kind, d.ref.namespace, d.ref.name): str(d.ref) for d in desired}

    def live(server: ServerRef) -> dict[str, Any] | None:
        version = (
            "v1" if server.kind == "Service" else ("v1alpha1" if server.kind == "MCPServer" else "v1alpha2")
        )
        ref = ObjectRef(
            group=server.group,
            version=version,
            kind=server.kind,
            namespace=server.namespace,
            name=server.name,
        )
        try:
            return client.get(ref)
        except KubeError:
            return None

    return toolgate.apply_check(
        ctx.probes,
        [d.obj for d in desired],
        namespace=env.namespace or "",
        applied_digests=inventory.digests,
        refs=refs,
        live=live,
    )


def _naming_cluster(cluster: str, error: str) -> str:
    """A pass's error naming its target cluster first when the cluster could not be reached (an API call
    failed with :class:`~reconciler.errors.ServerError` reason ``Unreachable``, directly or inside an
    apply or prune failure)."""
    if cluster and f": {UNREACHABLE}: " in error and not error.startswith("cluster "):
        return f"cluster {cluster} unreachable: {error}"
    return error


def wanted(desired: list[Desired]) -> set[tuple[str, str, str, str]]:
    """The keys of the desired set."""
    return {d.key for d in desired}


def _finish(result: PassResult, snapshot_root: str, t0: float) -> PassResult:
    """The pass's last touches: paths inside the snapshot made relative in the error, the duration, and
    decrypted values masked (:func:`reconciler.model.sensitive.mask_result`)."""
    if snapshot_root:
        result.error = result.error.replace(snapshot_root + "/", "")
    result.duration = round(time.monotonic() - t0, 4)
    return sensitive.mask_result(result)  # no value the SOPS step decrypted leaves in a result


def summarize(changes: ChangeSet) -> str:
    """``created 3, configured 1, unchanged 10`` style summary."""
    return ", ".join(f"{k} {v}" for k, v in changes.summary().items()) or "nothing to do"


SETTLED = SETTLED_STATES


def wait_for_health(
    client: KubeClient,
    refs: list[ObjectRef],
    *,
    timeout: float,
    no_controller_after: float = 60.0,
    interval: float = 1.0,
    probe: McpProbe | None = None,
) -> dict[str, HealthStatus]:
    """Poll health until every object is settled (:data:`SETTLED`) or ``timeout``
    seconds passed; returns the last reading."""
    deadline = time.monotonic() + timeout
    while True:
        health = assess_health(client, refs, no_controller_after=no_controller_after, probe=probe)
        if all(h.state in SETTLED for h in health.values()) or time.monotonic() >= deadline:
            return health
        time.sleep(interval)
