"""Tag scanning against misbehaving registries. Fixture: a small loopback HTTP server of this module that
answers the OCI distribution API the way each test asks (500s, 429 with Retry-After, endless or looping
``Link`` pagination, a 50 MB tag list, a manifest whose content does not match its digest, bearer-token
and basic authentication), since the real registry cannot be made to misbehave. Each scan is bounded
(requests, bytes, pages), reported with a clear error, and commits nothing; the good cases commit once."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import git
import pytest
from _registry_support import load_envs, make_repo

from reconciler.model.imagepolicy import TagScan
from reconciler.promote.images import ImageAutomation
from reconciler.promote.oci import Credentials, OciClient
from reconciler.promote.scan import TagScanner
from reconciler.source.gitops import GitWriter

REPO = "acme/clock-mcp"
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}
).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()

Handler = Callable[["Request"], "Answer"]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]


@dataclass
class Answer:
    status: int = 200
    body: bytes | Iterator[bytes] = b""
    headers: dict[str, str] = field(default_factory=dict)


class Fixture:
    """The fixture registry: ``route(request) -> Answer``; records every request and the bytes it sent."""

    def __init__(self, route: Handler) -> None:
        self.route = route
        self.requests: list[Request] = []
        self.sent = 0
        fixture = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def handle_one(self) -> None:
                parts = urlsplit(self.path)
                req = Request(self.command, parts.path, parse_qs(parts.query), dict(self.headers.items()))
                fixture.requests.append(req)
                answer = fixture.route(req)
                self.send_response(answer.status)
                for k, v in answer.headers.items():
                    self.send_header(k, v)
                if isinstance(answer.body, bytes):
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(answer.body)
                        fixture.sent += len(answer.body)
                    return
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for chunk in answer.body:
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        fixture.sent += len(chunk)
                    self.wfile.write(b"0\r\n\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True

            do_GET = do_HEAD = handle_one

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def count(self, path_part: str) -> int:
        return sum(1 for r in self.requests if path_part in r.path)


def tags_answer(tags: list[str], link: str | None = None) -> Answer:
    headers = {"Content-Type": "application/json"}
    if link:
        headers["Link"] = f'<{link}>; rel="next"'
    return Answer(200, json.dumps({"name": REPO, "tags": tags}).encode(), headers)


def manifest_answer(req: Request, body: bytes = MANIFEST, digest: str = DIGEST) -> Answer:
    headers = {"Docker-Content-Digest": digest, "Content-Type": "application/vnd.oci.image.manifest.v1+json"}
    return Answer(200, body, headers)


def well_behaved(req: Request) -> Answer:
    if req.path.endswith("/tags/list"):
        return tags_answer(["0.9.0", "1.0.0", "1.4.0", "latest"])
    if "/manifests/" in req.path:
        return manifest_answer(req)
    return Answer(404)


class Setup:
    """A fixture registry, an environment repository following its image with ``scan:``, and a scanner
    whose clients record their sleeps instead of sleeping."""

    def __init__(self, tmp: Path, route: Handler, scan: str = "{interval: 0}") -> None:
        self.fixture = Fixture(route)
        self.image = f"{self.fixture.host}/{REPO}"
        self.remote, _ = make_repo(tmp / "env", self.image, scan=scan)
        self.automation = ImageAutomation(GitWriter(str(self.remote), "main", tmp / "cache"), load_envs)
        self.sleeps: list[float] = []
        self.now = 1000.0  # the clients' clock: advanced by their sleeps, never by the wall clock
        self.secrets: dict[tuple[str, str], dict[str, bytes]] = {}
        self.scanner = TagScanner(
            self.automation,
            secrets=lambda ns, name: self.secrets.get((ns, name)),
            client_factory=self.client,
        )

    def client(self, host: str, scan: TagScan, credentials: Credentials | None) -> OciClient:
        return OciClient(
            host,
            plain_http=True,
            credentials=credentials,
            requests_per_second=scan.requests_per_second,
            max_pages=scan.max_pages,
            max_tags=scan.max_tags,
            sleep=self.sleep,
            clock=lambda: self.now,
        )

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def commits(self) -> int:
        r = git.Repo(self.remote)
        try:
            return len(r.git.rev_list("main").split())
        finally:
            r.close()

    def scan(self) -> Any:
        (report,) = self.scanner.scan_all()
        return report


@pytest.fixture
def setups(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    made: list[Setup] = []

    def make(route: Handler, scan: str = "{interval: 0}") -> Setup:
        s = Setup(tmp_path / f"s{len(made)}", route, scan)
        made.append(s)
        return s

    yield make
    for s in made:
        s.fixture.close()


def test_well_behaved_registry_commits_the_newest_allowed_tag_once(setups: Callable[..., Setup]) -> None:
    s = setups(well_behaved)
    report = s.scan()
    assert report.error == "" and report.tags == 4
    assert report.candidates == {"1.4.0": DIGEST, "1.0.0": DIGEST}  # semver >=1.0.0, newest first
    assert len(report.commits) == 1
    head = s.commits()
    again = s.scan()
    assert again.error == "" and again.commits == [] and s.commits() == head
    # Accept names the OCI and Docker manifest and index types
    accept = next(r for r in s.fixture.requests if r.method == "HEAD").headers["Accept"]
    for media in ("oci.image.index.v1", "oci.image.manifest.v1", "manifest.list.v2", "manifest.v2"):
        assert media in accept


def test_500_answers_are_retried_a_bounded_number_of_times_then_reported(
    setups: Callable[..., Setup],
) -> None:
    s = setups(lambda req: Answer(500, b'{"errors":[{"code":"UNKNOWN","message":"disk on fire"}]}'))
    before = s.commits()
    report = s.scan()
    assert "answered 500: UNKNOWN: disk on fire (after 4 attempts)" in report.error
    assert s.fixture.count("/tags/list") == 4
    assert s.sleeps == [0.25, 0.5, 1.0]  # exponential backoff between the attempts
    assert s.commits() == before


def test_429_retry_after_is_honoured_then_succeeds(setups: Callable[..., Setup]) -> None:
    calls = {"n": 0}

    def route(req: Request) -> Answer:
        if req.path.endswith("/tags/list"):
            calls["n"] += 1
            if calls["n"] <= 2:
                return Answer(429, b"", {"Retry-After": "2"})
        return well_behaved(req)

    s = setups(route)
    report = s.scan()
    assert report.error == "" and len(report.commits) == 1
    assert s.sleeps.count(2.0) == 2  # waited what Retry-After said, twice


def test_429_with_a_retry_after_beyond_the_bound_fails_at_once(setups: Callable[..., Setup]) -> None:
    s = setups(lambda req: Answer(429, b"", {"Retry-After": "3600"}))
    before = s.commits()
    report = s.scan()
    assert "answered 429 with Retry-After 3600 s (more than 30 s)" in report.error
    assert s.fixture.count("/tags/list") == 1 and s.commits() == before


def test_endless_pagination_stops_at_max_pages(setups: Callable[..., Setup]) -> None:
    def route(req: Request) -> Answer:
        last = int(req.query.get("last", ["0"])[0])
        return tags_answer([f"1.0.{last + 1}"], f"/v2/{REPO}/tags/list?n=1&last={last + 1}")

    s = setups(route, scan="{interval: 0, maxPages: 20}")
    before = s.commits()
    report = s.scan()
    assert "the tag list has more than 20 pages (maxPages)" in report.error
    assert s.fixture.count("/tags/list") == 20 and s.commits() == before


def test_looping_pagination_is_refused(setups: Callable[..., Setup]) -> None:
    s = setups(lambda req: tags_answer(["1.0.0"], f"/v2/{REPO}/tags/list?n=1000"))
    report = s.scan()
    assert "the tag list's pages loop" in report.error
    assert s.fixture.count("/tags/list") == 1


def test_a_50_mb_tag_list_is_cut_off_at_the_size_cap(setups: Callable[..., Setup]) -> None:
    def huge() -> Iterator[bytes]:
        yield b'{"name":"acme/clock-mcp","tags":['
        chunk = b",".join(b'"1.0.%d"' % i for i in range(10000)) + b","
        for _ in range(50 * 1024 * 1024 // len(chunk)):
            yield chunk
        yield b'"9.9.9"]}'

    for chunked in (True, False):
        body: bytes | Iterator[bytes] = huge() if chunked else b"".join(huge())
        s = setups(lambda req, b=body: Answer(200, b, {"Content-Type": "application/json"}))
        before = s.commits()
        report = s.scan()
        if chunked:
            assert "the answer is longer than 4194304 bytes" in report.error
            assert s.fixture.sent < 20 * 1024 * 1024  # the client stopped reading long before 50 MB
        else:
            assert "the answer has 5" in report.error and "(more than 4194304)" in report.error
        assert s.commits() == before


def test_a_manifest_whose_content_does_not_match_its_digest_commits_nothing(
    setups: Callable[..., Setup],
) -> None:
    tampered = MANIFEST.replace(b'"layers": []', b'"layers": [ ]')
    assert tampered != MANIFEST

    def route(req: Request) -> Answer:
        if "/manifests/" in req.path:
            return manifest_answer(req, body=tampered)  # still claims DIGEST
        return well_behaved(req)

    s = setups(route)
    before = s.commits()
    report = s.scan()
    actual = "sha256:" + hashlib.sha256(tampered).hexdigest()
    assert f"the manifest's content has digest {actual}, not {DIGEST}" in report.error
    assert s.commits() == before


def test_tag_list_that_is_not_a_tag_list_is_reported(setups: Callable[..., Setup]) -> None:
    s = setups(lambda req: Answer(200, b'{"tags": "1.0.0"}'))
    report = s.scan()
    assert "not a tag list (tags:" in report.error


def test_bearer_token_from_the_challenge_with_basic_credentials_from_a_docker_config_file(
    setups: Callable[..., Setup], tmp_path: Path
) -> None:
    holder: dict[str, str] = {}
    basic = "Basic " + base64.b64encode(b"robot:s3cret").decode()

    def route(req: Request) -> Answer:
        if req.path == "/token":
            if req.headers.get("Authorization") != basic:
                return Answer(401)
            assert req.query["scope"] == [f"repository:{REPO}:pull"] and req.query["service"] == ["fixture"]
            return Answer(200, json.dumps({"token": "tok-123"}).encode())
        if req.headers.get("Authorization") != "Bearer tok-123":
            realm = f"http://{holder['host']}/token"
            challenge = f'Bearer realm="{realm}",service="fixture",scope="repository:{REPO}:pull"'
            return Answer(401, b"", {"WWW-Authenticate": challenge})
        return well_behaved(req)

    config = tmp_path / "docker-config.json"
    s = setups(route, scan=f"{{interval: 0, credentials: {{file: '{config}'}}}}")
    holder["host"] = s.fixture.host
    config.write_text(json.dumps({"auths": {s.fixture.host: {"auth": "cm9ib3Q6czNjcmV0"}}}))
    report = s.scan()
    assert report.error == "" and len(report.commits) == 1
    assert s.fixture.count("/token") == 1  # the token is reused for every request of the scan


def test_basic_auth_from_a_secret_and_a_missing_secret(setups: Callable[..., Setup]) -> None:
    basic = "Basic " + base64.b64encode(b"robot:pw").decode()

    def route(req: Request) -> Answer:
        if req.headers.get("Authorization") != basic:
            return Answer(401, b"", {"WWW-Authenticate": 'Basic realm="fixture"'})
        return well_behaved(req)

    s = setups(route, scan="{interval: 0, credentials: {secretRef: {name: regcred, namespace: ci}}}")
    before = s.commits()
    missing = s.scan()
    assert "secretRef: Secret ci/regcred does not exist" in missing.error and s.commits() == before
    s.secrets[("ci", "regcred")] = {"username": b"robot", "password": b"wrong"}
    refused = s.scan()
    assert "answered 401 after authenticating" in refused.error and s.commits() == before
    s.secrets[("ci", "regcred")] = {"username": b"robot", "password": b"pw"}
    ok = s.scan()
    assert ok.error == "" and len(ok.commits) == 1


def test_the_rate_limit_spaces_requests(setups: Callable[..., Setup]) -> None:
    def route(req: Request) -> Answer:
        last = int(req.query.get("last", ["0"])[0])
        if req.path.endswith("/tags/list") and last < 5:
            return tags_answer([f"1.0.{last + 1}"], f"/v2/{REPO}/tags/list?n=1&last={last + 1}")
        return well_behaved(req)

    s = setups(route, scan="{interval: 0, requestsPerSecond: 2}")
    report = s.scan()
    assert report.error == "" and report.tags == 9
    # 6 pages + HEAD and GET for 5 candidates: with no time passing between them, every request after
    # the first waited for its slot, half a second each
    assert report.requests == 16 and s.sleeps == [0.5] * 15


def test_the_scan_timeout_bounds_the_waits(setups: Callable[..., Setup]) -> None:
    s = setups(lambda req: Answer(503, b"", {"Retry-After": "20"}), scan="{interval: 0, timeout: 30}")
    before = s.commits()
    report = s.scan()
    # one wait of 20 s fits into the 30 s the scan may take, a second one does not
    assert "answered 503 (no time left to retry within the scan's timeout)" in report.error
    assert s.fixture.count("/tags/list") == 2 and s.sleeps.count(20.0) == 1
    assert s.commits() == before


def test_images_scan_command_scans_on_demand(setups: Callable[..., Setup], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app

    s = setups(well_behaved)
    before = s.commits()
    args = ["images", "scan", "--repo", str(s.remote), "--cache-dir", str(tmp_path / "cli-cache")]
    first = CliRunner().invoke(app, [*args, "-o", "json"])
    assert first.exit_code == 0, first.output
    (report,) = json.loads(first.output)
    assert report["error"] == "" and report["candidates"] == {"1.4.0": DIGEST, "1.0.0": DIGEST}
    assert s.commits() == before + 1
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0 and "dev: unchanged" in second.output
    assert s.commits() == before + 1
    s.fixture.route = lambda req: Answer(500)
    failed = CliRunner().invoke(app, args)
    assert failed.exit_code == 1 and "error: registry " in failed.output
