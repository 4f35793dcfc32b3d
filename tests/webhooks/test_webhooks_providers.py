"""Per-provider parsing and authentication, through the HTTP server with realistic payloads."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from _webhook_support import PAYLOADS, SECRETS, FakePublisher, hub_signature
from aiohttp import web
from aiohttp.test_utils import TestClient

from webhooks.events import GitPushed, ImagePushed, PullRequestChanged
from webhooks.verify import hmac_sha256_hex

Client = TestClient[web.Request, web.Application]


def _body(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


async def _post(client: Any, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    resp = await client.post(path, data=body, headers={"Content-Type": "application/json", **headers})
    return resp.status, await resp.json()


def _images(p: FakePublisher) -> list[ImagePushed]:
    return [ImagePushed.model_validate_json(m.data) for m in p.messages]


def _pushes(p: FakePublisher) -> list[GitPushed]:
    return [GitPushed.model_validate_json(m.data) for m in p.messages]


# --- Git hosts -----------------------------------------------------------------------------------------


async def test_github_push(client: Client, publisher: FakePublisher) -> None:
    body = _body("github-push.json")
    headers = {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-1",
        "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
    }
    status, resp = await _post(client, "/hook/github", body, headers)
    assert status == 202, resp
    [push] = _pushes(publisher)
    assert push.repository == "https://github.com/acme/gitops-envs.git"
    assert push.full_name == "acme/gitops-envs"
    assert push.ref == "refs/heads/main"
    assert push.before == "9049f1265b7d61be4a8904a9a27120d2064dab3b"
    assert push.after == "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
    assert push.source == "github/github"
    assert publisher.messages[0].subject == "reconciler.git.push.acme_gitops-envs"
    assert publisher.messages[0].msg_id == "github/d-1"


async def test_github_ping_is_ignored(client: Client, publisher: FakePublisher) -> None:
    body = b'{"zen": "Keep it logically awesome.", "hook_id": 1}'
    headers = {
        "X-GitHub-Event": "ping",
        "X-GitHub-Delivery": "d-2",
        "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
    }
    status, resp = await _post(client, "/hook/github", body, headers)
    assert status == 200 and resp["status"] == "ignored"
    assert publisher.messages == []


async def test_github_registry_package(client: Client, publisher: FakePublisher) -> None:
    body = _body("github-registry-package.json")
    headers = {
        "X-GitHub-Event": "registry_package",
        "X-GitHub-Delivery": "d-3",
        "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
    }
    status, resp = await _post(client, "/hook/github", body, headers)
    assert status == 202, resp
    [img] = _images(publisher)
    assert (img.registry, img.repository, img.tag) == ("ghcr.io", "acme/research-agent", "2.0.0")
    assert img.digest == "sha256:" + "1" * 64
    assert img.media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
    # GitHub sends 0001-01-01 here (no time): the receive time stands in.
    assert img.pushed_at.year >= 2025


async def test_github_non_container_package_is_ignored(client: Client, publisher: FakePublisher) -> None:
    doc = json.loads(_body("github-registry-package.json"))
    doc["registry_package"]["package_type"] = "npm"
    doc["registry_package"]["ecosystem"] = "npm"
    body = json.dumps(doc).encode()
    headers = {
        "X-GitHub-Event": "registry_package",
        "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
    }
    status, resp = await _post(client, "/hook/github", body, headers)
    assert status == 200 and "not a container" in resp["ignored"][0]
    assert publisher.messages == []


async def test_gitea_push(client: Client, publisher: FakePublisher) -> None:
    body = _body("gitea-push.json")
    headers = {
        "X-Gitea-Event": "push",
        "X-Gitea-Delivery": "g-1",
        "X-Gitea-Signature": hmac_sha256_hex(SECRETS["gitea"].encode(), body),
    }
    status, resp = await _post(client, "/hook/gitea", body, headers)
    assert status == 202, resp
    [push] = _pushes(publisher)
    assert push.repository == "https://gitea.example.com/platform/envs.git"
    assert push.after == "bffeb74224043ba2feb48d137756c8a9331c449a"
    headers["X-Gitea-Signature"] = hmac_sha256_hex(b"wrong", body)
    status, _ = await _post(client, "/hook/gitea", body, headers)
    assert status == 401
    assert len(publisher.messages) == 1


async def test_gitlab_push_token(client: Client, publisher: FakePublisher) -> None:
    body = _body("gitlab-push.json")
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": "gl-uuid-1", "X-Gitlab-Token": "bad"}
    status, _ = await _post(client, "/hook/gitlab", body, headers)
    assert status == 401
    headers["X-Gitlab-Token"] = SECRETS["gitlab"]
    status, resp = await _post(client, "/hook/gitlab", body, headers)
    assert status == 202, resp
    [push] = _pushes(publisher)
    assert push.repository == "https://gitlab.example.com/platform/envs.git"
    assert push.full_name == "platform/envs"
    assert push.ref == "refs/heads/main"
    assert push.delivery_id == "gl-uuid-1"


async def test_gitlab_registry_notification(client: Client, publisher: FakePublisher) -> None:
    body = _body("gitlab-registry.json")
    headers = {
        "Content-Type": "application/vnd.docker.distribution.events.v1+json",
        "Authorization": SECRETS["gitlab"],
    }
    status, resp = await _post(client, "/hook/gitlab", body, headers)
    assert status == 202, resp
    [img] = _images(publisher)  # the blob push (no tag) is ignored, the tagged manifest is published
    assert img.image == "registry.gitlab.example.com:5050/platform/agents/planner"
    assert img.tag == "3.1.0"
    assert img.delivery_id == "6a0c3e7d-1b2f-4d8a-9e0c-5f7a1b2c3d4e"
    assert len(resp["ignored"]) == 1


async def test_bitbucket_cloud_two_changes(client: Client, publisher: FakePublisher) -> None:
    body = _body("bitbucket-cloud-push.json")
    headers = {
        "X-Event-Key": "repo:push",
        "X-Request-UUID": "bb-req-1",
        "X-Hub-Signature": hub_signature(SECRETS["bitbucket"], body),
    }
    status, resp = await _post(client, "/hook/bitbucket", body, headers)
    assert status == 202, resp
    branch, tag = _pushes(publisher)
    assert branch.ref == "refs/heads/main" and branch.after == "7f2a4c0d9e8b1a2c3d4e5f60718293a4b5c6d7e8"
    assert tag.ref == "refs/tags/release-7" and tag.created and tag.before == "0" * 40
    assert branch.repository == "https://bitbucket.org/acme/envs"
    assert [m.msg_id for m in publisher.messages] == ["bitbucket/bb-req-1/0", "bitbucket/bb-req-1/1"]


async def test_bitbucket_server_refs_changed(client: Client, publisher: FakePublisher) -> None:
    body = _body("bitbucket-server-push.json")
    sig = hub_signature(SECRETS["bitbucket-server"], body)
    status, resp = await _post(
        client, "/hook/bitbucket-server", body, {"X-Event-Key": "diagnostics:ping", "X-Hub-Signature": sig}
    )
    assert status == 200 and resp["status"] == "ignored"
    status, resp = await _post(
        client,
        "/hook/bitbucket-server",
        body,
        {"X-Event-Key": "repo:refs_changed", "X-Request-Id": "r-9", "X-Hub-Signature": sig},
    )
    assert status == 202, resp
    [push] = _pushes(publisher)
    assert push.repository == "https://bitbucket.example.com/scm/plat/envs.git"
    assert push.full_name == "PLAT/envs"
    assert push.before == "ecddabb624f6f5ba43816f5926e580a5f680a932"


# --- registries -----------------------------------------------------------------------------------------


async def test_dockerhub_path_token(client: Client, publisher: FakePublisher) -> None:
    body = _body("dockerhub.json")
    assert (await _post(client, "/hook/dockerhub", body, {}))[0] == 401
    assert (await _post(client, "/hook/dockerhub/nope", body, {}))[0] == 401
    status, resp = await _post(client, f"/hook/dockerhub/{SECRETS['dockerhub']}", body, {})
    assert status == 202, resp
    [img] = _images(publisher)
    assert (img.registry, img.repository, img.tag, img.digest) == ("docker.io", "acme/planner", "1.2.3", None)
    assert img.pushed_at.timestamp() == 1750000000


async def test_dockerhub_official_image_keeps_library(client: Client, publisher: FakePublisher) -> None:
    doc = json.loads(_body("dockerhub.json"))
    doc["repository"]["repo_name"] = "library/nginx"
    status, _ = await _post(client, f"/hook/dockerhub/{SECRETS['dockerhub']}", json.dumps(doc).encode(), {})
    assert status == 202
    assert _images(publisher)[0].image == "docker.io/library/nginx"


async def test_quay_one_event_per_tag(client: Client, publisher: FakePublisher) -> None:
    status, resp = await _post(client, f"/hook/quay/{SECRETS['quay']}", _body("quay.json"), {})
    assert status == 202, resp
    imgs = _images(publisher)
    assert [(i.image, i.tag) for i in imgs] == [
        ("quay.io/acme/planner", "1.2.3"),
        ("quay.io/acme/planner", "latest"),
    ]
    assert len({m.msg_id for m in publisher.messages}) == 2


async def test_acr_push_and_ping(client: Client, publisher: FakePublisher) -> None:
    status, resp = await _post(client, f"/hook/acr/{SECRETS['acr']}", _body("acr.json"), {})
    assert status == 202, resp
    [img] = _images(publisher)
    assert img.image == "acmeregistry.azurecr.io/agents/planner" and img.tag == "v1"
    assert img.delivery_id == "cb8c3971-9adc-488b-bdd8-43cbb4974ff5"
    ping = json.dumps({"id": "p1", "timestamp": "2025-06-10T09:00:00Z", "action": "ping"}).encode()
    status, resp = await _post(client, f"/hook/acr/{SECRETS['acr']}", ping, {})
    assert status == 200 and resp["status"] == "ignored"


async def test_gar_pubsub_envelope(client: Client, publisher: FakePublisher) -> None:
    status, resp = await _post(client, f"/hook/gar/{SECRETS['gar']}", _body("gar-pubsub.json"), {})
    assert status == 202, resp
    [img] = _images(publisher)
    assert img.registry == "us-east1-docker.pkg.dev"
    assert img.repository == "acme-prod/agents/planner"
    assert img.tag == "1.0.4"
    assert img.digest == "sha256:6ec128e26cd5a27c35b8d9a6b3f5e7c9d1a2b3c4d5e6f708192a3b4c5d6e7f80"
    assert img.delivery_id == "11868931735938123"


async def test_gar_digest_only_and_delete_are_ignored(client: Client, publisher: FakePublisher) -> None:
    for note in (
        {"action": "INSERT", "digest": "us-docker.pkg.dev/p/r/app@sha256:" + "a" * 64},
        {"action": "DELETE", "tag": "us-docker.pkg.dev/p/r/app:1"},
    ):
        env = {"message": {"data": base64.b64encode(json.dumps(note).encode()).decode(), "messageId": "m"}}
        status, resp = await _post(client, f"/hook/gar/{SECRETS['gar']}", json.dumps(env).encode(), {})
        assert status == 200 and resp["status"] == "ignored", resp
    assert publisher.messages == []


async def test_harbor_cloudevents_format(client: Client, publisher: FakePublisher) -> None:
    status, resp = await _post(
        client, "/hook/harbor", _body("harbor-cloudevents.json"), {"Authorization": SECRETS["harbor"]}
    )
    assert status == 202, resp
    [img] = _images(publisher)
    assert img.image == "harbor.example.com/library/planner" and img.tag == "2.0.1"
    assert img.delivery_id == "4b2f89a6-548d-4c12-9993-a35a7b5c4a11"


async def test_cdevents_artifact_published(client: Client, publisher: FakePublisher) -> None:
    status, resp = await _post(
        client,
        f"/hook/cloudevents/{SECRETS['cloudevents']}",
        _body("cdevents-artifact-published.json"),
        {"Content-Type": "application/cloudevents+json"},
    )
    assert status == 202, resp
    [img] = _images(publisher)
    assert img.image == "registry.example.test:5000/agents/planner"
    assert img.tag == "0.2.0"
    assert img.digest == "sha256:0b31b1c02ff458ad9b7b81cbdf8f028bd54699fa151f221d1e8de6817db93427"


async def test_cloudevent_of_unmapped_type_is_ignored(client: Client, publisher: FakePublisher) -> None:
    ev = {"specversion": "1.0", "id": "x", "source": "/s", "type": "com.example.other", "data": {}}
    status, resp = await _post(
        client,
        f"/hook/cloudevents/{SECRETS['cloudevents']}",
        json.dumps(ev).encode(),
        {"Content-Type": "application/cloudevents+json"},
    )
    assert status == 200 and "no mapping" in resp["ignored"][0]
    assert publisher.messages == []


@pytest.mark.parametrize("spec", ["0.3", None])
async def test_cloudevent_bad_specversion_is_400(
    client: Client, publisher: FakePublisher, spec: str | None
) -> None:
    ev = {"specversion": spec, "id": "x", "source": "/s", "type": "com.example.registry.artifact.pushed"}
    status, resp = await _post(
        client,
        f"/hook/cloudevents/{SECRETS['cloudevents']}",
        json.dumps(ev).encode(),
        {"Content-Type": "application/cloudevents+json"},
    )
    assert status == 400 and "specversion" in resp["error"]
    assert publisher.messages == []


async def test_generic_hmac(client: Client, publisher: FakePublisher) -> None:
    body = json.dumps({"image": "localhost:5000/team/app:2.1.0@sha256:" + "b" * 64}).encode()
    status, _ = await _post(client, "/hook/generic", body, {"X-Signature": "sha256=" + "0" * 64})
    assert status == 401
    status, resp = await _post(
        client,
        "/hook/generic",
        body,
        {"X-Signature": hub_signature(SECRETS["generic"], body), "X-Delivery-Id": "gen-1"},
    )
    assert status == 202, resp
    [img] = _images(publisher)
    assert (img.registry, img.repository, img.tag) == ("localhost:5000", "team/app", "2.1.0")
    assert img.digest == "sha256:" + "b" * 64
    assert publisher.messages[0].msg_id == "generic/gen-1"


def _pull_body(action: str) -> bytes:
    """A pull_request delivery as GitHub and Gitea shape it (the fields reconciler reads, and some it
    does not)."""
    return json.dumps(
        {
            "action": action,
            "number": 7,
            "pull_request": {
                "number": 7,
                "title": "promote(staging): clock-mcp 0.2.0",
                "head": {
                    "ref": "promote/staging/abc1234",
                    "sha": "ab" * 20,
                    "label": "promote/staging/abc1234",
                },
                "base": {"ref": "main", "sha": "cd" * 20},
            },
            "repository": {
                "full_name": "platform/envs",
                "clone_url": "https://gitea.example.com/platform/envs.git",
            },
        }
    ).encode()


@pytest.mark.parametrize(
    ("event", "action"),
    [("pull_request", "opened"), ("pull_request", "synchronized"), ("pull_request_sync", "synchronized")],
)
async def test_gitea_pull_request_asks_for_a_check(
    client: Client, publisher: FakePublisher, event: str, action: str
) -> None:
    body = _pull_body(action)
    headers = {
        "X-Gitea-Event": event,
        "X-Gitea-Delivery": f"pr-{event}-{action}",
        "X-Gitea-Signature": hmac_sha256_hex(SECRETS["gitea"].encode(), body),
    }
    status, resp = await _post(client, "/hook/gitea", body, headers)
    assert status == 202, resp
    [msg] = publisher.messages
    assert msg.subject == "reconciler.git.pr.platform_envs"
    pr = PullRequestChanged.model_validate_json(msg.data)
    assert (pr.number, pr.head_ref, pr.head_sha, pr.base_ref) == (
        7,
        "promote/staging/abc1234",
        "ab" * 20,
        "main",
    )


async def test_pull_request_actions_without_new_commits_are_ignored(
    client: Client, publisher: FakePublisher
) -> None:
    for action in ("closed", "edited", "labeled"):
        body = _pull_body(action)
        headers = {
            "X-GitHub-Event": "pull_request",
            "X-GitHub-Delivery": f"gh-{action}",
            "X-Hub-Signature-256": hub_signature(SECRETS["github"], body),
        }
        status, resp = await _post(client, "/hook/github", body, headers)
        assert status in (200, 202), resp
    assert publisher.messages == []
