"""Unit tests of the MCP server's access rules (reconciler.mcpserver.access): token authentication, the
per-caller token bucket, the two allow-lists a write tool needs, and Secret masking of rendered objects."""

from __future__ import annotations

import hashlib

from reconciler.mcpserver.access import Access, Caller, RateLimiter, TokensFile
from reconciler.mcpserver.tools import MASK, mask_secrets

TOKEN = "t" * 20


def _access() -> Access:
    digest = hashlib.sha256(b"u" * 20).hexdigest()
    return Access(
        tokens=TokensFile.model_validate(
            {
                "callers": [
                    {"identity": "ops", "token": TOKEN, "allow": ["requestSync"]},
                    {"identity": "ci", "tokenSha256": digest, "ratePerSecond": 2},
                ]
            }
        )
    )


def test_authenticate_by_token_or_its_digest() -> None:
    access = _access()
    ops = access.authenticate(f"Bearer {TOKEN}")
    assert isinstance(ops, Caller) and ops.identity == "ops" and ops.allow == {"requestSync"}
    ci = access.authenticate("bearer " + "u" * 20)
    assert isinstance(ci, Caller) and ci.identity == "ci" and ci.burst == 4
    assert access.authenticate(None) == "missing bearer token: send 'Authorization: Bearer <token>'"
    assert access.authenticate(f"Basic {TOKEN}") == "the Authorization header is not 'Bearer <token>'"
    assert access.authenticate("Bearer nope") == "unknown bearer token"
    anonymous = Access().authenticate(None)
    assert isinstance(anonymous, Caller) and anonymous.identity == "anonymous" and not anonymous.allow


def test_token_bucket_per_caller() -> None:
    limiter = RateLimiter()
    a = Caller("a", frozenset(), rate_per_second=1.0, burst=3)
    b = Caller("b", frozenset(), rate_per_second=1.0, burst=3)
    assert [limiter.take(a, now=100.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.take(b, now=100.0)  # another caller has a bucket of its own
    assert not limiter.take(a, now=100.5)
    assert limiter.take(a, now=101.01)  # refilled one call per second
    assert not limiter.take(a, now=101.02)


def test_write_needs_both_allow_lists() -> None:
    access = _access()
    ops = access.authenticate(f"Bearer {TOKEN}")
    assert isinstance(ops, Caller)
    assert access.write_refusal(ops, "requestSync", "dev", ["requestSync"]) is None
    why = access.write_refusal(ops, "requestSync", "prod", [])
    assert (
        why
        == "tool requestSync is disabled for environment 'prod': envs/prod.yaml mcp.allow does not list it "
        "(allowed: none)"
    )
    why = access.write_refusal(ops, "proposePromotion", "dev", ["proposePromotion"])
    assert why == "caller 'ops' may not call proposePromotion (its allow-list in the tokens file)"
    local = access.local()
    assert access.write_refusal(local, "proposeRollback", "dev", ["proposeRollback"]) is None


def test_secret_values_are_masked() -> None:
    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"a": "eA=="},
        "stringData": {"b": "x"},
    }
    assert mask_secrets(secret) == {**secret, "data": {"a": MASK}, "stringData": {"b": MASK}}
    assert secret["data"] == {"a": "eA=="}  # the input is not changed
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "data": {"a": "b"}}
    assert mask_secrets(cm) is cm
