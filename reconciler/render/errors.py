"""The error type raised by the overlay renderer."""

from __future__ import annotations


class RenderError(Exception):
    """A kustomization could not be rendered.

    Attributes:
        path: the file (or directory) at fault, as given to or discovered by the renderer, or ``None``.
        line: the 1-based line inside ``path`` where the fault was found, or ``None``.
        message: what is wrong, in words.

    ``str(e)`` is ``"<path>:<line>: <message>"``; parts that are ``None`` are left out.
    """

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.path = path
        self.line = line
        self.message = message
        super().__init__(self.__str__())

    def __str__(self) -> str:
        prefix = ""
        if self.path is not None:
            prefix = f"{self.path}:"
            if self.line is not None:
                prefix += f"{self.line}:"
            prefix += " "
        elif self.line is not None:
            prefix = f"{self.line}: "
        return f"{prefix}{self.message}"
