"""Regular expressions with Go's semantics and linear-time matching, for kustomize's selectors.

kustomize matches patch/replacement target names, namespaces and kinds, image names and replacement
``[field=value]`` path elements with Go's ``regexp`` package (RE2 syntax, no backtracking). The renderer uses
Google's RE2 through the ``google-re2`` bindings for the same syntax and the same linear running time, so a
hostile pattern such as ``(a+)+$`` cannot stall a render. Without ``google-re2`` installed it falls back to
Python's ``re`` (same results for ordinary patterns, but backtracking).
"""

from __future__ import annotations

import functools
import re
from typing import Any, Protocol

from reconciler.render.errors import RenderError

try:
    import re2 as _engine  # type: ignore[import-not-found, import-untyped, unused-ignore]

    ENGINE = "re2"
    _ERRORS: tuple[type[BaseException], ...] = (_engine.error, re.error, TypeError, ValueError)
except ImportError:  # pragma: no cover - exercised only without google-re2
    _engine = re
    ENGINE = "re"
    _ERRORS = (re.error,)


class _Pattern(Protocol):
    def fullmatch(self, string: str) -> Any: ...

    def search(self, string: str) -> Any: ...


@functools.lru_cache(maxsize=1024)
def _compile(pattern: str) -> _Pattern:
    compiled: _Pattern = _engine.compile(pattern)
    return compiled


def compile_pattern(pattern: str, *, where: str | None = None) -> _Pattern:
    """Compile ``pattern`` (cached).

    Raises:
        RenderError: naming ``where`` for a pattern RE2 does not accept.
    """
    try:
        return _compile(pattern)
    except _ERRORS as exc:
        raise RenderError(f"invalid regular expression {pattern!r}: {exc}", path=where) from None


def full_match(pattern: str, value: str, *, where: str | None = None) -> bool:
    """Whether ``pattern`` matches all of ``value``."""
    return compile_pattern(pattern, where=where).fullmatch(value) is not None


def search(pattern: str, value: str, *, where: str | None = None) -> bool:
    """Whether ``pattern`` matches somewhere in ``value`` (Go's ``MatchString``)."""
    return compile_pattern(pattern, where=where).search(value) is not None
