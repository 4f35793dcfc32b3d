"""Notification benchmark (reconciler/observe/notify.py), all on 127.0.0.1.

1. intake: the cost of :meth:`Notifier.offer` for a failed pass's event (parse, filter, queue for two
   targets: a Slack-compatible one and a signed webhook), against the anchor measured in the same run: the
   daemon's own serialisation of that :class:`PassResult` (``model_dump_json``), which every pass does
   anyway. Printed as a ratio (the goal: under 5 times, i.e. notifications add no noticeable cost to a pass);
2. a receiver that is down: ``offer`` of ``--events`` events while nothing listens; prints the cost per
   call (the same order as 1: nothing waits for the network) and the dropped count;
3. delivery: ``--events`` distinct failures to a loopback receiver (one signed webhook target); prints
   deliveries per second and the anchor: bare aiohttp POSTs to the same receiver, one at a time.

Usage: .venv/bin/python bench/notify/bench_notify.py [--events 2000]
Bounded: every wait has a deadline; exit 1 when one passes. Goals are printed, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CollectorRegistry

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.model import Environment, PassResult  # noqa: E402
from reconciler.observe.metrics import Metrics  # noqa: E402
from reconciler.observe.notify import Notifier, SecretReader  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(tmp: Path, base: str) -> Environment:
    (tmp / "slack.yaml").write_text(f"address: {base}/slack\n")
    (tmp / "hook.yaml").write_text(f"address: {base}/hook\ntoken: bench-hmac-key-0123456789\n")
    return Environment.model_validate(
        {
            "name": "dev",
            "overlay": "overlays/dev",
            "notifications": [
                {"name": "chat", "type": "slack", "secretRef": {"file": str(tmp / "slack.yaml")}},
                {"name": "hook", "type": "webhook", "secretRef": {"file": str(tmp / "hook.yaml")}},
            ],
        }
    )


def _result(i: int) -> PassResult:
    return PassResult(
        environment="dev",
        revision=f"main@sha1:{i:040x}",
        ok=False,
        error=f"apply failed: Deployment agents/clock-mcp: connection refused ({i})",
        started_at=time.time(),
        duration=0.5,
        trigger="poll",
    )


def _per_call(fn: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        fn(i)
    return (time.perf_counter() - t0) / n


async def main(events: int) -> int:
    tmp = Path(tempfile.mkdtemp(prefix="bench-notify-"))
    received = {"n": 0}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received["n"] += 1
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hook", hook)
    app.router.add_post("/slack", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        results = [_result(i) for i in range(events)]
        anchor = _per_call(lambda i: results[i].model_dump_json().encode(), events)

        # 1. intake with the receiver up (queues large enough; deliveries run after the loop yields)
        env = _env(tmp, base)
        n1 = Notifier(
            {"dev": env}.get, SecretReader(None), metrics=Metrics(CollectorRegistry()), queue_size=2 * events
        )
        data = [r.model_dump_json().encode() for r in results]
        offer = _per_call(lambda i: n1.offer("reconciler.result.dev", data[i]), events)
        print(
            f"intake: offer {offer * 1e6:.1f} µs/event, anchor model_dump_json {anchor * 1e6:.1f} µs "
            f"→ ratio {offer / anchor:.2f} (goal < 5)"
        )

        # 3. delivery (the events queued above, to both targets)
        t0 = time.perf_counter()
        deadline = t0 + 300
        while received["n"] < 2 * events and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        took = time.perf_counter() - t0
        await n1.close()
        if received["n"] < 2 * events:
            print(f"delivery: only {received['n']} of {2 * events} within 300 s")
            return 1
        received["n"] = 0
        async with aiohttp.ClientSession() as session:
            t1 = time.perf_counter()
            for i in range(events):
                async with session.post(f"{base}/hook", data=data[i]) as resp:
                    await resp.read()
            bare = (time.perf_counter() - t1) / events
        print(
            f"delivery: {2 * events / took:.0f} notifications/s over 2 targets "
            f"({took / (2 * events) * 1e3:.2f} ms each); anchor bare POST {bare * 1e3:.2f} ms "
            f"→ ratio {took / (2 * events) / bare:.2f}"
        )

        # 2. a receiver that is down
        down = _env(tmp, f"http://127.0.0.1:{_free_port()}")
        n2 = Notifier(
            {"dev": down}.get, SecretReader(None), metrics=Metrics(CollectorRegistry()), backoff=0.01
        )
        offer_down = _per_call(lambda i: n2.offer("reconciler.result.dev", data[i]), events)
        dropped = sum(v for (t, r), v in n2.counts.items() if r == "dropped")
        print(
            f"receiver down: offer {offer_down * 1e6:.1f} µs/event (ratio to anchor "
            f"{offer_down / anchor:.2f}); {dropped} of {2 * events} dropped (queue 100 per target)"
        )
        await n2.close()
    finally:
        await runner.cleanup()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    raise SystemExit(asyncio.run(main(args.events)))
