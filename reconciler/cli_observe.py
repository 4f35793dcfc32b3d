"""``reconciler status`` and ``reconciler diff``: what runs where, and what a commit would change.

Exit codes (as every ``reconciler`` command): 0 ok, 1 failed (cluster, Git or server unreachable, the
dry-run failed), 2 usage error (unknown environment, bad option), 3 differences found (``diff
--exit-code`` only).

``status`` reads each environment's inventory from the cluster (the revision it last applied and its
objects), reads each object's health, and with ``--repo`` compares the inventory's revision with the
branch's latest commit (``Synced`` / ``OutOfSync``); with ``--server`` it asks a running daemon instead
(``GET /api/status``), which also knows about running passes, failures and drift. Its ``Protocols``
section lists each MCP server (state, tool count, protocol version) and agent (card state, skills): from
the daemon's last probes with ``--server``, else probed now when ``$RECONCILER_PROBE_ADDRESSES`` or
``$RECONCILER_PROBE_DIRECT`` is set (else it says they are not probed).

``diff ENV`` renders the branch's latest commit and asks the API server for a server-side dry-run of every
changed object, then prints a coloured unified diff (live → desired; Secret values never shown).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# typer only: rich, the status models (pydantic), the cluster client and the probes are imported by
# the functions that use them, so that the command line starts fast (tests/unit/test_cli_imports.py)
from reconciler.errors import ReconcilerError

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from reconciler.model import Environment, HealthStatus, Inventory, ObjectRef
    from reconciler.observe.status import EnvSummary, PendingChange, ProtocolReport
    from reconciler.probe.service import ProbeService

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DIFFERENCES = 3

#: The colour of each ``SyncState`` (by value).
_SYNC_STYLE = {
    "Synced": "green",
    "OutOfSync": "yellow",
    "Drifted": "yellow",
    "Failed": "red",
    "Blocked": "red",
    "NotReconciled": "dim",
    "Unknown": "dim",
}
#: The colour of each ``HealthState`` (by value) and of ``NOT_PROBED_STATE``.
_HEALTH_STYLE = {
    "Healthy": "green",
    "Progressing": "yellow",
    "Degraded": "red",
    "Unverified": "magenta",
    "Failed": "red",
    "NotProbed": "dim",
}
_DIFF_STYLE = {"hdr": "bold", "hunk": "cyan", "add": "green", "del": "red", "ctx": ""}


class OutputFormat(StrEnum):
    """``-o`` values."""

    text = "text"
    json = "json"
    yaml = "yaml"


Output = Annotated[OutputFormat, typer.Option("-o", "--output", help="text, json or yaml")]
Kubeconfig = Annotated[Path | None, typer.Option(help="kubeconfig (default: $KUBECONFIG)")]
Context = Annotated[str | None, typer.Option(help="kubeconfig context")]
Color = Annotated[
    bool | None, typer.Option("--color/--no-color", help="colour (default: when writing to a terminal)")
]


def _consoles(color: bool | None) -> tuple[Console, Console]:
    from rich.console import Console

    width = None if sys.stdout.isatty() else 160
    out = Console(force_terminal=color, no_color=color is False, highlight=False, soft_wrap=True, width=width)
    err = Console(stderr=True, highlight=False, force_terminal=color, no_color=color is False)
    return out, err


def _fail(err: Console, message: str, code: int = EXIT_FAILED) -> typer.Exit:
    from rich.text import Text

    err.print(Text.assemble(("error: ", "bold red"), message))
    return typer.Exit(code)


def emit(data: Any, output: OutputFormat) -> None:
    """Write ``data`` (JSON-compatible) to standard output as JSON or YAML."""
    plain = json.loads(json.dumps(data, default=str))
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps(plain, indent=2) + "\n")
    else:
        from ruamel.yaml import YAML

        y = YAML(typ="safe", pure=True)
        y.default_flow_style = False
        y.dump(plain, sys.stdout)


@contextmanager
def spinner(err: Console, message: str) -> Iterator[None]:
    """A spinner on standard error while a long step runs (only on a terminal)."""
    if not err.is_terminal:
        yield
        return
    with err.status(message):
        yield


# -- status ---------------------------------------------------------------------------------------------


def _inventories(client: Any) -> dict[str, Inventory]:
    """Every stored inventory in the cluster, by environment."""
    from reconciler.cluster.inventory import NAMESPACE, parse_inventory
    from reconciler.errors import NotFoundError

    try:
        items, _ = client.list(
            "", "v1", "ConfigMap", namespace=NAMESPACE, label_selector="reconciler.dev/environment"
        )
    except NotFoundError:
        return {}
    out: dict[str, Inventory] = {}
    newest: dict[str, str] = {}
    for item in items:
        meta = item.get("metadata") or {}
        env = (meta.get("labels") or {}).get("reconciler.dev/environment")
        stamp = str(meta.get("resourceVersion", ""))
        if env and (str(env) not in newest or int(stamp or 0) > int(newest[str(env)] or 0)):
            newest[str(env)] = stamp  # several sources may define one environment: the latest write wins
            out[str(env)] = parse_inventory(str(env), item)
    return out


#: Kinds (group, kind) that may declare an MCP endpoint or an A2A agent (reconciler.probe.service).
_PROTOCOL_KINDS = frozenset(
    {("kagent.dev", "RemoteMCPServer"), ("kagent.dev", "MCPServer"), ("kagent.dev", "Agent"), ("", "Service")}
)


def cluster_protocols(
    client: Any, refs: list[ObjectRef], probes: ProbeService | None, note: str | None = None
) -> ProtocolReport:
    """The protocol health of the MCP servers and agents among ``refs``: their live objects read (one GET
    per object of a kind that can declare one), then every endpoint probed at once with ``probes``
    (results within its TTL reused). Without ``probes`` nothing is probed and the report says ``note``
    (default :data:`~reconciler.observe.status.NOT_PROBED`). Objects that cannot be read are left out
    (their health says why)."""
    from reconciler.errors import KubeError
    from reconciler.observe.status import NOT_PROBED, protocol_report

    lives: list[dict[str, Any]] = []
    for ref in refs:
        if (ref.group, ref.kind) not in _PROTOCOL_KINDS:
            continue
        try:
            live = client.get(ref)
        except KubeError:
            continue
        if live is not None:
            lives.append(live)
    if probes is not None and lives:
        probes.prefetch(lives)
    return protocol_report(lives, probes, probe=True, note=NOT_PROBED if note is None else note)


def cluster_status(
    client: Any,
    *,
    envs: list[str] | None = None,
    head: str = "",
    repo_envs: list[str] | None = None,
    with_health: bool = True,
    progress: Progress | None = None,
    protocols: bool = False,
    probes: ProbeService | None = None,
    probe_note: str | None = None,
) -> list[EnvSummary]:
    """Status of each environment from the cluster: the inventory's revision, sync state and health.

    Args:
        client: a :class:`reconciler.cluster.client.KubeClient`.
        envs: only these environments (default: every inventory, plus ``repo_envs``).
        head: the branch's latest revision (``main@sha1:…``); "" when not known (sync ``Unknown``).
        repo_envs: environments defined in the repository (shown ``NotReconciled`` without an inventory).
        with_health: read each inventory object's health (one GET per object).
        progress: a rich progress bar to advance per object read.
        protocols: read the protocol health of MCP servers and agents (:func:`cluster_protocols`).
        probes: the probe service for ``protocols`` (``None``: not probed, and ``probe_note`` says why).
        probe_note: why nothing is probed when ``probes`` is ``None`` (default
            :data:`~reconciler.observe.status.NOT_PROBED`).

    Raises:
        KubeError: when the API server cannot be read.
    """
    from reconciler.model import verdict
    from reconciler.observe.status import EnvSummary, SyncState, protocol_fields, sync_state
    from reconciler.reconcile import assess_health

    inventories = _inventories(client)
    names = envs or sorted(set(inventories) | set(repo_envs or []))
    total = sum(len(inventories[n].entries) for n in names if n in inventories) if with_health else 0
    task = progress.add_task("reading health", total=total) if progress is not None and total else None
    out: list[EnvSummary] = []
    for name in names:
        inv = inventories.get(name)
        if inv is None or not inv.revision:
            out.append(EnvSummary(name=name, sync=SyncState.NOT_RECONCILED))
            continue
        health: dict[str, HealthStatus] = {}
        if with_health:
            for ref in inv.entries:
                health.update(assess_health(client, [ref], probe=probes))
                if progress is not None and task is not None:
                    progress.advance(task)
        v = verdict(health)
        report = cluster_protocols(client, inv.entries, probes, probe_note) if protocols else None
        out.append(
            EnvSummary(
                name=name,
                revision=inv.revision,
                sync=sync_state(applied=inv.revision, head=head),
                health=v.state.value if health else "",
                health_counts=v.counts,
                verdict=v.message if health else "",
                missing=v.missing,
                objects=len(inv.entries),
                **protocol_fields(report),
            )
        )
    return out


def server_status(url: str, timeout: float = 10.0) -> list[EnvSummary]:
    """``GET <url>/api/status`` of a running daemon.

    Raises:
        ReconcilerError: when the server cannot be reached or answers something else than the status list.
    """
    import urllib.error
    import urllib.request

    from pydantic import TypeAdapter, ValidationError

    from reconciler.observe.status import EnvSummary

    target = url.rstrip("/") + "/api/status"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            body = resp.read()
    except (urllib.error.URLError, OSError) as exc:
        raise ReconcilerError(f"{target}: {getattr(exc, 'reason', exc)}") from None
    try:
        return TypeAdapter(list[EnvSummary]).validate_json(body)
    except ValidationError as exc:
        raise ReconcilerError(f"{target}: not a status list: {exc.errors()[0]['msg']}") from None


def short_revision(revision: str) -> str:
    """``main@sha1:<40 hex>`` → ``main@<7 hex>`` (other strings unchanged)."""
    branch, sep, sha = revision.partition("@sha1:")
    return f"{branch}@{sha[:7]}" if sep else revision


def print_status(console: Console, envs: list[EnvSummary]) -> None:
    """The status table."""
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, box=None)
    sharded = any(e.owner for e in envs)  # from a sharded daemon (--server): which replica holds each
    many = len({e.cluster for e in envs}) > 1  # the cluster column only when environments use several
    for col in (
        "environment",
        *(("cluster",) if many else ()),
        "revision",
        "sync",
        "health",
        "objects",
        "last pass",
    ):
        table.add_column(col)
    if sharded:
        table.add_column("replica")
    for e in envs:
        counts = ", ".join(f"{n} {s}" for s, n in e.health_counts.items())
        health = Text(e.health or "-", style=_HEALTH_STYLE.get(e.health, ""))
        if counts:
            health.append(f" ({counts})", style="dim")
        if e.missing:
            health.append(f" no controller: {', '.join(e.missing)}", style="magenta")
        last = ""
        if e.last_pass_at:
            last = f"{time.strftime('%H:%M:%S', time.localtime(e.last_pass_at))} ({e.trigger})"
        if e.error:
            last += f" {e.error[:80]}"
        sync = Text(e.sync.value, style=_SYNC_STYLE.get(e.sync, ""))
        if e.suspended:  # who and why: reconciler/runtime/control.py
            why = f": {e.suspended_reason}" if e.suspended_reason else ""
            sync.append(f" Suspended (by {e.suspended_by}{why})", style="bold red")
        table.add_row(
            Text(e.name, style="bold"),
            *((e.cluster or "-",) if many else ()),
            short_revision(e.revision) or "-",
            sync,
            health,
            str(e.objects),
            last,
            *([e.owner or "-"] if sharded else []),
        )
    if not envs:
        console.print("no environments (no inventory in the cluster yet)")
        return
    console.print(table)
    print_protocols(console, envs)


def print_protocols(console: Console, envs: list[EnvSummary]) -> None:
    """The ``Protocols`` section: one line per MCP server (state, tool count, protocol version, server)
    and per agent (card state, name, skill count, missing skills), and one per environment whose MCP
    servers and agents are not probed, saying why. Nothing when no environment has any."""
    from rich.table import Table
    from rich.text import Text

    from reconciler.observe.status import NOT_PROBED_STATE, age, protocol_detail

    rows = [(e, p) for e in envs for p in e.protocols]
    unprobed = [e for e in envs if not e.protocols_probed and e.protocol_targets]
    if not rows and not unprobed:
        return
    table = Table(show_edge=False, pad_edge=False, box=None)
    for col in ("environment", "object", "protocol", "state", "details", "checked"):
        table.add_column(col)
    for e, p in rows:
        table.add_row(
            Text(e.name, style="bold"),
            p.object,
            "MCP" if p.protocol == "mcp" else "A2A",
            Text(p.state, style=_HEALTH_STYLE.get(p.state, "")),
            protocol_detail(p),
            age(p.checked_at) if p.checked_at else "-",
        )
    for e in unprobed:
        n = e.protocol_targets
        table.add_row(
            Text(e.name, style="bold"),
            f"{n} MCP server{'' if n == 1 else 's'}/agent{'' if n == 1 else 's'}",
            "-",
            Text(NOT_PROBED_STATE, style=_HEALTH_STYLE[NOT_PROBED_STATE]),
            e.protocols_note or "not probed",
            "-",
        )
    console.print()
    console.print(Text("Protocols", style="bold"))
    console.print(table)


def status_cmd(
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="ENV", help="environment (the same as --env; default all)", show_default=False
        ),
    ] = None,
    repo: Annotated[
        str | None, typer.Option(help="environment repository: compare with its branch's latest commit")
    ] = None,
    branch: str = "main",
    env: Annotated[
        list[str] | None, typer.Option("--env", help="environment (repeatable; default all)")
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    server: Annotated[
        str | None,
        typer.Option(help="a running daemon's HTTP address (http://127.0.0.1:9090) to ask instead"),
    ] = None,
    health: Annotated[bool, typer.Option("--health/--no-health", help="read each object's health")] = True,
    output: Output = OutputFormat.text,
    color: Color = None,
) -> None:
    """Environments: the revision each last applied (from its inventory), sync state, health, and the
    protocol health of their MCP servers and agents."""
    console, err = _consoles(color)
    env = [*(names or []), *(env or [])] or None
    try:
        if server:
            envs = server_status(server)
            if env:
                envs = [e for e in envs if e.name in env]
        else:
            envs = _status_from_cluster(err, repo, branch, env, kubeconfig, context, health)
    except ReconcilerError as exc:
        raise _fail(err, str(exc)) from None
    if output is OutputFormat.text:
        print_status(console, envs)
    else:
        emit([e.model_dump(mode="json") for e in envs], output)


def _status_from_cluster(
    err: Console,
    repo: str | None,
    branch: str,
    env: list[str] | None,
    kubeconfig: Path | None,
    context: str | None,
    health: bool,
) -> list[EnvSummary]:
    """Status read from the clusters: with ``repo``, each environment's from its own target cluster
    (``context`` / ``cluster.secretRef`` of its file; a cluster that cannot be read gives its environments
    an error, not the others); without, every inventory of the one cluster ``kubeconfig``/``context``."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    from reconciler.cluster.client import KubeClient
    from reconciler.observe.status import NOT_PROBED

    head = ""
    repo_envs: list[str] = []
    defined: dict[str, Environment] = {}
    invalid: dict[str, str] = {}
    if repo:
        with spinner(err, f"fetching {repo} {branch}"):
            head, repo_envs, defined = repo_environments(repo, branch, invalid=invalid)
    client = KubeClient(kubeconfig, context)
    probes, note = probe_service(client) if health else (None, NOT_PROBED)

    def read(progress: Progress | None = None) -> list[EnvSummary]:
        return status_by_cluster(
            client,
            env,
            head=head,
            repo_envs=repo_envs,
            defined=defined,
            health=health,
            probes=probes,
            probe_note=note,
            per_cluster_errors=bool(repo),
            progress=progress,
            invalid=invalid,
        )

    try:
        if err.is_terminal:
            columns = (
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
            )
            with Progress(*columns, console=err, transient=True) as progress:
                return read(progress)
        return read()
    finally:
        client.close()


def status_by_cluster(
    client: Any,
    env: list[str] | None,
    *,
    head: str,
    repo_envs: list[str],
    defined: dict[str, Environment],
    health: bool,
    probes: ProbeService | None,
    probe_note: str,
    per_cluster_errors: bool,
    progress: Progress | None = None,
    invalid: dict[str, str] | None = None,
) -> list[EnvSummary]:
    """Each environment's status read from its own target cluster (``context`` / ``cluster.secretRef`` in
    ``defined``; the others and every inventory Git does not define from ``client``'s cluster), sorted by
    name, each with its cluster's label. What ``reconciler status`` and the MCP tool ``listEnvironments``
    show.

    Args:
        client: the default cluster's ``KubeClient``.
        env: the environments asked for (``None``: all).
        head: the branch's latest revision (``""``: unknown).
        repo_envs: the environments the branch defines; ``defined``: the valid ones by name.
        per_cluster_errors: a cluster that cannot be read gives its environments an error instead of
            failing the whole answer.
        invalid: environment → the error of its invalid file: shown with that error and no cluster (its
            target is unknown), not read from the default cluster as if it targeted that.

    Raises:
        ReconcilerError: a cluster cannot be read and ``per_cluster_errors`` is false.
    """
    from reconciler.cluster.targets import ClusterTargets, Target
    from reconciler.observe.status import EnvSummary

    targets = ClusterTargets(client)
    # environments by target cluster; the default cluster also shows inventories Git does not define
    invalid = invalid or {}
    groups: dict[Target, list[str]] = {targets.default_target: []}
    for name in repo_envs:
        if name not in invalid:
            groups.setdefault(targets.target_of(defined.get(name)), []).append(name)
    unreadable = [n for n in invalid if n in repo_envs and (not env or n in env)]
    out = [EnvSummary(name=n, error=invalid[n]) for n in unreadable]  # cluster "": its target is unknown
    default = targets.default_target
    elsewhere = {n for t, names in groups.items() if t != default for n in names} | set(invalid)
    try:
        for target, names in groups.items():
            if target == default:  # every inventory there, but not of environments that moved elsewhere
                selected = [n for n in env if n not in elsewhere] if env else None
            else:
                selected = [n for n in names if not env or n in env]
            if selected is not None and not selected:
                continue
            try:
                rows = cluster_status(
                    targets.client_of(target),
                    envs=selected,
                    head=head,
                    repo_envs=names,
                    with_health=health,
                    progress=progress,
                    protocols=health,
                    probes=probes,
                    probe_note=probe_note,
                )
            except ReconcilerError as exc:
                if not per_cluster_errors:  # the one cluster asked for: the command fails
                    raise
                shown = selected if selected is not None else names
                rows = [EnvSummary(name=n, error=f"cluster {target.label}: {exc}") for n in shown]
            out += [
                r.model_copy(update={"cluster": target.label})
                for r in rows
                if target != default or r.name not in elsewhere
            ]
    finally:
        targets.close()
    return sorted(out, key=lambda e: e.name)


def repo_head(repo: str, branch: str, cache_dir: Path | None = None) -> tuple[str, list[str]]:
    """The branch's latest revision (``main@sha1:…``) and the environments its ``envs/`` defines (an
    invalid file is still an environment: its state is shown).

    Raises:
        SourceError: the repository or branch cannot be fetched.
    """
    head, names, _ = repo_environments(repo, branch, cache_dir)
    return head, names


def repo_environments(
    repo: str, branch: str, cache_dir: Path | None = None, *, invalid: dict[str, str] | None = None
) -> tuple[str, list[str], dict[str, Environment]]:
    """:func:`repo_head` plus the valid environments by name (an invalid file is named but not in the
    mapping; its error goes into ``invalid`` when given).

    Raises:
        SourceError: the repository or branch cannot be fetched.
    """
    from reconciler.paths import default_cache_dir
    from reconciler.reconcile import load_environments
    from reconciler.source import GitSource

    source = GitSource(repo, branch, cache_dir or default_cache_dir())
    rev = source.fetch()
    invalid = {} if invalid is None else invalid
    defined = load_environments(source.snapshot(rev).root, invalid=invalid)
    return str(rev), sorted({*defined, *invalid}), defined


def probe_service(client: Any) -> tuple[ProbeService | None, str]:
    """The probe service ``$RECONCILER_PROBE_ADDRESSES`` / ``$RECONCILER_PROBE_DIRECT`` configure (its
    ``headersFrom`` values read through ``client``), or ``None`` and why nothing is probed."""
    from reconciler.errors import KubeError
    from reconciler.model import ObjectRef
    from reconciler.observe.status import NOT_PROBED
    from reconciler.probe.service import secret_reader, service_from_env

    try:
        probes = service_from_env()
    except (ReconcilerError, ValueError) as exc:
        return None, f"not probed: {exc}"
    if probes is None:
        return None, NOT_PROBED

    def get(kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            obj: dict[str, Any] | None = client.get(ObjectRef(kind=kind, namespace=namespace, name=name))
        except KubeError:
            return None
        return obj

    probes.secrets = secret_reader(get)
    return probes, ""


# -- diff -----------------------------------------------------------------------------------------------


class UnknownEnvironmentError(typer.BadParameter):
    """An environment name that ``envs/`` does not define (a usage error, exit 2)."""


def pending_change(
    repo: str,
    branch: str,
    env: str,
    kubeconfig: Path | None,
    context: str | None,
    cache_dir: Path | None = None,
    ref: str | None = None,
) -> PendingChange:
    """Dry-run ``env`` at the branch's latest commit (or at ``ref``: a branch, tag or commit id, see
    :meth:`reconciler.source.GitSource.resolve`) against the cluster.

    Raises:
        typer.BadParameter: when ``env`` is not defined in ``envs/`` (a usage error, exit 2).
        ReconcilerError: when Git or the cluster cannot be read.
    """
    from reconciler.cluster.client import KubeClient
    from reconciler.observe.status import pending_from_result
    from reconciler.paths import default_cache_dir
    from reconciler.reconcile import PassContext, load_environments, run_pass
    from reconciler.source import GitSource

    source = GitSource(repo, branch, cache_dir or default_cache_dir())
    rev = source.resolve(ref) if ref else source.fetch()
    invalid: dict[str, str] = {}  # the dry-run pass reports an invalid file's error itself
    defined = {*load_environments(source.snapshot(rev).root, invalid=invalid), *invalid}
    if env not in defined:
        raise UnknownEnvironmentError(
            f"environment {env!r} is not defined in envs/ at {rev} "
            f"(defined: {', '.join(sorted(defined)) or 'none'})",
            param_hint="ENV",
        )
    client = KubeClient(kubeconfig, context)
    ctx = PassContext(source=source, client=client)  # the environment's own target cluster
    try:
        result = run_pass(ctx, env, revision=rev, trigger="cli-diff", dry_run=True, with_health=False)
    finally:
        ctx.clusters.close()
        client.close()
    return pending_from_result(result, time.time())


def print_diff(console: Console, pending: PendingChange) -> None:
    """The pending change as a coloured unified diff, one block per object, and a summary line."""
    from rich.text import Text

    from reconciler.observe.status import diff_line_class

    for e in pending.entries:
        sign, style = {"created": ("+", "green"), "deleted": ("-", "red")}.get(e.action, ("~", "yellow"))
        blocked = " — blocked by a guard" if e.message.startswith("blocked:") else ""
        console.print(
            Text.assemble((f"{sign} {e.object}", f"bold {style}"), (f" ({e.action}{blocked})", "dim"))
        )
        if e.diff:
            for line in e.diff.splitlines():
                console.print(Text(line, style=_DIFF_STYLE[diff_line_class(line)]))
        elif e.action == "deleted":
            console.print(
                Text(f"--- live/{e.object}\n+++ /dev/null (left Git: would be pruned)", style="red")
            )
        console.print()
    counts: dict[str, int] = {}
    for e in pending.entries:
        counts[e.action] = counts.get(e.action, 0) + 1
    if counts:
        detail = ", ".join(f"{n} {a}" for a, n in counts.items())
        console.print(
            f"{pending.environment} at {pending.revision}: {len(pending.entries)} object(s) differ ({detail})"
        )
    else:
        console.print(f"{pending.environment} at {pending.revision}: no differences")
    if pending.blocked:
        console.print(Text(f"BLOCKED: applying it would stop here: {pending.blocked}", style="bold red"))


def diff_cmd(
    env: Annotated[str, typer.Argument(help="environment name (envs/<env>.yaml)")],
    repo: Annotated[str, typer.Option(help="environment repository (path or URL)")],
    branch: str = "main",
    ref: Annotated[
        str | None,
        typer.Option(
            "--ref", help="a branch, tag or commit id to compare instead of the branch's latest commit"
        ),
    ] = None,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    exit_code: Annotated[
        bool,
        typer.Option("--exit-code", help="exit 3 when there are differences (like git diff --exit-code)"),
    ] = False,
    output: Output = OutputFormat.text,
    color: Color = None,
) -> None:
    """Show what applying the branch's latest commit (or --ref) to ENV would change (server-side
    dry-run)."""
    console, err = _consoles(color)
    try:
        with spinner(err, f"rendering {env} and asking the API server for a dry-run"):
            pending = pending_change(repo, branch, env, kubeconfig, context, ref=ref)
    except ReconcilerError as exc:
        raise _fail(err, str(exc)) from None
    if not pending.ok:
        raise _fail(err, f"dry-run of {env} at {pending.revision or branch} failed: {pending.error}")
    if output is OutputFormat.text:
        print_diff(console, pending)
    else:
        emit(pending.model_dump(mode="json"), output)
    if exit_code and pending.differs:
        raise typer.Exit(EXIT_DIFFERENCES)


def register(app: typer.Typer) -> None:
    """Add ``status`` and ``diff`` to the ``reconciler`` command line."""
    app.command("status")(status_cmd)
    app.command("diff")(diff_cmd)
