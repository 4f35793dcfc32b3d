"""Load ``envs/<name>.yaml`` files into :class:`~reconciler.model.Environment` models."""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from reconciler.errors import ConfigError
from reconciler.model import Environment
from reconciler.render import RenderError, load_yaml_documents


def load_environment(path: Path, *, shown: str | None = None) -> Environment:
    """Parse one environment file; ``name`` defaults to the file's stem.

    Args:
        path: the file.
        shown: how errors name the file (default: ``path``); :func:`load_environments` gives the path in the
            repository (``envs/prod.yaml``), not where a snapshot of it was extracted.

    Raises:
        ConfigError: naming the file, and the field or line at fault.
    """
    name = shown or str(path)
    try:
        docs = load_yaml_documents(path.read_text(encoding="utf-8"), path=name)
    except RenderError as exc:
        raise ConfigError(str(exc)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{name}: {exc}") from None
    if len(docs) != 1:
        raise ConfigError(f"{name}: expected exactly one YAML document, found {len(docs)}")
    data = dict(docs[0])
    data.setdefault("name", path.stem)
    try:
        env = Environment.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(root)'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"{name}: {problems}") from None
    if env.name != path.stem:
        raise ConfigError(f"{name}: name {env.name!r} must match the file name {path.stem!r}")
    return env


def load_environments(root: Path, *, invalid: dict[str, str] | None = None) -> dict[str, Environment]:
    """Every ``envs/*.yaml`` under the repository ``root``, by name.

    Args:
        root: the repository checkout or snapshot.
        invalid: when given, an invalid file does not hide the others: it is left out, and its error is
            stored here under its environment's name (the file name without ``.yaml``).

    Raises:
        ConfigError: when ``envs/`` is missing, or a file is invalid and ``invalid`` is ``None``.
    """
    envs_dir = root / "envs"
    if not envs_dir.is_dir():
        raise ConfigError(f"{root}: no envs/ directory (the environment repository needs envs/<env>.yaml)")
    out: dict[str, Environment] = {}
    for path in sorted(envs_dir.glob("*.yaml")):
        try:
            env = load_environment(path, shown=f"envs/{path.name}")
        except ConfigError as exc:
            if invalid is None:
                raise
            invalid[path.stem] = str(exc)
            continue
        out[env.name] = env
    return out
