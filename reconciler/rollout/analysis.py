"""Analysis of a rollout step: PromQL queries against a Prometheus server, each judged against its
thresholds, and the run of samples judged against ``failureLimit`` and ``inconclusiveLimit``.

One query sample is (Prometheus HTTP API ``GET /api/v1/query``,
https://prometheus.io/docs/prometheus/latest/querying/api/#instant-queries):

* ``Passed``: one finite value within ``min``/``max``;
* ``Failed``: a value outside them, or — unless the query says ``onEmpty`` otherwise — an empty result
  or NaN (as Flagger: missing evidence never promotes);
* ``Inconclusive``: Prometheus could not answer (down, slow, HTTP 5xx) or the result is not one series;
* ``Error``: Prometheus refused the query (``bad_data``: invalid PromQL, HTTP 400/422) — a definition
  error the user must fix, reported with the query's name and never retried as if it were transient.

A query's samples decide (:func:`decide`): more than ``failureLimit`` failures fail the step (abort),
more than ``inconclusiveLimit`` inconclusive samples pause it (``Inconclusive``, as Argo Rollouts), and
an error fails it.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

import aiohttp

from reconciler.model.rollout import (
    AnalysisQuery,
    OnEmpty,
    ProbeGate,
    RolloutSpec,
    Sample,
    SampleOutcome,
    render_query,
)


class StepVerdict(StrEnum):
    """What the samples of a step say."""

    PASSED = "Passed"
    FAILED = "Failed"
    INCONCLUSIVE = "Inconclusive"
    RUNNING = "Running"


class PrometheusError(Exception):
    """Prometheus could not be asked (connection refused, timeout, HTTP 5xx)."""


class QueryRejected(Exception):
    """Prometheus refused the query as invalid (``bad_data``): the message is Prometheus's."""


class Prometheus:
    """A Prometheus HTTP API client for instant queries (``/api/v1/query``) and query validation
    (``/api/v1/format_query``, Prometheus ≥ 2.41: parses without evaluating).

    Args:
        url: the base URL, e.g. ``http://127.0.0.1:9090``.
        timeout: seconds per request.
    """

    def __init__(self, url: str, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    async def _get(self, path: str, params: Mapping[str, str]) -> Any:
        try:
            async with (
                aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout)) as http,
                http.get(self.url + path, params=dict(params)) as resp,
            ):
                body = await resp.content.read(4 * 1024 * 1024)
                status = resp.status
        except TimeoutError:
            raise PrometheusError(f"no answer from {self.url} within {self.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise PrometheusError(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}") from None
        try:
            data = json.loads(body)
        except ValueError:
            raise PrometheusError(f"{self.url}{path}: HTTP {status}, not JSON") from None
        if not isinstance(data, dict):
            raise PrometheusError(f"{self.url}{path}: HTTP {status}, unexpected body")
        if data.get("status") != "success":
            kind, error = data.get("errorType", ""), data.get("error", "")
            if kind == "bad_data" or status in (400, 422):
                raise QueryRejected(str(error) or f"HTTP {status}")
            raise PrometheusError(f"{self.url}{path}: HTTP {status}: {kind} {error}".strip())
        return data.get("data")

    async def validate(self, promql: str) -> None:
        """Parse ``promql`` on the server without evaluating it.

        Raises:
            QueryRejected: it is not valid PromQL.
            PrometheusError: Prometheus could not be asked.
        """
        await self._get("/api/v1/format_query", {"query": promql})

    async def instant(self, promql: str) -> list[float]:
        """The values of an instant query: one per series of a vector, one for a scalar; NaN kept.

        Raises:
            QueryRejected: invalid PromQL.
            PrometheusError: Prometheus could not be asked, or the result type is a matrix or string.
        """
        data = await self._get("/api/v1/query", {"query": promql})
        kind = data.get("resultType") if isinstance(data, dict) else None
        result = data.get("result") if isinstance(data, dict) else None
        if kind == "scalar" and isinstance(result, list) and len(result) == 2:
            return [float(result[1])]
        if kind == "vector" and isinstance(result, list):
            return [float(s["value"][1]) for s in result if isinstance(s, dict) and "value" in s]
        raise PrometheusError(f"query result of type {kind!r}: use an instant vector or a scalar")


def _fmt(v: float) -> str:
    return f"{v:.6g}"


def judge_values(query: AnalysisQuery, promql: str, values: Sequence[float], at: float) -> Sample:
    """A sample from the values Prometheus returned (see the module docstring)."""
    finite = [v for v in values if not math.isnan(v)]
    bounds = ", ".join(
        part for part in (f"min {_fmt(query.min)}" if query.min is not None else "",
                          f"max {_fmt(query.max)}" if query.max is not None else "") if part
    )  # fmt: skip
    if len(values) > 1:
        return Sample(
            query=query.name, promql=promql, outcome=SampleOutcome.INCONCLUSIVE, at=at,
            message=f"returned {len(values)} series; aggregate the query to one value ({bounds})",
        )  # fmt: skip
    if not finite:
        what = "no data (empty result)" if not values else "NaN"
        outcome = {
            OnEmpty.FAIL: SampleOutcome.FAILED,
            OnEmpty.INCONCLUSIVE: SampleOutcome.INCONCLUSIVE,
            OnEmpty.PASS: SampleOutcome.PASSED,
        }[query.on_empty]
        return Sample(
            query=query.name, promql=promql, outcome=outcome, at=at,
            message=f"{what}, counted as {outcome.value} (onEmpty: {query.on_empty.value}; {bounds})",
        )  # fmt: skip
    value = finite[0]
    over = query.max is not None and value > query.max
    under = query.min is not None and value < query.min
    outcome = SampleOutcome.FAILED if over or under else SampleOutcome.PASSED
    return Sample(
        query=query.name, promql=promql, value=value, outcome=outcome, at=at,
        message=f"{_fmt(value)} ({bounds}): {outcome.value}",
    )  # fmt: skip


async def sample(prometheus: Prometheus, query: AnalysisQuery, values: Mapping[str, str]) -> Sample:
    """Evaluate ``query`` once with its placeholders filled from ``values``. Never raises: an
    unreachable Prometheus is ``Inconclusive``, an invalid query an ``Error``."""
    promql = render_query(query.query, dict(values))
    at = time.time()
    try:
        found = await prometheus.instant(promql)
    except QueryRejected as exc:
        return Sample(
            query=query.name, promql=promql, outcome=SampleOutcome.ERROR, at=at,
            message=f"Prometheus refused the query: {exc}",
        )  # fmt: skip
    except PrometheusError as exc:
        return Sample(
            query=query.name, promql=promql, outcome=SampleOutcome.INCONCLUSIVE, at=at,
            message=f"no evidence: {exc}",
        )  # fmt: skip
    return judge_values(query, promql, found, at)


def decide(query: AnalysisQuery | ProbeGate, samples: Sequence[Sample]) -> StepVerdict:
    """The verdict of one gate's (query's or probe's) samples so far: ``Failed`` after an error or more than
    ``failureLimit`` failures, ``Inconclusive`` after more than ``inconclusiveLimit`` inconclusive
    samples, else ``Running`` (the step's time decides when ``Running`` becomes ``Passed``)."""
    mine = [s for s in samples if s.query == query.name]
    if any(s.outcome is SampleOutcome.ERROR for s in mine):
        return StepVerdict.FAILED
    if sum(s.outcome is SampleOutcome.FAILED for s in mine) > query.failure_limit:
        return StepVerdict.FAILED
    if sum(s.outcome is SampleOutcome.INCONCLUSIVE for s in mine) > query.inconclusive_limit:
        return StepVerdict.INCONCLUSIVE
    return StepVerdict.RUNNING


def validate_queries(
    spec: RolloutSpec, values: Mapping[str, str], default_url: str | None, *, where: str
) -> str | None:
    """Check every query of ``spec`` (placeholders filled from ``values``) with Prometheus's parser
    (``/api/v1/format_query``) before a rollout moves any traffic. Returns the first refusal, naming
    ``where`` (``envs/<env>.yaml: rollouts[app=…]``), the query and Prometheus's message; ``None`` when
    every query parses, or when no Prometheus is configured or reachable (the samples then say so, and
    the step pauses rather than promote). Synchronous: call it from a worker thread, not an event loop."""
    url = spec.analysis.prometheus or default_url
    if not url or not spec.analysis.queries:
        return None
    prom = Prometheus(url, spec.analysis.timeout)

    async def check() -> str | None:
        for q in spec.analysis.queries:
            try:
                await prom.validate(render_query(q.query, dict(values)))
            except QueryRejected as exc:
                return f"{where}.analysis.queries[name={q.name}].query: invalid PromQL: {exc}"
            except PrometheusError:
                return None
        return None

    return asyncio.run(check())
