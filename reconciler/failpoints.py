"""Failpoints: named places in a pass where a crash test can kill the process.

The idea follows etcd's gofail and FreeBSD's fail(9): the code calls :func:`failpoint` at the points
where a crash leaves the most interesting state behind (after the render, after each object written,
after each delete, after a commit, after a push, after an acknowledgement), and a test arms one of
them. Unarmed (every production run), a call costs one dictionary lookup.

Names in use:

========== ====================================================================================
fetch      the source revision was fetched (``reconciler.reconcile.pass_``)
render     the environment was rendered, nothing written yet
inventory  the write-ahead inventory (objects about to be created) was stored
apply      one object was written (server-side apply); fires per object
prune      one object was deleted; fires per object
record     the pass's final inventory was stored
commit     ``GitWriter`` made a commit, not pushed yet
push       ``GitWriter`` pushed, the event not yet acknowledged
ack        a NATS message (image event or reconcile trigger) was acknowledged
========== ====================================================================================

Arming:

- ``RECONCILER_FAILPOINTS="apply=3,push=1"``: kill at the third ``apply`` hit (or the first ``push``),
  counted from the start of the process.
- ``RECONCILER_FAILPOINTS_FILE=/path``: the same text, read from that file whenever its modification
  time or size changes; hits are counted from that moment. A missing or empty file disarms. This is how
  a harness arms a daemon that is already running.

When an armed point fires, one line ``failpoint <name> hit <n>: SIGKILL`` goes to standard error and the
process sends itself SIGKILL: to its whole process group when it leads one (so child processes such as
``git`` die with it, as in a container kill), else to itself alone.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

ENV_SPEC = "RECONCILER_FAILPOINTS"
ENV_FILE = "RECONCILER_FAILPOINTS_FILE"

NAMES = ("fetch", "render", "inventory", "apply", "prune", "record", "commit", "push", "ack")

_lock = threading.Lock()
_armed: dict[str, int] = {}
_hits: dict[str, int] = {}
_file_stamp: tuple[float, int] | None = None


def parse_spec(text: str) -> dict[str, int]:
    """``"apply=3, push=1"`` → ``{"apply": 3, "push": 1}``.

    Raises:
        ValueError: an unknown name, a missing ``=``, or a count that is not a positive integer.
    """
    out: dict[str, int] = {}
    for part in text.replace("\n", ",").split(","):
        part = part.strip()
        if not part:
            continue
        name, sep, count = part.partition("=")
        name = name.strip()
        if not sep or name not in NAMES:
            raise ValueError(f"failpoint {part!r}: expected NAME=COUNT with NAME one of {', '.join(NAMES)}")
        try:
            n = int(count)
        except ValueError:
            n = 0
        if n < 1:
            raise ValueError(f"failpoint {part!r}: COUNT must be a positive integer")
        out[name] = n
    return out


def _arm(spec: dict[str, int]) -> None:
    _armed.clear()
    _armed.update(spec)
    _hits.clear()


def _reload_file(path: str) -> None:
    global _file_stamp
    try:
        st = os.stat(path)
        stamp: tuple[float, int] | None = (st.st_mtime, st.st_size)
    except OSError:
        stamp = None
    if stamp == _file_stamp:
        return
    _file_stamp = stamp
    text = ""
    if stamp is not None:
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except OSError:
            text = ""
    try:
        _arm(parse_spec(text))
    except ValueError as exc:
        print(f"{path}: {exc}; failpoints disarmed", file=sys.stderr, flush=True)
        _arm({})


def failpoint(name: str) -> None:
    """Count a hit of ``name`` and kill the process (SIGKILL) when it is armed for this hit.

    Args:
        name: one of :data:`NAMES`.
    """
    path = _file
    if not _armed and path is None:
        return
    with _lock:
        if path is not None:
            _reload_file(path)
        if name not in _armed:
            return
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] < _armed[name]:
            return
        print(f"failpoint {name} hit {_hits[name]}: SIGKILL", file=sys.stderr, flush=True)
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)


_file: str | None = os.environ.get(ENV_FILE) or None
try:
    _arm(parse_spec(os.environ.get(ENV_SPEC, "")))
except ValueError as _exc:  # a typo must not go unnoticed, nor stop the process
    print(f"{ENV_SPEC}: {_exc}; failpoints disarmed", file=sys.stderr, flush=True)
