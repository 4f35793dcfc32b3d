"""Property tests: no parser crashes on any input other than with PayloadError (→ 400), and the model
grammar round-trips through JSON."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _webhook_support import CASE24, CASE25, CASE31, PAYLOADS, all_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhooks.config import Provider
from webhooks.events import GitPushed, ImagePushed
from webhooks.providers import Delivery, ParseResult, PayloadError, parse_delivery

SETTINGS = all_settings()
RECEIVERS = {r.name: r for r in SETTINGS.receivers}

# Headers each provider looks at, with the values that route to its event parsers.
HEADERS: dict[str, list[dict[str, str]]] = {
    "github": [{"X-GitHub-Event": e} for e in ("push", "package", "registry_package", "ping", "issues")],
    "case24": [{"X-GitHub-Event": "package"}],
    "gitea": [{"X-Gitea-Event": "push"}],
    "gitlab": [{"X-Gitlab-Event": "Push Hook"}, {}],
    "bitbucket": [{"X-Event-Key": "repo:push"}],
    "bitbucket-server": [{"X-Event-Key": "repo:refs_changed"}],
    "cloudevents": [
        {"Content-Type": "application/cloudevents+json"},
        {
            "ce-specversion": "1.0",
            "ce-id": "1",
            "ce-source": "/s",
            "ce-type": "com.example.registry.artifact.pushed",
            "Content-Type": "application/json",
        },
    ],
    "case31": [{"Content-Type": "application/cloudevents+json"}],
}
SEEDS: dict[str, list[Any]] = {
    "github": [
        json.loads((PAYLOADS / f).read_text()) for f in ("github-push.json", "github-registry-package.json")
    ],
    "case24": [json.loads((CASE24 / "payload.json").read_text())],
    "gitea": [json.loads((PAYLOADS / "gitea-push.json").read_text())],
    "gitlab": [json.loads((PAYLOADS / f).read_text()) for f in ("gitlab-push.json", "gitlab-registry.json")],
    "bitbucket": [json.loads((PAYLOADS / "bitbucket-cloud-push.json").read_text())],
    "bitbucket-server": [json.loads((PAYLOADS / "bitbucket-server-push.json").read_text())],
    "dockerhub": [json.loads((PAYLOADS / "dockerhub.json").read_text())],
    "quay": [json.loads((PAYLOADS / "quay.json").read_text())],
    "acr": [json.loads((PAYLOADS / "acr.json").read_text())],
    "gar": [json.loads((PAYLOADS / "gar-pubsub.json").read_text())],
    "harbor": [
        json.loads((PAYLOADS / "harbor-cloudevents.json").read_text()),
        json.loads((CASE25 / "payload.json").read_text()),
    ],
    "distribution": [json.loads((PAYLOADS / "gitlab-registry.json").read_text())],
    "cloudevents": [
        json.loads((PAYLOADS / "cdevents-artifact-published.json").read_text()),
        json.loads((CASE31 / "event-0.1.7-structured.json").read_text()),
    ],
    "case31": [json.loads((CASE31 / "event-0.1.6-structured.json").read_text())],
    "generic": [
        {"image": "r.example:5000/a/b:1.0@sha256:" + "c" * 64},
        {"repository": "a/b", "ref": "refs/heads/x", "after": "d" * 40},
    ],
}

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.sampled_from(
        ["", "sha256:" + "a" * 64, "refs/heads/main", "a" * 40, "host:5000/x/y:1", "@", ":", "/"]
    ),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*prefix, i))
    return out


def _replace(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    doc = json.loads(json.dumps(doc))
    node = doc
    for p in path[:-1]:
        node = node[p]
    node[path[-1]] = value
    return doc


def _check(name: str, headers: dict[str, str], body: bytes) -> None:
    d = Delivery(receiver=RECEIVERS[name], headers=headers, body=body)
    try:
        result = parse_delivery(d)
    except PayloadError as exc:
        assert str(exc)  # a reason is always given
        return
    assert isinstance(result, ParseResult)
    for ev in result.events:
        assert isinstance(ev, (ImagePushed, GitPushed))
        # Whatever was accepted must survive the trip over NATS unchanged.
        assert type(ev).model_validate_json(ev.model_dump_json()) == ev
        if isinstance(ev, ImagePushed):
            assert ev.tag, "an untagged image must never be published"


_DELETE = object()


def _mutate(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """Replace the value at ``path`` (or delete it, when ``value`` is ``_DELETE`` and it is a key)."""
    if value is _DELETE and path and isinstance(path[-1], str):
        doc = json.loads(json.dumps(doc))
        node = doc
        for p in path[:-1]:
            node = node[p]
        del node[path[-1]]
        return doc
    return _replace(doc, path, None if value is _DELETE else value)


@pytest.mark.parametrize("name", sorted(SEEDS))
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_payloads_never_crash(name: str, data: st.DataObject) -> None:
    seed = data.draw(st.sampled_from(SEEDS[name]))
    doc = seed
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(doc)))
        doc = _mutate(doc, path, data.draw(st.just(_DELETE) | json_values))
    headers = data.draw(st.sampled_from(HEADERS.get(name, [{}])))
    _check(name, headers, json.dumps(doc).encode())


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(sorted(RECEIVERS)),
    body=st.binary(max_size=200) | json_values.map(lambda v: json.dumps(v).encode()),
    header_index=st.integers(0, 4),
)
def test_arbitrary_bodies_never_crash(name: str, body: bytes, header_index: int) -> None:
    options = HEADERS.get(name, [{}])
    _check(name, options[header_index % len(options)], body)


def test_every_provider_has_a_seed() -> None:
    covered = {RECEIVERS[n].provider for n in SEEDS}
    assert covered >= set(Provider) - {Provider.GHCR}
