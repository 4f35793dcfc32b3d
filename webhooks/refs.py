"""Image reference parsing shared by the registry parsers.

The grammar is the Docker/OCI reference grammar (distribution/reference, ``reference.go``):
``[registry/]path[:tag][@digest]`` where the first path component is a registry host only when it
contains a ``.`` or a ``:`` (a port), is ``localhost``, or is a bracketed IPv6 address. A port is never a
tag: the tag is looked for only in the LAST path component.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from webhooks.events import DOCKER_HUB, normalise_registry

__all__ = ["ImageRef", "parse_image_reference"]

_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True)
class ImageRef:
    """A split image reference; ``registry`` is normalised (``docker.io`` for Docker Hub)."""

    registry: str
    repository: str
    tag: str | None
    digest: str | None


def parse_image_reference(ref: str) -> ImageRef:
    """Split ``[scheme://][registry/]repository[:tag][@digest]`` into its parts.

    Args:
        ref: the reference as a registry or event reports it, e.g.
            ``harbor.example:8443/team/app:1.0`` or ``us-docker.pkg.dev/p/r/app@sha256:...``.
            A leading URL scheme (``https://``) is tolerated and dropped.

    Returns:
        The parts; ``tag``/``digest`` are ``None`` when absent. A reference without a registry host is
        a Docker Hub reference (``docker.io``); its path is kept as written (no ``library/`` added).

    Raises:
        ValueError: on an empty reference, an empty path component or an invalid registry host.
        Tag/digest/repository grammar is checked later by :class:`webhooks.events.ImagePushed`.
    """
    value = _SCHEME.sub("", ref.strip())
    if not value:
        raise ValueError("empty image reference")
    digest: str | None = None
    if "@" in value:
        value, digest = value.split("@", 1)
    components = value.split("/")
    tag: str | None = None
    last = components[-1]
    if ":" in last:
        last, tag = last.split(":", 1)
        components[-1] = last
    first = components[0]
    if len(components) > 1 and (
        "." in first or ":" in first or first == "localhost" or first.startswith("[")
    ):
        registry = normalise_registry(first)
        path = components[1:]
    else:
        registry = DOCKER_HUB
        path = components
    if any(not c for c in path):
        raise ValueError(f"image reference {ref!r} has an empty path component")
    return ImageRef(registry=registry, repository="/".join(path), tag=tag or None, digest=digest or None)
