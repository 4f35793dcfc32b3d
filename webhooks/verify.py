"""Delivery authentication: HMAC-SHA256 signatures, shared tokens in a header, secret path tokens.

All comparisons use :func:`hmac.compare_digest` (constant time in the length of the compared values).
Signature schemes:

* GitHub ``X-Hub-Signature-256: sha256=<hex>`` — HMAC-SHA256 of the raw body
  (https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
* Gitea/Forgejo ``X-Gitea-Signature: <hex>`` — same MAC, no prefix.
* Bitbucket Cloud and Data Center ``X-Hub-Signature: sha256=<hex>``.
* Generic ``X-Signature: sha256=<hex>``.
* GitLab ``X-Gitlab-Token: <token>`` and Harbor ``Authorization: <configured value>`` send the secret itself.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

from webhooks.config import AuthMode

__all__ = ["AuthError", "AuthSpec", "hmac_sha256_hex", "verify"]


class AuthError(Exception):
    """The delivery is not authenticated (→ 401). The message says why, never what was expected."""


@dataclass(frozen=True)
class AuthSpec:
    """How one provider authenticates a delivery.

    Attributes:
        mode: HMAC over the body, token in a header, or token in the URL path.
        headers: header names to look in, in order (HMAC: the first one present is used; TOKEN: any
            present header whose value matches is enough).
        prefix: text before the hex digest in an HMAC header (``sha256=`` or empty).
    """

    mode: AuthMode
    headers: tuple[str, ...] = ()
    prefix: str = ""


def hmac_sha256_hex(secret: bytes, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 of ``body`` keyed with ``secret`` (RFC 2104 / FIPS 180-4)."""
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _b(value: str) -> bytes:
    return value.encode("utf-8", errors="replace")


def verify(
    spec: AuthSpec, secret: bytes, headers: Mapping[str, str], body: bytes, path_token: str | None
) -> None:
    """Check that a delivery carries valid proof of the shared ``secret``.

    Args:
        spec: the provider's (or receiver's override) scheme.
        secret: the receiver's secret, UTF-8 bytes.
        headers: request headers; lookups must be case-insensitive (aiohttp's ``CIMultiDictProxy``).
        body: the raw request body exactly as received (HMAC is computed over these bytes).
        path_token: the token from ``/hook/<name>/<token>``, or ``None`` when the path has none.

    Raises:
        AuthError: missing or wrong signature/token, or a token in the path of a receiver that does
            not use path tokens (a secret must not travel where it is not expected).
    """
    if spec.mode is AuthMode.PATH:
        if path_token is None:
            raise AuthError("missing path token: POST /hook/<receiver>/<token>")
        if not hmac.compare_digest(_b(path_token), secret):
            raise AuthError("bad path token")
        return
    if path_token is not None:
        raise AuthError("this receiver does not take a path token")
    if spec.mode is AuthMode.HMAC:
        for name in spec.headers:
            value = headers.get(name)
            if value is None:
                continue
            value = value.strip()
            if spec.prefix:
                if not value.lower().startswith(spec.prefix.lower()):
                    raise AuthError(f"{name}: expected '{spec.prefix}<hex>'")
                value = value[len(spec.prefix) :]
            expected = hmac_sha256_hex(secret, body)
            if not hmac.compare_digest(_b(value.lower()), _b(expected)):
                raise AuthError(f"{name}: signature does not match the body")
            return
        raise AuthError(f"missing signature header ({' or '.join(spec.headers)})")
    # AuthMode.TOKEN
    present = [(name, value) for name in spec.headers if (value := headers.get(name)) is not None]
    if not present:
        raise AuthError(f"missing token header ({' or '.join(spec.headers)})")
    ok = False
    for _name, value in present:
        v = _b(value.strip())
        # Compare every candidate (no early exit) so timing does not reveal which one matched.
        exact = hmac.compare_digest(v, secret)
        bearer = hmac.compare_digest(v, b"Bearer " + secret)
        ok = ok or exact or bearer
    if not ok:
        raise AuthError(f"{present[0][0]}: token does not match")
