"""``reconciler images scan``: list the registries' tags of the image policies with ``scan:`` now (on demand)
and commit the newest allowed versions, as the daemon's interval scan does (:mod:`reconciler.promote.scan`).
Imports the scanner only when the command runs."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

images_app = typer.Typer(
    help="Image automation: scan registries' tag lists on demand.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


@images_app.command("scan")
def scan_cmd(
    repo: Annotated[str, typer.Option(help="the environment repository (path or URL) to commit to")],
    branch: Annotated[str, typer.Option(help="the followed branch")] = "main",
    env: Annotated[
        str | None, typer.Option("--env", help="only the images this environment's policies follow")
    ] = None,
    image: Annotated[str | None, typer.Option(help="only this image (any spelling)")] = None,
    kubeconfig: Annotated[
        Path | None,
        typer.Option(help="cluster to read scan.credentials.secretRef Secrets from (default: none)"),
    ] = None,
    cache_dir: Annotated[Path | None, typer.Option(help="where the private clone lives")] = None,
    output: Annotated[str, typer.Option("-o", "--output", help="text or json")] = "text",
) -> None:
    """Scan now: list each followed image's tags through the OCI distribution API, resolve the newest
    allowed ones and commit (push, or a pull-request branch for ``promotion.via: pr``) what Git does not
    have yet. Exit 0 when every scan succeeded, 1 when one failed (each error is printed)."""
    from reconciler.paths import default_cache_dir
    from reconciler.promote.images import ImageAutomation
    from reconciler.promote.scan import SecretReader, TagScanner
    from reconciler.reconcile import load_environments
    from reconciler.source.gitops import GitWriter

    writer = GitWriter(repo, branch, (cache_dir or default_cache_dir()) / "image-scan")
    automation = ImageAutomation(writer, load_environments)
    secrets: SecretReader | None = None
    client = None
    if kubeconfig is not None:
        import base64

        from reconciler.cluster.client import KubeClient
        from reconciler.model import ObjectRef

        client = KubeClient(kubeconfig)

        def read(namespace: str, name: str) -> dict[str, bytes] | None:
            assert client is not None
            obj = client.get(ObjectRef(kind="Secret", namespace=namespace, name=name))
            data = (obj or {}).get("data") or {}
            return None if obj is None else {k: base64.b64decode(v) for k, v in data.items()}

        secrets = read
    try:
        reports = TagScanner(automation, secrets=secrets).scan_all(environment=env, image=image)
    finally:
        if client is not None:
            client.close()
    failed = [r for r in reports if r.error]
    if output == "json":
        sys.stdout.write(json.dumps([r.model_dump(mode="json") for r in reports], indent=2) + "\n")
    else:
        if not reports:
            typer.echo("no image policy with scan: matched")
        for r in reports:
            head = f"{r.image}: {r.tags} tags, {r.requests} requests, {r.seconds:.2f} s"
            if r.error:
                typer.echo(f"{head}\n  error: {r.error}")
                continue
            typer.echo(head)
            for u in r.result.updates if r.result else []:
                where = f" {u.commit[:12]} → {u.pushed_to}" if u.commit else ""
                typer.echo(f"  {u.environment}: {u.outcome.value}{where} {u.reason}".rstrip())
    raise typer.Exit(1 if failed else 0)


def register(app: typer.Typer) -> None:
    """Add ``images`` to the ``reconciler`` command line."""
    app.add_typer(images_app, name="images")
