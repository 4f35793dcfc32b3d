"""A local OCI registry: CNCF Distribution (Go module ``github.com/distribution/distribution/v3`` v3.1.2,
``cmd/registry``; built by ``tools/controlplane/build.sh registry`` into the version-keyed tool cache) on
127.0.0.1, plain HTTP, filesystem storage, deletes enabled, whose notifications go to reconciler's
registry webhook receiver; and ``crane`` (``github.com/google/go-containerregistry/cmd/crane`` v0.22.1,
``build.sh crane``) to push images and indexes to it.

The configuration written here follows Distribution's documented configuration file (its
``configuration`` package: ``storage.filesystem.rootdirectory``,
``storage.delete.enabled``, ``http.addr``, ``notifications.endpoints[]`` with ``url``, ``headers``,
``timeout``, ``threshold``, ``backoff`` and ``ignore.{actions,mediatypes}``,
``notifications.events.includereferences``). Pull events and blob events (``application/octet-stream``)
are not sent; manifest pushes (tagged or not) and deletes are, as the notification envelope
``{"events": [...]}`` that :func:`webhooks.providers.parse_distribution` reads.

:func:`start_registry` is the entry point for tests, benchmarks and anything else that wants a registry
(e.g. Helm OCI charts): it returns a :class:`LocalRegistry` whose ``url`` is ``http://127.0.0.1:<port>``.
``reconciler cluster up --registry`` runs one as a cluster component (:mod:`reconciler.devcluster.cluster`).
"""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.devcluster import process
from reconciler.devcluster.binaries import BUILD_SCRIPT, BuildError, _version
from reconciler.devcluster.process import ComponentError

__all__ = [
    "HOOK_RECEIVER",
    "Crane",
    "LocalRegistry",
    "RegistryFiles",
    "command",
    "crane_binary",
    "ensure_crane",
    "ensure_registry",
    "registry_binary",
    "start_registry",
    "write_config",
]

#: The receiver name the registry's notifications are addressed to (``POST /hook/registry``).
HOOK_RECEIVER = "registry"


@dataclass(frozen=True)
class RegistryFiles:
    """The files of one local registry under ``root``: its config, storage and notification token."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config.yml"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def hook_token(self) -> Path:
        """The bearer token the registry sends to the webhook receiver (mode 0600; made once)."""
        return self.root / "hook-token"

    def token(self) -> str:
        """The notification token, created (random, 32 hex digits) on first use."""
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.hook_token.exists():
            self.hook_token.write_text(secrets.token_hex(16) + "\n", encoding="utf-8")
            self.hook_token.chmod(0o600)
        return self.hook_token.read_text(encoding="utf-8").strip()


def _build(what: str, binary_of: Callable[[Path], Path]) -> Path:
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), what], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    path = binary_of(Path(lines[-1])) if lines else None
    if proc.returncode != 0 or path is None or not path.exists():
        raise BuildError(f"building {what} failed (exit {proc.returncode}); see the output above")
    return path


def registry_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned Distribution registry under ``bin_dir``."""
    return bin_dir / f"registry-{_version('REGISTRY_VERSION')}" / "registry"


def crane_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned crane under ``bin_dir``."""
    return bin_dir / f"crane-{_version('CRANE_VERSION')}" / "crane"


def ensure_registry() -> Path:
    """Build the registry when missing (``build.sh registry``; about a minute; a no-op when cached).

    Raises:
        BuildError: the build failed.
    """
    return _build("registry", registry_binary)


def ensure_crane() -> Path:
    """Build crane when missing (``build.sh crane``; a no-op when cached).

    Raises:
        BuildError: the build failed.
    """
    return _build("crane", crane_binary)


def write_config(files: RegistryFiles, port: int, notify_url: str | None, token: str | None) -> None:
    """Write the registry's ``config.yml``: listen on ``127.0.0.1:port``, store under ``files.data``,
    allow deletes, and (when ``notify_url`` is given) send manifest events to it with
    ``Authorization: Bearer <token>``, retried every second after 3 failures in a row."""
    files.root.mkdir(parents=True, exist_ok=True)
    files.data.mkdir(parents=True, exist_ok=True)
    lines = [
        "# written by reconciler (devcluster/registry.py)",
        "version: 0.1",
        "log: {level: warn, formatter: text, accesslog: {disabled: true}}",
        "storage:",
        f"  filesystem: {{rootdirectory: {json.dumps(str(files.data))}}}",
        "  delete: {enabled: true}",
        "  maintenance: {uploadpurging: {enabled: false}}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        f"  secret: {json.dumps(secrets.token_hex(16))}",
    ]
    if notify_url:
        lines += [
            "notifications:",
            "  events: {includereferences: true}",
            "  endpoints:",
            "  - name: reconciler",
            f"    url: {json.dumps(notify_url)}",
            f"    headers: {{Authorization: [{json.dumps('Bearer ' + (token or ''))}]}}",
            "    timeout: 5s",
            "    threshold: 3",
            "    backoff: 1s",
            "    ignore: {actions: [pull, mount], mediatypes: [application/octet-stream]}",
        ]
    files.config.write_text("\n".join(lines) + "\n", encoding="utf-8")


def command(binary: Path, files: RegistryFiles) -> list[str]:
    """The registry's command line."""
    return [str(binary), "serve", str(files.config)]


def ready(url: str) -> bool:
    """Whether the registry at ``url`` answers ``GET /v2/`` with 200."""
    try:
        with urllib.request.urlopen(url + "/v2/", timeout=2) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class LocalRegistry:
    """A running local registry (from :func:`start_registry`).

    Attributes:
        url: ``http://127.0.0.1:<port>``.
        host: ``127.0.0.1:<port>``: the registry part of image references pushed to it.
        files: its config, storage and notification token.
        pid: the registry's process (group) id.
        log: its log file.
        notify_url: where its notifications go (``None``: nowhere).
    """

    url: str
    host: str
    files: RegistryFiles
    pid: int
    log: Path
    notify_url: str | None = None
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Stop the registry (its storage stays in ``files.data``)."""
        if not self._stopped:
            process.stop_group(self.pid, timeout=5)
            self._stopped = True

    def __enter__(self) -> LocalRegistry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_registry(
    root: Path,
    *,
    notify_url: str | None = None,
    notify_token: str | None = None,
    port: int | None = None,
    timeout: float = 30.0,
) -> LocalRegistry:
    """Start a Distribution registry on 127.0.0.1 with its files under ``root`` and wait until it answers.

    Args:
        root: its directory (config, storage, log); kept after :meth:`LocalRegistry.stop`.
        notify_url: the webhook receiver to notify (e.g. ``http://127.0.0.1:9292/hook/registry``, a
            receiver of provider ``distribution``); ``None``: no notifications.
        notify_token: the bearer token sent to it (default: ``root/hook-token``, created once).
        port: the port (default: a free one).
        timeout: seconds to wait for ``GET /v2/``.

    Raises:
        BuildError: the registry binary could not be built.
        ComponentError: it exited or did not answer within ``timeout`` (names its log).
    """
    files = RegistryFiles(root)
    binary = ensure_registry()
    port = port or process.free_port()
    token = notify_token if notify_token is not None else (files.token() if notify_url else None)
    write_config(files, port, notify_url, token)
    log = root / "registry.log"
    pid = process.start("registry", command(binary, files), log, root)
    reg = LocalRegistry(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", files, pid, log, notify_url)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.alive(pid):
            raise ComponentError("registry", log, "exited during start-up")
        if ready(reg.url):
            return reg
        time.sleep(0.1)
    reg.stop()
    raise ComponentError("registry", log, f"not ready after {timeout:.0f} s")


class Crane:
    """The pinned ``crane`` against a plain-HTTP registry (``--insecure``), for tests, benchmarks and demos.

    Images are built in a staging repository (``<host>/staging/build``, which no image policy follows) and
    copied to their destination, so each destination sees exactly one manifest push.

    Args:
        host: the registry's ``127.0.0.1:<port>``.
        workdir: where layer tarballs are written.
        binary: the crane executable (default: :func:`ensure_crane`).
    """

    def __init__(self, host: str, workdir: Path, binary: Path | None = None) -> None:
        self.host = host
        self.binary = binary or ensure_crane()
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)

    def run(self, *args: str, timeout: float = 60.0) -> str:
        """Run ``crane ARGS --insecure``; returns stdout.

        Raises:
            RuntimeError: crane failed (its stderr in the message).
        """
        proc = subprocess.run(
            [str(self.binary), *args, "--insecure"],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"crane {' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
        return proc.stdout

    def layer(self, content: bytes) -> Path:
        """A one-file layer tarball (``/payload`` holding ``content``), written under ``workdir``."""
        path = self.workdir / f"layer-{secrets.token_hex(6)}.tar"
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            info = tarfile.TarInfo("payload")
            info.size = len(content)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(content))
        path.write_bytes(buf.getvalue())
        return path

    def build(self, content: bytes | None = None, *, platform: str | None = None) -> str:
        """Push a one-layer image to the staging repository; returns ``<host>/staging/build@<digest>``.

        Args:
            content: the layer's file (default: 32 random bytes, so a new digest).
            platform: ``os/arch[/variant]`` written into the image config (``crane mutate --set-platform``).
        """
        staging = f"{self.host}/staging/build"
        tag = f"{staging}:b-{secrets.token_hex(6)}"
        layer = self.layer(content if content is not None else secrets.token_bytes(32))
        self.run("append", "-f", str(layer), "-t", tag)
        if platform is not None:
            self.run("mutate", tag, "--set-platform", platform, "-t", tag)
        return f"{staging}@{self.digest(tag)}"

    def copy(self, src: str, dst: str) -> str:
        """Copy ``src`` to ``dst`` (``repo:tag``, or ``repo@sha256:…`` for an untagged push); returns the
        digest pushed (``crane copy``)."""
        self.run("copy", src, dst)
        return self.digest(dst) if "@" not in dst else dst.rsplit("@", 1)[1]

    def push_image(self, ref: str, content: bytes | None = None, *, platform: str | None = None) -> str:
        """Push a new one-layer image to ``ref`` (``host/repo:tag``); returns its manifest digest."""
        return self.copy(self.build(content, platform=platform), ref)

    def push_untagged(self, repo: str, content: bytes | None = None, *, platform: str | None = None) -> str:
        """Push a new image to ``repo`` (``host/repo``) by digest only, without a tag; returns the digest."""
        src = self.build(content, platform=platform)
        return self.copy(src, f"{repo}@{src.rsplit('@', 1)[1]}")

    def index(self, ref: str, manifests: list[str]) -> str:
        """Push an image index to ``ref`` (``host/repo:tag``) listing ``manifests`` (references by digest
        or tag; they are pushed to ``ref``'s repository by digest first); returns the index's digest
        (``crane index append``)."""
        args = ["index", "append", "-t", ref]
        for m in manifests:
            args += ["-m", m]
        self.run(*args)
        return self.digest(ref)

    def digest(self, ref: str) -> str:
        """The manifest digest of ``ref`` (``crane digest``)."""
        return self.run("digest", ref).strip()

    def tag(self, ref: str, tag: str) -> None:
        """Add ``tag`` to the manifest at ``ref`` (``crane tag``)."""
        self.run("tag", ref, tag)

    def delete(self, ref_by_digest: str) -> None:
        """Delete the manifest ``host/repo@sha256:…`` and the tags pointing at it (``crane delete``)."""
        self.run("delete", ref_by_digest)

    def tags(self, repo: str) -> list[str]:
        """The repository's tags (``crane ls``)."""
        return [t for t in self.run("ls", repo).splitlines() if t.strip()]
