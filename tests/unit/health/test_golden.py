"""Golden-file tests for ``reconciler.cluster.health.assess``.

Each ``golden/*.yaml`` holds one live object (as an API server returns it), the related objects
``lookup`` can return, the clock, and the expected state and message. Format:

```yaml
description: what the case shows
now: "2026-08-01T10:00:00Z"        # RFC 3339, the `now` passed to assess
noControllerAfter: 60              # optional, seconds
useLookup: true                    # optional; false passes lookup=None
object: {...}                      # the live object
related: [...]                     # optional live objects served by lookup (by group/kind/ns/name)
expect: {state: Healthy, message: "3/3 replicas available"}
```
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _health_golden import CASES, load_case, run_case

from reconciler.model import ref_of
from reconciler.probe.contract import requirements


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_golden(path: Path) -> None:
    data = load_case(path)
    status, lookup = run_case(data)
    expect = data["expect"]
    assert (status.state.value, status.message) == (expect["state"], expect["message"]), data["description"]
    # lookup is only ever asked for the Deployment named like the object, in its namespace, and for the
    # RemoteMCPServers an Agent names tools of (their status.discoveredTools)
    obj_ref = ref_of(data["object"])
    servers = {
        (r.server.namespace, r.server.name)
        for r in requirements([data["object"]])
        if r.server.kind == "RemoteMCPServer" and r.tools
    }
    for ref in lookup.calls:
        if ref.kind == "RemoteMCPServer":
            assert ref.group == "kagent.dev" and (ref.namespace, ref.name) in servers
            continue
        assert (ref.group, ref.kind, ref.namespace, ref.name) == (
            "apps",
            "Deployment",
            obj_ref.namespace,
            obj_ref.name,
        )


def test_golden_suite_is_large_and_complete() -> None:
    """At least 60 cases, covering every kind the brief names and every reachable state."""
    cases = [load_case(p) for p in CASES]
    assert len(cases) >= 60
    kinds = {c["object"]["kind"] for c in cases}
    required = {
        "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job", "Pod", "Service",
        "PersistentVolumeClaim", "HorizontalPodAutoscaler", "CustomResourceDefinition", "Namespace",
        "ConfigMap", "Agent", "ModelConfig", "ModelProviderConfig", "RemoteMCPServer", "MCPServer",
        "GatewayClass", "Gateway", "HTTPRoute", "AgentgatewayBackend", "AgentgatewayPolicy",
    }  # fmt: skip
    assert required <= kinds, sorted(required - kinds)
    states = {c["expect"]["state"] for c in cases}
    assert {"Healthy", "Progressing", "Degraded", "Unverified"} <= states
    # every kind with a degraded signal has at least one healthy and one non-healthy case
    for kind in required - {"ConfigMap"}:
        kind_states = {c["expect"]["state"] for c in cases if c["object"]["kind"] == kind}
        assert "Healthy" in kind_states and len(kind_states) > 1, kind


def test_golden_files_are_unique() -> None:
    """No two golden files hold the same object and clock (copy-paste cases test nothing new)."""
    seen: dict[str, str] = {}
    for p in CASES:
        c = load_case(p)
        key = repr((c["object"], c.get("related"), c["now"], c.get("useLookup", True)))
        assert key not in seen, f"{p.name} duplicates {seen.get(key)}"
        seen[key] = p.name
