"""Helm charts in kustomizations: ``helmCharts``, ``helmGlobals``, the deprecated
``helmChartInflationGenerator`` and ``generators:`` entries of kind ``HelmChartInflationGenerator``, inflated
with the pinned ``helm`` binary as ``kustomize build --enable-helm`` inflates them.

Semantics follow kustomize v5.8.1's HelmChartInflationGenerator (api/internal/builtins/
HelmChartInflationGenerator.go, api/types/helmchartargs.go, api/internal/target/kusttarget_configplugin.go):

- a chart is used from ``<chartHome>/<name>`` (``chartHome`` defaults to ``charts`` in the kustomization's
  directory; with both ``version`` and ``repo`` set, ``<chartHome>/<name>-<version>/<name>``); a chart found
  there is used as it is, whatever its version;
- the values: ``valuesFile`` (default ``<chart>/values.yaml``, read with the load restrictor, so it must
  exist) is replaced by ``valuesInline`` merged into it (``valuesMerge: override``, the default: the inline
  values win; ``merge``: the file's values win; ``replace``: the inline values alone), with kyaml's merge
  (maps merged key by key, lists replaced, a null deletes); ``additionalValuesFiles`` follow it (``-f``
  each, in order);
- the arguments of ``helm template``: the release name (``--generate-name`` without one), the chart directory,
  ``--namespace`` (the chart's, else the kustomization's ``namespace``, else the nearest namespace of a
  kustomization including this one), ``--name-template``, the values files, ``--api-versions``,
  ``--kube-version``, ``--include-crds``, ``--skip-tests``, ``--no-hooks``, ``--debug`` and ``--devel``;
- every object helm prints is marked helm-generated: the ``namespace`` transformer leaves it alone (helm set
  its namespace), and the mark (``config.kubernetes.io/helm-generated``) is removed at the end of the build;
  the other transformers (name prefix, labels, images, patches...) apply as to any resource.

What this renderer does differently, on purpose (the output is the same):

- nothing is written into the repository: values files go to a temporary directory, a chart that is not in
  ``chartHome`` is pulled into the cache directory (``<cache>/helm-charts/``, per repository, name and
  version; a chart without a version into the temporary directory) rather than into ``chartHome``;
  ``configHome`` is copied into the temporary directory before helm runs;
- a chart is pulled only from a repository the render's remote options allow (``render.remoteBases.allow``,
  ``--allow-remote``), and each pull is recorded with the SHA-256 of the chart archive; ``repo`` must be an
  ``http(s)://`` or ``oci://`` URL; ``--plain-http`` is passed for ``oci://`` registries on a loopback
  address (``127.0.0.1``, ``localhost``, ``[::1]``);
- ``chartHome``, ``configHome`` and the chart directory must lie inside the repository root (the load
  restrictor's root), where kustomize lets helm read any absolute path;
- helm runs with a minimal environment (``PATH``, and ``HOME`` and every ``HELM_*_HOME`` in the temporary
  directory), in the temporary directory, within a timeout; its exit status and stderr are in the error.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.model.remote import RemoteBase, target_of
from reconciler.render import remote as _remote
from reconciler.render.errors import RenderError
from reconciler.render.yamlio import YamlTimestamp, load_yaml_value

if TYPE_CHECKING:
    from reconciler.model.environment import Environment

#: The pinned helm version (tools/helm/build.sh builds it into ``<cache>/bin/helm-<version>/helm``).
HELM_VERSION = "4.3.2"
#: kustomize's mark on helm-generated objects (api/konfig/general.go ``HelmGeneratedAnnotation``).
HELM_GENERATED_ANNOTATION = "config.kubernetes.io/helm-generated"
#: kustomize's default chart home (api/types/helmchartargs.go ``HelmDefaultHome``).
DEFAULT_CHART_HOME = "charts"
#: Default seconds one helm command may run.
DEFAULT_TIMEOUT = 120.0
#: Largest ``helm template`` output accepted (bytes).
MAX_OUTPUT_BYTES = 256 * 1024 * 1024
#: Largest chart archive a pull may unpack (bytes, uncompressed).
MAX_CHART_BYTES = 64 * 1024 * 1024
VALUES_MERGE_OPTIONS = ("merge", "override", "replace")
ENABLE_HINT = (
    "pass --enable-helm to `reconciler build`, or set render.helm.enabled: true in the environment's "
    "envs/<name>.yaml"
)
_LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


def default_helm_command() -> str:
    """The helm binary: ``$RECONCILER_HELM`` if set, else the pinned build in the cache directory
    (``<cache>/bin/helm-<HELM_VERSION>/helm``, made by tools/helm/build.sh)."""
    env = os.environ.get("RECONCILER_HELM")
    if env:
        return env
    from reconciler.paths import default_cache_dir

    return str(default_cache_dir() / "bin" / f"helm-{HELM_VERSION}" / "helm")


@dataclass
class HelmOptions:
    """How a render inflates Helm charts.

    Attributes:
        command: the helm binary (default: :func:`default_helm_command`).
        timeout: seconds each helm command may take.
        kube_version: when set, replaces every chart's ``kubeVersion`` (kustomize's ``--helm-kube-version``).
        api_versions: when non-empty, replace every chart's ``apiVersions`` (``--helm-api-versions``).
        cache_dir: the reconciler cache directory; pulled charts go to ``<cache_dir>/helm-charts``
            (default: the user's cache directory).
    """

    command: str = field(default_factory=default_helm_command)
    timeout: float = DEFAULT_TIMEOUT
    kube_version: str = ""
    api_versions: list[str] = field(default_factory=list)
    cache_dir: Path | None = None
    _version_checked: bool = field(default=False, repr=False)


def environment_options(
    env: Environment, cache_dir: Path | None = None, *, enable: bool = False
) -> HelmOptions | None:
    """The Helm options of an environment's renders (its ``render.helm``), or ``None`` when Helm is off;
    ``enable`` turns it on whatever the environment says (``reconciler build --enable-helm``)."""
    settings = env.render.helm
    if not (settings.enabled or enable):
        return None
    return HelmOptions(
        timeout=settings.timeout,
        kube_version=settings.kube_version or "",
        api_versions=list(settings.api_versions),
        cache_dir=cache_dir,
    )


class HelmGlobals(BaseModel):
    """``helmGlobals`` (api/types/helmchartargs.go)."""

    model_config = ConfigDict(extra="forbid")

    chartHome: str = ""
    configHome: str = ""


class HelmChart(BaseModel):
    """One ``helmCharts`` entry (api/types/helmchartargs.go ``HelmChart``)."""

    model_config = ConfigDict(extra="forbid")

    name: str = ""
    version: str = ""
    repo: str = ""
    releaseName: str = ""
    namespace: str = ""
    additionalValuesFiles: list[str] = []
    valuesFile: str = ""
    valuesInline: dict[str, Any] | None = None
    valuesMerge: str = ""
    includeCRDs: bool = False
    skipHooks: bool = False
    apiVersions: list[str] = []
    kubeVersion: str = ""
    nameTemplate: str = ""
    skipTests: bool = False
    debug: bool = False
    devel: bool = False


def chart_specs(
    charts: list[dict[str, Any]] | None,
    globals_: dict[str, Any] | None,
    legacy: list[dict[str, Any]] | None,
    *,
    where: str,
) -> tuple[list[HelmChart], HelmGlobals]:
    """The kustomization's charts and globals, with the deprecated ``helmChartInflationGenerator`` entries
    converted as kustomize converts them (api/types/helmchartargs.go ``SplitHelmParameters``): chartName,
    chartVersion, chartRepoUrl, values, valuesLocal, valuesMerge and releaseName become chart fields; the last
    non-empty helmHome and chartHome become the globals unless ``helmGlobals`` is set.

    Raises:
        RenderError: naming the kustomization for unknown or mistyped fields.
    """

    def invalid(section: str, exc: ValidationError) -> RenderError:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        return RenderError(f"invalid Kustomization: field {section}.{loc}: {msg}", path=where)

    out: list[HelmChart] = []
    for i, raw in enumerate(charts or []):
        if not isinstance(raw, dict):
            raise RenderError(f"invalid Kustomization: helmCharts[{i}] must be a mapping", path=where)
        try:
            out.append(HelmChart.model_validate(raw))
        except ValidationError as exc:
            raise invalid(f"helmCharts[{i}]", exc) from None
    try:
        glob = HelmGlobals.model_validate(globals_ or {})
    except ValidationError as exc:
        raise invalid("helmGlobals", exc) from None
    legacy_home = legacy_config = ""
    for i, old in enumerate(legacy or []):
        if not isinstance(old, dict):
            raise RenderError(f"helmChartInflationGenerator[{i}] must be a mapping", path=where)
        inline = old.get("valuesLocal")
        out.append(
            HelmChart(
                name=str(old.get("chartName") or ""),
                version=str(old.get("chartVersion") or ""),
                repo=str(old.get("chartRepoUrl") or ""),
                valuesFile=str(old.get("values") or ""),
                valuesInline=inline if isinstance(inline, dict) else None,
                valuesMerge=str(old.get("valuesMerge") or ""),
                releaseName=str(old.get("releaseName") or ""),
            )
        )
        legacy_config = str(old.get("helmHome") or "") or legacy_config
        legacy_home = str(old.get("chartHome") or "") or legacy_home
    if globals_ is None and (legacy_home or legacy_config):
        glob = HelmGlobals(chartHome=legacy_home, configHome=legacy_config)
    return out, glob


def config_spec(conf: dict[str, Any], *, where: str, shown: str) -> tuple[HelmChart, HelmGlobals]:
    """A ``generators:`` entry of kind ``HelmChartInflationGenerator`` (apiVersion ``builtin``): the chart and
    globals fields at its top level, as kustomize's plugin reads its configuration (other fields, such as
    ``metadata``, are ignored). The kustomization's ``namespace`` is not passed to such a chart.

    Raises:
        RenderError: naming the kustomization and the configuration for mistyped fields.
    """
    chart_fields = {k: v for k, v in conf.items() if k in HelmChart.model_fields}
    glob_fields = {k: v for k, v in conf.items() if k in HelmGlobals.model_fields}
    try:
        return HelmChart.model_validate(chart_fields), HelmGlobals.model_validate(glob_fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RenderError(
            f"HelmChartInflationGenerator configuration (from {shown}): field {loc}: {first['msg']}",
            path=where,
        ) from None


@dataclass
class ChartContext:
    """What inflating one chart needs from the kustomization being built.

    Attributes:
        root: the kustomization's directory (resolved).
        repo: the repository root (resolved); nothing outside it is read.
        where: the kustomization file, as shown in errors.
        namespace: the namespace charts default to: the kustomization's ``namespace``, else the nearest of a
            kustomization including it.
        read: reads a file named relative to the kustomization with the load restrictor: ``(rel) -> (bytes,
            shown path)``; raises :class:`RenderError`.
        remote: the render's remote options (which chart repositories may be pulled from).
    """

    root: str
    repo: str
    where: str
    namespace: str
    read: Callable[[str], tuple[bytes, str]]
    remote: _remote.RemoteOptions | None


def inflate(
    chart: HelmChart, glob: HelmGlobals, ctx: ChartContext, opts: HelmOptions | None
) -> list[dict[str, Any]]:
    """Run ``helm template`` for one chart; its objects, in helm's order, marked helm-generated.

    Raises:
        RenderError: naming the kustomization when Helm is not enabled, for invalid fields, a chart that is
            neither in ``chartHome`` nor pullable, values files that cannot be read, and a helm command that
            fails (its stderr) or times out.
    """
    where = ctx.where
    if opts is None:
        raise RenderError(
            f"helmCharts: chart {chart.name!r} needs Helm, which is off by default; to enable it, "
            + ENABLE_HINT,
            path=where,
        )
    chart = chart.model_copy(deep=True)
    if not chart.name:
        raise RenderError("helmCharts: chart name cannot be empty", path=where)
    if opts.kube_version:
        chart.kubeVersion = opts.kube_version
    if opts.api_versions:
        chart.apiVersions = list(opts.api_versions)
    if not chart.namespace:
        chart.namespace = ctx.namespace
    if chart.valuesMerge and chart.valuesMerge not in VALUES_MERGE_OPTIONS:
        raise RenderError(
            f"helmCharts: chart {chart.name!r}: valuesMerge must be one of [merge override replace]",
            path=where,
        )
    merge = chart.valuesMerge or "override"
    chart_home = _abs_chart_home(chart, glob, ctx)
    chart_dir = os.path.join(chart_home, chart.name)
    values_file = chart.valuesFile or os.path.join(chart_dir, "values.yaml")
    extra_values = [ctx.read(rel) for rel in chart.additionalValuesFiles]
    with tempfile.TemporaryDirectory(prefix="reconciler-helm-") as tmp:
        env = _environment(tmp, glob, ctx)
        _check_version(opts, env, tmp, where)
        if not os.path.isdir(chart_dir):
            if not chart.repo:
                raise RenderError(
                    f"helmCharts: no repo specified for pull, no chart found at "
                    f"'{_shown(chart_dir, ctx)}' (chartHome {glob.chartHome or DEFAULT_CHART_HOME!r})",
                    path=where,
                )
            chart_dir = _pull(chart, ctx, opts, env, tmp)
            if not chart.valuesFile:
                values_file = os.path.join(chart_dir, "values.yaml")
        _check_chart_tree(chart_dir, ctx)
        values_path = os.path.join(tmp, f"{chart.name}-kustomize-values.yaml")
        with open(values_path, "wb") as fh:
            fh.write(_values_bytes(chart, merge, values_file, ctx))
        extra_paths = []
        for i, (data, _shown_path) in enumerate(extra_values):
            path = os.path.join(tmp, f"additional-values-{i}.yaml")
            with open(path, "wb") as fh:
                fh.write(data)
            extra_paths.append(path)
        args = template_args(chart, chart_dir, values_path, extra_paths)
        stdout = _run(opts, args, env, tmp, where, what=f"chart {chart.name!r}")
    from reconciler.render.builder import resources_from_bytes

    objs = [r.obj for r in resources_from_bytes(stdout, source=f"{where} (helm template of {chart.name!r})")]
    for obj in objs:
        meta = obj.setdefault("metadata", {})
        ann = meta.get("annotations")
        if not isinstance(ann, dict):
            ann = {}
            meta["annotations"] = ann
        ann[HELM_GENERATED_ANNOTATION] = "true"
    return objs


def template_args(chart: HelmChart, chart_dir: str, values_path: str, extra: list[str]) -> list[str]:
    """The ``helm template`` arguments kustomize passes (api/types/helmchartargs.go ``AsHelmArgs``)."""
    args = ["template"]
    args += [chart.releaseName] if chart.releaseName else ["--generate-name"]
    args.append(chart_dir)
    if chart.namespace:
        args += ["--namespace", chart.namespace]
    if chart.nameTemplate:
        args += ["--name-template", chart.nameTemplate]
    args += ["-f", values_path]
    for path in extra:
        args += ["-f", path]
    for api in chart.apiVersions:
        args += ["--api-versions", api]
    if chart.kubeVersion:
        args += ["--kube-version", chart.kubeVersion]
    for flag, on in (
        ("--include-crds", chart.includeCRDs),
        ("--skip-tests", chart.skipTests),
        ("--no-hooks", chart.skipHooks),
        ("--debug", chart.debug),
        ("--devel", chart.devel),
    ):
        if on:
            args.append(flag)
    return args


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _shown(path: str, ctx: ChartContext) -> str:
    return os.path.relpath(path, ctx.repo) if _within(path, ctx.repo) else path


def _abs_chart_home(chart: HelmChart, glob: HelmGlobals, ctx: ChartContext) -> str:
    """kustomize's ``absChartHome``, resolved and kept inside the repository."""
    home = glob.chartHome or DEFAULT_CHART_HOME
    joined = os.path.join(ctx.root, home)
    real = os.path.realpath(joined)
    if not _within(real, ctx.repo):
        raise RenderError(
            f"security; helmGlobals.chartHome {home!r} is not in or below the repository root "
            "(load restrictor)",
            path=ctx.where,
        )
    if chart.version and chart.repo:
        real = os.path.join(real, f"{chart.name}-{chart.version}")
    chart_dir = os.path.realpath(os.path.join(real, chart.name))
    if not _within(chart_dir, ctx.repo):
        raise RenderError(
            f"security; chart {chart.name!r} resolves outside the repository root (load restrictor)",
            path=ctx.where,
        )
    return real


def _check_chart_tree(chart_dir: str, ctx: ChartContext) -> None:
    """helm follows symbolic links in a chart directory: every one must resolve inside the repository (or,
    for a pulled chart, inside the chart), so that no template can read a file from elsewhere."""
    real = os.path.realpath(chart_dir)
    root = ctx.repo if _within(real, ctx.repo) else real
    for dirpath, dirnames, filenames in os.walk(chart_dir):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            if os.path.islink(path) and not _within(os.path.realpath(path), root):
                raise RenderError(
                    f"security; {_shown(path, ctx)} in chart directory links outside the repository "
                    "(load restrictor)",
                    path=ctx.where,
                )


def _environment(tmp: str, glob: HelmGlobals, ctx: ChartContext) -> dict[str, str]:
    """helm's environment: no user settings leak in; ``configHome`` (inside the repository) is copied."""
    config = os.path.join(tmp, "helm")
    if glob.configHome:
        src = os.path.realpath(os.path.join(ctx.root, glob.configHome))
        if not _within(src, ctx.repo):
            raise RenderError(
                f"security; helmGlobals.configHome {glob.configHome!r} is not in or below the repository "
                "root (load restrictor)",
                path=ctx.where,
            )
        if os.path.isdir(src):
            shutil.copytree(src, config, symlinks=False, ignore=shutil.ignore_patterns(".cache", ".data"))
    os.makedirs(config, exist_ok=True)
    home = os.path.join(tmp, "home")
    os.makedirs(home, exist_ok=True)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": home,
        "HELM_CONFIG_HOME": config,
        "HELM_CACHE_HOME": f"{config}/.cache",
        "HELM_DATA_HOME": f"{config}/.data",
        "HELM_PLUGINS": os.path.join(tmp, "plugins"),
        "KUBECONFIG": os.path.join(tmp, "no-kubeconfig"),
    }


def _run(
    opts: HelmOptions, args: list[str], env: dict[str, str], cwd: str, where: str, *, what: str
) -> bytes:
    command = [opts.command, *args]
    shown = "helm " + " ".join(args)
    try:
        proc = subprocess.run(
            command, capture_output=True, env=env, cwd=cwd, timeout=opts.timeout, check=False
        )
    except FileNotFoundError:
        raise RenderError(
            f"helmCharts: {what}: the helm binary {opts.command!r} was not found (build the pinned one with "
            "tools/helm/build.sh, or set RECONCILER_HELM)",
            path=where,
        ) from None
    except PermissionError:
        raise RenderError(f"helmCharts: {what}: {opts.command!r} is not executable", path=where) from None
    except subprocess.TimeoutExpired:
        raise RenderError(
            f"helmCharts: {what}: '{shown}' did not finish within {opts.timeout:g} s", path=where
        ) from None
    if proc.returncode != 0:
        stderr = proc.stderr.decode("utf-8", "replace").strip()
        if len(stderr) > 4000:
            stderr = stderr[:4000] + " …"
        raise RenderError(
            f"helmCharts: {what}: '{shown}' exited with status {proc.returncode}: {stderr or '(no stderr)'}",
            path=where,
        )
    if len(proc.stdout) > MAX_OUTPUT_BYTES:
        raise RenderError(f"helmCharts: {what}: helm printed over {MAX_OUTPUT_BYTES} bytes", path=where)
    return proc.stdout


def _check_version(opts: HelmOptions, env: dict[str, str], cwd: str, where: str) -> None:
    """kustomize's ``checkHelmVersion``: helm 3 or 4 (once per options)."""
    if opts._version_checked:
        return
    out = _run(opts, ["version", "--short"], env, cwd, where, what="helm version").decode("utf-8", "replace")
    m = re.search(r"v?\d+(\.\d+)+", out)
    if m is None:
        raise RenderError(f"helmCharts: cannot find a version string in {out.strip()!r}", path=where)
    version = m.group(0).lstrip("v")
    if version.split(".")[0] not in ("3", "4"):
        raise RenderError(f"helmCharts: this renderer needs helm v3 or v4, but got v{version}", path=where)
    opts._version_checked = True


# -- values ---------------------------------------------------------------------------------------------


def _values_bytes(chart: HelmChart, merge: str, values_file: str, ctx: ChartContext) -> bytes:
    """The values file kustomize writes (``createNewMergedValuesFile``/``copyValuesFile``). The merged
    values are written as JSON (YAML that helm reads to the same values as kustomize's YAML)."""
    inline = chart.valuesInline or {}
    if not inline:
        return _read_values(values_file, ctx)[0]
    if merge == "replace":
        return _json_bytes(inline, ctx.where)
    from reconciler.render.patches import CLEAR, MISSING, _Merger

    data, shown = _read_values(values_file, ctx)
    file_values = load_yaml_value(data, path=shown)
    if file_values is None:
        file_values = {}
    if not isinstance(file_values, dict):
        raise RenderError("could not parse values file into a mapping", path=shown)
    inline_copy = json.loads(json.dumps(inline, default=str))
    # kyaml merge2.Merge(src, dest): src wins; override: inline over the file; merge: the file over inline
    if merge == "override":
        dest, src = file_values, inline_copy
    else:
        dest, src = inline_copy, file_values
    try:
        merged = _Merger(ctx.where).walk(dest, src, {})
    except RenderError as exc:
        raise RenderError(
            f"helmCharts: chart {chart.name!r}: could not merge values: {exc.message}", path=ctx.where
        ) from None
    if merged is MISSING or merged is CLEAR or merged is None:
        merged = {}
    return _json_bytes(merged, ctx.where)


def _read_values(path: str, ctx: ChartContext) -> tuple[bytes, str]:
    if os.path.isabs(path) and not _within(os.path.realpath(path), ctx.root):
        # the load restrictor: a chart's default values file outside the kustomization directory (a pulled
        # chart in the cache, or a chartHome above the kustomization) is read directly when it is a pulled
        # chart, refused otherwise (as kustomize refuses it)
        if _within(os.path.realpath(path), ctx.repo) or not os.path.isfile(path):
            return ctx.read(path)
        with open(path, "rb") as fh:
            return fh.read(), path
    return ctx.read(path)


def _json_bytes(values: Any, where: str) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, YamlTimestamp):
            return str(value)
        raise TypeError(type(value).__name__)

    try:
        return json.dumps(values, default=default, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise RenderError(f"helmCharts: values cannot be written as JSON: {exc}", path=where) from None


# -- pulling --------------------------------------------------------------------------------------------


def _pull(chart: HelmChart, ctx: ChartContext, opts: HelmOptions, env: dict[str, str], tmp: str) -> str:
    """Pull a chart that is not in ``chartHome`` (kustomize's ``pullCommand``) into the cache; its
    directory."""
    repo = chart.repo
    if repo.startswith("oci://"):
        ref = repo.rstrip("/") + "/" + chart.name
        args = ["pull", ref]
    elif repo.startswith(("http://", "https://")):
        ref = repo
        args = ["pull", "--repo", repo, chart.name]
    else:
        raise RenderError(
            f"helmCharts: chart {chart.name!r}: repo {repo!r} must be an http(s):// or oci:// URL (or put "
            "the chart in chartHome)",
            path=ctx.where,
        )
    _remote.check_allowed(
        ctx.remote, ref, entry=f"{repo} (chart {chart.name})", where=ctx.where, what="chart"
    )
    if chart.version:
        args += ["--version", chart.version]
    if chart.devel:
        args.append("--devel")
    if repo.startswith("oci://") and target_of(ref).host in _LOOPBACK:
        args.append("--plain-http")
    key = hashlib.sha256(f"{repo}\0{chart.name}\0{chart.version}".encode()).hexdigest()[:24]
    cache_root = (opts.cache_dir or _default_cache()) / "helm-charts"
    final = cache_root / key
    marker = final / ".sha256"
    if chart.version and marker.is_file() and (final / chart.name).is_dir():
        _record(ctx, chart, marker.read_text().strip())
        return str(final / chart.name)
    download = os.path.join(tmp, "pull")
    os.makedirs(download)
    _run(opts, [*args, "--destination", download], env, tmp, ctx.where, what=f"pull of chart {chart.name!r}")
    archives = [n for n in os.listdir(download) if n.endswith(".tgz")]
    if len(archives) != 1:
        raise RenderError(
            f"helmCharts: pull of chart {chart.name!r} gave {len(archives)} archives, expected one",
            path=ctx.where,
        )
    archive = os.path.join(download, archives[0])
    with open(archive, "rb") as fh:
        digest = hashlib.sha256(fh.read()).hexdigest()
    staging = Path(tmp) / "chart"
    _extract(archive, staging, ctx.where)
    if not (staging / chart.name).is_dir():
        raise RenderError(
            f"helmCharts: the pulled archive {archives[0]} holds no directory {chart.name!r}", path=ctx.where
        )
    (staging / ".sha256").write_text(digest + "\n")
    _record(ctx, chart, digest)
    if not chart.version:  # "latest" may move: used from the temporary directory, not cached
        return str(staging / chart.name)
    cache_root.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=cache_root))
    shutil.rmtree(partial)
    shutil.copytree(staging, partial, symlinks=False)
    try:
        os.rename(partial, final)
    except OSError:  # another render cached it first
        shutil.rmtree(partial, ignore_errors=True)
    return str(final / chart.name)


def _default_cache() -> Path:
    from reconciler.paths import default_cache_dir

    return default_cache_dir()


def _extract(archive: str, dest: Path, where: str) -> None:
    import tarfile

    dest.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if sum(m.size for m in members) > MAX_CHART_BYTES:
                raise RenderError(f"helmCharts: chart archive over {MAX_CHART_BYTES} bytes", path=where)
            tar.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, OSError) as exc:
        raise RenderError(f"helmCharts: cannot unpack chart archive: {exc}", path=where) from None


def _record(ctx: ChartContext, chart: HelmChart, digest: str) -> None:
    if ctx.remote is None:
        return
    url = chart.repo.rstrip("/") + "/" + chart.name if chart.repo.startswith("oci://") else chart.repo
    ctx.remote.record(
        RemoteBase(
            url=url if chart.repo.startswith("oci://") else f"{url} {chart.name}",
            kustomization=ctx.where,
            ref=chart.version,
            sha256=digest,
        )
    )


def kust_file_name(where: str) -> str:
    """The kustomization file's base name (origins name it)."""
    return posixpath.basename(where)


__all__ = [
    "DEFAULT_CHART_HOME",
    "ENABLE_HINT",
    "HELM_GENERATED_ANNOTATION",
    "HELM_VERSION",
    "ChartContext",
    "HelmChart",
    "HelmGlobals",
    "HelmOptions",
    "chart_specs",
    "config_spec",
    "default_helm_command",
    "environment_options",
    "inflate",
    "template_args",
]
