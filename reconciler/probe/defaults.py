"""The default bounds of one probe (plain constants, importable without pydantic: ``reconciler probe``'s
options show them in ``--help``)."""

from __future__ import annotations

#: Default cap on one response body or one server-sent event, in bytes (4 MiB).
DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024
#: Default cap on the number of tools a probe accepts before it stops listing.
DEFAULT_MAX_TOOLS = 2000
#: Default cap on the number of ``tools/list`` pages a probe follows.
DEFAULT_MAX_PAGES = 200
#: Default time budget of one probe, in seconds.
DEFAULT_TIMEOUT = 10.0
