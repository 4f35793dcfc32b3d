"""kustomize-compatible overlay renderer.

``build`` renders a kustomization directory to plain dicts in `kustomize build` order, ``dump_yaml`` prints
them exactly as `kustomize build` does, ``load_yaml_documents`` is the safe YAML loader used for every
manifest. Behaviour follows kustomize v5.8 (see the module docstrings for the details of each part).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.render.builder import DEFAULT_MAX_FILE_BYTES, build_resources, tree_digest
from reconciler.render.cache import RenderCache, clone
from reconciler.render.errors import RenderError
from reconciler.render.remote import RemoteOptions
from reconciler.render.sops import SopsFiles
from reconciler.render.yamlio import dump_yaml, load_yaml_documents

if TYPE_CHECKING:
    from reconciler.render.helm import HelmOptions


def __getattr__(name: str) -> Any:
    """``HelmOptions`` is imported on first use (the command line's start stays short without charts)."""
    if name == "HelmOptions":
        from reconciler.render.helm import HelmOptions

        return HelmOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "HelmOptions",
    "RemoteOptions",
    "RenderCache",
    "RenderError",
    "SopsFiles",
    "build",
    "dump_yaml",
    "load_yaml_documents",
]


def build(
    path: Path,
    *,
    root: Path,
    cache: RenderCache | None = None,
    tree_id: str | None = None,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    remote: RemoteOptions | None = None,
    helm: HelmOptions | None = None,
    sops: SopsFiles | None = None,
) -> list[dict[str, Any]]:
    """Render the kustomization directory ``path``.

    Args:
        path: the kustomization directory; must lie inside ``root``.
        root: the environment repository's root; nothing outside it is read (load restrictor).
        cache: optional :class:`RenderCache`; results are keyed by (directory, content digest).
        tree_id: optional Git tree digest of ``root`` used as the cache key instead of hashing the files.
        max_file_bytes: the largest file (in bytes) the renderer reads; larger ones are an error.
        remote: which remote bases and files may be fetched (``None``: none); every one used is appended
            to ``remote.used``. A render that used any is not cached (a branch or tag may move).
        helm: how Helm charts (``helmCharts``) are inflated (``None``: a kustomization with charts is an
            error, as ``kustomize build`` without ``--enable-helm``).
        sops: optional collector of the SOPS-encrypted resource files the render read (display path →
            bytes; also filled on a cache hit), for :func:`reconciler.render.sops.decrypt_objects`. The
            objects keep their ciphertext and ``sops`` mappings, as with kustomize.

    Returns:
        The objects in `kustomize build` output order as plain dicts (fresh copies when cached).

    Raises:
        RenderError: naming the file and line at fault (missing files, invalid YAML, cycles, invalid patches,
            remote references not allowed or not fetched, files outside the kustomization directory, files
            over ``max_file_bytes``, Helm charts while Helm is off or helm failing...).
    """
    if cache is None:
        return build_resources(
            Path(path),
            Path(root),
            max_file_bytes=max_file_bytes,
            remote=remote,
            helm_options=helm,
            sops=sops,
        )
    digest = tree_id or tree_digest(Path(path), Path(root))
    helm_key = (
        "" if helm is None else f"helm:{helm.command}|{helm.kube_version}|{','.join(helm.api_versions)}"
    )
    key = (str(Path(path).resolve()), digest + helm_key)
    hit = cache.get(key)
    if hit is None:
        used = len(remote.used) if remote is not None else 0
        found = SopsFiles()
        hit = build_resources(
            Path(path),
            Path(root),
            max_file_bytes=max_file_bytes,
            remote=remote,
            helm_options=helm,
            sops=found,
        )
        if remote is None or len(remote.used) == used:
            cache.put(key, hit, attachments=found.files)
    else:
        found = SopsFiles(dict(cache.attachments(key)))
    if sops is not None:
        sops.files.update(found.files)
    out: list[dict[str, Any]] = clone(hit)
    return out
