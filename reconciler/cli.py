"""The ``reconciler`` command line (typer + rich).

Exit codes: 0 ok, 1 failed, 2 usage error, 3 differences found (``diff --exit-code``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

# the command modules import only typer here: what a command needs (rich, pydantic, the renderer, the
# cluster client, aiohttp, the probes, …) is imported inside it, so `--help` and `build` start fast
# (tests/unit/test_cli_imports.py keeps it so)
from reconciler.cli_console import escape, lazy_console
from reconciler.cli_control import register as register_control
from reconciler.cli_images import register as register_images
from reconciler.cli_mcp import register as register_mcp
from reconciler.cli_observe import register as register_observe
from reconciler.cli_observe import spinner
from reconciler.cli_probe import register as register_probe
from reconciler.errors import ReconcilerError
from reconciler.promote.cli import register as register_promote

if TYPE_CHECKING:
    import asyncio

    from reconciler.model import HealthStatus, PassResult

# help and usage errors in click's plain format: typer's rich format imports rich's Markdown, Traceback and
# Pygments, which cost more than everything else `reconciler --help` does
app = typer.Typer(
    help="GitOps reconciler for AI-agent platforms on Kubernetes.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
cluster_app = typer.Typer(
    help="The local control plane (etcd, kube-apiserver, …, kwok), NATS, Prometheus and, with --forge, "
    "a local Gitea forge.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
webhooks_app = typer.Typer(
    help="Registry and Git-host webhook receivers.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(cluster_app, name="cluster")
app.add_typer(webhooks_app, name="webhooks")
register_observe(app)
register_promote(app)
register_probe(app)
register_images(app)
register_control(app)
register_mcp(app)
console = lazy_console()
err = lazy_console(stderr=True)
REPO_ROOT = Path(__file__).resolve().parents[1]


def _local_kubeconfig_hint() -> str:
    from reconciler.devcluster.cluster import kubeconfig_hint

    return kubeconfig_hint()


@app.callback()
def _main_options() -> None:
    """GitOps reconciler for AI-agent platforms on Kubernetes."""
    from reconciler import errors

    # a missing kubeconfig's error names the state directories of the local clusters that run now
    errors.local_kubeconfig_hint = _local_kubeconfig_hint


class Output(StrEnum):
    """Output formats."""

    text = "text"
    json = "json"
    yaml = "yaml"


def _say(markup: str) -> None:
    """A line for the person running the daemon (rich markup): on standard error as it reads, or, when the
    logs are JSON lines on that same stream, as a record of the ``reconciler.cli`` logger, so that a log
    collector reads every line as JSON (level from an ``error:``/``warning:`` prefix, else info)."""
    from reconciler.observe.logging import logs_as_json

    if not logs_as_json():
        err.print(markup, highlight=False)
        return
    from rich.text import Text

    plain = Text.from_markup(markup).plain
    level = logging.INFO
    for prefix, at in (("error: ", logging.ERROR), ("warning: ", logging.WARNING), ("> ", logging.INFO)):
        if plain.startswith(prefix):
            plain, level = plain.removeprefix(prefix), at
    logging.getLogger("reconciler.cli").log(level, plain)


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
    return typer.Exit(code)


def _emit(data: Any, output: Output) -> None:
    if output is Output.json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        from ruamel.yaml import YAML

        y = YAML(typ="safe", pure=True)
        y.default_flow_style = False
        y.dump(json.loads(json.dumps(data, default=str)), sys.stdout)


# -- cluster ---------------------------------------------------------------------------------------

StateDir = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="cluster state directory (default $RECONCILER_STATE_DIR or ~/.local/state/reconciler/cluster)",
    ),
]


@cluster_app.command("up")
def cluster_up(
    state_dir: StateDir = None,
    nodes: Annotated[int, typer.Option(help="kwok fake nodes")] = 2,
    crds: Annotated[bool, typer.Option(help="install the agent-platform CRDs")] = True,
    forge: Annotated[
        bool | None,
        typer.Option(
            "--forge/--no-forge",
            help="also run a local Gitea forge on 127.0.0.1 (built once, about 3 minutes), for promotion by "
            "pull request without GitHub or GitLab; remembered: later `cluster up` runs keep it until "
            "--no-forge (which stops it and keeps its data)",
            show_default=False,
        ),
    ] = None,
    registry: Annotated[
        bool | None,
        typer.Option(
            "--registry/--no-registry",
            help="also run a local OCI registry (CNCF Distribution, built once, about a minute) on "
            "127.0.0.1, whose notifications go to the `registry` webhook receiver of `reconciler up`; "
            "remembered until --no-registry (which stops it and keeps its images)",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Start the local cluster, NATS and Prometheus (built once), the local forge with --forge and the
    local registry with --registry; an existing cluster comes back with its data.

    Only what is not running starts, on its recorded ports, with its data; nothing is ever deleted.
    """
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.cluster import forge_info, registry_info

    cluster = LocalCluster(state_dir, nodes=nodes, with_forge=forge, with_registry=registry)
    try:
        st = cluster.up(progress=lambda m: err.print(f"[dim]>[/] {m}", highlight=False))
        if crds:
            _install_crds(Path(st.kubeconfig))
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"kubeconfig: {st.kubeconfig}\nAPI server: {st.apiserver_url}\nNATS:       {st.nats_url}\n"
        f"Prometheus: {st.prometheus_url or '(not started)'}",
        highlight=False,
    )
    if st.forge:
        info = forge_info(cluster, st)
        console.print(
            f"Forge:      {info['url']} (Gitea; admin {info['admin_user']}, "
            f"API token in {info['token_file']})",
            highlight=False,
        )
    if st.registry:
        reg = registry_info(cluster, st)
        console.print(
            f"Registry:   {reg['url']} (push to {reg['host']}/<repo>:<tag>; notifications to "
            f"{reg['notify_url']}, bearer token in {reg['token_file']})",
            highlight=False,
        )


def _install_crds(kubeconfig: Path) -> None:
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.crds import install_crds

    client = KubeClient(kubeconfig)
    try:
        t0 = time.monotonic()
        with spinner(err, "installing the agent-platform CRDs …"):
            refs = install_crds(client)
        err.print(f"[dim]>[/] {len(refs)} CRDs established in {time.monotonic() - t0:.1f} s", highlight=False)
    finally:
        client.close()


@cluster_app.command("down")
def cluster_down(
    state_dir: StateDir = None,
    purge: Annotated[
        bool,
        typer.Option(
            "--purge",
            help="also erase the cluster's data (every object, inventory and JetStream message, the forge's "
            "repositories), certificates and ports; the next `cluster up` creates a new, empty cluster",
        ),
    ] = False,
) -> None:
    """Stop the local cluster, NATS, Prometheus and the forge; the data stays unless --purge is given.

    Nothing is left running. The next `cluster up` brings the same cluster back; with --purge it creates
    a new, empty one.
    """
    from reconciler.devcluster import LocalCluster

    cluster = LocalCluster(state_dir)
    stopped = cluster.down(progress=lambda m: err.print(f"[dim]>[/] {m}", highlight=False), purge=purge)
    console.print("stopped: " + (", ".join(stopped) if stopped else "nothing was running"))
    if not purge and cluster.load_state() is not None:
        console.print(
            f"data kept in {cluster.state_dir} (`reconciler cluster up` restarts it; "
            "`reconciler cluster down --purge` erases it)",
            highlight=False,
        )


@cluster_app.command("status")
def cluster_status(
    state_dir: StateDir = None, output: Annotated[Output, typer.Option("-o", "--output")] = Output.text
) -> None:
    """What runs where (exit 1 when nothing or not everything runs)."""
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.cluster import describe, forge_info, registry_info, status_lines

    cluster = LocalCluster(state_dir)
    st = cluster.load_state()
    running = cluster.running()
    if output is not Output.text:
        _emit({"state": describe(st) if st else None, "running": running}, output)
    elif st is None:
        console.print(f"no local cluster in {cluster.state_dir}")
    else:
        from rich.table import Table

        table = Table(title=f"local cluster ({cluster.state_dir})")
        for col in ("component", "state", "where"):
            table.add_column(col)
        for row in status_lines(cluster):
            table.add_row(*row)
        console.print(table)
        console.print(f"kubeconfig: {st.kubeconfig}")
        if st.forge:
            info = forge_info(cluster, st)
            console.print(
                f"forge:      {info['url']} (admin {info['admin_user']}, API token in {info['token_file']})",
                highlight=False,
            )
        if st.registry:
            reg = registry_info(cluster, st)
            console.print(
                f"registry:   {reg['url']} (notifies {reg['notify_url']}, token in {reg['token_file']})",
                highlight=False,
            )
    if not running or not all(running.values()):
        raise typer.Exit(1)


@cluster_app.command("kubeconfig")
def cluster_kubeconfig(
    state_dir: StateDir = None,
    merge_into: Annotated[
        Path | None,
        typer.Option(
            "--merge-into",
            help="add this cluster to that kubeconfig (created if missing) as context --context, and print "
            "its path: several local clusters in one file, each with a context of its own",
        ),
    ] = None,
    context: Annotated[
        str | None,
        typer.Option(help="the context name for --merge-into (default: the state directory's name)"),
    ] = None,
) -> None:
    """Print the path of the local cluster's admin kubeconfig (with --merge-into: add it to another)."""
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.cluster import state_dir_option
    from reconciler.devcluster.kubeconfig import add_context

    if context is not None and merge_into is None:
        raise _fail("--context needs --merge-into")

    cluster = LocalCluster(state_dir)
    st = cluster.load_state()
    if st is None or not st.kubeconfig or not Path(st.kubeconfig).exists():
        raise _fail(
            f"no local cluster in {cluster.state_dir} "
            f"(run: reconciler cluster up{state_dir_option(cluster.state_dir)})"
        )
    if not cluster.running().get("kube-apiserver"):
        err.print(
            f"[yellow]warning:[/] the local cluster in {cluster.state_dir} is not running "
            f"(run: reconciler cluster up{state_dir_option(cluster.state_dir)})",
            highlight=False,
        )
    if merge_into is None:
        console.print(st.kubeconfig, highlight=False)
        return
    name = context or cluster.state_dir.name
    try:
        add_context(merge_into, Path(st.kubeconfig), name)
    except (OSError, ValueError) as exc:
        raise _fail(f"--merge-into {merge_into}: {exc}") from None
    err.print(f"context {name!r} added to {merge_into}", highlight=False)
    console.print(str(merge_into), highlight=False, soft_wrap=True)


# -- rendering -------------------------------------------------------------------------------------


def _git_root(path: Path) -> Path:
    """The top of the Git repository holding ``path``; outside a repository there is no repository root
    to protect, so the load restrictor's root is the file system root (as ``kustomize build`` lets a
    kustomization reach ``../base`` directories)."""
    for p in [path, *path.parents]:
        if (p / ".git").exists():
            return p
    return Path(path.anchor or "/")


@app.command("build")
def build_cmd(
    target: Annotated[
        str, typer.Argument(help="a kustomization directory, or an environment name with --repo")
    ],
    repo: Annotated[str | None, typer.Option(help="environment repository (path or URL)")] = None,
    branch: str = "main",
    root: Annotated[Path | None, typer.Option(help="load-restrictor root for a directory build")] = None,
    allow_remote: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-remote",
            metavar="HOST_PATTERN",
            help="allow remote bases and files matching [SCHEME://]HOST[:PORT][/PATH] (repeatable; e.g. "
            "github.com/acme/*); with --repo, added to the environment's render.remoteBases.allow",
        ),
    ] = None,
    enable_helm: Annotated[
        bool,
        typer.Option(
            "--enable-helm",
            help="inflate helmCharts with helm, like `kustomize build --enable-helm` (with --repo: even when "
            "the environment's render.helm.enabled is false)",
        ),
    ] = False,
    helm_command: Annotated[
        str | None,
        typer.Option(
            "--helm-command",
            help="the helm binary (default: $RECONCILER_HELM, else the pinned build of tools/helm/build.sh)",
        ),
    ] = None,
    decrypt: Annotated[
        bool,
        typer.Option(
            "--decrypt",
            help="decrypt SOPS-encrypted files (checks the key and each file's MAC) and print the objects as "
            "applied, Secret values masked; without it they print encrypted, as kustomize prints them",
        ),
    ] = False,
    show_secrets: Annotated[
        bool,
        typer.Option("--show-secrets", help="with --decrypt (implied): print decrypted Secret values"),
    ] = False,
    sops_age_key_file: Annotated[
        Path | None,
        typer.Option(
            "--sops-age-key-file",
            help="age key file for --decrypt (default $RECONCILER_SOPS_AGE_KEY_FILE, else "
            "$SOPS_AGE_KEY_FILE)",
        ),
    ] = None,
) -> None:
    """Render a kustomization directory (like `kustomize build DIR`) or an environment's overlay at the
    branch's latest commit. SOPS-encrypted files print encrypted unless ``--decrypt`` (values masked) or
    ``--show-secrets``."""
    from reconciler.model.remote import HostPattern
    from reconciler.paths import default_cache_dir
    from reconciler.render import RemoteOptions, RenderError, SopsFiles, build, dump_yaml
    from reconciler.render import sops as _sops

    allow = list(allow_remote or [])
    for pattern in allow:
        try:
            HostPattern.parse(pattern)
        except ValueError as exc:
            raise _fail(f"--allow-remote: {exc}", 2) from None
    files = SopsFiles()
    try:
        if repo is None:
            d = Path(target)
            if not d.is_dir():
                raise _fail(f"{target}: not a directory (pass --repo to render an environment)", 2)
            remote = RemoteOptions(
                allow=allow, setting="--allow-remote (reconciler build)", cache_dir=default_cache_dir()
            )
            helm = None
            if enable_helm:
                from reconciler.render.helm import HelmOptions

                helm = HelmOptions(cache_dir=default_cache_dir())
                if helm_command:
                    helm.command = helm_command
            objs = build(
                d, root=(root or _git_root(d.resolve())).resolve(), remote=remote, helm=helm, sops=files
            )
        else:
            if helm_command:
                os.environ["RECONCILER_HELM"] = helm_command
            objs = _render_env(repo, branch, target, allow, enable_helm, files)
        if decrypt or show_secrets:
            key_file = _sops.local_key_file(sops_age_key_file)
            keys = _sops.load_key_file(key_file) if key_file is not None else _sops.AgeKeys()
            _sops.decrypt_objects(objs, files, _sops.Decryptor(keys))
            if not show_secrets:
                objs = [_masked_secret(o) for o in objs]
    except RenderError as exc:
        raise _fail(str(exc)) from None
    except _sops.KeyError_ as exc:
        raise _fail(f"--sops-age-key-file: {exc}", 2) from None
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    sys.stdout.write(dump_yaml(objs))


def _masked_secret(obj: dict[str, Any]) -> dict[str, Any]:
    """A Secret with every ``data``/``stringData`` value replaced by ``[REDACTED]`` (others as they are)."""
    if obj.get("kind") != "Secret" or str(obj.get("apiVersion")) != "v1":
        return obj
    out = dict(obj)
    for name in ("data", "stringData"):
        if isinstance(obj.get(name), dict):
            out[name] = {k: "[REDACTED]" for k in obj[name]}
    return out


def _render_env(
    repo: str, branch: str, env_name: str, allow: list[str], enable_helm: bool = False, sops: Any = None
) -> list[dict[str, Any]]:
    from reconciler.paths import default_cache_dir
    from reconciler.reconcile import load_environment, remote_options, render_environment
    from reconciler.source import GitSource

    source = GitSource(repo, branch, default_cache_dir())
    snapshot = source.snapshot(source.fetch())
    path = snapshot.root / "envs" / f"{env_name}.yaml"
    if not path.exists():
        raise ReconcilerError(f"envs/{env_name}.yaml does not exist at {snapshot.revision}")
    try:
        env = load_environment(path, shown=f"envs/{env_name}.yaml")
        remote = remote_options(env, default_cache_dir(), extra_allow=allow)
        if allow:
            remote.setting += " (or --allow-remote)"
        return render_environment(env, snapshot, remote=remote, enable_helm=enable_helm, sops=sops)
    except Exception as exc:
        exc.args = tuple(str(a).replace(str(snapshot.root) + "/", "") for a in exc.args)
        raise


@app.command("schema")
def schema_cmd() -> None:
    """Print the JSON schema of envs/*.yaml."""
    from reconciler.model.environment import environment_json_schema

    sys.stdout.write(json.dumps(environment_json_schema(), indent=2) + "\n")


# -- passes ----------------------------------------------------------------------------------------

#: The colour of each health state, keyed by ``HealthState`` value (a member, being a str, finds its own).
_STYLE = {
    "Healthy": "green",
    "Progressing": "yellow",
    "Degraded": "red",
    "Unverified": "magenta",
    "Failed": "red",
}


class ResultPrinter:
    """The daemon's pass printer: the whole table when a pass changed something, failed, or its health
    verdict differs from the one printed before for that environment; one line otherwise (a periodic pass
    over an unchanged revision is not news)."""

    def __init__(self) -> None:
        self._shown: dict[str, tuple[str, str, str]] = {}

    def __call__(self, result: PassResult) -> None:
        from reconciler.model import verdict

        v = verdict(result.health)
        key = (result.revision, v.state.value, v.message)
        quiet = (
            result.ok
            and not result.error
            and set(result.changes.summary()) <= {"unchanged"}
            and self._shown.get(result.environment) == key
        )
        self._shown[result.environment] = key
        if not quiet:
            print_result(result)
            return
        from reconciler.reconcile import summarize

        console.print(
            f"[dim]{result.environment} {result.revision or '-'} ok ({result.trigger}, "
            f"{result.duration:.2f} s): {summarize(result.changes)}, health {v.state.value}[/]",
            highlight=False,
        )


#: How a health message given by a protocol probe (MCP handshake and tools/list, or an A2A card) begins.
_PROBED = "no controller status; "


def print_result(result: PassResult, *, show_diff: bool = False) -> None:
    """Print one pass: the changeset and each object's health."""
    from rich.table import Table

    from reconciler.model import Action, verdict
    from reconciler.reconcile import summarize

    status = "[green]ok[/]" if result.ok else "[red]BLOCKED[/]" if result.blocked else "[red]FAILED[/]"
    done = summarize(result.changes) if result.ok or result.changes.entries else "nothing applied"
    console.print(
        f"[bold]{result.environment}[/] {result.revision or '-'} {status} "
        f"({result.trigger}, {result.duration:.2f} s): {done}",
        highlight=False,
    )
    if result.cluster:
        console.print(f"  cluster {escape(result.cluster)}", highlight=False)
    if result.error:
        console.print(f"  [red]{escape(result.error)}[/]", highlight=False)
    for base in result.remote_bases:
        console.print(f"  remote {escape(base.pinned())}", highlight=False)
    for warning in result.warnings:  # policy warns, tool contract warnings
        console.print(f"  [yellow]warning:[/] {escape(warning)}", highlight=False)
    if result.health:
        v = verdict(result.health)
        console.print(f"  health [{_STYLE[v.state]}]{v.state.value}[/]: {escape(v.message)}", highlight=False)
    if result.changes.entries:
        table = Table(show_edge=False, pad_edge=False, box=None)
        for col in ("object", "action", "health", ""):
            table.add_column(col)
        for c in result.changes.entries:
            h = result.health.get(str(c.ref))
            health = f"[{_STYLE[h.state]}]{h.state.value}[/]" if h else ""
            # a healthy object's message is shown only when a protocol probe gave the verdict
            shown = h is not None and (not h.healthy or _PROBED in h.message)
            detail = (h.message if h is not None and shown else "") or c.message
            table.add_row(escape(str(c.ref)), c.action.value, health, escape(detail[:120]))
        console.print(table)
    if show_diff:
        for c in result.changes.entries:
            if c.diff and c.action in (Action.CREATED, Action.CONFIGURED):
                console.print(c.diff, highlight=False, markup=False)


def _context(
    repo: str,
    branch: str,
    kubeconfig: Path | None,
    context: str | None,
    prometheus: str | None = None,
    sops_key_file: Path | None = None,
) -> Any:
    """A pass context for one-shot commands; rollout analysis asks ``prometheus`` (default
    ``$RECONCILER_PROMETHEUS_URL``); SOPS files are decrypted with ``sops_key_file`` (default
    ``$RECONCILER_SOPS_AGE_KEY_FILE`` or ``$SOPS_AGE_KEY_FILE``) and the environments' key Secrets."""
    from reconciler.cluster.client import KubeClient
    from reconciler.paths import default_cache_dir
    from reconciler.reconcile import PassContext
    from reconciler.render.sops import local_key_file
    from reconciler.source import GitSource

    return PassContext(
        source=GitSource(repo, branch, default_cache_dir()),
        client=KubeClient(kubeconfig, context),
        prometheus_url=prometheus or os.environ.get("RECONCILER_PROMETHEUS_URL") or None,
        sops_key_file=local_key_file(sops_key_file),
    )


@app.command("reconcile")
def reconcile_cmd(
    env: Annotated[str, typer.Argument(help="environment name (envs/<env>.yaml)")],
    repo: Annotated[str, typer.Option(help="environment repository (path or URL)")],
    branch: str = "main",
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig (default: $KUBECONFIG)")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="plan only, write nothing")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="show a diff for each changed object")] = False,
    output: Annotated[Output, typer.Option("-o", "--output")] = Output.text,
) -> None:
    """Run one pass for ENV and print the changeset (exit 1 when the pass failed)."""
    from reconciler.reconcile import run_pass

    try:
        ctx = _context(repo, branch, kubeconfig, context)
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    result = run_pass(ctx, env, trigger="cli", dry_run=dry_run)
    if output is Output.text:
        print_result(result, show_diff=diff or dry_run)
    else:
        _emit(result.model_dump(mode="json"), output)
    raise typer.Exit(0 if result.ok else 1)


@app.command("run")
def run_cmd(
    repo: Annotated[str, typer.Option(help="environment repository (path or URL)")],
    branch: str = "main",
    env: Annotated[
        list[str] | None, typer.Option("--env", help="environment (repeatable; default all)")
    ] = None,
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig (default: $KUBECONFIG)")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    nats: Annotated[str | None, typer.Option(help="NATS URL (nats://127.0.0.1:4222)")] = None,
    prometheus: Annotated[
        str | None,
        typer.Option(
            "--prometheus",
            help="Prometheus URL for rollout analysis (default $RECONCILER_PROMETHEUS_URL; an environment's "
            "rollouts[].analysis.prometheus wins)",
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="one pass per environment, then exit")] = False,
    interval: Annotated[float | None, typer.Option(help="poll interval override, seconds")] = None,
    leader_elect: Annotated[
        bool, typer.Option("--leader-elect", help="reconcile only while holding a coordination.k8s.io Lease")
    ] = False,
    lease_namespace: Annotated[
        str, typer.Option(help="namespace of the leader-election Lease")
    ] = "reconciler-system",
    lease_name: Annotated[str, typer.Option(help="name of the leader-election Lease")] = "reconciler",
    lease_duration: Annotated[float, typer.Option(help="lease duration, seconds")] = 10.0,
    shard: Annotated[
        bool | None,
        typer.Option(
            "--shard/--no-shard",
            help="share the environments with the other replicas through per-environment leases in NATS "
            "JetStream KV (needs --nats; default $RECONCILER_SHARD, off); see 'Sharding' in README.md",
        ),
    ] = None,
    replica_id: Annotated[
        str | None,
        typer.Option(
            "--replica-id",
            help="this replica's unique name with --shard (default $RECONCILER_REPLICA_ID, "
            "else host name and pid)",
        ),
    ] = None,
    http: Annotated[
        str,
        typer.Option(
            "--http", help="HOST:PORT for /metrics, /healthz, /readyz and the status page; '' = off"
        ),
    ] = "127.0.0.1:9090",
    actions_token_file: Annotated[
        Path | None,
        typer.Option(
            "--actions-token-file",
            help="file holding the bearer token that enables the status page's action buttons and "
            "POST /api/env/…/rollback|suspend|resume|sync|promote (default $RECONCILER_ACTIONS_TOKEN_FILE; "
            "off without a token)",
        ),
    ] = None,
    actions_trust_proxy_header: Annotated[
        str | None,
        typer.Option(
            "--actions-trust-proxy-header",
            help="take the acting user from this header of an authenticating proxy, e.g. X-Forwarded-Email "
            "(default $RECONCILER_ACTIONS_TRUST_PROXY_HEADER); only when every request comes through it",
        ),
    ] = None,
    mcp: Annotated[
        str,
        typer.Option(
            "--mcp",
            help="HOST:PORT: also serve reconciler's MCP server there (as `reconciler mcp serve`); '' = off",
        ),
    ] = "",
    mcp_tokens_file: Annotated[
        Path | None,
        typer.Option(
            "--mcp-tokens-file", help="the MCP server's bearer tokens (default $RECONCILER_MCP_TOKENS_FILE)"
        ),
    ] = None,
    sops_age_key_file: Annotated[
        Path | None,
        typer.Option(
            "--sops-age-key-file",
            help="local age key file for SOPS-encrypted manifests (default $RECONCILER_SOPS_AGE_KEY_FILE, "
            "else $SOPS_AGE_KEY_FILE); used with the keys of each environment's decryption.secretRef",
        ),
    ] = None,
    log_format: Annotated[str, typer.Option("--log-format", help="auto|json|text")] = "auto",
    log_level: Annotated[str, typer.Option("--log-level", help="DEBUG|INFO|WARNING|ERROR")] = "INFO",
) -> None:
    """Run the daemon: reconcile the environments continuously (or once)."""
    from pydantic import ValidationError

    from reconciler.observe import configure_logging
    from reconciler.settings import DaemonSettings

    if log_format not in ("auto", "json", "text"):
        raise _fail(f"--log-format {log_format!r}: expected auto, json or text", 2)
    configure_logging(json=None if log_format == "auto" else log_format == "json", level=log_level)

    extra: dict[str, Any] = {}  # given only when set: else the RECONCILER_* variables apply
    if actions_token_file is not None:
        extra["actions_token_file"] = actions_token_file
    if actions_trust_proxy_header is not None:
        extra["actions_trust_proxy_header"] = actions_trust_proxy_header
    if sops_age_key_file is not None:
        extra["sops_age_key_file"] = sops_age_key_file
    if shard is not None:
        extra["shard"] = shard
    if replica_id is not None:
        extra["replica_id"] = replica_id
    try:
        settings = DaemonSettings(
            repo=repo,
            branch=branch,
            envs=env or [],
            kubeconfig=kubeconfig,
            context=context,
            nats_url=nats,
            poll_interval=interval,
            **extra,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise _fail(f"{where}: {first['msg']}", 2) from None
    if prometheus:  # else $RECONCILER_PROMETHEUS_URL, read by the settings
        settings.prometheus_url = prometheus
    if once:
        raise typer.Exit(_once(settings))
    if settings.shard and not settings.nats_url:
        raise _fail("--shard needs --nats: the environments' leases are kept in NATS JetStream", 2)
    if settings.shard and leader_elect:
        raise _fail("--shard and --leader-elect exclude each other: sharded replicas all reconcile", 2)
    lease = (lease_namespace, lease_name, lease_duration) if leader_elect else None
    if http:  # an unusable actions token is a usage error, found before anything starts
        from reconciler.runtime.actions import load_actions_config

        try:
            load_actions_config(settings)
        except ReconcilerError as exc:
            raise _fail(str(exc), 2) from None
    raise typer.Exit(_daemon(settings, lease=lease, http=http, mcp=(mcp, mcp_tokens_file)))


def _once(settings: Any, *, wait: bool = True) -> int:
    from reconciler.model import Action
    from reconciler.reconcile import load_environments, run_pass, wait_for_health

    try:
        ctx = _context(
            settings.repo,
            settings.branch,
            settings.kubeconfig,
            settings.context,
            settings.prometheus_url,
            settings.sops_age_key_file,
        )
        rev = ctx.source.fetch()
        invalid: dict[str, str] = {}  # one invalid file fails its environment, not the others
        envs = load_environments(ctx.source.snapshot(rev).root, invalid=invalid)
    except ReconcilerError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 1
    names = settings.envs or sorted({*envs, *invalid})
    ok = True
    for name in names:
        if name in invalid:
            err.print(f"[red]error:[/] {escape(invalid[name])}", highlight=False)
            ok = False
            continue
        if name not in envs:
            err.print(f"[red]error:[/] environment {name!r} is not in envs/", highlight=False)
            ok = False
            continue
        with spinner(err, f"reconciling {name} …"):
            result = run_pass(ctx, name, revision=rev, trigger="once")
        if result.ok and wait:
            refs = [c.ref for c in result.changes.entries if c.action is not Action.DELETED]
            with spinner(err, f"waiting for {name}'s health (up to {envs[name].health.timeout:.0f} s) …"):
                result.health = wait_for_health(
                    ctx.client_for(envs[name]),
                    refs,
                    timeout=envs[name].health.timeout,
                    no_controller_after=envs[name].health.no_controller_after,
                    probe=ctx.mcp_probe,
                )
        print_result(result)
        ok = ok and result.ok
    return 0 if ok else 1


#: Seconds the daemon takes at most to stop after SIGINT/SIGTERM, whatever is unreachable; work still
#: running then (a pass waiting on the API server, a publish to NATS) is abandoned, which is as safe as a
#: crash (see "Crashes and faults" in README.md).
SHUTDOWN_SECONDS = 4.0
#: Seconds of :data:`SHUTDOWN_SECONDS` kept for writing the Kubernetes events still queued.
EVENTS_FLUSH_SECONDS = 1.0


def _interrupted(daemon: Any, settings: Any, waiting_for_lease: str) -> list[str]:
    """What the daemon is in the middle of, in words (for the message printed when it is stopped)."""
    out: list[str] = []
    if waiting_for_lease:
        out.append(f"waiting for leadership of Lease {waiting_for_lease}")
    if not daemon.source_loaded and daemon.source_error:
        out.append(
            f"loading the environments from {settings.repo} "
            f"({daemon.source_attempts} failed attempts, last: {daemon.source_error})"
        )
    for name, state in daemon.envs.items():
        if state.running:
            out.append(f"the pass of {name}")
        if state.settling:
            out.append(f"the health gate of {name}")
    if daemon.bus is not None and not daemon.bus.connected:
        why = f": {daemon.bus_error}" if daemon.bus_error else ""
        out.append(f"connecting to NATS {settings.nats_url}{why}")
    return out


def _blocked_threads() -> list[threading.Thread]:
    """Live non-daemon threads other than this one: the interpreter would wait for them at exit."""
    me = threading.current_thread()
    return [t for t in threading.enumerate() if t is not me and t.is_alive() and not t.daemon]


def _daemon(
    settings: Any,
    lease: tuple[str, str, float] | None = None,
    http: str = "",
    webhooks: Any = None,
    on_stop: Any = None,
    before_exit: Any = None,
    mcp: tuple[str, Path | None] = ("", None),
) -> int:
    """Run the daemon until SIGINT/SIGTERM (or a lost lease); returns the exit code.

    After the signal everything is stopped within :data:`SHUTDOWN_SECONDS`, saying what was
    interrupted; work that does not stop in time is abandoned and the process exits at once. What the
    caller started alongside (``up``'s stand-ins) is told to stop by ``on_stop`` when the signal
    arrives (it must not block), and ``before_exit`` runs before such an abrupt exit. The steps are
    :class:`_DaemonRun`'s methods.
    """
    import asyncio
    import logging

    run = _DaemonRun(settings, lease=lease, http=http, webhooks=webhooks, on_stop=on_stop, mcp=mcp)
    code = asyncio.run(run.main())
    if _blocked_threads():  # blocked on an unreachable server: do not wait for them
        if before_exit is not None:
            with contextlib.suppress(Exception):
                before_exit()
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


def _print_drift(event: dict[str, Any]) -> None:
    """One line per drift event of the daemon (detected or corrected, and the paths)."""
    from reconciler.observe.events import DriftEvent

    verb = "corrected" if event.get("corrected") else "detected"
    console.print(
        f"[yellow]drift {verb}[/] {event['environment']} {event['object']}: "
        + escape(", ".join(DriftEvent.model_validate(event).described_paths())),
        highlight=False,
    )


class _DaemonRun:
    """One run of ``reconciler run`` (and of ``reconciler up``'s daemon) in its event loop: the daemon,
    the pages and MCP server it serves, the lease or shard membership it holds, and an orderly stop.
    Arguments as :func:`_daemon`."""

    def __init__(
        self,
        settings: Any,
        *,
        lease: tuple[str, str, float] | None,
        http: str,
        webhooks: Any,
        on_stop: Any,
        mcp: tuple[str, Path | None],
    ) -> None:
        self.settings = settings
        self.lease = lease
        self.http = http
        self.webhooks = webhooks
        self.on_stop = on_stop
        self.mcp = mcp
        self.signalled: list[str] = []
        self.stuck: list[str] = []
        self.waiting_for_lease = ""
        self.lost = False
        self.code = 0
        self.runner: Any = None
        self.mcp_server: Any = None
        self.elector: Any = None
        self.renew_task: Any = None
        self.hooks_task: Any = None
        self.shard_task: Any = None

    async def main(self) -> int:
        """Start everything, run until a signal (or a lost lease), stop everything; the exit code."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from reconciler.runtime import Daemon

        loop = asyncio.get_running_loop()
        # passes and API calls run in this pool; at a stop, work still blocked in it is abandoned
        self.pool = ThreadPoolExecutor(thread_name_prefix="reconciler-worker")
        loop.set_default_executor(self.pool)
        self.stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        self.daemon = Daemon(self.settings, on_result=ResultPrinter(), on_drift=_print_drift)
        self.daemon.is_leader = None if self.lease is not None else True
        self.shards = (
            _shard_member(self.daemon, self.settings) if getattr(self.settings, "shard", False) else None
        )
        self.observer = self._observer()
        if not await self._serve():
            return 2
        try:
            if self.lease is not None:
                await self._elect()
            if self.lease is None or self.elector is not None:
                await self._run_until_stopped()
        finally:
            await self._shutdown()
        if self.lost:
            _say("[red]error:[/] lost leadership; exiting")
            return 1
        return self.code

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self.signalled:
            self.signalled.append(sig.name)
            if self.on_stop is not None:
                with contextlib.suppress(Exception):
                    self.on_stop()
        self.stop.set()

    def _observer(self) -> Any:
        """Kubernetes Events and metrics of the daemon's passes; an environment's Events go to its own
        target cluster."""
        from reconciler.cluster.client import KubeClient
        from reconciler.observe import EventRecorder, Observer

        daemon = self.daemon
        events_client = KubeClient(self.settings.kubeconfig, self.settings.context)

        def event_client(label: str) -> Any:
            """Events of an environment go to its own target cluster (the daemon's client of it)."""
            if label == daemon.targets.default_target.label:
                return events_client
            return daemon.targets.opened().get(label)

        observer = Observer(recorder=EventRecorder(events_client, close_client=True, clients=event_client))
        observer.attach(daemon, daemon.source)
        return observer

    async def _serve(self) -> bool:
        """The status page (``--http``) and the MCP server (``--mcp``); ``False`` after printing why one
        cannot start (what started is stopped again)."""
        from reconciler.runtime.http import start_http

        http = self.http
        if http:
            host, _, port = http.rpartition(":")
            try:
                self.runner = await start_http(self.daemon, host or "127.0.0.1", int(port))
            except (OSError, ValueError, ReconcilerError) as exc:
                _say(f"[red]error:[/] --http {http}: {exc}")
                self.observer.close(timeout=1.0)
                return False
            _say(f"[dim]>[/] status page and /metrics on http://{host or '127.0.0.1'}:{port}/")
        self.mcp_server = _start_mcp(self.settings, *self.mcp) if self.mcp[0] else None
        if self.mcp[0] and self.mcp_server is None:
            if self.runner is not None:
                await self.runner.cleanup()
            self.observer.close(timeout=1.0)
            return False
        return True

    async def _elect(self) -> None:
        """Wait for the Kubernetes Lease (``--leader-elect``), then keep renewing it; losing it stops."""
        import asyncio

        assert self.lease is not None
        self.waiting_for_lease = f"{self.lease[0]}/{self.lease[1]}"
        self.elector = await _elect(self.settings, self.lease, self.stop, self.daemon)
        if self.elector is None:
            return
        self.waiting_for_lease = ""

        async def on_lost() -> None:
            self.lost = True
            self.daemon.is_leader = False
            self.stop.set()

        self.renew_task = asyncio.create_task(self.elector.keep_renewing(on_lost))

    async def _run_until_stopped(self) -> None:
        """Start the daemon (its shard heartbeats first), the webhook receivers, and wait for the stop."""
        import asyncio

        daemon = self.daemon
        if self.shards is not None:  # heartbeats from now: the others wait while this one loads
            self.shard_task = asyncio.create_task(self.shards.run(), name="shard-leases")
        # start() waits (retrying) while the repository cannot be read; a signal ends that wait
        starting = asyncio.create_task(daemon.start(), name="daemon-start")
        stopping = asyncio.create_task(self.stop.wait(), name="stop-signal")
        await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if not starting.done():
            starting.cancel()
        try:
            await starting
        except asyncio.CancelledError:  # stopped while start() waited for the repository
            pass
        except ReconcilerError as exc:
            _say(f"[red]error:[/] {escape(str(exc))}")
            self.code = 1
            self.stop.set()
        started = not starting.cancelled() and self.code == 0
        if started:
            self._announce()
        await self.stop.wait()

    def _announce(self) -> None:
        """Say what runs, and start the webhook receivers (``reconciler up``)."""
        import asyncio

        if self.shards is not None:
            _say(f"[dim]>[/] replica {self.shards.replica}: sharing the environments through NATS leases")
        webhooks = self.webhooks
        if webhooks is not None:
            from webhooks.server import serve_async

            self.hooks_task = asyncio.create_task(serve_async(webhooks, self.stop))
            _say(f"[dim]>[/] webhook receivers on http://{webhooks.host}:{webhooks.port}/hook/<receiver>")
        _say(
            f"[dim]>[/] reconciling {', '.join(self.daemon.envs)} from {self.settings.repo} "
            f"({self.settings.branch}); Ctrl-C to stop"
        )

    async def _shutdown(self) -> None:
        """Stop everything within :data:`SHUTDOWN_SECONDS` (the rest of the budget for the Kubernetes
        events still queued), saying what was interrupted and what had to be abandoned."""
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        t0 = time.monotonic()
        if self.signalled:
            busy = _interrupted(self.daemon, self.settings, self.waiting_for_lease)
            _say(
                f"[dim]>[/] {self.signalled[0]}: stopping"
                + (f"; interrupting {'; '.join(busy)}" if busy else "")
            )
        try:
            await asyncio.wait_for(self._stop_all(), SHUTDOWN_SECONDS - EVENTS_FLUSH_SECONDS)
        except TimeoutError:
            self.stuck.extend(_interrupted(self.daemon, self.settings, "") or ["closing connections"])
        except Exception as exc:
            log_exc = " ".join(str(exc).split()) or type(exc).__name__
            _say(f"[yellow]warning:[/] while stopping: {escape(log_exc)}")
        left = SHUTDOWN_SECONDS - (time.monotonic() - t0)
        self.observer.close(timeout=max(0.0, min(EVENTS_FLUSH_SECONDS, left)))
        # asyncio.run waits for its default executor's threads: give it an idle one instead
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=1))
        self.pool.shutdown(wait=False, cancel_futures=True)
        if self.signalled:
            stuck = self.stuck
            what = f"; abandoned after {time.monotonic() - t0:.1f} s: {'; '.join(stuck)}" if stuck else ""
            _say(f"[dim]>[/] stopped in {time.monotonic() - t0:.1f} s{what}")

    async def _stop_all(self) -> None:
        """The webhook receivers, the daemon, the shard leases (handed over at once), the Lease, the
        pages and the MCP server, in that order."""
        import asyncio

        if self.hooks_task is not None:
            with contextlib.suppress(Exception):
                await self.hooks_task
        await self.daemon.stop()
        if self.shards is not None:  # after the passes: hand the leases over at once
            await self.shards.stop(release=True)
            if self.shard_task is not None:
                with contextlib.suppress(Exception):
                    await self.shard_task
        if self.renew_task is not None:
            self.renew_task.cancel()
        if self.elector is not None and not self.lost:
            with contextlib.suppress(Exception):
                await self.elector.release()
        if self.runner is not None:
            await self.runner.cleanup()
        if self.mcp_server is not None:
            await asyncio.to_thread(self.mcp_server.stop)


def _start_mcp(settings: Any, address: str, tokens_file: Path | None) -> Any:
    """The daemon's MCP server (``--mcp``), or ``None`` after printing why it cannot start."""
    from reconciler.mcpserver.server import start_for_daemon

    try:
        running = start_for_daemon(settings, address, tokens_file)
    except (ValueError, ReconcilerError) as exc:
        _say(f"[red]error:[/] --mcp {address}: {escape(str(exc))}")
        return None
    _say(f"[dim]>[/] MCP server on {running.url}")
    return running


def _shard_member(daemon: Any, settings: Any) -> Any:
    """The daemon's shard membership (``--shard``): its leases, its own trigger consumer (so requests and
    pushes reach whichever replica holds the environment), and a trigger when it takes an environment."""
    import socket

    from reconciler.bus import subject_token
    from reconciler.runtime.shards import ShardMember

    replica = settings.replica_id or f"{socket.gethostname()}-{os.getpid()}"

    def busy(name: str) -> bool:
        state = daemon.envs.get(name)
        return state is not None and (state.running or state.settling)

    member = ShardMember(
        settings.nats_url,
        daemon.installation,
        replica,
        lambda: list(daemon.envs),
        on_acquired=lambda name: daemon.trigger(name, "shard-acquired"),
        busy=busy,
        ttl=settings.shard_lease_ttl,
        period=settings.shard_lease_ttl / 8,
        replicas=settings.nats_replicas,
    )
    daemon.shards = member
    # every replica sees every trigger and acts on the environments it holds; a replica that is gone
    # leaves its consumer behind for 5 minutes only
    daemon.trigger_durable = f"{daemon.trigger_durable}-{subject_token(replica)}"
    daemon.trigger_inactive_threshold = 300.0
    return member


async def _elect(settings: Any, lease: tuple[str, str, float], stop: asyncio.Event, daemon: Any) -> Any:
    """Wait for leadership (or for ``stop``); returns the elector, or None when stopped first."""
    import asyncio
    import socket

    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.lease import LeaseLock
    from reconciler.model import ObjectRef
    from reconciler.runtime.leader import LeaderElector

    namespace, name, duration = lease
    client = KubeClient(settings.kubeconfig, settings.context)
    identity = f"{socket.gethostname()}-{os.getpid()}"
    elector = LeaderElector(LeaseLock(client, namespace, name, identity, duration=duration))
    _say(f"[dim]>[/] {identity}: waiting for leadership of Lease {namespace}/{name}")
    daemon.is_leader = False

    async def ensure_namespace_then_wait() -> None:
        with contextlib.suppress(ReconcilerError):
            await asyncio.to_thread(
                client.apply,
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                ObjectRef(kind="Namespace", name=namespace),
                field_manager="reconciler-leader",
            )
        await elector.wait_until_leader()

    waiting = asyncio.create_task(ensure_namespace_then_wait())
    stopping = asyncio.create_task(stop.wait())
    done, _ = await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if waiting not in done:
        waiting.cancel()
        return None
    stopping.cancel()
    daemon.is_leader = True
    _say(f"[dim]>[/] {identity}: leader")
    return elector


def _demo_needs_its_own_cluster(kubeconfig: Path, remote: str, state_dir: Path | None) -> None:
    """Fail before the demo writes anything when the cluster already holds the example environments
    for another repository (an earlier ``reconciler up``): the demo's passes would be Blocked by the
    one-owner-per-object guard, and it erases nobody's inventories to get round that.

    Raises:
        ReconcilerError: naming the environments and what to run instead.
    """
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.ownership import other_inventories

    client = KubeClient(kubeconfig)
    try:
        taken = sorted(
            {inv.environment for _, inv in other_inventories(client, "", remote) if inv.entries}
            & {"dev", "staging", "prod"}
        )
    finally:
        client.close()
    if taken:
        where = f" --state-dir {state_dir}" if state_dir else ""
        raise ReconcilerError(
            f"this cluster already runs the example environments {', '.join(taken)} from another "
            "repository (an earlier `reconciler up`); the demo needs a cluster of its own: run "
            f"`reconciler up --demo --state-dir <a new directory>`, or erase this one first with "
            f"`reconciler cluster down --purge{where}`"
        )


def _start_standins(work: Path, kubeconfig: Path, *, required: bool) -> Any:
    """Start the loopback stand-ins for the cluster's MCP server pods and agents (kwok runs no
    processes; :mod:`reconciler.devcluster.standins`) and point ``$RECONCILER_PROBE_ADDRESSES`` of this
    process (the daemon runs in it) at their mapping file. Returns the running :class:`StandIns`, or
    ``None`` when they cannot start and are not ``required`` (a warning says why; probes are then off).

    Raises:
        ComponentError: they cannot start (node or npm missing, an install failed) and are ``required``.
    """
    from reconciler.devcluster import ComponentError
    from reconciler.devcluster.standins import StandIns
    from reconciler.probe.targets import ENV_VAR

    standins = StandIns(kubeconfig, work)
    try:
        with spinner(err, "starting the loopback stand-ins (server-everything, A2A agent) …"):
            standins.start()
    except ComponentError as exc:
        if required:
            raise
        err.print(
            f"[yellow]warning:[/] no loopback stand-ins, so no protocol probes: {escape(str(exc))}",
            highlight=False,
        )
        return None
    if os.environ.get(ENV_VAR) and os.environ[ENV_VAR] != standins.setting:
        err.print(f"[yellow]warning:[/] {ENV_VAR} replaced by the stand-ins' mapping file", highlight=False)
    os.environ[ENV_VAR] = standins.setting
    err.print(
        "[dim]>[/] stand-ins on 127.0.0.1 for what kwok's pods do not run (Deployments of "
        "docker.io/mcp/everything:<version> → server-everything <version>; kagent Agents → the A2A agent):",
        highlight=False,
    )
    for line in standins.describe():
        err.print(f"[dim]>[/]   {escape(line)}", highlight=False)
    err.print(f"[dim]>[/] {ENV_VAR}={standins.setting} (follows the cluster's Deployments)", highlight=False)

    def changed(lines: list[str]) -> None:
        for line in lines:
            err.print(f"[dim]> stand-in:[/] {escape(line)}", highlight=False)

    for s in standins.standins():  # what the cluster already runs (an earlier `up`)
        changed([f"{s.origin} → {s.server} ({s.owner})"])
    standins.on_change = changed
    return standins


#: Where the example repository's RemoteMCPServer "reconciler" (overlays/base/agents/platform-ops) points:
#: the Service of deploy/ in front of `reconciler run --mcp`.
OWN_MCP_ORIGIN = "http://reconciler-mcp.reconciler-system.svc.cluster.local:8090"


def _serve_own_mcp(standins: Any, repo: str, st: Any) -> Any:
    """Serve reconciler's own MCP server (read-only: no tokens) on a free 127.0.0.1 port from a thread, on
    the example repository, the local cluster and NATS, and map :data:`OWN_MCP_ORIGIN` to it among the
    stand-ins, so the example's RemoteMCPServer "reconciler" is probed and the Agent "platform-ops" is held
    to its tool contract. Returns the running server (``None`` when it cannot start: a warning says why)."""
    from reconciler.devcluster.standins import StandIn
    from reconciler.mcpserver.access import Access
    from reconciler.mcpserver.server import ToolServer, start_http_thread
    from reconciler.mcpserver.tools import Backend

    backend = Backend(repo=repo, kubeconfig=Path(st.kubeconfig), nats_url=st.nats_url)
    try:
        running = start_http_thread(ToolServer(backend, Access()), "127.0.0.1", 0)
    except ReconcilerError as exc:
        err.print(
            f"[yellow]warning:[/] reconciler's MCP server did not start: {escape(str(exc))}", highlight=False
        )
        return None
    err.print(f"[dim]>[/] reconciler's MCP server (read-only) on {running.url}", highlight=False)
    if standins is not None:
        target = running.url.removesuffix("/mcp")
        standins.add(
            StandIn(OWN_MCP_ORIGIN, target, "reconciler's MCP server", "RemoteMCPServer */reconciler")
        )
        err.print(f"[dim]>[/]   {OWN_MCP_ORIGIN} → {target}", highlight=False)
    return running


def _start_metrics_fixture(st: Any) -> Any:
    """Start the agentgateway-shaped metrics fixture (:mod:`reconciler.devcluster.agw_fixture`) as a
    scrape target of the local Prometheus, for rollout analysis; ``None`` (a warning says why) when the
    cluster runs no Prometheus or the fixture cannot start."""
    from reconciler.devcluster import ComponentError, LocalCluster
    from reconciler.devcluster.agw_fixture import RunningFixture

    if not st.prometheus_url:
        err.print("[yellow]warning:[/] the cluster runs no Prometheus: no rollout analysis", highlight=False)
        return None
    targets = LocalCluster(Path(st.state_dir)).prometheus_files().targets
    fixture = RunningFixture(Path(st.state_dir) / "standins" / "agw-fixture", Path(st.kubeconfig), targets)
    try:
        fixture.start()
    except ComponentError as exc:
        err.print(f"[yellow]warning:[/] no metrics fixture: {escape(str(exc))}", highlight=False)
        return None
    err.print(
        f"[dim]>[/] Prometheus {st.prometheus_url} scrapes a metrics FIXTURE at {fixture.url}: "
        "agentgateway-named metrics for traffic it simulates by the HTTPRoutes' weights (no gateway data "
        "plane runs locally; PUT /routes/<namespace>/<name> sets a route's traffic)",
        highlight=False,
    )
    return fixture


#: The TEST-ONLY age key the committed example's Secrets are encrypted for (public; test values only).
EXAMPLE_AGE_KEY = REPO_ROOT / "deploy" / "examples" / "sops" / "test-only.agekey"


def _sops_setup(state_dir: Path, kubeconfig: Path, work: Path | None) -> None:
    """The cluster's age key (generated once into the state directory), the example copy ``work`` (when
    new) re-encrypted for it, and the key Secret the example's environments name (reconciler.devcluster.
    sopskey)."""
    from reconciler.devcluster import sopskey
    from reconciler.render import sops

    key_file, keys = sopskey.ensure_cluster_key(state_dir)
    if work is not None:
        rotated = sopskey.reencrypt_for(work, keys.recipients()[0], sops.load_key_file(EXAMPLE_AGE_KEY))
        if rotated:
            err.print(
                f"[dim]>[/] SOPS: {rotated} encrypted Secrets of the example re-encrypted for this cluster's "
                f"age key {keys.recipients()[0]}",
                highlight=False,
            )
    sopskey.install_key_secret(kubeconfig, keys)
    err.print(
        f"[dim]>[/] SOPS age key: {key_file} (in the cluster as Secret "
        f"{sopskey.SECRET_NAMESPACE}/{sopskey.SECRET_NAME}, named by envs/*.yaml decryption.secretRef)",
        highlight=False,
    )


@app.command("up")
def up_cmd(
    once: Annotated[bool, typer.Option("--once", help="one pass per environment, print, exit")] = False,
    demo: Annotated[
        bool, typer.Option("--demo", help="run the narrated scenario; exit 0 only if every step happened")
    ] = False,
    nodes: int = 2,
    state_dir: StateDir = None,
    workdir: Annotated[
        Path | None,
        typer.Option(help="where the example repository lives (default: the cluster's state directory)"),
    ] = None,
    down: Annotated[
        bool, typer.Option("--down/--keep", help="with --once or --demo: stop the cluster afterwards")
    ] = False,
    http: Annotated[str, typer.Option("--http", help="HOST:PORT of the status page; '' = off")] = (
        "127.0.0.1:9090"
    ),
) -> None:
    """Start the local cluster and NATS, copy the example environment repository into a Git repo with a
    bare remote (once per cluster: later runs reuse it with the commits made in it), start the loopback
    stand-ins for the example's MCP server pods and agents (server-everything, one process per pinned
    version, and the A2A echo agent), and run the webhook receivers and the daemon on it (until Ctrl-C,
    or once). Rollout analysis queries the cluster's Prometheus, which scrapes a metrics fixture (no
    gateway data plane runs locally). ``--demo`` uses a new repository each run. Every stand-in and the
    fixture are stopped on exit."""
    import asyncio
    import secrets
    import tempfile

    from reconciler.devcluster import LocalCluster
    from reconciler.probe.targets import ENV_VAR
    from reconciler.settings import DaemonSettings
    from reconciler.source.bootstrap import init_repo_with_remote

    def terminated(signum: int, frame: Any) -> None:  # SIGTERM unwinds like Ctrl-C, through `finally`
        raise KeyboardInterrupt

    cluster = LocalCluster(state_dir, nodes=nodes)
    standins: Any = None
    own_mcp: Any = None
    fixture: Any = None
    setting_before = os.environ.get(ENV_VAR)
    main_thread = threading.current_thread() is threading.main_thread()
    previous_sigterm = signal.signal(signal.SIGTERM, terminated) if main_thread else None
    try:
        st = cluster.up(progress=lambda m: err.print(f"[dim]>[/] {m}", highlight=False))
        _install_crds(Path(st.kubeconfig))
        from reconciler.policy import ensure_opa  # the example's policies/ run before every write

        err.print(f"[dim]>[/] policy engine: {ensure_opa()}", highlight=False)
        fresh = True
        if demo:  # the scenario starts from the example as it is: a new repository each run
            base = workdir or Path(tempfile.mkdtemp(prefix="reconciler-up-"))
            remote, work = init_repo_with_remote(REPO_ROOT, base / f"demo-{int(time.time())}")
            _demo_needs_its_own_cluster(Path(st.kubeconfig), str(remote), state_dir)
        else:  # one example repository per cluster (or --workdir), kept with the commits made in it
            dest = (workdir or Path(st.state_dir)) / "example-repo"
            if (dest / "remote.git").is_dir() and (dest / "work").is_dir():
                remote, work = dest / "remote.git", dest / "work"
                fresh = False
                err.print(f"[dim]>[/] reusing the example repository in {dest}", highlight=False)
            else:
                remote, work = init_repo_with_remote(REPO_ROOT, dest)
        _sops_setup(Path(st.state_dir), Path(st.kubeconfig), work if fresh else None)
        err.print(
            f"[dim]>[/] environment repository: {remote} (a clone to edit, commit and push: {work})",
            highlight=False,
        )
        err.print(f"[dim]>[/] kubeconfig: {st.kubeconfig}   NATS: {st.nats_url}", highlight=False)
        # under the state directory, so `reconciler cluster down` stops them even after a `kill -9` of up
        standins = _start_standins(Path(st.state_dir) / "standins", Path(st.kubeconfig), required=demo)
        own_mcp = _serve_own_mcp(standins, str(remote), st)
        fixture = _start_metrics_fixture(st)
        prometheus_url = st.prometheus_url if fixture is not None else None
        if demo:
            from reconciler.demo import Demo

            code = asyncio.run(
                Demo(
                    console,
                    Path(st.kubeconfig),
                    st.nats_url,
                    remote,
                    base / "demo-cache",
                    standins=standins,
                    prometheus_url=prometheus_url,
                    metrics=fixture,
                ).run()
            )
        elif once:
            code = _once(
                DaemonSettings(
                    repo=str(remote),
                    kubeconfig=Path(st.kubeconfig),
                    nats_url=st.nats_url,
                    prometheus_url=prometheus_url,
                )
            )
        else:
            secret = secrets.token_hex(16)
            hooks = up_webhook_settings(cluster, st, secret)
            err.print(
                f"[dim]>[/] webhook secret (HMAC for /hook/ghcr, path token for /hook/dockerhub/<secret>): "
                f"{secret}",
                highlight=False,
            )
            settings = DaemonSettings(
                repo=str(remote),
                kubeconfig=Path(st.kubeconfig),
                nats_url=st.nats_url,
                prometheus_url=prometheus_url,
            )

            def before_exit() -> None:  # an abrupt exit skips the `finally` below
                if own_mcp is not None:
                    own_mcp.stop(timeout=1.0)
                if fixture is not None:
                    fixture.stop()
                if standins is not None:
                    standins.stop()

            code = _daemon(
                settings,
                http=http,
                webhooks=hooks,
                on_stop=standins.terminate if standins else None,
                before_exit=before_exit,
            )
    except ReconcilerError as exc:
        code = 1
        err.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous_sigterm)
        if own_mcp is not None:
            own_mcp.stop()
        if fixture is not None:
            fixture.stop()
        if standins is not None:  # also after Ctrl-C: the servers run in process groups of their own
            standins.stop()
            if setting_before is None:
                os.environ.pop(ENV_VAR, None)
            else:
                os.environ[ENV_VAR] = setting_before
        if (once or demo) and down:
            with contextlib.suppress(Exception):
                cluster.down(progress=lambda m: None)
    raise typer.Exit(code)


# -- webhooks --------------------------------------------------------------------------------------


def up_webhook_settings(cluster: Any, st: Any, secret: str) -> Any:
    """The webhook receivers ``reconciler up`` serves: ``ghcr`` (GitHub, HMAC with ``secret``) and
    ``dockerhub`` (path token ``secret``) on a free port, or, when the cluster runs the local registry
    (``cluster up --registry``), on the port its notifications go to, with a ``registry`` receiver
    (provider ``distribution``) for the registry's bearer token.

    Args:
        cluster: the :class:`~reconciler.devcluster.LocalCluster`.
        st: its :class:`~reconciler.devcluster.ClusterState` after ``up``.
        secret: the secret of the ``ghcr`` and ``dockerhub`` receivers.

    Returns:
        :class:`webhooks.config.WebhookSettings`.
    """
    from reconciler.devcluster.process import free_port
    from webhooks.config import WebhookSettings

    receivers: list[dict[str, str]] = [
        {"name": "ghcr", "provider": "github", "secret": secret},
        {"name": "dockerhub", "provider": "dockerhub", "secret": secret},
    ]
    port = free_port()
    if st.registry and st.ports.get("registry-hook"):
        from reconciler.devcluster.registry import HOOK_RECEIVER

        port = st.ports["registry-hook"]
        token = cluster.registry_files().token()
        receivers.append({"name": HOOK_RECEIVER, "provider": "distribution", "secret": token})
    return WebhookSettings.model_validate({"port": port, "natsUrl": st.nats_url, "receivers": receivers})


@webhooks_app.command("serve")
def webhooks_serve(
    config: Annotated[Path, typer.Option(help="receivers file (YAML or JSON)")],
    host: str = "127.0.0.1",
    port: int = 8090,
    nats: Annotated[str | None, typer.Option(help="NATS URL")] = None,
) -> None:
    """Serve the webhook receivers (publishes to NATS JetStream)."""
    from webhooks.server import main as webhooks_main

    argv = ["--config", str(config), "--host", host, "--port", str(port)]
    if nats:
        argv += ["--nats-url", nats]
    raise typer.Exit(webhooks_main(argv))


def health_line(h: HealthStatus) -> str:
    """``Healthy`` or ``Progressing: 1/2 replicas available``."""
    return h.state.value + (f": {h.message}" if h.message else "")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
