"""All Git I/O (GitPython): fetch, immutable snapshots of a revision, watching, commits and pushes."""

from reconciler.source.git import GitSource, Snapshot
from reconciler.source.watch import RepoWatcher

__all__ = ["GitSource", "RepoWatcher", "Snapshot"]
