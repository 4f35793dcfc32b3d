"""SOPS-encrypted Secrets through whole passes on the real cluster, with the real sops binary: the example's
Secrets are applied decrypted (key from a local file, then from a Secret in the cluster as `reconciler up`
installs it), no decrypted value appears in a pass result (changes, diffs, errors), and a wrong key or a
tampered file fails the pass naming the file, with nothing written."""

from __future__ import annotations

import base64
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from reconciler_testing import EnvRepo

from reconciler.cluster.client import KubeClient
from reconciler.devcluster import sopskey
from reconciler.model import Action, ObjectRef
from reconciler.reconcile import PassContext, run_pass
from reconciler.render import sops
from reconciler.source import GitSource

ROOT = Path(__file__).resolve().parents[2]
TEST_KEY = ROOT / "deploy" / "examples" / "sops" / "test-only.agekey"
OPENAI = "sk-test-only-example-not-a-real-key"
TOKEN = "Bearer test-only-example-gateway-token"
MODEL_SECRET = "overlays/base/agents/helpdesk/model-secret.yaml"
KEY_SECRET = ObjectRef(kind="Secret", namespace=sopskey.SECRET_NAMESPACE, name=sopskey.SECRET_NAME)
PROBE = ObjectRef(kind="ConfigMap", namespace="agents-dev", name="sops-probe")


def _isolated_dev(repo: EnvRepo) -> str:
    """A copy of envs/dev.yaml under a unique name (its own inventory), with dev's policy data."""
    name = f"dev-{uuid.uuid4().hex[:6]}"
    repo.write(f"envs/{name}.yaml", (ROOT / "envs" / "dev.yaml").read_text())
    for data in (ROOT / "policies" / "environments" / "dev").iterdir():
        repo.write(f"policies/environments/{name}/{data.name}", data.read_text())
    repo.commit(f"test: environment {name} = dev")
    return name


def _ctx(repo: EnvRepo, kube: KubeClient, cache_dir: Path, key_file: Path | None) -> PassContext:
    return PassContext(
        source=GitSource(str(repo.remote), "main", cache_dir), client=kube, sops_key_file=key_file
    )


def _writes(kube: KubeClient, before: dict[str, int]) -> int:
    return sum(kube.calls[v] - before.get(v, 0) for v in ("apply", "delete", "dry-run", "create", "update"))


def _live_value(kube: KubeClient, name: str, key: str) -> str:
    live = kube.get(ObjectRef(kind="Secret", namespace="agents-dev", name=name))
    assert live is not None
    return base64.b64decode(live["data"][key]).decode()


def _add_probe(repo: EnvRepo) -> None:
    """A ConfigMap added in the same commit as a bad Secret: it must not be created."""
    repo.write(
        "overlays/base/agents/helpdesk/sops-probe.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: sops-probe\ndata:\n  a: b\n",
    )
    kust = repo.work / "overlays/base/agents/helpdesk/kustomization.yaml"
    kust.write_text(kust.read_text() + "- sops-probe.yaml\n")


@pytest.fixture
def no_key_secret(kube: KubeClient) -> Iterator[None]:
    kube.delete(KEY_SECRET)
    yield
    kube.delete(KEY_SECRET)


def test_encrypted_secrets_apply_decrypted_and_never_show_in_results(
    example_repo: EnvRepo, kube: KubeClient, cache_dir: Path, no_key_secret: None
) -> None:
    name = _isolated_dev(example_repo)
    ctx = _ctx(example_repo, kube, cache_dir, TEST_KEY)
    result = run_pass(ctx, name, with_health=False)
    assert result.ok, result.error
    assert _live_value(kube, "openai-key", "OPENAI_API_KEY") == OPENAI
    assert _live_value(kube, "platform-tools-token", "authorization") == TOKEN
    text = result.model_dump_json()
    assert OPENAI not in text and TOKEN not in text and "test-only-example" not in text

    # a new value, planned (dry run): the diff and messages name the key, never a value
    path = example_repo.work / MODEL_SECRET
    plain = sops.Decryptor(sops.load_key_file(TEST_KEY)).decrypt_file(path.read_bytes(), path=MODEL_SECRET)
    new_value = "sk-test-only-rotated-value-0123"
    path.write_bytes(plain.replace(OPENAI.encode(), new_value.encode()))
    binary = sops.find_sops()
    assert binary is not None

    recipient = sops.load_key_file(TEST_KEY).recipients()[0]
    subprocess.run(
        [
            str(binary),
            "encrypt",
            "--in-place",
            "--age",
            recipient,
            "--encrypted-regex",
            "^(data|stringData)$",
            str(path),
        ],
        check=True,
        capture_output=True,
    )
    example_repo.commit("rotate the model key")
    plan = run_pass(ctx, name, dry_run=True, with_health=False)
    assert plan.ok, plan.error
    changed = {str(c.ref): c for c in plan.changes.entries if c.action is Action.CONFIGURED}
    secret = changed["Secret/agents-dev/openai-key"]
    assert "OPENAI_API_KEY" in secret.message + secret.diff
    text = plan.model_dump_json()
    for value in (OPENAI, new_value, base64.b64encode(new_value.encode()).decode()):
        assert value not in text
    applied = run_pass(ctx, name, with_health=False)
    assert applied.ok, applied.error
    assert _live_value(kube, "openai-key", "OPENAI_API_KEY") == new_value
    assert new_value not in applied.model_dump_json()


def test_key_from_the_cluster_secret_and_a_wrong_key_applies_nothing(
    example_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, cache_dir: Path, no_key_secret: None
) -> None:
    """As `reconciler up` sets it up: the copy re-encrypted for a key of its own, the key in the Secret the
    environment's decryption.secretRef names, no local key file."""
    name = _isolated_dev(example_repo)
    identity, recipient = sops.generate_age_key()
    keys = sops.parse_age_keys(identity, source="test")
    assert sopskey.reencrypt_for(example_repo.work, recipient, sops.load_key_file(TEST_KEY)) == 2
    ctx = _ctx(example_repo, kube, cache_dir, None)

    missing = run_pass(ctx, name, with_health=False)  # the Secret is not there yet
    assert not missing.ok
    assert MODEL_SECRET in missing.error or "gateway-token.yaml" in missing.error
    assert "Secret reconciler-system/sops-age" in missing.error and "does not exist" in missing.error

    sopskey.install_key_secret(kubeconfig, keys)
    result = run_pass(ctx, name, with_health=False)
    assert result.ok, result.error
    assert _live_value(kube, "openai-key", "OPENAI_API_KEY") == OPENAI

    # the Secret now holds another key: the next revision fails, naming the file, and writes nothing
    other, _ = sops.generate_age_key()
    sopskey.install_key_secret(kubeconfig, sops.parse_age_keys(other, source="test"))
    _add_probe(example_repo)
    example_repo.commit("a new ConfigMap")
    before = dict(kube.calls)
    failed = run_pass(ctx, name, with_health=False)
    assert not failed.ok and not failed.changes.entries
    assert "helpdesk/" in failed.error and "no age key given to the reconciler can decrypt" in failed.error
    assert "Secret reconciler-system/sops-age key age.agekey" in failed.error
    assert (
        "nothing was applied" in failed.error and identity not in failed.error and other not in failed.error
    )
    assert _writes(kube, before) == 0
    assert kube.get(PROBE) is None


@pytest.mark.parametrize("how", ["ciphertext", "field"])
def test_a_tampered_file_fails_the_pass_naming_it_and_applies_nothing(
    example_repo: EnvRepo, kube: KubeClient, cache_dir: Path, no_key_secret: None, how: str
) -> None:
    name = _isolated_dev(example_repo)
    ctx = _ctx(example_repo, kube, cache_dir, TEST_KEY)
    path = example_repo.work / MODEL_SECRET
    text = path.read_text()
    if how == "ciphertext":
        start = text.index("OPENAI_API_KEY: ENC[AES256_GCM,data:") + len(
            "OPENAI_API_KEY: ENC[AES256_GCM,data:"
        )
        text = text[:start] + ("A" if text[start] != "A" else "B") + text[start + 1 :]
    else:  # an unencrypted field of the encrypted file (covered by the MAC)
        text = text.replace(
            "platform.acme.dev/secret-keys: OPENAI_API_KEY", "platform.acme.dev/secret-keys: X"
        )
    path.write_text(text)
    _add_probe(example_repo)
    example_repo.commit(f"tampered ({how})")
    before = dict(kube.calls)
    result = run_pass(ctx, name, with_health=False)
    assert not result.ok and not result.changes.entries
    assert result.error.startswith(f"{MODEL_SECRET}: "), result.error
    assert ("MAC mismatch" if how == "field" else "does not decrypt") in result.error
    assert _writes(kube, before) == 0
    assert kube.get(PROBE) is None
