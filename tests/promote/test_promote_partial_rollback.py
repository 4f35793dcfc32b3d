"""Partial rollback (``reconciler rollback ENV --app NAME``) on real bare remotes (no cluster): one app of a
multi-app promotion goes back, the other stays; trailers, history, image automation holding back only the
rolled-back version, the CLI, and the refusals (nothing committed or pushed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from _promote_support import (
    BASE_DEPLOYMENT,
    CLOCK,
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    Remote,
    env_file,
    git,
    make_remote,
)
from typer.testing import CliRunner

from reconciler.model import Environment
from reconciler.promote.cli import _row, register
from reconciler.promote.history import (
    effective_reverts,
    held_back_reason,
    partial_rollbacks,
    reverted_images,
    timeline,
)
from reconciler.promote.images import ImageAutomation, UpdateOutcome
from reconciler.promote.promotion import PromotionError, promote
from reconciler.promote.records import Outcome, OutcomeRecord, record_outcome
from reconciler.promote.rollback import RollbackConflict, rollback
from reconciler.reconcile import load_environments
from reconciler.source.gitops import GitWriter
from webhooks.events import ImagePushed

WEATHER = "ghcr.io/acme/weather-mcp"
W_OLD = "sha256:" + "d" * 64
W_NEW = "sha256:" + "e" * 64
W_NEWER = "sha256:" + "f" * 64
STAGING = "overlays/staging/kustomization.yaml"

WEATHER_DEPLOYMENT = BASE_DEPLOYMENT.replace("clock-mcp", "weather-mcp")

POLICIES = (
    "imagePolicies:\n"
    "- name: clock\n"
    f"  image: {CLOCK}\n"
    "  policy: {semver: {range: '>=0.0.0'}}\n"
    "  digest: pin\n"
    "- name: weather\n"
    f"  image: {WEATHER}\n"
    "  policy: {semver: {range: '>=0.0.0'}}\n"
    "  digest: pin\n"
)


def overlay(clock: tuple[str, str], weather: tuple[str, str] | None) -> str:
    """An overlay kustomization pinning both apps (comments on and between the entries)."""
    text = (
        "# the environment's overlay\n"
        "apiVersion: kustomize.config.k8s.io/v1beta1\n"
        "kind: Kustomization\n"
        "resources:\n"
        "- ../base\n"
        "images:\n"
        f"- name: {CLOCK}   # the clock MCP server\n"
        f"  newTag: {clock[0]}  # pinned by promotion\n"
        f"  digest: {clock[1]}\n"
    )
    if weather is not None:
        text += f"# the weather server\n- name: {WEATHER}\n  newTag: {weather[0]}\n  digest: {weather[1]}\n"
    return text


OLD = (("0.1.0", DIGEST_A), ("0.1.0", W_OLD))
NEW = (("0.2.0", DIGEST_B), ("0.2.0", W_NEW))
NEWER = (("0.3.0", DIGEST_C), ("0.3.0", W_NEWER))


def two_apps(
    *, staging_via: str = "push", policies: bool = False, staging_weather: bool = True
) -> dict[str, str]:
    """dev (push) runs clock-mcp and weather-mcp 0.2.0; staging (from dev) runs both at 0.1.0."""
    staging = env_file("staging", namespace="agents-staging", via=staging_via, source="dev")
    return {
        "envs/dev.yaml": env_file("dev", namespace="agents-dev", via="push", source=None),
        "envs/staging.yaml": staging + (POLICIES if policies else ""),
        "overlays/base/kustomization.yaml": "resources:\n- deployment.yaml\n- weather.yaml\n",
        "overlays/base/deployment.yaml": BASE_DEPLOYMENT,
        "overlays/base/weather.yaml": WEATHER_DEPLOYMENT,
        "overlays/dev/kustomization.yaml": overlay(*NEW),
        "overlays/staging/kustomization.yaml": overlay(OLD[0], OLD[1] if staging_weather else None),
    }


def _writer(remote: Remote, tmp_path: Path, name: str = "cache") -> GitWriter:
    w = GitWriter(str(remote.bare), "main", tmp_path / name, backoff=0.01)
    w.sync()
    return w


def _envs(w: GitWriter) -> dict[str, Environment]:
    return load_environments(w.workdir)


def _healthy(w: GitWriter, sha: str, env: str) -> None:
    record_outcome(w, sha, OutcomeRecord(environment=env, outcome=Outcome.HEALTHY, revision=sha))
    w.sync()


def _promote_all(remote: Remote, w: GitWriter) -> str:
    """dev → staging, both apps in one promotion commit (pushed); returns its id."""
    _healthy(w, remote.head(), "dev")
    result = promote(w, _envs(w), "dev", "staging", all_images=True)
    assert result.commit is not None and [c.name for c in result.plan.changes] == [CLOCK, WEATHER]
    w.sync()
    return result.commit


def _changed_lines(remote: Remote, sha: str) -> list[str]:
    diff = git(remote.bare, "show", "--format=", "-U0", sha)
    return [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]


def test_one_app_of_a_multi_app_promotion_goes_back_the_other_stays(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", two_apps())
    w = _writer(remote, tmp_path)
    p = _promote_all(remote, w)
    assert remote.file_at("main", STAGING) == overlay(*NEW).rstrip()

    result = rollback(w, _envs(w)["staging"], app="weather-mcp", reason="weather answers in Kelvin")

    assert result.app == "weather-mcp" and result.reverted == [p] and result.pushed_to == "main"
    [r] = result.commits
    assert remote.head() == r and remote.count() == 3  # bootstrap, P, R: nothing rewritten
    # weather-mcp back to 0.1.0, clock-mcp still at 0.2.0; comments and layout untouched
    w.sync()
    assert (w.workdir / STAGING).read_text() == overlay(NEW[0], OLD[1])
    assert _changed_lines(remote, r) == [
        "-  newTag: 0.2.0",
        f"-  digest: {W_NEW}",
        "+  newTag: 0.1.0",
        f"+  digest: {W_OLD}",
    ]
    assert [(m.name, m.before, m.after) for m in result.restored] == [
        (WEATHER, f"{WEATHER}:0.2.0@{W_NEW}", f"{WEATHER}:0.1.0@{W_OLD}")
    ]
    info = w.log(rev=r, max_count=1)[0]
    assert info.trailers == {
        "Rollback-Of": [p],
        "Rollback-App": ["weather-mcp"],
        "Rollback-Env": ["staging"],
        "Reason": ["weather answers in Kelvin"],
        "Image": [f"{WEATHER}={WEATHER}:0.1.0@{W_OLD}"],
    }
    assert info.subject == f"rollback(staging): app weather-mcp back to weather-mcp 0.1.0 (undoes {p[:7]})"
    assert "This reverts commit" not in info.body  # not a git revert of the whole promotion
    assert info.reverts == p

    # the promotion stays in effect (its clock-mcp is live); only weather-mcp's version is held back
    w.sync()
    log = w.log()
    assert effective_reverts(log) == {}
    assert {k: {a: c.sha for a, c in v.items()} for k, v in partial_rollbacks(log).items()} == {
        p: {"weather-mcp": r}
    }
    assert reverted_images(log) == {WEATHER: {"0.2.0", W_NEW}}
    assert held_back_reason(log, WEATHER, "0.2.0") == (
        f"0.2.0 is held back because its promotion was rolled back in {r[:7]} "
        f"(rollback of app weather-mcp from {p[:7]})"
    )
    assert held_back_reason(log, WEATHER, W_NEW) is not None
    assert held_back_reason(log, CLOCK, "0.2.0") is None
    assert held_back_reason(log, WEATHER, "0.3.0") is None

    entries = timeline(w, _envs(w)["staging"])
    rb = next(e for e in entries if e.sha == r)
    assert rb.kind == "rollback" and rb.rollback_of == p and rb.rollback_app == "weather-mcp"
    assert rb.undoes == [p] and rb.reason == "weather answers in Kelvin"
    assert [(m.name, m.before, m.after) for m in rb.moved] == [
        (WEATHER, f"{WEATHER}:0.2.0@{W_NEW}", f"{WEATHER}:0.1.0@{W_OLD}")
    ]
    promo = next(e for e in entries if e.sha == p)
    assert promo.kind == "promotion" and promo.reverted_by is None
    assert promo.rolled_back_apps == {"weather-mcp": r}

    # the same again: nothing left for weather-mcp; nothing committed
    with pytest.raises(
        PromotionError, match=rf"nothing to roll back: .*weather-mcp.*already rolled back: {p[:7]}"
    ):
        rollback(w, _envs(w)["staging"], app="weather-mcp")
    assert remote.count() == 3

    # a revert of the partial rollback re-applies weather-mcp 0.2.0: no longer held back
    remote.pull()
    git(remote.work, "revert", "--no-edit", r)
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    w.sync()
    log = w.log()
    assert partial_rollbacks(log) == {} and reverted_images(log) == {}
    assert remote.file_at("main", STAGING) == overlay(*NEW).rstrip()
    again = rollback(w, _envs(w)["staging"], app="weather-mcp")
    assert again.reverted == [p] and remote.file_at("main", STAGING) == overlay(NEW[0], OLD[1]).rstrip()

    # a rollback of the whole promotion afterwards still works: clock-mcp goes back too
    w.sync()
    whole = rollback(w, _envs(w)["staging"], reason="all of it")
    assert whole.reverted == [p]
    assert remote.file_at("main", STAGING) == overlay(*OLD).rstrip()
    w.sync()
    assert reverted_images(w.log()) == {CLOCK: {"0.2.0", DIGEST_B}, WEATHER: {"0.2.0", W_NEW}}


def test_image_automation_holds_back_the_rolled_back_app_only(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", two_apps(policies=True))
    w = _writer(remote, tmp_path)
    p = _promote_all(remote, w)
    r = rollback(w, _envs(w)["staging"], app="weather-mcp", reason="bad forecasts").commits[-1]
    auto = ImageAutomation(
        GitWriter(str(remote.bare), "main", tmp_path / "auto-cache", backoff=0.01),
        load_environments,
        only={"staging"},
    )

    def pushed(image: str, tag: str, digest: str) -> ImagePushed:
        registry, _, repository = image.partition("/")
        return ImagePushed(
            registry=registry,
            repository=repository,
            tag=tag,
            digest=digest,
            source="test/registry",
            delivery_id=f"{image}:{tag}",
        )

    # the registry pushes weather-mcp 0.2.0 again: held back (its promotion's weather-mcp was rolled back)
    [held] = auto.handle(pushed(WEATHER, "0.2.0", W_NEW)).updates
    assert held.outcome is UpdateOutcome.HELD
    assert held.reason == (
        f"0.2.0 is held back because its promotion was rolled back in {r[:7]} "
        f"(rollback of app weather-mcp from {p[:7]})"
    )
    # a scan that sees 0.2.0 as the newest tag: nothing (0.1.0 is what runs)
    assert not auto.scan(WEATHER, {"0.1.0": W_OLD, "0.2.0": W_NEW}).commits
    assert remote.head() == r
    # clock-mcp 0.2.0 is not held back: it is already in Git (unchanged, not held)
    [clock] = auto.handle(pushed(CLOCK, "0.2.0", DIGEST_B)).updates
    assert clock.outcome is UpdateOutcome.UNCHANGED
    assert remote.head() == r

    # a newer weather-mcp still promotes, and so does a newer clock-mcp
    [newer] = auto.handle(pushed(WEATHER, "0.3.0", W_NEWER)).updates
    assert newer.outcome is UpdateOutcome.PUSHED, newer.reason
    [clock3] = auto.handle(pushed(CLOCK, "0.3.0", DIGEST_C)).updates
    assert clock3.outcome is UpdateOutcome.PUSHED, clock3.reason
    assert remote.file_at("main", STAGING) == overlay(*NEWER).rstrip()
    assert remote.count() == 5


def test_rollback_app_to_a_commit_on_a_branch(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", two_apps())
    start = remote.head()
    w = _writer(remote, tmp_path)
    p1 = _promote_all(remote, w)
    remote.pull()
    remote.write("overlays/dev/kustomization.yaml", overlay(*NEWER))
    dev3 = remote.commit("dev: both at 0.3.0")
    w.sync()
    _healthy(w, dev3, "dev")
    p2 = promote(w, _envs(w), "dev", "staging", all_images=True).commit
    assert p2 is not None
    w.sync()
    main_before = remote.head()

    result = rollback(w, _envs(w)["staging"], app="weather-mcp", to=start, mode="pr", reason="since start")

    assert result.reverted == [p2, p1] and result.branch == f"rollback/staging/weather-mcp-{p2[:7]}"
    assert remote.head() == main_before  # proposed on a branch; main untouched
    [r] = result.commits
    assert git(remote.bare, "rev-parse", f"refs/heads/{result.branch}") == r
    assert remote.file_at(r, STAGING) == overlay(NEWER[0], OLD[1]).rstrip()
    assert "open a pull request from branch" in result.instructions
    info = w.log(rev=r, max_count=1)[0]
    assert info.trailer("Rollback-Of") == [p2, p1] and info.first("Rollback-App") == "weather-mcp"
    assert info.trailer("Image") == [f"{WEATHER}={WEATHER}:0.1.0@{W_OLD}"]
    remote.merge(result.branch or "")
    w.sync()
    log = w.log()
    assert reverted_images(log) == {WEATHER: {"0.2.0", W_NEW, "0.3.0", W_NEWER}}
    hist = timeline(w, _envs(w)["staging"])
    assert next(e for e in hist if e.sha == r).undoes == [p2, p1]
    assert next(e for e in hist if e.sha == p1).rolled_back_apps == {"weather-mcp": r}
    assert next(e for e in hist if e.sha == p2).rolled_back_apps == {"weather-mcp": r}


def test_refusals_name_the_app_the_entry_and_the_commit(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", two_apps())
    w = _writer(remote, tmp_path)
    staging = _envs(w)["staging"]
    with pytest.raises(PromotionError, match="nothing to roll back: no promotion into staging is in effect"):
        rollback(w, staging, app="weather-mcp")
    with pytest.raises(PromotionError, match=r"unknown app 'nope' .*\(known apps: clock-mcp, weather-mcp\)"):
        rollback(w, staging, app="nope")

    # only clock-mcp was promoted: weather-mcp has nothing in effect to roll back
    _healthy(w, remote.head(), "dev")
    assert promote(w, _envs(w), "dev", "staging", app="clock-mcp").commit is not None
    w.sync()
    count = remote.count()
    with pytest.raises(
        PromotionError,
        match=rf"no promotion into staging in effect changed the images of app 'weather-mcp' \({WEATHER}\)",
    ):
        rollback(w, staging, app="weather-mcp")
    with pytest.raises(PromotionError, match="not a list of commits"):
        rollback(w, staging, app="clock-mcp", commits=[remote.head()])
    assert remote.count() == count

    # a person changed weather-mcp's entry after the promotion: refused, naming the entry and the commit
    variant = make_remote(tmp_path / "variant", two_apps())
    wv = _writer(variant, tmp_path, "variant-cache")
    p = _promote_all(variant, wv)
    variant.pull()
    variant.write(STAGING, variant.read(STAGING).replace("newTag: 0.2.0\n", "newTag: 0.2.0-hotfix1\n"))
    h = variant.commit("staging: weather 0.2.0-hotfix1", who="Hank Human <hank@example.test>")
    wv.sync()
    with pytest.raises(RollbackConflict) as info:
        rollback(wv, _envs(wv)["staging"], app="weather-mcp")
    assert info.value.entry == WEATHER and info.value.conflicting == h and info.value.commit == p
    assert f"the images entry {WEATHER} was changed since promotion {p[:7]} by {h}" in str(info.value)
    assert variant.head() == h and variant.count() == 3
    assert wv.head() == h and git(wv.workdir, "status", "--porcelain") == ""
    # the other app of the same promotion is not in conflict
    assert rollback(wv, _envs(wv)["staging"], app="clock-mcp").reverted == [p]
    assert f"newTag: 0.1.0  # pinned by promotion\n  digest: {DIGEST_A}" in variant.file_at("main", STAGING)

    # the promotion added weather-mcp's entry: a partial rollback does not delete it
    added = make_remote(tmp_path / "added", two_apps(staging_weather=False))
    wa = _writer(added, tmp_path, "added-cache")
    pa = _promote_all(added, wa)
    count = added.count()
    with pytest.raises(PromotionError, match=rf"promotion {pa[:7]} added the images entry {WEATHER}"):
        rollback(wa, _envs(wa)["staging"], app="weather-mcp")
    assert added.count() == count and git(wa.workdir, "status", "--porcelain") == ""


def test_cli_rollback_app(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", two_apps(staging_via="pr"))
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    common = ["--repo", str(remote.bare), "--cache-dir", str(tmp_path / "cli-cache")]
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")
    res = runner.invoke(app, ["promote", "dev", "staging", "--all", "-o", "json", *common])
    assert res.exit_code == 0, res.output
    p = json.loads(res.stdout)["commit"]
    remote.merge(json.loads(res.stdout)["branch"], who="Rita Reviewer <rita@example.test>")

    res = runner.invoke(app, ["rollback", "staging", "--app", "weather-mcp", "--push", *common])
    assert res.exit_code == 2 and "requires a pull request" in res.output
    res = runner.invoke(app, ["rollback", "staging", "--app", "nope", *common])
    assert (
        res.exit_code == 1 and "unknown app 'nope'" in res.output and "clock-mcp, weather-mcp" in res.output
    )
    res = runner.invoke(app, ["rollback", "staging", "--app", "weather-mcp", "--reason", "storm", *common])
    assert res.exit_code == 0, res.output
    assert f"rolled back app weather-mcp of {p[:7]} in staging" in res.stdout
    moved = f"{WEATHER}: {WEATHER}:0.2.0@{W_NEW} -> {WEATHER}:0.1.0@{W_OLD}"
    assert "".join(moved.split()) in "".join(res.stdout.split())  # the console wraps long lines
    branch = f"rollback/staging/weather-mcp-{p[:7]}"
    assert branch in res.stdout
    r = git(remote.bare, "rev-parse", f"refs/heads/{branch}")
    remote.merge(branch)

    res = runner.invoke(app, ["history", "staging", "-o", "json", *common])
    assert res.exit_code == 0, res.output
    hist = {e["sha"]: e for e in json.loads(res.stdout)}
    assert hist[r]["kind"] == "rollback" and hist[r]["rollback_app"] == "weather-mcp"
    assert hist[r]["rollback_of"] == p and hist[p]["reverted_by"] is None
    assert hist[p]["rolled_back_apps"] == {"weather-mcp": r}
    res = runner.invoke(app, ["history", "staging", *common])
    assert res.exit_code == 0, res.output
    assert r[:7] in res.stdout and "rollback" in res.stdout and "(app" in res.stdout
    # the notes column, as the table's rows are made (the table wraps its cells)
    w.sync()
    entries = {e.sha: e for e in timeline(w, _envs(w)["staging"])}
    assert f"undoes {p[:7]} (app weather-mcp); storm" in _row(entries[r])[-1]
    assert f"app weather-mcp rolled back in {r[:7]}" in _row(entries[p])[-1]
    assert remote.file_at("main", STAGING) == overlay(NEW[0], OLD[1]).rstrip()

    res = runner.invoke(app, ["rollback", "staging", "--app", "weather-mcp", "-o", "json", *common])
    assert res.exit_code == 1 and "already rolled back" in res.output
