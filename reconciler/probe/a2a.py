"""A2A health probe: fetch an agent's card and check it.

Spec followed: A2A 1.0 agent card (``/.well-known/agent-card.json``, since A2A 0.3.0), falling back to
the older ``/.well-known/agent.json``; the card is parsed and checked for required fields with the
official ``a2a-sdk`` (``a2a.client.card_resolver.parse_agent_card`` maps 0.3-era fields to 1.0,
``a2a.utils.proto_utils.validate_proto_required_fields`` checks the fields the spec marks REQUIRED).
The fetch itself is a bounded aiohttp GET (a size cap the SDK's resolver does not have).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from a2a.client.card_resolver import parse_agent_card
from a2a.utils.errors import InvalidParamsError
from a2a.utils.proto_utils import validate_proto_required_fields
from google.protobuf.json_format import ParseError

from reconciler.model.health import HealthState
from reconciler.probe._http import ProbeFailure, parse_json, read_body
from reconciler.probe._http import os_reason as _os_reason
from reconciler.probe.models import A2AProbeResult, ProbeLimits, SkillInfo

log = logging.getLogger(__name__)

#: The well-known card paths, newest first.
CARD_PATHS = ("/.well-known/agent-card.json", "/.well-known/agent.json")


def card_urls(url: str) -> list[tuple[str, str]]:
    """The (path, URL) pairs to try for an agent at ``url``: ``url`` itself when it already ends with a
    well-known card path, else each well-known path appended to ``url`` (so a base path such as kagent's
    ``/api/a2a/<namespace>/<name>`` is kept)."""
    path = urlsplit(url).path
    for p in CARD_PATHS:
        if path.endswith(p):
            return [(p, url)]
    base = url.rstrip("/")
    return [(p, base + p) for p in CARD_PATHS]


async def probe_a2a(
    url: str,
    headers: Mapping[str, str] | None = None,
    *,
    expected_skills: Sequence[str] = (),
    limits: ProbeLimits | None = None,
) -> A2AProbeResult:
    """Fetch and check the A2A agent card of the agent at ``url`` (its base URL or the card's URL).

    ``expected_skills`` are skill ids or names that must be on the card (``Degraded`` otherwise).
    ``headers`` go on every request and are never logged or reported. ``limits.timeout`` (seconds)
    bounds the whole probe and ``limits.max_response_bytes`` the card. Never raises for anything the
    server does: ``state`` and ``reason`` say what happened (see :class:`A2AProbeResult`).
    """
    limits = limits or ProbeLimits()
    started = time.monotonic()
    result = A2AProbeResult(url=url, state=HealthState.FAILED)
    try:
        async with asyncio.timeout(limits.timeout):
            await _fetch(result, url, headers, limits, expected_skills)
    except TimeoutError:
        result.state, result.reason = (
            HealthState.FAILED,
            f"timed out after {limits.timeout:g} s fetching the card",
        )
    except ProbeFailure as e:
        result.state, result.reason = HealthState.FAILED, str(e)
    except aiohttp.ClientConnectorError as e:
        result.state = HealthState.FAILED
        result.reason = f"cannot connect to {urlsplit(url).netloc}: {_os_reason(e.os_error)}"
    except (aiohttp.ClientError, OSError, ValueError) as e:
        result.state, result.reason = HealthState.FAILED, f"{e.__class__.__name__}: {str(e)[:160]}"
    result.latency = time.monotonic() - started
    log.debug("a2a probe %s: %s %s", url, result.state.value, result.reason)
    return result


async def _fetch(
    result: A2AProbeResult,
    url: str,
    headers: Mapping[str, str] | None,
    limits: ProbeLimits,
    expected_skills: Sequence[str],
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.timeout)
    async with aiohttp.ClientSession(headers=dict(headers or {}), timeout=timeout) as http:
        tried: list[str] = []
        for path, card_url in card_urls(url):
            async with http.get(card_url, headers={"Accept": "application/json"}) as resp:
                if resp.status == 404:
                    tried.append(path)
                    continue
                what = f"agent card at {path}"
                if resp.status >= 300:
                    raise ProbeFailure(f"{what}: HTTP {resp.status}")
                data = parse_json(await read_body(resp, limits.max_response_bytes, what), what)
                result.card_path = path
                _judge(result, data, expected_skills, what)
                return
        raise ProbeFailure(f"no agent card: HTTP 404 at {' and '.join(tried)}")


def _judge(result: A2AProbeResult, data: Any, expected_skills: Sequence[str], what: str) -> None:
    try:
        card = parse_agent_card(data)
    except (ParseError, TypeError, ValueError) as e:
        raise ProbeFailure(f"{what}: not an A2A agent card ({str(e)[:160]})") from None
    result.name = card.name
    result.description = card.description
    result.version = card.version
    result.protocol_versions = sorted(
        {i.protocol_version for i in card.supported_interfaces if i.protocol_version}
    )
    result.skills = [
        SkillInfo(id=s.id, name=s.name, description=s.description, tags=list(s.tags)) for s in card.skills
    ]
    try:
        validate_proto_required_fields(card)
    except InvalidParamsError as e:
        errors = e.data.get("errors", []) if isinstance(e.data, dict) else []
        fields = sorted({str(x.get("field", x)) if isinstance(x, dict) else str(x) for x in errors})
        result.state = HealthState.DEGRADED
        result.reason = f"{what}: required fields missing or empty: {', '.join(fields)[:300]}"
        return
    known = {s.id for s in result.skills} | {s.name for s in result.skills}
    result.missing_skills = [s for s in expected_skills if s not in known]
    if result.missing_skills:
        result.state = HealthState.DEGRADED
        result.reason = f"missing skills: {', '.join(result.missing_skills)}"
        return
    result.state = HealthState.HEALTHY
    result.reason = f"agent card {result.name!r} with {len(result.skills)} skills"
