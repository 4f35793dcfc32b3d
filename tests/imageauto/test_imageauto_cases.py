"""Shared cases 25, 28 and 31 end to end: the payload bytes through the real webhook receivers, the image
automation on a real Git clone with a bare remote; the remote's commits must be exactly the expected ones."""

from __future__ import annotations

from pathlib import Path

import pytest
from _imageauto_support import (
    CASE25,
    CASE28,
    CASE31,
    CE_TOKEN,
    QUAY_TOKEN,
    CaseRepo,
    Hooks,
    load_envs,
    make_case_repo,
    read_json,
)

from reconciler.promote.images import ImageAutomation, UpdateOutcome, pr_branch
from reconciler.promote.rollback import RollbackConflict, rollback
from reconciler.render import build, load_yaml_documents
from reconciler.source.gitops import GitWriter
from webhooks.events import ImagePushed

SEMVER_ONLY = r"^\d+\.\d+\.\d+$"  # the cases' accept_tags_matching


def env_yaml(overlay: str, image: str, *, via: str = "push", extra: str = "") -> str:
    return (
        f"overlay: {overlay}\n"
        f"promotion: {{via: {via}}}\n"
        "imagePolicies:\n"
        "- name: app\n"
        f"  image: {image}\n"
        "  policy:\n"
        "    semver: {range: '>=0.0.0'}\n"
        f"  filterTags: {{pattern: '{SEMVER_ONLY}'}}\n" + extra
    )


def automation(repo: CaseRepo, tmp_path: Path) -> ImageAutomation:
    writer = GitWriter(str(repo.remote), "main", tmp_path / "cache")
    return ImageAutomation(writer, load_envs)


# --------------------------------------------------------------------------- case 25


async def test_case25_harbor_push_updates_the_new_name_entry(tmp_path: Path) -> None:
    cfg = read_json(CASE25 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    repo = make_case_repo(CASE25, tmp_path, {"prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"])})
    auto = automation(repo, tmp_path)
    expected = read_json(CASE25 / "expected.json")["deliveries"]
    c0 = repo.head()
    async with Hooks() as hooks:
        for d in expected:
            before = repo.commits()
            body = (CASE25 / d["body"]).read_bytes()
            status, events = await hooks.post("/hook/harbor", body, read_json(CASE25 / d["headers"]))
            if "http_status_class" in d:
                assert 200 <= status < 300, d
            else:
                assert status in d["http_status"], d
            results = [auto.handle(e) for e in events]
            new = repo.commits()[len(before) :]
            assert len(new) == d["git"]["commits"], (d, results)
            if "parsed_event" in d:
                ev = d["parsed_event"]
                assert [(e.registry, e.repository, e.image, e.tag, e.digest) for e in events] == [
                    (ev["registry_host"], ev["repository"], ev["image"], ev["tag"], ev["digest"])
                ]
                [update] = results[0].updates
                assert update.outcome is UpdateOutcome.PUSHED and update.commit == new[0]
                assert [{"name": c.entry, "matched_on": c.matched_on} for c in update.changes] == d[
                    "matched_images_entries"
                ]
                assert repo.changed_files(new[0]) == d["git"]["changed_files"]
                target = d["git"]["changed_files"][0]
                got = repo.show(new[0], target)
                assert got == (CASE25 / d["git"]["result_equals"]).read_text()
                assert got.count("- name:") == d["git"]["images_entries_after"]
                assert repo.parents(new[0]) == [c0]
                # render the overlay at the new commit: exactly expected-render.yaml
                checkout = tmp_path / "render"
                repo.git("worktree", "add", "--detach", str(checkout), new[0])
                objs = build(checkout / Path(target).parent, root=checkout)
                render_file = CASE25 / d["render_after_equals"]
                want = load_yaml_documents(render_file.read_text(), path=str(render_file))
                assert objs == want
    assert repo.no_empty_commits()


# --------------------------------------------------------------------------- case 28


async def test_case28_no_empty_or_duplicate_commits(tmp_path: Path) -> None:
    cfg = read_json(CASE28 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    repo = make_case_repo(CASE28, tmp_path, {"prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"])})
    auto = automation(repo, tmp_path)
    expected = read_json(CASE28 / "expected.json")
    steps = expected["after_each_step"]
    assert [s["step"] for s in steps] == cfg["sequence"]
    async with Hooks() as hooks:
        for step in steps:
            before = repo.commits()
            status, events = await hooks.post(
                f"/hook/quay/{QUAY_TOKEN}",
                (CASE28 / step["step"]).read_bytes(),
                {"Content-Type": "application/json"},
            )
            assert 200 <= status < 300
            auto.handle_batch(events)
            after = repo.commits()
            new = after[len(before) :]
            assert len(new) == step["new_commits"], step
            assert (after[-1] != before[-1]) == step["head_moved"]
            if "commit" in step:
                c = step["commit"]
                assert repo.changed_files(new[0]) == c["changed_files"]
                assert repo.diff_lines(new[0]) == c["diff"]
                assert len(repo.parents(new[0])) == c["parents"]
            # an interval run with no new registry data between deliveries
            head = repo.head()
            for r in auto.rescan():
                assert not r.commits
            assert repo.head() == head
            assert expected["interval_reconciles_between_steps"]["new_commits"] == 0
    assert len(repo.commits()) == 1 + 1  # the seed commit and the one expected commit
    assert repo.no_empty_commits()


async def test_case28_event_order_does_not_matter_for_duplicates(tmp_path: Path) -> None:
    """The same four deliveries in one batch (as a JetStream fetch hands them over): still one commit."""
    cfg = read_json(CASE28 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    repo = make_case_repo(CASE28, tmp_path, {"prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"])})
    auto = automation(repo, tmp_path)
    events: list[ImagePushed] = []
    async with Hooks() as hooks:
        for name in [*cfg["sequence"], *reversed(cfg["sequence"])]:
            _, evs = await hooks.post(
                f"/hook/quay/{QUAY_TOKEN}", (CASE28 / name).read_bytes(), {"Content-Type": "application/json"}
            )
            events += evs
    results = auto.handle_batch(events)
    assert sum(len(r.commits) for r in results) == 1
    assert len(repo.commits()) == 2 and repo.no_empty_commits()


# --------------------------------------------------------------------------- case 31


def _ce_structured(name: str) -> tuple[bytes, dict[str, str]]:
    return (CASE31 / name).read_bytes(), {"Content-Type": "application/cloudevents+json"}


async def test_case31_rollback_sticks_and_a_newer_version_still_promotes(tmp_path: Path) -> None:
    cfg = read_json(CASE31 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    target = cfg["git_target"]
    image = cfg["image_policy"]["image"]
    repo = make_case_repo(CASE31, tmp_path, {"prod.yaml": env_yaml(overlay, image)})
    auto = automation(repo, tmp_path)
    exp = read_json(CASE31 / "expected.json")["steps"]
    c0 = repo.head()

    def new_tag(sha: str) -> str:
        text = repo.show(sha, target)
        return text.split("newTag:")[1].split()[0]

    async with Hooks() as hooks:
        # step 1: deliver 0.1.6 → C1
        status, events = await hooks.post(
            f"/hook/ce/{CE_TOKEN}", *_ce_structured("event-0.1.6-structured.json")
        )
        assert 200 <= status < 300 and [e.tag for e in events] == ["0.1.6"]
        auto.handle_batch(events)
        c1 = repo.head()
        assert repo.commits() == [c0, c1]
        assert new_tag(c1) == exp["1"]["file_newTag_after"]
        for s in exp["1"]["commit_message_must_contain"]:
            assert s in repo.message(c1)

        # step 2: roll back that promotion with the product's rollback (a true git revert) → C2
        writer = auto.writer
        with writer.locked():
            writer.sync()
            env = load_envs(writer.workdir)["prod"]
            rb = rollback(writer, env, reason="case 31 step 2", mode="push")
        c2 = repo.head()
        assert repo.commits() == [c0, c1, c2] and rb is not None
        assert repo.tree(c2) == repo.tree(c0)
        assert new_tag(c2) == exp["2"]["file_newTag_after"]
        assert "Revert" in repo.message(c2) and c1 in repo.message(c2)

        # step 3: the same tag again, binary mode, a new event id → no commit, and the status says why
        body = (CASE31 / "event-0.1.6-binary.body.json").read_bytes()
        headers = read_json(CASE31 / "event-0.1.6-binary.headers.json")
        status, events = await hooks.post(f"/hook/ce/{CE_TOKEN}", body, headers)
        assert 200 <= status < 300 and [e.tag for e in events] == ["0.1.6"]
        [result] = auto.handle_batch(events)
        assert repo.commits() == [c0, c1, c2]
        [update] = result.updates
        assert update.outcome is UpdateOutcome.HELD
        assert "0.1.6 is held back because its promotion was rolled back in" in update.reason
        assert c2[:7] in update.reason

        # step 3b: an interval scan; the registry still lists 0.1.6 as the newest tag
        scan = auto.scan(image, {"0.1.3": None, "0.1.6": None})
        assert not scan.commits and repo.commits() == [c0, c1, c2]
        assert not any(r.commits for r in auto.rescan())
        assert new_tag(repo.head()) == exp["3b"]["file_newTag_after"]

        # step 4: 0.1.7 → C3
        status, events = await hooks.post(
            f"/hook/ce/{CE_TOKEN}", *_ce_structured("event-0.1.7-structured.json")
        )
        auto.handle_batch(events)
        c3 = repo.head()
        assert repo.commits() == [c0, c1, c2, c3]
        assert new_tag(c3) == exp["4"]["file_newTag_after"]
        for s in exp["4"]["commit_message_must_contain"]:
            assert s in repo.message(c3)
    assert repo.no_empty_commits()


async def test_case31_conflicting_revert_is_refused_cleanly(tmp_path: Path) -> None:
    cfg = read_json(CASE31 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    target = cfg["git_target"]
    repo = make_case_repo(CASE31, tmp_path, {"prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"])})
    auto = automation(repo, tmp_path)
    async with Hooks() as hooks:
        _, events = await hooks.post(f"/hook/ce/{CE_TOKEN}", *_ce_structured("event-0.1.6-structured.json"))
    auto.handle_batch(events)
    # a person changes the same line: 0.1.6 → 0.1.6-hotfix1 (commit H)
    r = __import__("git").Repo(repo.work)
    r.git.pull("-q", "origin", "main")
    r.close()
    path = repo.work / target
    path.write_text(path.read_text().replace("newTag: 0.1.6", "newTag: 0.1.6-hotfix1"))
    from reconciler.source.bootstrap import commit_and_push

    h = commit_and_push(repo.work, "hotfix: planner 0.1.6-hotfix1")
    writer = auto.writer
    with writer.locked():
        writer.sync()
        env = load_envs(writer.workdir)["prod"]
        with pytest.raises(RollbackConflict) as err:
            rollback(writer, env, reason="variant", mode="push")
        assert h[:7] in str(err.value)
        assert writer.head() == h
        assert writer.repo.git.status("--porcelain") == ""
    assert repo.head() == h


# --------------------------------------------------------------------------- pull-request environments


async def test_pr_environment_gets_one_branch_per_version_and_main_is_untouched(tmp_path: Path) -> None:
    cfg = read_json(CASE31 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    repo = make_case_repo(
        CASE31, tmp_path, {"prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"], via="pr")}
    )
    auto = automation(repo, tmp_path)
    c0 = repo.head()
    async with Hooks() as hooks:
        _, e16 = await hooks.post(f"/hook/ce/{CE_TOKEN}", *_ce_structured("event-0.1.6-structured.json"))
        body = (CASE31 / "event-0.1.6-binary.body.json").read_bytes()
        _, e16b = await hooks.post(
            f"/hook/ce/{CE_TOKEN}", body, read_json(CASE31 / "event-0.1.6-binary.headers.json")
        )
        _, e17 = await hooks.post(f"/hook/ce/{CE_TOKEN}", *_ce_structured("event-0.1.7-structured.json"))
    first = auto.handle_batch(e16)
    [u] = first[0].updates
    assert u.outcome is UpdateOutcome.PROPOSED and u.branch == pr_branch("prod", "app", "0.1.6")
    again = auto.handle_batch(e16b + e16)  # a re-announcement and a redelivery
    assert all(up.outcome is UpdateOutcome.UNCHANGED for r in again for up in r.updates)
    auto.handle_batch(e17)
    assert repo.commits() == [c0]  # the followed branch never moves in a pr environment
    assert sorted(repo.branches()) == ["image/prod/app-0.1.6", "image/prod/app-0.1.7", "main"]
    for b, tag in (("image/prod/app-0.1.6", "0.1.6"), ("image/prod/app-0.1.7", "0.1.7")):
        commits = repo.commits(b)
        assert commits[:-1] == [c0] and len(commits) == 2  # one commit on top of main each
        assert f"newTag: {tag}" in repo.show(b, cfg["git_target"])
        assert repo.changed_files(commits[-1]) == [cfg["git_target"]]
    assert repo.no_empty_commits()


async def test_digest_pinning_and_trailers(tmp_path: Path) -> None:
    cfg = read_json(CASE31 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    image = cfg["image_policy"]["image"]
    repo = make_case_repo(CASE31, tmp_path, {"prod.yaml": env_yaml(overlay, image, extra="  digest: pin\n")})
    auto = automation(repo, tmp_path)
    d1, d2 = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    ev = ImagePushed(
        registry="registry.example.test",
        repository="agents/planner",
        tag="0.2.0",
        digest=d1,
        source="t/x",
        delivery_id="a",
    )
    auto.handle(ev)
    head = repo.head()
    text = repo.show(head, cfg["git_target"])
    assert f"newTag: 0.2.0\n  digest: {d1}\n" in text
    msg = repo.message(head)
    assert "Promotion-To: prod" in msg and "Image-Policy: prod/app" in msg
    assert f"Image: {image}={image}:0.2.0@{d1}" in msg and "Image-Event: t/x a" in msg
    # a duplicate changes nothing; the same tag pushed again with new content moves the pinned digest
    auto.handle(ev)
    assert repo.head() == head
    auto.handle(ev.model_copy(update={"digest": d2, "delivery_id": "b"}))
    assert repo.diff_lines(repo.head()) == [f"-  digest: {d1}", f"+  digest: {d2}"]
    # a pin policy cannot use an event without a digest
    [r] = auto.handle(ev.model_copy(update={"digest": None, "tag": "0.3.0", "delivery_id": "c"})).updates
    assert r.outcome is UpdateOutcome.IGNORED and "digest" in r.reason
    assert repo.no_empty_commits()


async def test_ignored_and_failed_decisions_commit_nothing(tmp_path: Path) -> None:
    cfg = read_json(CASE31 / "webhook-config.json")
    overlay = str(Path(cfg["git_target"]).parent)
    repo = make_case_repo(
        CASE31,
        tmp_path,
        {
            "prod.yaml": env_yaml(overlay, cfg["image_policy"]["image"]),
            "other.yaml": env_yaml("clusters/missing", cfg["image_policy"]["image"]),
        },
    )
    auto = automation(repo, tmp_path)
    c0 = repo.head()

    def ev(tag: str | None, repository: str = "agents/planner") -> ImagePushed:
        return ImagePushed(
            registry="registry.example.test",
            repository=repository,
            tag=tag,
            source="t/x",
            delivery_id=f"{tag}",
        )

    [latest] = auto.handle(ev("latest")).updates[:1]
    assert latest.outcome is UpdateOutcome.IGNORED and "does not match" in latest.reason
    [older] = [u for u in auto.handle(ev("0.1.2")).updates if u.environment == "prod"]
    assert older.outcome is UpdateOutcome.UNCHANGED and "not newer" in older.reason
    [same] = [u for u in auto.handle(ev("0.1.3")).updates if u.environment == "prod"]
    assert same.outcome is UpdateOutcome.UNCHANGED and "already at 0.1.3" in same.reason
    [none] = auto.handle(ev(None)).updates
    assert none.outcome is UpdateOutcome.IGNORED and "no tag" in none.reason
    [other] = auto.handle(ev("1.0.0", "agents/other")).updates
    assert other.outcome is UpdateOutcome.IGNORED and "no image policy" in other.reason
    assert repo.commits() == [c0]
    # the environment whose overlay is missing fails alone; prod still moves
    result = auto.handle(ev("0.1.4"))
    by_env = {u.environment: u for u in result.updates}
    assert by_env["other"].outcome is UpdateOutcome.FAILED and "clusters/missing" in by_env["other"].reason
    assert by_env["prod"].outcome is UpdateOutcome.PUSHED and len(repo.commits()) == 2
