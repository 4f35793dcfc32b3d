"""Helpers for the promotion tests: environment repositories with a bare remote, and plain Git commands
run as a person would (another clone, another identity)."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64
DIGEST_C = "sha256:" + "c" * 64
CLOCK = "ghcr.io/acme/clock-mcp"


def git(cwd: Path, *args: str, who: str = "Dana Dev <dana@example.test>", check: bool = True) -> str:
    """Run git in ``cwd`` as ``who`` (author and committer); returns stdout."""
    name, _, email = who.partition(" <")
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email.rstrip(">"),
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email.rstrip(">"),
        "GIT_CONFIG_NOSYSTEM": "1",
    }
    proc = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)}: {proc.stderr}")
    return proc.stdout.strip()


@dataclass
class Remote:
    """A bare remote and a person's clone of it."""

    bare: Path
    work: Path

    def write(self, rel: str, text: str) -> None:
        p = self.work / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)

    def read(self, rel: str) -> str:
        return (self.work / rel).read_text()

    def commit(self, message: str, *, who: str = "Dana Dev <dana@example.test>") -> str:
        git(self.work, "add", "-A")
        git(self.work, "commit", "-q", "-m", message, who=who)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")

    def pull(self) -> str:
        git(self.work, "fetch", "-q", "origin")
        git(self.work, "checkout", "-q", "main")
        git(self.work, "reset", "-q", "--hard", "origin/main")
        return git(self.work, "rev-parse", "HEAD")

    def head(self) -> str:
        return git(self.bare, "rev-parse", "refs/heads/main")

    def count(self, ref: str = "refs/heads/main") -> int:
        return int(git(self.bare, "rev-list", "--count", ref))

    def merge(self, branch: str, *, who: str = "Mia Merger <mia@example.test>", ff: bool = False) -> str:
        """Merge ``branch`` of the remote into main as a pull request merge would (``--no-ff``)."""
        self.pull()
        git(self.work, "fetch", "-q", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
        args = ["merge", "-q", "--no-edit"] + ([] if ff else ["--no-ff"])
        args += ["-m", f"Merge pull request from {branch}"] if not ff else []
        git(self.work, *args, f"origin/{branch}", who=who)
        git(self.work, "push", "-q", "origin", "HEAD:main")
        return git(self.work, "rev-parse", "HEAD")

    def file_at(self, rev: str, rel: str) -> str:
        return git(self.bare, "show", f"{rev}:{rel}")


def make_remote(root: Path, files: dict[str, str] | None = None) -> Remote:
    """A bare remote ``root/remote.git`` with one commit of ``files``, and a clone ``root/work``."""
    bare = root / "remote.git"
    work = root / "work"
    root.mkdir(parents=True, exist_ok=True)
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    git(root, "clone", "-q", str(bare), str(work))
    git(work, "checkout", "-q", "-b", "main")
    remote = Remote(bare, work)
    for rel, text in (files or {"README.md": "env repo\n"}).items():
        remote.write(rel, text)
    remote.commit("bootstrap")
    return remote


def kustomization(tag: str, digest: str | None = None, *, comment: str = "", extra: str = "") -> str:
    pin = f"\n  digest: {digest}" if digest else ""
    return (
        "# the environment's overlay\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        "- ../base\n"
        "images:\n"
        f"- name: {CLOCK}   # the clock MCP server{comment}\n"
        f"  newTag: {tag}  # pinned by promotion{pin}\n"
        f"{extra}"
    )


BASE_DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: clock-mcp
  labels: {{app.kubernetes.io/name: clock-mcp}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/name: clock-mcp}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: clock-mcp}}
    spec:
      containers:
      - name: server
        image: {CLOCK}:0.0.1
"""


def env_file(
    name: str,
    *,
    namespace: str,
    via: str,
    source: str | None,
    on_failure: str = "none",
    timeout: float = 60,
    require: str = "healthy",
) -> str:
    src = f"from: {source}, " if source else ""
    return (
        f"overlay: overlays/{name}\nnamespace: {namespace}\n"
        "sync: {interval: 3600, allowMassPrune: true}\n"
        f"health: {{timeout: {timeout:g}, noControllerAfter: 5}}\n"
        f"promotion: {{{src}via: {via}, requireHealth: {require}}}\n"
        f"onFailure: {on_failure}\n"
    )


def three_envs(
    ns: dict[str, str] | None = None,
    *,
    on_failure: str = "revert",
    timeout: float = 60,
    dev_tag: str = "0.2.0",
    dev_digest: str | None = DIGEST_B,
) -> dict[str, str]:
    """Files of an environment repository: dev (push), staging (pr from dev), prod (pr from staging)."""
    ns = ns or {"dev": "agents-dev", "staging": "agents-staging", "prod": "agents-prod"}
    return {
        "envs/dev.yaml": env_file("dev", namespace=ns["dev"], via="push", source=None),
        "envs/staging.yaml": env_file(
            "staging", namespace=ns["staging"], via="pr", source="dev", on_failure=on_failure, timeout=timeout
        ),
        "envs/prod.yaml": env_file("prod", namespace=ns["prod"], via="pr", source="staging"),
        "overlays/base/kustomization.yaml": "resources:\n- deployment.yaml\n",
        "overlays/base/deployment.yaml": BASE_DEPLOYMENT,
        "overlays/dev/kustomization.yaml": kustomization(dev_tag, dev_digest),
        "overlays/staging/kustomization.yaml": kustomization("0.1.0", DIGEST_A),
        "overlays/prod/kustomization.yaml": kustomization("0.1.0", DIGEST_A),
    }
