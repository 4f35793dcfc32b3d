"""Image policies: semver ranges (incl. pre-releases), regex filter + extract, ordering, Docker Hub names."""

from __future__ import annotations

from typing import Any

import pytest
import semver
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from reconciler.model.imagepolicy import (
    ImagePolicy,
    SemverRange,
    check_message_template,
    normalise_image,
    parse_semver_tag,
    split_image_reference,
)


def policy(**kw: Any) -> ImagePolicy:
    data: dict[str, Any] = {"name": "app", "image": "ghcr.io/acme/app", "policy": {"semver": {"range": "*"}}}
    data.update(kw)
    return ImagePolicy.model_validate(data)


def inside(rng: str, version: str) -> bool:
    return semver.Version.parse(version) in SemverRange(rng)


# --------------------------------------------------------------------------- Docker Hub and names


@pytest.mark.parametrize(
    "spelling",
    [
        "nginx",
        "library/nginx",
        "docker.io/nginx",
        "docker.io/library/nginx",
        "index.docker.io/nginx",
        "index.docker.io/library/nginx",
        "registry-1.docker.io/library/nginx",
        "registry.hub.docker.com/library/nginx",
        "nginx:1.27",
        "docker.io/library/nginx@sha256:" + "a" * 64,
    ],
)
def test_docker_hub_spellings_are_one_repository(spelling: str) -> None:
    assert normalise_image(spelling) == "docker.io/library/nginx"


def test_docker_hub_user_repositories_get_no_library_prefix() -> None:
    assert normalise_image("acme/app") == "docker.io/acme/app"
    assert normalise_image("index.docker.io/acme/app") == "docker.io/acme/app"
    assert normalise_image("acme/app") != normalise_image("library/app")


def test_host_with_port_is_not_a_tag() -> None:
    assert split_image_reference("harbor.registry.test:8443/ml-agents/planner:0.1.1") == (
        "harbor.registry.test:8443/ml-agents/planner",
        "0.1.1",
        None,
    )
    assert split_image_reference("harbor.registry.test:8443/ml-agents/planner") == (
        "harbor.registry.test:8443/ml-agents/planner",
        None,
        None,
    )
    assert normalise_image("Harbor.Registry.Test:8443/ml-agents/planner") == (
        "harbor.registry.test:8443/ml-agents/planner"
    )
    assert normalise_image("localhost:5000/app") == "localhost:5000/app"
    assert normalise_image("localhost/app") == "localhost/app"


def test_policy_matches_any_spelling_but_not_neighbours() -> None:
    hub = policy(image="index.docker.io/library/redis")
    assert hub.matches("redis") and hub.matches("docker.io/library/redis:7") and hub.matches("library/redis")
    assert not hub.matches("acme/redis") and not hub.matches("quay.io/library/redis")
    harbor = policy(image="harbor.registry.test:8443/ml-agents/planner")
    assert harbor.matches("harbor.registry.test:8443/ml-agents/planner")
    assert not harbor.matches("harbor.registry.test:8443/ml-agents/planner-eval")  # prefix
    assert not harbor.matches("mirror.registry.test/ml-agents/planner")  # other host
    assert not harbor.matches("harbor.registry.test/ml-agents/planner")  # other port
    assert not harbor.matches("NOT A NAME")


@pytest.mark.parametrize(
    "bad", ["ghcr.io/acme/app:1.0", "ghcr.io/acme/App", "ghcr.io/acme/app@sha256:" + "b" * 64]
)
def test_policy_image_must_be_a_repository(bad: str) -> None:
    with pytest.raises(ValidationError, match="image"):
        policy(image=bad)


# --------------------------------------------------------------------------- semver ranges


@pytest.mark.parametrize(
    ("rng", "yes", "no"),
    [
        (">=1.2.0 <2.0.0", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0", "2.0.0-rc.1", "1.5.0-rc.1"]),
        (">=1.2.0, <2.0.0", ["1.2.0"], ["2.0.0"]),
        (">= 1.2.0 < 2", ["1.2.0", "1.99.0"], ["2.0.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0", ["0.0.1", "0.9.9"], ["1.0.0"]),
        ("~1.2.3", ["1.2.3", "1.2.9"], ["1.3.0", "1.2.2"]),
        ("~1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("1.2.x", ["1.2.0", "1.2.7"], ["1.3.0", "1.1.9"]),
        ("1.x", ["1.0.0", "1.8.1"], ["2.0.0"]),
        ("*", ["0.0.1", "9.9.9"], ["1.0.0-alpha"]),
        ("", ["0.0.0"], ["1.0.0-alpha"]),
        ("1.2.3", ["1.2.3", "1.2.3+build.5"], ["1.2.4"]),
        ("=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("!=1.2.3", ["1.2.4"], ["1.2.3"]),
        ("1.2 - 1.4.5", ["1.2.0", "1.4.5"], ["1.4.6", "1.1.9"]),
        ("1.2.3 - 2.3", ["2.3.9"], ["2.4.0"]),
        (">1.2", ["1.3.0"], ["1.2.9"]),
        ("<=1.2", ["1.2.9"], ["1.3.0"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        ("<1.2.3", ["1.2.2"], ["1.2.3"]),
        ("<1.0.0 || >=3.0.0", ["0.9.0", "3.1.0"], ["1.0.0", "2.9.9"]),
        # pre-releases only where the constraint group names one
        (">=1.0.0-0", ["1.0.0-rc.1", "1.1.0-beta", "2.0.0"], ["0.9.9", "0.9.9-rc.1"]),
        # (group-wide, as Masterminds/Flux: 2.0.0-rc.1 < 2.0.0 is inside once pre-releases are admitted)
        (">=1.2.3-alpha <2.0.0", ["1.2.3-beta", "1.9.0-rc.1", "2.0.0-rc.1"], ["1.2.3-0", "2.0.0"]),
        ("^1.2.3-rc.1", ["1.2.3-rc.2", "1.2.3"], ["1.2.3-rc.0", "2.0.0-rc.1"]),
        (">=1.0.0 || >=2.0.0-0", ["2.1.0-rc.1", "1.0.0"], ["1.1.0-rc.1"]),
    ],
)
def test_semver_range(rng: str, yes: list[str], no: list[str]) -> None:
    for v in yes:
        assert inside(rng, v), f"{v} should be inside {rng!r}"
    for v in no:
        assert not inside(rng, v), f"{v} should be outside {rng!r}"


@pytest.mark.parametrize("bad", [">=1.2.3.4", "^banana", ">=1.2-rc.1", "1.2.3 ||| 2"])
def test_bad_semver_range_is_a_clear_error(bad: str) -> None:
    with pytest.raises(ValidationError, match="semver range"):
        policy(policy={"semver": {"range": bad}})


def test_semver_tags_accept_a_v_prefix_only() -> None:
    assert parse_semver_tag("v1.2.3") == semver.Version(1, 2, 3)
    assert parse_semver_tag("1.2.3-rc.1+b7") is not None
    for bad in ("1.2", "latest", "01.2.3", "1.2.3.4", "vv1.2.3"):
        assert parse_semver_tag(bad) is None


def test_semver_policy_orders_and_rejects() -> None:
    p = policy(policy={"semver": {"range": ">=0.1.0 <1.0.0"}})
    assert p.verdict("0.1.6").allowed
    assert not p.verdict("1.0.0").allowed and "outside the range" in p.verdict("1.0.0").reason
    assert not p.verdict("latest").allowed and "not a semantic version" in p.verdict("latest").reason
    assert not p.verdict(None).allowed and "no tag" in p.verdict(None).reason
    assert p.is_newer("0.1.10", "0.1.9")  # numeric, not string order
    assert not p.is_newer("0.1.9", "0.1.10")
    assert not p.is_newer("0.1.6", "0.1.6")  # a redelivery never moves anything
    assert not p.is_newer("0.1.6+build.2", "0.1.6")  # build metadata has no precedence
    assert p.is_newer("0.1.0", "latest")  # a tag the policy cannot order is replaced
    assert p.is_newer("0.1.0", None)
    assert not p.is_newer("1.0.0", "0.1.0")  # outside the range: never
    assert p.latest(["0.1.0", "0.10.0", "0.9.0", "latest", "1.0.0", "0.11.0-rc.1"]) == "0.10.0"
    pre = policy(policy={"semver": {"range": ">=0.1.0-0"}})
    assert pre.is_newer("0.2.0-rc.1", "0.1.0") and pre.is_newer("0.2.0", "0.2.0-rc.1")


# --------------------------------------------------------------------------- regex filter and extract


def test_filter_and_extract_numerical() -> None:
    p = policy(
        policy={"numerical": {"order": "asc"}},
        filterTags={"pattern": r"^main-[a-f0-9]+-(?P<ts>\d+)$", "extract": "$ts"},
    )
    assert p.verdict("main-abc123-1700000000").allowed
    assert "does not match" in p.verdict("pr-12-abc-1").reason
    assert p.is_newer("main-aaa-1700000100", "main-fff-1700000099")
    assert not p.is_newer("main-aaa-99", "main-fff-100")  # numerical: 99 < 100 although '99' > '100'
    assert p.latest(["main-a-5", "main-b-40", "main-c-300", "feature-d-9999"]) == "main-c-300"


def test_go_style_named_groups_and_braced_extract() -> None:
    p = policy(
        policy={"numerical": {"order": "desc"}},
        filterTags={"pattern": r"^build-(?<n>\d+)$", "extract": "${n}"},
    )
    assert p.latest(["build-3", "build-10", "build-2"]) == "build-2"  # desc picks the lowest
    assert p.is_newer("build-1", "build-2")


def test_filter_with_semver_extract() -> None:
    p = policy(
        policy={"semver": {"range": "^2"}},
        filterTags={"pattern": r"^release-(?P<v>.+)$", "extract": "$v"},
    )
    assert p.latest(["release-2.1.0", "release-2.10.0", "release-3.0.0", "2.99.0"]) == "release-2.10.0"


def test_alphabetical_order() -> None:
    asc = policy(policy={"alphabetical": {}}, filterTags={"pattern": r"^RELEASE\."})
    assert asc.latest(["RELEASE.2024-01-02", "RELEASE.2024-11-30", "RELEASE.2023-12-31", "x"]) == (
        "RELEASE.2024-11-30"
    )
    desc = policy(policy={"alphabetical": {"order": "desc"}})
    assert desc.latest(["b", "a", "c"]) == "a"
    assert desc.is_newer("a", "b") and not desc.is_newer("c", "b")


def test_numerical_rejects_non_numbers() -> None:
    p = policy(policy={"numerical": {}})
    assert not p.verdict("v12").allowed
    assert not p.verdict("NaN").allowed
    assert p.is_newer("10", "9") and p.is_newer("1.5", "1.25")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"policy": {}}, "exactly one"),
        ({"policy": {"semver": {"range": "*"}, "numerical": {}}}, "exactly one"),
        ({"policy": {"numerical": {"order": "up"}}}, "order"),
        ({"filterTags": {"pattern": "(unclosed"}}, "filterTags.pattern"),
        ({"filterTags": {"pattern": "^(?P<a>x)$", "extract": "$b"}}, "has no group 'b'"),
        ({"filterTags": {"pattern": "^(x)$", "extract": "$2"}}, "has no group '2'"),
        ({"name": "Not_A_Label"}, "DNS label"),
        ({"digest": "sometimes"}, "digest"),
        ({"commitMessage": "bump {image} to {version}"}, "unknown field"),
        ({"surprise": 1}, "surprise"),
    ],
)
def test_invalid_policies_name_the_field(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        policy(**data)


def test_message_template_fields() -> None:
    assert check_message_template("image({env}): {image} {old} -> {new} {digest} {entry} {policy}")
    with pytest.raises(ValueError, match="unknown field"):
        check_message_template("{nope}")
    with pytest.raises(ValueError, match="commit message template"):
        check_message_template("{unclosed")


def test_yaml_aliases_and_json_schema() -> None:
    p = ImagePolicy.model_validate(
        {
            "name": "planner",
            "image": "registry.example.test/agents/planner",
            "policy": {"semver": {"range": ">=0.1.0"}},
            "filterTags": {"pattern": r"^\d+\.\d+\.\d+$"},
            "digest": "pin",
            "commitMessage": "bump {image} to {new}",
        }
    )
    assert p.filter_tags is not None and p.commit_message == "bump {image} to {new}" and p.digest == "pin"
    schema = ImagePolicy.model_json_schema(by_alias=True)
    assert {"filterTags", "commitMessage", "policy", "image", "name", "digest"} <= set(schema["properties"])


# --------------------------------------------------------------------------- properties

_versions = st.builds(
    lambda a, b, c, pre: f"{a}.{b}.{c}" + (f"-rc.{pre}" if pre is not None else ""),
    st.integers(0, 30),
    st.integers(0, 30),
    st.integers(0, 30),
    st.one_of(st.none(), st.integers(0, 5)),
)


@given(st.lists(_versions, min_size=1, max_size=12))
def test_latest_is_the_maximum_allowed_and_newer_is_a_strict_order(tags: list[str]) -> None:
    p = policy(policy={"semver": {"range": ">=0.0.0-0"}})
    best = p.latest(tags)
    assert best is not None
    for t in tags:
        assert not p.is_newer(t, best)  # nothing beats the selection
        assert not (p.is_newer(t, best) and p.is_newer(best, t))
    release = policy(policy={"semver": {"range": "*"}})
    releases = [t for t in tags if "-" not in t]
    chosen = release.latest(tags)
    if releases:
        assert chosen is not None
        assert parse_semver_tag(chosen) == max(semver.Version.parse(t) for t in releases)
    else:
        assert chosen is None  # '*' admits no pre-release
