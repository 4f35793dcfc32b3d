"""Unit tests of the tag scan's pieces without a server: the WWW-Authenticate, Link and Retry-After
parsers, Docker config credentials, the scan settings' validation and the policy's candidate order."""

from __future__ import annotations

import base64
import email.utils
import time

import httpx
import pytest
from pydantic import ValidationError

from reconciler.model.imagepolicy import ImagePolicy, RegistryCredentials, TagScan
from reconciler.promote.oci import (
    Credentials,
    RegistryError,
    _next_link,
    _parse_challenge,
    _Response,
    _retry_after,
    credentials_from_docker_config,
)


def test_bearer_challenge_with_quoted_commas() -> None:
    scheme, params = _parse_challenge(
        'Bearer realm="https://auth.example/token",service="registry.example",'
        'scope="repository:acme/a:pull,push"'
    )
    assert scheme == "bearer"
    assert params == {
        "realm": "https://auth.example/token",
        "service": "registry.example",
        "scope": "repository:acme/a:pull,push",
    }
    assert _parse_challenge('Basic realm="x"') == ("basic", {"realm": "x"})


def test_retry_after_seconds_date_and_garbage() -> None:
    assert _retry_after("7") == 7.0
    soon = email.utils.formatdate(time.time() + 30, usegmt=True)
    value = _retry_after(soon)
    assert value is not None and 20 < value <= 31
    assert _retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert _retry_after("soon") is None and _retry_after(None) is None


def test_next_link_among_several_relations() -> None:
    headers = httpx.Headers([("Link", '</v2/a/tags/list?n=2&last=b>; rel="next", </docs>; rel="help"')])
    assert _next_link(_Response(200, headers, b"", "http://r/v2/a/tags/list")) == "/v2/a/tags/list?n=2&last=b"
    none = httpx.Headers([("Link", '</docs>; rel="help"')])
    assert _next_link(_Response(200, none, b"", "http://r/")) is None


def test_docker_config_credentials() -> None:
    auth = base64.b64encode(b"robot:pa:ss").decode()
    assert credentials_from_docker_config(
        {"auths": {"r.example:5000": {"auth": auth}}}, "r.example:5000"
    ) == (Credentials("robot", "pa:ss"))
    plain = {"auths": {"https://r.example": {"username": "u", "password": "p"}}}
    assert credentials_from_docker_config(plain, "r.example") == Credentials("u", "p")
    assert credentials_from_docker_config(plain, "other.example") is None
    assert credentials_from_docker_config({}, "r.example") is None
    for bad in ("%%%", base64.b64encode(b"no-colon").decode()):
        with pytest.raises(RegistryError, match="not base64 of user:password"):
            credentials_from_docker_config({"auths": {"r": {"auth": bad}}}, "r")
    with pytest.raises(RegistryError, match="neither auth nor username/password"):
        credentials_from_docker_config({"auths": {"r": {}}}, "r")
    assert "pa:ss" not in repr(Credentials("robot", "pa:ss"))


def test_scan_settings_validation() -> None:
    assert TagScan().interval == 60.0 and TagScan().requests_per_second == 5.0
    with pytest.raises(ValidationError, match="exactly one of secretRef and file"):
        RegistryCredentials.model_validate({})
    with pytest.raises(ValidationError, match="exactly one of secretRef and file"):
        RegistryCredentials.model_validate({"secretRef": {"name": "a"}, "file": "/x"})
    with pytest.raises(ValidationError, match="intervall"):
        TagScan.model_validate({"intervall": 5})
    with pytest.raises(ValidationError):
        TagScan.model_validate({"requestsPerSecond": 0})
    policy = ImagePolicy.model_validate(
        {
            "name": "p",
            "image": "127.0.0.1:5000/acme/a",
            "policy": {"semver": {"range": ">=1.0.0"}},
            "scan": {"interval": 30, "credentials": {"secretRef": {"name": "regcred"}}, "plainHttp": True},
        }
    )
    assert policy.scan is not None and policy.scan.plain_http is True
    assert policy.scan.credentials is not None and policy.scan.credentials.secret_ref is not None


def test_newest_candidates_follow_the_policy_order() -> None:
    semver = ImagePolicy.model_validate(
        {"name": "p", "image": "a/b", "policy": {"semver": {"range": "^1.0"}}}
    )
    tags = ["1.0.0", "2.0.0", "1.10.0", "1.9.3", "latest", "1.2.0-rc.1", "v1.3.0"]
    assert semver.newest(tags, 3) == ["1.10.0", "1.9.3", "v1.3.0"]
    assert semver.newest(tags, 3)[0] == semver.latest(tags)
    desc = ImagePolicy.model_validate(
        {
            "name": "p",
            "image": "a/b",
            "policy": {"numerical": {"order": "desc"}},
            "filterTags": {"pattern": "^[0-9]+$"},
        }
    )
    assert desc.newest(["5", "3", "x", "10"], 2) == ["3", "5"]
