"""Registry → commit benchmark on the real components (all on 127.0.0.1).

1. push → commit: ``--pushes`` images pushed one at a time with crane to a CNCF Distribution registry
   whose notifications go to the webhook receiver (``distribution`` provider) → NATS JetStream → the
   image-automation consumer → a commit pushed to a Git bare remote (``promotion.via: push``, digest
   pinned). Timed from the start of the push (``crane copy``) to the automation's push of the commit.
   Anchors measured in the same run: the push itself (crane, until the registry answered) and the
   registry's own notification delivery (push start → the receiver has the event).
2. scan: ``--tags`` tags in one repository of a second registry (no notifications), then the tag scan of
   an image policy following it (``GET /v2/<name>/tags/list`` through every page, HEAD + verified GET of
   the 5 newest allowed tags, the commit): the first scan commits, the later ones (``--scans``) find
   nothing new. Run at ``requestsPerSecond: 1000`` (the scan's own cost) and at the default 5 (what a
   policy without the setting takes).

Compared with the documented default intervals of the polling tools: argocd-image-updater checks every
2 minutes and Flux's ``ImageRepository`` examples scan every minute, so a pushed version waits on average
60 s and 30 s for them (half the interval) before their commit work even starts.

Usage: .venv/bin/python bench/registry/bench_registry.py [--pushes 20] [--tags 1000] [--scans 5]
       [--json FILE] [--quick]
Bounded: every wait has a deadline (exit 1 when one passes). Goals are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import structlog

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO), str(REPO / "tests"), str(REPO / "tests" / "registry")]

from _registry_support import REPO as IMAGE_REPO  # noqa: E402
from _registry_support import Chain, make_repo, until  # noqa: E402
from reconciler_testing import NatsServer  # noqa: E402

from reconciler.devcluster.registry import start_registry  # noqa: E402
from reconciler.promote.images import ImageAutomation  # noqa: E402
from reconciler.promote.scan import TagScanner  # noqa: E402
from reconciler.reconcile import load_environments  # noqa: E402
from reconciler.source.gitops import GitWriter  # noqa: E402

#: Documented default intervals of the polling tools (seconds).
ARGOCD_IMAGE_UPDATER_INTERVAL = 120.0  # argocd-image-updater: --interval default 2m
FLUX_IMAGE_REPOSITORY_INTERVAL = 60.0  # Flux ImageRepository spec.interval in its examples: 1m


def pct(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank)."""
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(p / 100 * len(s) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 3),
        "p95": round(pct(values, 95), 3),
        "max": round(max(values), 3),
    }


async def push_to_commit(tmp: Path, nats_url: str, pushes: int) -> dict[str, Any]:
    chain = await Chain(tmp / "push", nats_url).start()
    total, push_only, delivered = [], [], []
    try:
        assert chain.crane is not None
        stamps: dict[str, float] = {}
        arrivals: dict[str, float] = {}

        def on_result(r: Any) -> None:
            if r.tag and r.commits:
                stamps[r.tag] = time.monotonic()

        def on_delivery(ev: dict[str, Any]) -> None:
            tag = ev.get("target", {}).get("tag")
            if tag and ev.get("action") == "push":
                arrivals.setdefault(tag, time.monotonic())

        chain.result_hook = on_result
        chain.delivery_hook = on_delivery
        for i in range(pushes):
            tag = f"2.0.{i}"
            src = await asyncio.to_thread(chain.crane.build)  # built beforehand: the push is the copy
            # the staging push's own notification is handled (ignored: no policy follows it) first
            built = src.rsplit("@", 1)[1]
            await until(
                lambda d=built: any(e.get("target", {}).get("digest") == d for e in chain.deliveries),  # type: ignore[misc]
                30,
                "the staging push was delivered",
            )
            await until(chain.idle, 30, "image automation is idle")
            t0 = time.monotonic()
            await asyncio.to_thread(chain.crane.run, "copy", src, f"{chain.image}:{tag}")
            pushed = time.monotonic()
            await until(lambda t=tag: t in stamps, 60, f"{tag} committed")  # type: ignore[misc]
            total.append(stamps[tag] - t0)
            push_only.append(pushed - t0)
            delivered.append(arrivals[tag] - t0)
        commits = len(chain.commits()) - 1
    finally:
        await chain.close()
    return {
        "pushes": pushes,
        "commits": commits,
        "push_to_commit": summary(total),
        "push_only": summary(push_only),
        "push_to_delivery": summary(delivered),
        "delivery_to_commit": summary([t - d for t, d in zip(total, delivered, strict=True)]),
    }


def make_tags(url: str, count: int) -> None:
    """``count`` tags ``1.<i//100>.<i%100>`` on one small OCI manifest (its config blob uploaded first)."""
    config = b"{}"
    import hashlib

    cdigest = "sha256:" + hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        {
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": 2},
            "layers": [],
        }
    ).encode()
    with httpx.Client(base_url=url, timeout=30) as c:
        start = c.post(f"/v2/{IMAGE_REPO}/blobs/uploads/")
        start.raise_for_status()
        loc = start.headers["Location"]
        sep = "&" if "?" in loc else "?"
        c.put(f"{loc}{sep}digest={cdigest}", content=config).raise_for_status()
        for i in range(count):
            c.put(
                f"/v2/{IMAGE_REPO}/manifests/1.{i // 100}.{i % 100}",
                content=manifest,
                headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"},
            ).raise_for_status()


def scan_bench(tmp: Path, tags: int, scans: int) -> dict[str, Any]:
    out: dict[str, Any] = {"tags": tags}
    with start_registry(tmp / "scan-registry") as registry:
        t0 = time.monotonic()
        make_tags(registry.url, tags)
        out["setup_seconds"] = round(time.monotonic() - t0, 2)
        image = f"{registry.host}/{IMAGE_REPO}"
        for label, rps in (("fast", 1000), ("default_rate", None)):
            scan = "{interval: 0" + (f", requestsPerSecond: {rps}" if rps else "") + "}"
            remote, _ = make_repo(tmp / f"env-{label}", image, scan=scan)
            automation = ImageAutomation(
                GitWriter(str(remote), "main", tmp / f"cache-{label}"), load_environments
            )
            scanner = TagScanner(automation)
            runs = []
            for i in range(scans if rps else 2):
                (report,) = scanner.scan_all()
                if report.error:
                    raise RuntimeError(report.error)
                runs.append(
                    {
                        "seconds": report.seconds,
                        "tags": report.tags,
                        "requests": report.requests,
                        "commits": len(report.commits),
                        "first": i == 0,
                    }
                )
            out[label] = {
                "first_scan": runs[0],
                "later_scans": summary([r["seconds"] for r in runs[1:]]),
                "later_commits": sum(r["commits"] for r in runs[1:]),
            }
    return out


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-registry-") as d:
        tmp = Path(d)
        nats = NatsServer(tmp / "js")
        nats.start()
        try:
            push = await push_to_commit(tmp, nats.url, args.pushes)
        finally:
            nats.stop()
        scan = await asyncio.to_thread(scan_bench, tmp, args.tags, args.scans)
    p95 = push["push_to_commit"]["p95"]
    return {
        "push": push,
        "scan": scan,
        "anchors": {
            "argocd_image_updater_interval_s": ARGOCD_IMAGE_UPDATER_INTERVAL,
            "flux_image_repository_interval_s": FLUX_IMAGE_REPOSITORY_INTERVAL,
            "argocd_mean_wait_over_p95": round(ARGOCD_IMAGE_UPDATER_INTERVAL / 2 / p95, 1),
            "flux_mean_wait_over_p95": round(FLUX_IMAGE_REPOSITORY_INTERVAL / 2 / p95, 1),
            "p95_over_registry_delivery_p95": round(p95 / push["push_to_delivery"]["p95"], 2),
        },
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--tags", type=int, default=1000)
    parser.add_argument("--scans", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--quick", action="store_true", help="3 pushes, 100 tags, 2 scans")
    args = parser.parse_args()
    if args.quick:
        args.pushes, args.tags, args.scans = 3, 100, 2
    logging.basicConfig(level=logging.ERROR)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    try:
        result = asyncio.run(main_async(args))
    except (AssertionError, RuntimeError) as exc:
        print(f"bench failed: {exc}", file=sys.stderr)
        return 1
    push, scan, anchors = result["push"], result["scan"], result["anchors"]
    print(
        f"push -> commit through the registry's notification ({push['pushes']} pushes, "
        f"{push['commits']} commits)"
    )
    for key in ("push_to_commit", "push_only", "push_to_delivery", "delivery_to_commit"):
        s = push[key]
        print(f"  {key:<20} p50 {s['p50']:.3f} s  p95 {s['p95']:.3f} s  max {s['max']:.3f} s")
    print(
        "  vs polling: argocd-image-updater's 2 min interval waits "
        f"{anchors['argocd_image_updater_interval_s'] / 2:.0f} s"
        f" on average ({anchors['argocd_mean_wait_over_p95']}x this p95), Flux's 1 min "
        f"{anchors['flux_image_repository_interval_s'] / 2:.0f} s ({anchors['flux_mean_wait_over_p95']}x)"
    )
    print(f"scan of {scan['tags']} tags (setup {scan['setup_seconds']} s)")
    for label in ("fast", "default_rate"):
        s = scan[label]
        f = s["first_scan"]
        print(
            f"  {label:<13} first {f['seconds']:.3f} s ({f['requests']} requests, {f['commits']} commit); "
            f"later p50 {s['later_scans']['p50']:.3f} s, {s['later_commits']} commits"
        )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
