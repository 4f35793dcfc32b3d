"""Rich consoles made on first use, so that the command line imports rich only when a command prints
through it (``--help`` and ``build`` do not: tests/unit/test_cli_imports.py)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from rich.console import Console


class _ConsoleOnFirstUse:
    """Stands for a :class:`rich.console.Console` on standard output (or standard error), which it makes
    when it is first asked for an attribute."""

    def __init__(self, *, stderr: bool) -> None:
        self._stderr = stderr
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            stream = sys.stderr if self._stderr else sys.stdout
            self._console = Console(stderr=self._stderr, width=None if stream.isatty() else 160)
        return getattr(self._console, name)


def lazy_console(*, stderr: bool = False) -> Console:
    """A console on standard output (standard error with ``stderr``), 160 columns wide when that is not a
    terminal; rich is imported when it is first used."""
    return cast("Console", _ConsoleOnFirstUse(stderr=stderr))


def escape(markup: str) -> str:
    """:func:`rich.markup.escape` (rich imported on first use)."""
    from rich.markup import escape as rich_escape

    return rich_escape(markup)
