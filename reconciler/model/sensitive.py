"""Secret values this process learned by decrypting the environment repository, so no output shows them.

The SOPS render step (:mod:`reconciler.render.sops`) registers every value it decrypts with
:func:`remember`; :func:`mask` replaces each registered value found in a text by ``[REDACTED]``. Logs
(:func:`reconciler.observe.logging.redact_text`) and every pass result (:func:`mask_result`: its error,
warnings, change messages and diffs, policy findings), and through it the Git notes, NATS events and the
status page, go through :func:`mask`. A Secret's ``data`` value is registered with its base64 decoding, a
``stringData`` value with its base64 encoding (the form the API server stores and returns).

Values shorter than :data:`MIN_LENGTH` characters are not registered (masking ``"1"`` or ``"true"``
everywhere would garble every text and hide nothing worth hiding). The registry holds at most
:data:`MAX_VALUES` values, the oldest dropped first. No I/O.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.model.result import PassResult

REDACTED = "[REDACTED]"
#: The shortest value registered (characters).
MIN_LENGTH = 6
#: The shortest line of a multi-line value registered on its own (characters).
MIN_LINE_LENGTH = 16
#: The most values kept.
MAX_VALUES = 20_000

_values: OrderedDict[str, None] = OrderedDict()
_ordered: list[str] = []  # longest first, rebuilt on change
_lock = threading.Lock()


def _add(value: str) -> bool:
    if len(value) < MIN_LENGTH or value in _values:
        return False
    _values[value] = None
    while len(_values) > MAX_VALUES:
        _values.popitem(last=False)
    return True


def _add_lines(value: str) -> bool:
    """Each line of a multi-line value (a key or certificate body) on its own, so that a text quoting only
    part of it is masked too; PEM armour lines (``-----BEGIN ...``) and lines shorter than
    :data:`MIN_LINE_LENGTH` are not secret enough to mask everywhere."""
    lines = [ln.strip() for ln in value.splitlines()]
    if len(lines) < 2:
        return False
    added = False
    for line in lines:
        if len(line) >= MIN_LINE_LENGTH and not line.startswith("-----"):
            added |= _add(line)
    return added


def remember(values: Iterable[Any], *, encoded: bool = False) -> None:
    """Register decrypted values (non-strings are ignored).

    Args:
        values: plaintext values (``stringData``, or any decrypted string), or with ``encoded`` the base64
            text of Secret ``data`` values.
        encoded: the values are base64 (``data``): their decoding (when UTF-8) is registered as well;
            otherwise their base64 encoding is.
    """
    global _ordered
    changed = False
    with _lock:
        for value in values:
            if not isinstance(value, str):
                continue
            changed |= _add(value)
            if encoded:
                try:
                    plain = base64.b64decode(value, validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    continue
                changed |= _add(plain)
                changed |= _add_lines(plain)
            else:
                changed |= _add(base64.b64encode(value.encode("utf-8")).decode("ascii"))
                changed |= _add_lines(value)
        if changed:
            _ordered = sorted(_values, key=len, reverse=True)


def known() -> int:
    """How many values are registered."""
    return len(_values)


def forget_all() -> None:
    """Drop every registered value (tests)."""
    global _ordered
    with _lock:
        _values.clear()
        _ordered = []


def mask(text: str) -> str:
    """``text`` with every registered value replaced by ``[REDACTED]`` (longest values first)."""
    ordered = _ordered
    if not ordered or not text:
        return text
    for value in ordered:
        if value in text:
            text = text.replace(value, REDACTED)
    return text


def mask_result(result: PassResult) -> PassResult:
    """Mask every text of a pass result in place (error, warnings, change messages and diffs, policy
    finding messages) and return it."""
    if not _ordered:
        return result
    result.error = mask(result.error)
    result.warnings = [mask(w) for w in result.warnings]
    for change in result.changes.entries:
        change.diff = mask(change.diff)
        change.message = mask(change.message)
    for finding in result.policy:
        finding.message = mask(finding.message)
    for key, status in result.health.items():
        if status.message:
            result.health[key] = status.model_copy(update={"message": mask(status.message)})
    return result
