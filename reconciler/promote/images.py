"""Image automation: a pushed image version that an environment's image policy accepts becomes a commit
that moves the matching ``images:`` entry of the environment's overlay.

For each :class:`~webhooks.events.ImagePushed` (from the ``REGISTRY`` stream, ``registry.image.pushed.>``)
:class:`ImageAutomation`

1. syncs its private clone (:class:`~reconciler.source.gitops.GitWriter`) and reads the environments
   with their ``imagePolicies`` from that commit,
2. for every environment with a policy for the pushed repository (Docker Hub spellings normalised,
   :func:`~reconciler.promote.policy.normalise_image`) decides: tag accepted by the policy? held back
   by a revert (:func:`~reconciler.promote.history.reverted_images`)? newer than the tag in Git?
3. edits the overlay's ``images:`` entries that deploy that repository (matched on ``newName`` when the
   entry has one, else on ``name``; an entry is never added), keeping the file byte for byte except
   the changed ``newTag``/``digest`` lines (:func:`edit_image_entries`: a ruamel.yaml round trip, or
   an in-place replacement of the value tokens, and a line-level check of the result),
4. commits (message template + trailers ``Promotion-To``, ``Image-Policy``, ``Image``, ``Image-Event``)
   and pushes: straight to the followed branch for ``promotion.via: push``, to
   ``image/<env>/<policy>-<version>`` for ``via: pr``.

It is idempotent: a tag that is already in Git, older, or rejected by the policy changes no file and so
makes no commit (``GitWriter.commit`` never makes an empty one); a pull-request branch that already
exists on the remote is not pushed again. :func:`run_consumer` acknowledges each message only after the
push (or the decision that there is nothing to do), so a crash or a NATS restart repeats work instead of
losing it, and the repetition is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import difflib
import logging
import random
import re
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.bus import (
    IMAGE_AUTOMATION_DURABLE,
    IMAGE_EVENTS,
    STREAM_REGISTRY,
    Bus,
    BusError,
    git_push_subject,
)
from reconciler.errors import SourceError
from reconciler.failpoints import failpoint
from reconciler.model import Environment, ToolContractPolicy
from reconciler.model.imagepolicy import ImagePolicy, check_message_template, normalise_image
from reconciler.probe.service import ProbeService
from reconciler.promote.history import (
    TRAILER_IMAGE,
    TRAILER_TO,
    held_back_reason,
    image_trailer,
    reverted_images,
    split_ref,
)
from reconciler.promote.overlay import KUSTOMIZATION_NAMES, ImageEntry, OverlayError, read_images, set_images
from reconciler.source.gitops import CommitInfo, GitWriter, PushResult, compose_message
from webhooks.events import GitPushed, ImagePushed

__all__ = [
    "DEFAULT_MESSAGE",
    "IMAGE_SUBJECTS",
    "TRAILER_IMAGE_EVENT",
    "TRAILER_IMAGE_POLICY",
    "AutomationResult",
    "EntryChange",
    "EnvUpdate",
    "ImageAutomation",
    "UpdateOutcome",
    "edit_image_entries",
    "matching_entries",
    "policies_of",
    "pr_branch",
    "run_consumer",
]

log = logging.getLogger("reconciler.images")

DEFAULT_MESSAGE = "image({env}): {image} {old} -> {new}"
TRAILER_IMAGE_POLICY = "Image-Policy"
TRAILER_IMAGE_EVENT = "Image-Event"
IMAGE_SUBJECTS = IMAGE_EVENTS
DURABLE = IMAGE_AUTOMATION_DURABLE

EnvironmentSource = Mapping[str, Environment] | Callable[[Path], Mapping[str, Environment]]
"""Environments by name, or a function reading them from a checkout's root (``load_environments``)."""


class UpdateOutcome(StrEnum):
    """What happened for one environment."""

    PUSHED = "pushed"  # committed and pushed to the followed branch
    PROPOSED = "proposed"  # pushed to a pull-request branch (or a fallback branch of a protected one)
    UNCHANGED = "unchanged"  # the version is already in Git, or the event is not newer
    IGNORED = "ignored"  # the policy rejects the tag, or no images: entry deploys the repository
    HELD = "held"  # the version's promotion was rolled back
    BLOCKED = "blocked"  # the version, where it already runs, lacks a tool an Agent here requires
    FAILED = "failed"  # the overlay cannot be edited safely (message names the file)


class EntryChange(BaseModel):
    """One ``images:`` entry moved: ``before``/``after`` are ``repository[:tag][@digest]``."""

    entry: str
    matched_on: str = Field(description="name | newName")
    before: str
    after: str
    old_tag: str | None = None
    new_tag: str
    digest: str | None = None


class EnvUpdate(BaseModel):
    """The decision and its effect for one environment."""

    environment: str
    policy: str | None = None
    outcome: UpdateOutcome
    reason: str = ""
    file: str | None = None
    changes: list[EntryChange] = Field(default_factory=list)
    commit: str | None = None
    branch: str | None = None
    pushed_to: str | None = None


class AutomationResult(BaseModel):
    """What one event (or one scan of an image's tags) led to."""

    image: str
    tag: str | None = None
    digest: str | None = None
    delivery_id: str | None = None
    updates: list[EnvUpdate] = Field(default_factory=list)

    @property
    def commits(self) -> list[str]:
        """Commits pushed for this event (followed branch and pull-request branches)."""
        return [u.commit for u in self.updates if u.commit and u.outcome in _WROTE]

    @property
    def pushed_main(self) -> bool:
        """Whether a commit reached the followed branch."""
        return any(u.outcome is UpdateOutcome.PUSHED for u in self.updates)


_WROTE = frozenset({UpdateOutcome.PUSHED, UpdateOutcome.PROPOSED})


# --------------------------------------------------------------------------- policies per environment


def policies_of(env: Environment) -> list[ImagePolicy]:
    """The environment's ``imagePolicies`` (``Environment.image_policies``; ``[]`` when the model has no
    such field or it is unset)."""
    value = getattr(env, "image_policies", None)
    if not value:
        return []
    return [p if isinstance(p, ImagePolicy) else ImagePolicy.model_validate(p) for p in value]


def pr_branch(env: str, policy: str, version: str) -> str:
    """``image/<env>/<policy>-<version>``, made a valid Git ref name (``git check-ref-format``)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", version).replace("..", "_")
    safe = safe.strip(".") or "_"
    if safe.endswith(".lock"):
        safe = safe[: -len(".lock")] + "_lock"
    return f"image/{env}/{policy}-{safe}"


# --------------------------------------------------------------------------- the overlay file


def _normalised(name: str) -> str | None:
    try:
        return normalise_image(name)
    except ValueError:
        return None


def matching_entries(entries: Sequence[ImageEntry], policy: ImagePolicy) -> list[tuple[ImageEntry, str]]:
    """The ``images:`` entries that deploy the policy's repository, with what matched (``newName`` or
    ``name``).

    An entry deploys ``newName`` when it has one (its ``name`` is then only the name to look for in the
    manifests, often a short alias), else ``name``; both are compared after Docker Hub normalisation.
    """
    out: list[tuple[ImageEntry, str]] = []
    want = policy.repository
    for e in entries:
        if e.new_name:
            if _normalised(e.new_name) == want:
                out.append((e, "newName"))
        elif _normalised(e.name) == want:
            out.append((e, "name"))
    return out


def _key_lines(text: str) -> dict[tuple[str, str], int]:
    """(entry name, key) → 0-based line of every scalar key of every ``images:`` entry."""
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError:
        return {}
    out: dict[tuple[str, str], int] = {}
    images = data.get("images") if isinstance(data, dict) else None
    for item in images if isinstance(images, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            continue
        for key in item:
            with contextlib.suppress(AttributeError, KeyError, TypeError):
                lc: Any = getattr(item, "lc")  # noqa: B009 - ruamel's line/column record
                out[(str(item["name"]), str(key))] = int(lc.key(key)[0])
    return out


def edit_image_entries(text: str, updates: Sequence[ImageEntry], path: str) -> str:
    """Write ``updates`` (existing entries, matched by ``name``) into the kustomization text.

    Edits with :func:`~reconciler.promote.overlay.set_images` (ruamel.yaml round trip); when that would
    reformat a neighbouring line (spacing ruamel does not keep, such as ``-  name:`` or ``key:   value``)
    and the update only replaces existing values, the value tokens are replaced in the text instead
    (quoting style and the comment column kept). Either way only the lines of the changed
    ``newTag``/``digest`` keys may differ afterwards (an added ``digest`` line, a removed stale one, a
    changed value), and the entries read back must be exactly the expected ones.

    Raises:
        OverlayError: an update names no existing entry, the file is invalid, or no edit keeps every other
            line as it was (nothing is written then).
    """
    before = read_images(text, path)
    names = {e.name for e in before}
    for u in updates:
        if u.name not in names:
            raise OverlayError(f"{path}: no images entry named {u.name!r} to update")
    expected = {e.name: e for e in before} | {u.name: u for u in updates}
    try:
        out = set_images(text, list(updates), path)
        _check_edit(text, out, expected, path)
        return out
    except OverlayError as exc:
        spliced = _splice_values(text, updates)
        if spliced is None:
            raise
        try:
            _check_edit(text, spliced, expected, path)
        except OverlayError:
            raise exc from None
        return spliced


def _check_edit(text: str, out: str, expected: dict[str, ImageEntry], path: str) -> None:
    after = read_images(out, path)
    if [e.name for e in after] != list(expected) or any(e.ref != expected[e.name].ref for e in after):
        raise OverlayError(f"{path}: editing images: did not give the expected entries; edit it by hand")
    changed = {e.name for e in read_images(text, path) if e.ref != expected[e.name].ref}
    allowed_old = {ln for (name, key), ln in _key_lines(text).items() if name in changed and key in _EDITABLE}
    allowed_new = {ln for (name, key), ln in _key_lines(out).items() if name in changed and key in _EDITABLE}
    a, b = text.splitlines(), out.splitlines()
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        bad_old = [i for i in range(i1, i2) if i not in allowed_old]
        bad_new = [j for j in range(j1, j2) if j not in allowed_new]
        if bad_old or bad_new:
            where = bad_old[0] + 1 if bad_old else j1 + 1
            raise OverlayError(
                f"{path}:{where}: updating images would change more than the newTag/digest lines "
                f"({a[bad_old[0]] if bad_old else b[bad_new[0]]!r}); edit this file by hand"
            )


def _plain_ok(value: str) -> bool:
    """Whether ``value`` written as a plain scalar reads back as the same string."""
    if not value or value[0] in "!&*-?:,[]{}#|>@`'\"%" or value != value.strip():
        return False
    try:
        return bool(YAML(typ="safe", pure=True).load(f"k: {value}\n") == {"k": value})
    except YAMLError:
        return False


def _replace_scalar(line: str, col: int, value: str) -> str | None:
    """``line`` with the scalar token starting at ``col`` replaced by ``value`` in the same quoting
    style, keeping a following comment's column when the spacing allows; ``None`` when the token is not
    a one-line scalar."""
    rest = line[col:]
    if rest[:1] == "'":
        i = 1
        while i < len(rest) and not (rest[i] == "'" and rest[i + 1 : i + 2] != "'"):
            i += 2 if rest[i] == "'" else 1
        if i >= len(rest):
            return None
        end, new = col + i + 1, "'" + value.replace("'", "''") + "'"
    elif rest[:1] == '"':
        m = re.match(r'"(?:[^"\\]|\\.)*"', rest)
        if m is None or any(c in value for c in '"\\'):
            return None
        end, new = col + m.end(), f'"{value}"'
    else:
        m = re.match(r"[^\s,\[\]{}]+", rest)
        if m is None:
            return None
        end, new = col + m.end(), value if _plain_ok(value) else f"'{value}'"
    tail = line[end:]
    gap = re.match(r"([ \t]+)#", tail)
    if gap:
        width = max(1, len(gap.group(1)) - (len(new) - (end - col)))
        tail = " " * width + tail[len(gap.group(1)) :]
    return line[:col] + new + tail


def _splice_values(text: str, updates: Sequence[ImageEntry]) -> str | None:
    """Replace the existing ``newTag``/``digest`` value tokens of ``updates`` in place; ``None`` when an
    update adds or removes a key or changes ``newName`` (a structural edit)."""
    try:
        data = YAML(typ="rt").load(text)
    except YAMLError:
        return None
    images = data.get("images") if isinstance(data, dict) else None
    items = {
        str(i["name"]): i for i in images or [] if isinstance(i, dict) and isinstance(i.get("name"), str)
    }
    lines = text.splitlines(keepends=True)
    for u in updates:
        item = items.get(u.name)
        if item is None or (str(item.get("newName")) if item.get("newName") else None) != u.new_name:
            return None
        for key, value in (("newTag", u.new_tag), ("digest", u.digest)):
            current = str(item[key]) if item.get(key) is not None else None
            if current == value:
                continue
            if current is None or value is None:
                return None
            lc: Any = getattr(item, "lc")  # noqa: B009 - ruamel's line/column record
            row, col = (int(x) for x in lc.value(key))
            replaced = _replace_scalar(lines[row], col, value)
            if replaced is None:
                return None
            lines[row] = replaced
    return "".join(lines)


_EDITABLE = frozenset({"newTag", "digest"})


def _images_in(value: Any) -> Iterator[str]:
    """Every ``image:`` string in rendered objects."""
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "image" and isinstance(v, str):
                yield v
            else:
                yield from _images_in(v)
    elif isinstance(value, list):
        for v in value:
            yield from _images_in(v)


def _find_kustomization(root: Path, overlay: str) -> Path | None:
    for name in KUSTOMIZATION_NAMES:
        p = root / overlay / name
        if p.is_file():
            return p
    return None


def _split_tag(new_tag: str | None) -> tuple[str | None, str | None]:
    if not new_tag:
        return None, None
    tag, _, digest = new_tag.partition("@")
    return tag or None, digest or None


# --------------------------------------------------------------------------- decisions


@dataclass
class _Work:
    """One event, or one scan: the tags known for an image (tag → digest)."""

    image: str
    tags: dict[str, str | None]
    delivery_id: str | None
    source: str | None
    scan: bool = False
    result: AutomationResult = field(init=False)

    def __post_init__(self) -> None:
        tag = next(iter(self.tags), None) if not self.scan else None
        self.result = AutomationResult(
            image=self.image,
            tag=tag,
            digest=self.tags.get(tag) if tag else None,
            delivery_id=self.delivery_id,
        )


@dataclass
class _Plan:
    env: Environment
    policy: ImagePolicy
    path: Path
    rel: str
    new_text: str
    updates: list[ImageEntry]
    changes: list[EntryChange]
    tag: str
    digest: str | None


class ImageAutomation:
    """Turns pushed image versions into commits, as the environments' image policies say.

    Thread-safe for one writer: every call holds the writer's lock (also across processes).

    Args:
        writer: the private clone to commit and push with.
        environments: environments by name, or a function that reads them from the synced checkout's
            root (pass ``reconciler.reconcile.load_environments`` so policy changes in Git apply at once).
        only: environment names to automate (default: all).
        message: commit message template (fields ``{env}``, ``{image}``, ``{entry}``, ``{policy}``,
            ``{old}``, ``{new}``, ``{digest}``); a policy's ``commitMessage`` overrides it.
        history: how many commits of the branch to read for reverted (held-back) versions.
        remember: tags remembered per image for :meth:`rescan`.
        probes: the protocol probes for the tool contract: a version that already runs in another
            environment is not committed where an Agent requires a tool its servers there do not list
            (``health.toolContract: enforce``; :meth:`_tool_contract`). ``None``: not checked.

    Raises:
        ValueError: an invalid message template.
    """

    def __init__(
        self,
        writer: GitWriter,
        environments: EnvironmentSource,
        *,
        only: Collection[str] | None = None,
        message: str = DEFAULT_MESSAGE,
        history: int = 500,
        remember: int = 200,
        probes: ProbeService | None = None,
    ) -> None:
        self.writer = writer
        self.probes = probes
        self.environments = environments
        self.only = set(only) if only else None
        self.message = check_message_template(message)
        self.history = history
        self.remember = remember
        self._seen: dict[str, dict[str, str | None]] = {}
        self._synced = ""
        self.last_push: tuple[str, str] | None = None
        """``(before, after)`` commit ids of the last push to the followed branch."""

    # -- public entry points --------------------------------------------------------------------

    def handle(self, event: ImagePushed) -> AutomationResult:
        """Process one pushed image (see :meth:`handle_batch`)."""
        return self.handle_batch([event])[0]

    def handle_batch(self, events: Sequence[ImagePushed]) -> list[AutomationResult]:
        """Process events in order with one sync and one push of the followed branch.

        Returns:
            one result per event, in order.

        Raises:
            SourceError: the repository could not be fetched or a push failed (retry later: nothing
                unpushed survives the next sync, and the repetition is idempotent).
            ReconcilerError: the environments could not be read (e.g. an invalid ``envs/*.yaml``).
        """
        works: list[_Work] = []
        for e in events:
            tags: dict[str, str | None] = {e.tag: e.digest} if e.tag else {}
            works.append(_Work(e.image, tags, e.delivery_id, e.source))
            if e.tag:
                self._remember(e.image, e.tag, e.digest)
        if not any(w.tags for w in works):  # pushes by digest only: every policy is tag-based
            for w in works:
                w.result.updates.append(
                    EnvUpdate(
                        environment="*",
                        outcome=UpdateOutcome.IGNORED,
                        reason="no tag in the event and image policies are tag-based",
                    )
                )
            return [w.result for w in works]
        self._process(works)
        return [w.result for w in works]

    def scan(
        self,
        image: str,
        tags: Mapping[str, str | None],
        *,
        source: str = "scan",
        delivery_id: str | None = None,
    ) -> AutomationResult:
        """Apply the newest allowed, not held-back tag among ``tags`` (tag → digest or ``None``), as a
        periodic scan of a registry's tag list does (:mod:`reconciler.promote.scan`); a no-op when Git
        already has it. ``source`` and ``delivery_id`` go into the ``Image-Event`` trailer (none without a
        ``delivery_id``)."""
        work = _Work(image, dict(tags), delivery_id, source, scan=True)
        self._process([work])
        return work.result

    def rescan(self) -> list[AutomationResult]:
        """:meth:`scan` every image with the tags seen in events so far (an interval run without new
        registry data: it must never commit anything the events did not)."""
        return [self.scan(image, tags) for image, tags in sorted(self._seen.items())]

    # -- internals -------------------------------------------------------------------------------

    def _remember(self, image: str, tag: str, digest: str | None) -> None:
        key = _normalised(image) or image
        tags = self._seen.setdefault(key, {})
        tags.pop(tag, None)
        tags[tag] = digest
        while len(tags) > self.remember:
            tags.pop(next(iter(tags)))

    def _load_envs(self, root: Path) -> dict[str, Environment]:
        envs = self.environments(root) if callable(self.environments) else self.environments
        return {n: e for n, e in sorted(envs.items()) if self.only is None or n in self.only}

    def _process(self, works: list[_Work]) -> None:
        w = self.writer
        with w.locked():
            self._synced = w.sync()
            envs = self._load_envs(w.workdir)
            history = w.log(max_count=self.history)
            held = reverted_images(history)
            pending: list[tuple[EnvUpdate, str]] = []
            for work in works:
                if not work.tags:
                    work.result.updates.append(
                        EnvUpdate(
                            environment="*",
                            outcome=UpdateOutcome.IGNORED,
                            reason="no tag in the event and image policies are tag-based",
                        )
                    )
                    continue
                matched = False
                for env in envs.values():
                    policies = [p for p in policies_of(env) if p.matches(work.image)]
                    if not policies:
                        continue
                    matched = True
                    update = self._one_env(work, env, policies, held, history, pending)
                    work.result.updates.append(update)
                if not matched:
                    work.result.updates.append(
                        EnvUpdate(
                            environment="*",
                            outcome=UpdateOutcome.IGNORED,
                            reason=f"no image policy follows {work.image}",
                        )
                    )
            self._flush(pending)

    def _one_env(
        self,
        work: _Work,
        env: Environment,
        policies: list[ImagePolicy],
        held: dict[str, set[str]],
        history: list[CommitInfo],
        pending: list[tuple[EnvUpdate, str]],
    ) -> EnvUpdate:
        if len(policies) > 1:
            names = ", ".join(p.name for p in policies)
            return EnvUpdate(
                environment=env.name,
                outcome=UpdateOutcome.FAILED,
                reason=f"image policies {names} all follow {work.image}; keep exactly one",
            )
        policy = policies[0]
        decided = self._decide(work, env, policy, held, history)
        if isinstance(decided, EnvUpdate):
            return decided
        plan = decided
        broken = self._tool_contract(plan)
        if broken:
            return EnvUpdate(
                environment=env.name,
                policy=policy.name,
                outcome=UpdateOutcome.BLOCKED,
                reason=broken,
                file=plan.rel,
            )
        update = EnvUpdate(
            environment=env.name,
            policy=policy.name,
            outcome=UpdateOutcome.PUSHED,
            file=plan.rel,
            changes=plan.changes,
        )
        if env.promotion.via == "pr":
            branch = pr_branch(env.name, policy.name, plan.tag)
            update.branch = branch
            if self._remote_branch_exists(branch):
                update.outcome = UpdateOutcome.UNCHANGED
                update.reason = f"the pull-request branch {branch} already exists"
                return update
            if pending:  # the branch must not carry unpushed commits of the followed branch
                self._flush(pending)
                self.writer.sync()
                decided = self._decide(work, env, policy, held, history)
                if isinstance(decided, EnvUpdate):
                    return decided
                plan = decided
                update.changes = plan.changes
            message, trailers = self._message(plan, work)
            plan.path.write_text(plan.new_text, encoding="utf-8")
            sha = self.writer.commit(message, trailers=trailers, branch=branch)
            if sha is None:  # pragma: no cover - the edit changed the file
                self.writer.sync()
                update.outcome = UpdateOutcome.UNCHANGED
                update.reason = "the edit changed nothing"
                return update
            result = self.writer.push(branch=branch)
            update.outcome = UpdateOutcome.PROPOSED
            update.commit = result.sha
            update.pushed_to = result.pushed_to
            update.reason = f"pushed to {result.pushed_to} for review"
            self.writer.sync()
            return update
        message, trailers = self._message(plan, work)
        plan.path.write_text(plan.new_text, encoding="utf-8")
        sha = self.writer.commit(message, trailers=trailers)
        if sha is None:  # pragma: no cover - the edit changed the file
            update.outcome = UpdateOutcome.UNCHANGED
            update.reason = "the edit changed nothing"
            return update
        update.commit = sha
        pending.append((update, compose_message(message, trailers)))
        return update

    def _tool_contract(self, plan: _Plan) -> str:
        """Why ``plan``'s version must not be committed, or ``""``: when another environment already runs
        the new version, the Agents of ``plan.env`` are checked against the tools its servers list there
        (:func:`reconciler.reconcile.toolgate.promotion_check`, as a promotion from that environment).
        A version no environment runs yet cannot be listed before it runs: the apply and health gates
        judge it. Only with ``health.toolContract: enforce``; a render error leaves the decision to the
        pass (which reports it)."""
        if self.probes is None or plan.env.health.tool_contract is not ToolContractPolicy.ENFORCE:
            return ""
        from reconciler.reconcile.toolgate import promotion_check
        from reconciler.render import RenderError, build
        from reconciler.render.helm import environment_options as helm_options
        from reconciler.render.remote import environment_options

        root = self.writer.workdir
        original = plan.path.read_text(encoding="utf-8")
        wanted = {(split_ref(c.after)[0], c.new_tag) for c in plan.changes}
        try:
            before = build(
                root / plan.env.overlay,
                root=root,
                remote=environment_options(plan.env),
                helm=helm_options(plan.env),
            )
            plan.path.write_text(plan.new_text, encoding="utf-8")
            try:
                after = build(
                    root / plan.env.overlay,
                    root=root,
                    remote=environment_options(plan.env),
                    helm=helm_options(plan.env),
                )
            finally:
                plan.path.write_text(original, encoding="utf-8")
            envs = self.environments(root) if callable(self.environments) else self.environments
            for name, other in sorted(envs.items()):
                if name == plan.env.name:
                    continue
                objects = build(
                    root / other.overlay,
                    root=root,
                    remote=environment_options(other),
                    helm=helm_options(other),
                )
                running = {split_ref(ref)[:2] for ref in _images_in(objects)}
                if not wanted <= running:
                    continue
                report = promotion_check(
                    self.probes,
                    source=objects,
                    source_namespace=other.namespace or "",
                    target_before=before,
                    target_after=after,
                    target_namespace=plan.env.namespace or "",
                )
                if not report.ok:
                    return f"tool contract (the version runs in {name}): {report.summary()}"
                return ""
        except (RenderError, OSError) as exc:
            log.warning("tool contract of %s not checked: %s", plan.env.name, exc)
        return ""

    def _decide(
        self,
        work: _Work,
        env: Environment,
        policy: ImagePolicy,
        held: dict[str, set[str]],
        history: list[CommitInfo],
    ) -> _Plan | EnvUpdate:
        """:meth:`_plan`, with a file that cannot be edited safely reported as ``FAILED``."""
        try:
            return self._plan(work, env, policy, held, history)
        except OverlayError as exc:
            return EnvUpdate(
                environment=env.name, policy=policy.name, outcome=UpdateOutcome.FAILED, reason=str(exc)
            )

    def _plan(
        self,
        work: _Work,
        env: Environment,
        policy: ImagePolicy,
        held: dict[str, set[str]],
        history: list[CommitInfo],
    ) -> _Plan | EnvUpdate:
        def skip(outcome: UpdateOutcome, reason: str, rel: str | None = None) -> EnvUpdate:
            return EnvUpdate(
                environment=env.name, policy=policy.name, outcome=outcome, reason=reason, file=rel
            )

        if not work.scan:
            verdict = policy.verdict(next(iter(work.tags)))
            if not verdict.allowed:
                return skip(UpdateOutcome.IGNORED, f"policy {policy.name}: {verdict.reason}")
        root = self.writer.workdir
        path = _find_kustomization(root, env.overlay)
        if path is None:
            return skip(UpdateOutcome.FAILED, f"{env.overlay}: no kustomization file in the overlay")
        rel = path.relative_to(root).as_posix()
        text = path.read_text(encoding="utf-8")
        entries = matching_entries(read_images(text, rel), policy)
        if not entries:
            return skip(
                UpdateOutcome.IGNORED,
                f"{rel}: no images entry deploys {policy.image} (add one with name or newName)",
                rel,
            )
        held_here = set().union(*(held.get(e.name, set()) for e, _ in entries))

        # which tag: the event's, or for a scan the newest allowed one that is not held back
        if work.scan:
            candidates = [t for t in work.tags if t not in held_here]
            tag = policy.latest(candidates)
            if tag is None:
                return skip(UpdateOutcome.UNCHANGED, "no allowed tag that is not held back", rel)
        else:
            tag = next(iter(work.tags))
        digest = work.tags.get(tag)
        if tag in held_here or (policy.digest == "pin" and digest and digest in held_here):
            explained = [held_back_reason(history, e.name, tag) for e, _ in entries]
            why = next(
                (r for r in explained if r), f"{tag} is held back because its promotion was rolled back"
            )
            return skip(UpdateOutcome.HELD, why, rel)
        if policy.digest == "pin" and not digest:
            return skip(UpdateOutcome.IGNORED, f"policy {policy.name} pins digests; the event has none", rel)

        updates: list[ImageEntry] = []
        changes: list[EntryChange] = []
        reasons: list[str] = []
        for entry, matched_on in entries:
            cur_tag, inline_digest = _split_tag(entry.new_tag)
            cur_digest = entry.digest or inline_digest
            new_digest = digest if policy.digest == "pin" else None
            if cur_tag == tag:
                if policy.digest == "pin" and cur_digest != digest:
                    pass  # the tag was pushed again with new content: move the pinned digest
                else:
                    reasons.append(f"{entry.name} is already at {tag}")
                    continue
            elif not policy.is_newer(tag, cur_tag):
                reasons.append(f"{tag} is not newer than {cur_tag} for {entry.name}")
                continue
            after = ImageEntry(name=entry.name, newName=entry.new_name, newTag=tag, digest=new_digest)
            updates.append(after)
            changes.append(
                EntryChange(
                    entry=entry.name,
                    matched_on=matched_on,
                    before=entry.ref,
                    after=after.ref,
                    old_tag=cur_tag,
                    new_tag=tag,
                    digest=new_digest,
                )
            )
        if not updates:
            return skip(UpdateOutcome.UNCHANGED, "; ".join(reasons), rel)
        new_text = edit_image_entries(text, updates, rel)
        return _Plan(env, policy, path, rel, new_text, updates, changes, tag, digest)

    def _message(self, plan: _Plan, work: _Work) -> tuple[str, dict[str, str | list[str]]]:
        first = plan.changes[0]
        old = first.old_tag or (first.before.rpartition("@")[2] if "@" in first.before else "(unset)")
        template = plan.policy.commit_message or self.message
        message = template.format(
            env=plan.env.name,
            image=plan.policy.image,
            entry=first.entry,
            policy=plan.policy.name,
            old=old,
            new=plan.tag,
            digest=plan.digest or "",
        )
        body = "\n".join(f"{c.entry}: {c.before} -> {c.after}" for c in plan.changes)
        if "\n" not in message.strip():
            message = f"{message.strip()}\n\n{body}"
        trailers: dict[str, str | list[str]] = {
            TRAILER_TO: plan.env.name,
            TRAILER_IMAGE_POLICY: f"{plan.env.name}/{plan.policy.name}",
            TRAILER_IMAGE: [image_trailer(u.name, u) for u in plan.updates],
        }
        if work.delivery_id:
            trailers[TRAILER_IMAGE_EVENT] = f"{work.source or '-'} {work.delivery_id}".strip()
        return message, trailers

    def _remote_branch_exists(self, branch: str) -> bool:
        try:
            self.writer.resolve(f"refs/remotes/origin/{branch}")
        except SourceError:
            return False
        return True

    def _flush(self, pending: list[tuple[EnvUpdate, str]]) -> None:
        """Push the commits made on the followed branch and record where each one landed."""
        if not pending:
            return
        result: PushResult = self.writer.push()
        if not result.fallback:
            self.last_push = (self._synced, result.sha)
        recent = self.writer.log(max_count=len(pending) + 20)
        by_text: dict[str, str] = {}
        for c in recent:
            by_text.setdefault(c.body.strip(), c.sha)
        for update, text in pending:
            update.pushed_to = result.pushed_to
            sha = by_text.get(text.strip())
            if result.fallback:
                update.outcome = UpdateOutcome.PROPOSED
                update.reason = (
                    f"{self.writer.branch} refused the push ({result.reason}); pushed to {result.pushed_to}"
                )
            if sha is None:
                update.outcome = UpdateOutcome.UNCHANGED
                update.reason = "another writer pushed the same change first"
                update.commit = None
            else:
                update.commit = sha
        pending.clear()
        if result.fallback:
            self.writer.sync()


# --------------------------------------------------------------------------- the durable consumer

ResultHook = Callable[[AutomationResult], None]


def _parse(data: bytes) -> ImagePushed | None:
    try:
        return ImagePushed.model_validate_json(data)
    except ValidationError:
        return None


async def run_consumer(
    bus: Bus,
    automation: ImageAutomation,
    stop: asyncio.Event,
    *,
    durable: str = DURABLE,
    batch: int = 32,
    nak_delay: float = 5.0,
    ack_wait: float = 30.0,
    notify: bool = True,
    on_result: ResultHook | None = None,
    start_time: datetime | None = None,
    inactive_threshold: float | None = None,
) -> None:
    """Consume ``registry.image.pushed.>`` (stream ``REGISTRY``) with a durable pull consumer until
    ``stop`` is set, handing the events to ``automation`` in batches.

    Each message is acknowledged only after its commit was pushed, or after deciding there is nothing
    to do; an unreadable body is acknowledged (it can never succeed) and logged. When a batch fails
    (Git unreachable, push rejected, environments unreadable) its events are retried one by one, and
    those that still fail are negatively acknowledged with ``nak_delay`` seconds (± 20 % jitter), so
    JetStream redelivers them. While a message is held (queued or being handled) it is reported in
    progress every ``ack_wait / 3`` seconds (JetStream's ``+WPI``), so a long batch is not redelivered
    while a crashed consumer's messages come back after ``ack_wait``. After a push to the followed
    branch it publishes ``reconciler.git.push.<repo>`` (so the daemon reconciles at once) unless
    ``notify`` is false.

    Args:
        bus: a connected :class:`~reconciler.bus.Bus`.
        automation: the image automation.
        stop: set it to stop; a batch in progress finishes (and is acknowledged) first.
        durable: the consumer's durable name (its position survives restarts of this process and of NATS).
        batch: at most this many messages handled with one sync and one push.
        nak_delay: seconds before a failed message is redelivered.
        ack_wait: seconds JetStream waits for an acknowledgement (or a progress report) before
            redelivering: the delay before a crashed consumer's events are handled again.
        notify: publish the Git push notification.
        on_result: called with every result (in the event loop).
        start_time: when the durable consumer is created now, it starts with the events stored since
            this time (UTC) instead of new ones only (the daemon passes its branch's head commit time:
            events accepted after it, before this consumer existed, are not lost).
        inactive_threshold: seconds without a subscriber after which JetStream deletes the consumer.
    """
    consumer = _Consumer(
        bus,
        automation,
        queue=asyncio.Queue(maxsize=batch * 2),
        durable=durable,
        batch=batch,
        nak_delay=nak_delay,
        ack_wait=ack_wait,
        notify=notify,
        on_result=on_result,
        start_time=start_time,
        inactive_threshold=inactive_threshold,
    )
    read_task = asyncio.create_task(consumer.read(), name="image-automation-reader")
    progress_task = asyncio.create_task(consumer.report_progress(), name="image-automation-progress")
    stop_task = asyncio.create_task(stop.wait(), name="image-automation-stop")
    try:
        while not stop.is_set():
            msgs = await consumer.next_batch(stop_task)
            if msgs is None:
                break
            await consumer.handle(msgs)
    finally:
        for t in (read_task, progress_task, stop_task):
            t.cancel()
        for t in (read_task, progress_task, stop_task):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t


@dataclass
class _Consumer:
    """The parts of :func:`run_consumer` (see it for the options): the reader that fills ``queue`` from
    the durable consumer, the progress reports of held messages, the batches, and their acknowledgement."""

    bus: Bus
    automation: ImageAutomation
    queue: asyncio.Queue[Any]
    durable: str
    batch: int
    nak_delay: float
    ack_wait: float
    notify: bool
    on_result: ResultHook | None
    start_time: datetime | None
    inactive_threshold: float | None
    held: set[Any] = field(default_factory=set)  # delivered, not yet acknowledged

    async def read(self) -> None:
        """Queue every delivered message (holding it) until cancelled; a failing consumer (NATS
        restarting) is looked up again after 0.5 s."""
        while True:
            try:
                async for msg in self.bus.consume(
                    STREAM_REGISTRY,
                    self.durable,
                    [IMAGE_SUBJECTS],
                    batch=self.batch,
                    wait=1.0,
                    ack_wait=self.ack_wait,
                    start_time=self.start_time,
                    inactive_threshold=self.inactive_threshold,
                ):
                    self.held.add(msg)
                    await self.queue.put(msg)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS restarting: consumer lookups fail until it is back
                log.warning("image automation: consuming %s failed (%s); retrying", IMAGE_SUBJECTS, exc)
                await asyncio.sleep(0.5)

    async def report_progress(self) -> None:
        """Every ``ack_wait / 3`` seconds, report each held message in progress (``+WPI``) until
        cancelled."""
        while True:
            await asyncio.sleep(self.ack_wait / 3)
            for msg in list(self.held):
                with contextlib.suppress(Exception):
                    await msg.in_progress()

    async def next_batch(self, stop_task: asyncio.Task[Any]) -> list[Any] | None:
        """The next batch: waits for one message, then takes up to ``batch`` of those already queued;
        ``None`` when ``stop_task`` ends first."""
        get_task = asyncio.create_task(self.queue.get())
        done, _ = await asyncio.wait({get_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if get_task not in done:
            get_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await get_task
            return None
        msgs = [get_task.result()]
        while len(msgs) < self.batch:
            try:
                msgs.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        return msgs

    async def settle(self, msg: Any, ok: bool) -> None:
        """Release ``msg``: acknowledge it (``ok``) or have it redelivered after ``nak_delay`` s ± 20 %. A
        lost acknowledgement is logged (the redelivery is a no-op)."""
        self.held.discard(msg)
        try:
            if ok:
                await msg.ack()
                failpoint("ack")
            else:
                await msg.nak(delay=self.nak_delay * random.uniform(0.8, 1.2))
        except Exception as exc:  # the ack is lost: JetStream redelivers, the repetition is a no-op
            log.warning("image automation: could not %s %s: %s", "ack" if ok else "nak", msg.subject, exc)

    async def announce(self, results: Sequence[AutomationResult]) -> None:
        """Hand ``results`` to ``on_result`` and, after a push to the followed branch, publish the Git push
        notification (when ``notify``)."""
        for r in results:
            if self.on_result is not None:
                self.on_result(r)
        if not self.notify or not any(r.pushed_main for r in results):
            return
        if self.automation.last_push is not None:
            await _notify_push(self.bus, self.automation.writer, *self.automation.last_push)

    async def handle(self, msgs: list[Any]) -> None:
        """Handle one batch: unreadable bodies are dropped (acknowledged), the events go to the automation
        in one batch, retried one by one when the batch fails; every message is settled."""
        events: list[tuple[Any, ImagePushed]] = []
        for m in msgs:
            event = _parse(m.data)
            if event is None:
                log.warning("image automation: %s: not an ImagePushed event; dropped", m.subject)
                await self.settle(m, True)
            else:
                events.append((m, event))
        if not events:
            return
        try:
            results = await asyncio.to_thread(self.automation.handle_batch, [e for _, e in events])
        except Exception as exc:
            log.warning("image automation: batch of %d failed (%s); retrying one by one", len(events), exc)
            await self.handle_one_by_one(events)
            return
        await self.announce(results)
        for m, _ in events:
            await self.settle(m, True)

    async def handle_one_by_one(self, events: list[tuple[Any, ImagePushed]]) -> None:
        """After a failed batch: each event on its own; one that fails again is negatively acknowledged."""
        for m, e in events:
            try:
                one = await asyncio.to_thread(self.automation.handle, e)
            except Exception as exc1:
                log.warning("image automation: %s failed: %s", e.reference, exc1)
                await self.settle(m, False)
                continue
            await self.announce([one])
            await self.settle(m, True)


async def _notify_push(bus: Bus, writer: GitWriter, before: str, after: str) -> None:
    """Publish ``reconciler.git.push.<repo>`` for a push to the followed branch (the daemon's trigger)."""
    event = GitPushed(
        repository=writer.url,
        ref=f"refs/heads/{writer.branch}",
        before=before,
        after=after,
        source="reconciler/image-automation",
        delivery_id=f"image-automation/{after}",
    )
    try:
        await bus.publish(
            git_push_subject(writer.url), event.model_dump_json().encode(), msg_id=event.delivery_id
        )
    except BusError as exc:
        log.warning("image automation: could not announce the push of %s: %s", after[:7], exc)
