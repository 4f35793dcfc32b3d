"""Tag scanning: list the registry's tags of every image an image policy follows with ``scan:``, and hand
the newest allowed ones to image automation, as a registry webhook would.

Webhooks are the fast path; the scan is the guarantee. A version whose webhook was lost (the receiver or
NATS was down, the registry gave up) is promoted by the next scan, exactly once: the scan goes through
:meth:`~reconciler.promote.images.ImageAutomation.scan`, which holds the same writer lock as the webhook
consumer and commits nothing when Git already has the version (or a newer one), so a webhook delivered
late after the scan, or a scan after the webhook, is a no-op. Like Flux's ``ImageRepository`` (its
``spec.interval``) and argocd-image-updater's registry polling.

Per image (all environments' policies following it are scanned together, at the shortest interval among
them): ``GET /v2/<name>/tags/list`` through every ``Link`` page (:class:`~reconciler.promote.oci.OciClient`),
then for the :data:`CANDIDATES` tags each policy ranks highest, when a policy pins digests, ``HEAD`` on the
manifest for the digest and a ``GET`` by that digest checking that the content hashes to it. Any failure
(unreachable, 401, 429/5xx past the retries, a bound exceeded, a digest mismatch) ends that image's scan
with an error in its :class:`ScanReport` and commits nothing for it; other images go on.

Where it runs: in the daemon, beside the image-automation consumer and on the same
:class:`~reconciler.promote.images.ImageAutomation` (:func:`run_scanner`); on demand with
``reconciler images scan``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from reconciler.errors import ReconcilerError
from reconciler.model import Environment
from reconciler.model.imagepolicy import ImagePolicy, RegistryCredentials, TagScan, normalise_image
from reconciler.promote.images import AutomationResult, ImageAutomation, policies_of
from reconciler.promote.oci import Credentials, OciClient, RegistryError, credentials_from_docker_config

__all__ = [
    "CANDIDATES",
    "ClientFactory",
    "ScanReport",
    "SecretReader",
    "TagScanner",
    "run_scanner",
]

log = logging.getLogger("reconciler.images.scan")

#: Tags resolved per policy and scan: the newest allowed ones (held-back versions are skipped among them).
CANDIDATES = 5

SecretReader = Callable[[str, str], Mapping[str, bytes] | None]
"""``(namespace, name)`` → the Secret's data (decoded bytes per key), or ``None`` when it does not exist."""
ClientFactory = Callable[[str, TagScan, Credentials | None], OciClient]
"""``(host, scan settings, credentials)`` → a client (tests replace it)."""


class ScanReport(BaseModel):
    """What one scan of one image found and did."""

    image: str
    environments: list[str] = Field(default_factory=list)
    tags: int = Field(default=0, description="tags listed")
    candidates: dict[str, str | None] = Field(
        default_factory=dict, description="the tags handed to image automation, with their digests"
    )
    requests: int = 0
    seconds: float = 0.0
    error: str = ""
    result: AutomationResult | None = None

    @property
    def commits(self) -> list[str]:
        """The commits image automation pushed for this scan."""
        return self.result.commits if self.result is not None else []


@dataclass
class _Target:
    """One image and every policy (with its environment) that scans it."""

    image: str
    host: str
    repository: str
    policies: list[tuple[Environment, ImagePolicy]] = field(default_factory=list)

    @property
    def scan(self) -> TagScan:
        """The settings of the first policy (by environment name); the interval is the shortest."""
        first = self.policies[0][1].scan
        assert first is not None
        return first

    @property
    def interval(self) -> float:
        values = [p.scan.interval for _, p in self.policies if p.scan is not None and p.scan.interval > 0]
        return min(values) if values else 0.0


def _is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
    return name in ("localhost", "127.0.0.1", "[::1]")


def default_client(host: str, scan: TagScan, credentials: Credentials | None) -> OciClient:
    """An :class:`OciClient` with the policy's scan settings."""
    plain = scan.plain_http if scan.plain_http is not None else _is_loopback(host)
    return OciClient(
        host,
        plain_http=plain,
        credentials=credentials,
        requests_per_second=scan.requests_per_second,
        max_pages=scan.max_pages,
        max_tags=scan.max_tags,
    )


class TagScanner:
    """Scans the registries of the image policies that have ``scan:`` (see the module docstring).

    Args:
        automation: the image automation the candidates go to (its writer's lock serialises the scan
            with the webhook consumer).
        secrets: reads Kubernetes Secrets for ``credentials.secretRef`` (``None``: such policies fail
            their scan with an error naming the Secret).
        client_factory: makes a registry client (default :func:`default_client`).
        environments: the current environments by name, without Git I/O (the daemon's, refreshed after
            each pass), so that checking what is due every second costs nothing; default: read from the
            automation's clone, synced first (``reconciler images scan``).
        clock: monotonic seconds (tests).
    """

    def __init__(
        self,
        automation: ImageAutomation,
        *,
        secrets: SecretReader | None = None,
        client_factory: ClientFactory = default_client,
        environments: Callable[[], Mapping[str, Environment]] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.automation = automation
        self.environments = environments
        self.secrets = secrets
        self.client_factory = client_factory
        self.clock = clock
        self._last: dict[str, float] = {}
        self.reports: dict[str, ScanReport] = {}
        """The last report per image."""

    def targets(self) -> list[_Target]:
        """The images to scan, from the current environments (see ``environments``).

        Raises:
            ReconcilerError: the repository could not be synced or the environments read.
        """
        if self.environments is not None:
            envs = dict(self.environments())
        else:
            w = self.automation.writer
            with w.locked():
                w.sync()
                envs = self.automation._load_envs(w.workdir)
        by_image: dict[str, _Target] = {}
        for env in envs.values():
            for policy in policies_of(env):
                if policy.scan is None:
                    continue
                image = normalise_image(policy.image)
                host, _, repository = image.partition("/")
                target = by_image.setdefault(image, _Target(image, host, repository))
                target.policies.append((env, policy))
        return [by_image[k] for k in sorted(by_image)]

    def scan_due(self) -> list[ScanReport]:
        """Scan the images whose interval has passed since their last scan (never scanned: now)."""
        now = self.clock()
        due = []
        for target in self.targets():
            interval = target.interval
            last = self._last.get(target.image)
            if interval > 0 and (last is None or now - last >= interval):
                due.append(target)
        return [self.scan_target(t) for t in due]

    def scan_all(self, *, environment: str | None = None, image: str | None = None) -> list[ScanReport]:
        """Scan now (on demand) every image with ``scan:``, or those of one environment or one image."""
        want = normalise_image(image) if image else None
        out = []
        for target in self.targets():
            if want is not None and target.image != want:
                continue
            if environment is not None and all(e.name != environment for e, _ in target.policies):
                continue
            out.append(self.scan_target(target))
        return out

    def scan_target(self, target: _Target) -> ScanReport:
        """List, resolve and apply one image's tags; never raises (errors are in the report)."""
        started = time.monotonic()
        self._last[target.image] = self.clock()
        report = ScanReport(image=target.image, environments=sorted({e.name for e, _ in target.policies}))
        client: OciClient | None = None
        try:
            credentials = self._credentials(target)
            client = self.client_factory(target.host, target.scan, credentials)
            client.deadline(target.scan.timeout)
            tags = client.tags(target.repository)
            report.tags = len(tags)
            wanted: list[str] = []
            for _, policy in target.policies:
                wanted += [t for t in policy.newest(tags, CANDIDATES) if t not in wanted]
            pin = any(p.digest == "pin" for _, p in target.policies)
            candidates: dict[str, str | None] = {}
            for tag in wanted:
                digest: str | None = None
                if pin:
                    digest = client.digest(target.repository, tag)
                    client.verified_digest(target.repository, digest, expected=digest)
                candidates[tag] = digest
            report.candidates = candidates
            if candidates:
                report.result = self.automation.scan(
                    target.image, candidates, source="scan", delivery_id=f"{target.image}/tags/list"
                )
        except RegistryError as exc:
            report.error = str(exc)
            log.warning("tag scan of %s: %s", target.image, exc)
        except ReconcilerError as exc:
            report.error = str(exc)
            log.warning("tag scan of %s: %s", target.image, exc)
        finally:
            if client is not None:
                report.requests = client.requests
                client.close()
            report.seconds = round(time.monotonic() - started, 3)
        self.reports[target.image] = report
        return report

    def _credentials(self, target: _Target) -> Credentials | None:
        spec: RegistryCredentials | None = target.scan.credentials
        if spec is None:
            return None
        env = target.policies[0][0]
        where = f"envs/{env.name}.yaml: imagePolicies[{target.policies[0][1].name}].scan.credentials"
        if spec.file is not None:
            path = Path(spec.file).expanduser()
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise RegistryError(f"{where}.file: cannot read {path}: {exc}") from None
            found = credentials_from_docker_config(data if isinstance(data, dict) else {}, target.host)
            if found is None:
                raise RegistryError(f"{where}.file: {path} has no auths entry for {target.host}")
            return found
        assert spec.secret_ref is not None
        ref = spec.secret_ref
        namespace = ref.namespace or env.namespace or "default"
        if self.secrets is None:
            raise RegistryError(f"{where}.secretRef: no cluster to read Secret {namespace}/{ref.name} from")
        data_ = self.secrets(namespace, ref.name)
        if data_ is None:
            raise RegistryError(f"{where}.secretRef: Secret {namespace}/{ref.name} does not exist")
        if ".dockerconfigjson" in data_:
            try:
                config = json.loads(data_[".dockerconfigjson"])
            except ValueError:
                raise RegistryError(
                    f"{where}.secretRef: {namespace}/{ref.name} .dockerconfigjson is not JSON"
                ) from None
            found = credentials_from_docker_config(config if isinstance(config, dict) else {}, target.host)
            if found is None:
                raise RegistryError(
                    f"{where}.secretRef: {namespace}/{ref.name} has no auths entry for {target.host}"
                )
            return found
        if "username" in data_ and "password" in data_:
            return Credentials(data_["username"].decode(), data_["password"].decode())
        raise RegistryError(
            f"{where}.secretRef: {namespace}/{ref.name} has neither .dockerconfigjson nor "
            "username and password"
        )


async def run_scanner(
    scanner: TagScanner,
    stop: asyncio.Event,
    *,
    tick: float = 1.0,
    on_report: Callable[[ScanReport], None] | None = None,
    on_push: Callable[[], object] | None = None,
) -> None:
    """Every ``tick`` seconds until ``stop`` is set, scan the images that are due (in a worker thread).

    Args:
        scanner: the scanner.
        stop: set it to stop (a scan in progress finishes first).
        tick: seconds between checks of what is due.
        on_report: called with each report (in the event loop).
        on_push: called (in the event loop; a coroutine it returns is awaited) after a scan pushed to the
            followed branch, e.g. to announce the push to the daemon.
    """
    while not stop.is_set():
        try:
            reports = await asyncio.to_thread(scanner.scan_due)
        except Exception as exc:  # the repository or the environments could not be read: try again later
            log.warning("tag scan: %s", exc)
            reports = []
        for r in reports:
            if on_report is not None:
                on_report(r)
        if on_push is not None and any(r.result is not None and r.result.pushed_main for r in reports):
            outcome = on_push()
            if asyncio.iscoroutine(outcome):
                await outcome
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
