"""Structured logs (structlog): JSON when not on a terminal, readable on one; never a secret value.

Both structlog loggers and the standard library's :mod:`logging` (which the daemon and the libraries use)
go through one :class:`structlog.stdlib.ProcessorFormatter` on the root logger, following structlog's
"rendering using structlog-based formatters within logging" recipe
(https://www.structlog.org/en/stable/standard-library.html). So every line, whoever wrote it, gets:

* ``timestamp`` (ISO 8601, UTC), ``level``, ``logger``, ``event``;
* ``environment``, ``revision`` and ``object`` — from the context bound with :func:`log_context` (or
  passed as keys), ``null`` in JSON lines when not applicable, so the schema of a line never changes;
* every value passed through :func:`redact`: keys that name a secret (``password``, ``token``,
  ``authorization`` …), Kubernetes Secret ``data``/``stringData``, and secret-looking text anywhere in a
  string (bearer tokens, URL passwords, PEM private keys, JWTs, well-known token prefixes) and every
  value the SOPS render step decrypted (:mod:`reconciler.model.sensitive`) become ``[REDACTED]``.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any, TextIO

import structlog
from pydantic import BaseModel
from structlog.typing import EventDict, Processor, WrappedLogger

from reconciler.model import ObjectRef, sensitive

REDACTED = "[REDACTED]"
#: The keys every line carries.
CONTEXT_KEYS = ("environment", "revision", "object")
_HANDLER_MARK = "_reconciler_observe_handler"
_JSON_MARK = "_reconciler_json_lines"

_SECRET_KEY = re.compile(
    r"(?i)(^|[-_.])(pass(word|wd|phrase)?|secret|token|api[-_]?key|apikey|authorization|credentials?|"
    r"private[-_]?key|cookie|set-cookie|session[-_]?id|access[-_]?key|client[-_]?secret|bearer)($|[-_.])"
    r"|(password|secret|token|apikey|privatekey|secretkey|credential)s?$"
)
#: Patterns of secret-looking text and what replaces the match (``\1`` keeps a harmless prefix).
_SECRET_TEXT: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(-----END [A-Z0-9 ]*PRIVATE KEY-----|$)", re.S),
        REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    (re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@"), r"\1" + REDACTED + "@"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}"), REDACTED),
    (re.compile(r"\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"), REDACTED),
    (re.compile(r"\b(sk|rk|pk)-[A-Za-z0-9_-]{16,}"), REDACTED),
    (re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,}"), REDACTED),
    (re.compile(r"\bA(KIA|SIA)[0-9A-Z]{16}\b"), REDACTED),
    (re.compile(r"\bglpat-[A-Za-z0-9_-]{20,}"), REDACTED),
    (
        re.compile(
            r"(?i)\b((?:[a-z0-9]+[-_])*(?:password|passwd|secret|token|api[-_]?key|apikey))"
            r"(\"?\s*[=:]\s*\"?)(?!\[REDACTED\])[^\s\"',;&}]+"
        ),
        r"\1\2" + REDACTED,
    ),
]
_MAX_DEPTH = 12


def is_secret_key(key: str) -> bool:
    """Whether a mapping key names a secret value (``password``, ``api_key``, ``Authorization`` …)."""
    return bool(_SECRET_KEY.search(key))


def redact_text(text: str) -> str:
    """``text`` with every secret-looking part, and every value the SOPS render step decrypted
    (:func:`reconciler.model.sensitive.mask`), replaced by ``[REDACTED]``."""
    text = sensitive.mask(text)
    for pattern, repl in _SECRET_TEXT:
        text = pattern.sub(repl, text)
    return text


def redact(value: Any, _depth: int = 0) -> Any:
    """A copy of ``value`` with secrets replaced by ``[REDACTED]`` (inputs are never modified).

    Mappings: values under secret-naming keys are replaced whole; a mapping with ``kind: Secret`` has
    every ``data``/``stringData`` value replaced (keys kept). Strings: :func:`redact_text`. pydantic
    models are dumped to JSON-compatible data first; :class:`ObjectRef` becomes ``Kind/ns/name``.
    """
    if _depth > _MAX_DEPTH:
        return "[…]"
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, ObjectRef):
        return str(value)
    if isinstance(value, BaseModel):
        return redact(value.model_dump(mode="json"), _depth + 1)
    if isinstance(value, Mapping):
        secret_object = value.get("kind") == "Secret"
        out: dict[Any, Any] = {}
        for k, v in value.items():
            if isinstance(k, str) and is_secret_key(k) and v not in (None, "", [], {}):
                out[k] = REDACTED
            elif secret_object and k in ("data", "stringData") and isinstance(v, Mapping):
                out[k] = {dk: REDACTED for dk in v}
            else:
                out[k] = redact(v, _depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(v, _depth + 1) for v in value]
    if isinstance(value, bytes):
        return redact_text(value.decode("utf-8", "replace"))
    return value


def redact_processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: :func:`redact` over the whole event (message, keys, exception text)."""
    out: EventDict = {}
    for k, v in event_dict.items():
        if k.startswith("_") or k in ("level", "logger", "timestamp"):
            out[k] = v
        elif is_secret_key(k) and v not in (None, "", [], {}):
            out[k] = REDACTED
        else:
            out[k] = redact(v)
    return out


def _context_keys(fill: bool) -> Processor:
    def processor(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        for key in CONTEXT_KEYS:
            value = event_dict.get(key)
            if isinstance(value, ObjectRef):
                event_dict[key] = str(value)
            elif value is None:
                if fill:
                    event_dict[key] = None
                else:
                    event_dict.pop(key, None)
        return event_dict

    return processor


_FIRST = ("timestamp", "level", "logger", "event", *CONTEXT_KEYS)


def _order_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Put timestamp, level, logger, event and the context keys first (easier to read and to grep)."""
    head = {k: event_dict[k] for k in _FIRST if k in event_dict}
    head.update((k, v) for k, v in event_dict.items() if k not in head)
    return head


def _shared_processors(fill: bool) -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _context_keys(fill),
        structlog.processors.StackInfoRenderer(),
    ]


def configure_logging(
    json: bool | None = None, level: str | int = "INFO", *, stream: TextIO | None = None
) -> None:
    """Route structlog and standard-library logging to ``stream`` as JSON lines or readable text.

    Idempotent: calling it again replaces the handler it installed before (other handlers stay).

    Args:
        json: JSON lines when true, readable (coloured on a terminal) lines when false; ``None`` picks
            JSON unless ``stream`` is a terminal.
        level: the root level (``"DEBUG"``, ``"INFO"`` … or a :mod:`logging` number).
        stream: where lines go; default standard error.

    Raises:
        ValueError: for an unknown level name.
    """
    out = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(out, "isatty") and out.isatty())
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"unknown log level {level!r} (use DEBUG, INFO, WARNING, ERROR)")
        level = numeric
    shared = _shared_processors(fill=json)
    renderer: Processor
    if json:
        renderer = structlog.processors.JSONRenderer(sort_keys=False, default=str)
    else:
        colors = bool(hasattr(out, "isatty") and out.isatty())
        renderer = structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), *shared],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,  # traceback to text first, so redaction sees it
            redact_processor,
            _order_keys,
            renderer,
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    setattr(handler, _JSON_MARK, json)
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, _HANDLER_MARK, False):
            root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def logs_as_json() -> bool:
    """Whether :func:`configure_logging` installed JSON lines (then nothing else should be written to its
    stream in another shape: a log collector reads every line as JSON)."""
    return any(getattr(h, _JSON_MARK, False) for h in logging.getLogger().handlers)


def get_logger(name: str) -> Any:
    """A structlog logger named ``name`` (a :class:`structlog.stdlib.BoundLogger` once configured)."""
    return structlog.stdlib.get_logger(name)


@contextmanager
def log_context(**values: Any) -> Iterator[None]:
    """Bind ``environment``, ``revision``, ``object`` (or any key) to every line logged inside the block.

    Context variables follow :func:`asyncio.to_thread` and tasks, so binding around
    ``await asyncio.to_thread(run_pass, …)`` labels the pass's lines too. ``None`` values are skipped.
    """
    clean = {k: (str(v) if isinstance(v, ObjectRef) else v) for k, v in values.items() if v is not None}
    with structlog.contextvars.bound_contextvars(**clean):
        yield


def redact_mapping(values: MutableMapping[str, Any]) -> dict[str, Any]:
    """:func:`redact` for a mapping, typed as a dict (for callers that log structured payloads)."""
    out = redact(dict(values))
    assert isinstance(out, dict)
    return out
