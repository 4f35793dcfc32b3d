"""A bounded in-memory cache of render results keyed by (directory, content or Git tree digest).

Entries are stored as built and handed out as copies made by :func:`clone`, a copier specialised for the
JSON-shaped values the renderer produces (dicts, lists, str, int, float, bool, None), several times faster
than ``copy.deepcopy``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any


def clone(value: Any) -> Any:
    """A deep copy of a JSON-shaped value (dict/list nesting of scalars)."""
    if isinstance(value, dict):
        return {k: clone(v) if isinstance(v, (dict, list)) else v for k, v in value.items()}
    if isinstance(value, list):
        return [clone(v) if isinstance(v, (dict, list)) else v for v in value]
    return value


class RenderCache:
    """LRU cache of rendered object lists.

    Args:
        max_entries: how many (directory, digest) results to keep.
    """

    def __init__(self, max_entries: int = 256) -> None:
        self._data: OrderedDict[tuple[str, str], list[dict[str, Any]]] = OrderedDict()
        self._attachments: dict[tuple[str, str], dict[str, bytes]] = {}
        self._max = max_entries
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, str]) -> list[dict[str, Any]] | None:
        """The stored result for ``key`` or ``None`` (counts hits and misses)."""
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(
        self,
        key: tuple[str, str],
        value: list[dict[str, Any]],
        *,
        attachments: dict[str, bytes] | None = None,
    ) -> None:
        """Store ``value`` under ``key`` (with ``attachments``: the SOPS-encrypted files the render read,
        path → bytes), evicting the least recently used entry when full."""
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            if attachments:
                self._attachments[key] = dict(attachments)
            else:
                self._attachments.pop(key, None)
            while len(self._data) > self._max:
                old, _ = self._data.popitem(last=False)
                self._attachments.pop(old, None)

    def attachments(self, key: tuple[str, str]) -> dict[str, bytes]:
        """The attachments stored with ``key`` (empty when none)."""
        with self._lock:
            return dict(self._attachments.get(key, {}))
