"""Remote-target parsing against kustomize's own cases (api/internal/git/repospec_test.go, api v0.21.1)."""

from __future__ import annotations

import itertools
import posixpath

import pytest

from reconciler.render.repospec import (
    DEFAULT_SUBMODULES,
    RepoSpec,
    RepoSpecError,
    go_parse_duration,
    is_remote_file,
    parse_query,
    parse_repo_spec,
)

SCHEME_AUTHORITY = [
    ("gitHub.com/", "https://github.com/"),
    ("github.com:", "https://github.com/"),
    ("http://github.com/", "https://github.com/"),
    ("https://github.com/", "https://github.com/"),
    ("hTTps://github.com/", "https://github.com/"),
    ("https://git-codecommit.us-east-2.amazonaws.com/", "https://git-codecommit.us-east-2.amazonaws.com/"),
    ("https://fabrikops2.visualstudio.com/", "https://fabrikops2.visualstudio.com/"),
    ("ssh://git.example.com:7999/", "ssh://git.example.com:7999/"),
    ("git::https://gitlab.com/", "https://gitlab.com/"),
    ("git::http://git.example.com/", "http://git.example.com/"),
    ("git::https://git.example.com/", "https://git.example.com/"),
    ("git@github.com:", "git@github.com:"),
    ("git@github.com/", "git@github.com:"),
    ("git::git@github.com:", "git@github.com:"),
    ("org-12345@github.com:", "org-12345@github.com:"),
    ("org-12345@github.com/", "org-12345@github.com:"),
]
REPO_PATHS = ["someOrg/someRepo", "kubernetes/website"]
PATH_NAMES = ["README.md", "foo/krusty.txt", ""]
REF_ARGS = ["group/version", "someBranch", "master", "v0.1.0", ""]


@pytest.mark.parametrize(
    ("host", "repo_path", "path", "ref"),
    [(h, r, p, f) for (h, r, p, f) in itertools.product(SCHEME_AUTHORITY, REPO_PATHS, PATH_NAMES, REF_ARGS)],
)
def test_permutations(host: tuple[str, str], repo_path: str, path: str, ref: str) -> None:
    raw, normalized = host
    url = raw + (posixpath.join(repo_path, path) if path else repo_path) + (f"?ref={ref}" if ref else "")
    spec = parse_repo_spec(url)
    assert (spec.host, spec.repo_path, spec.kust_root_path, spec.ref) == (normalized, repo_path, path, ref)


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("/tmp", "uri looks like abs path"),
        ("../../tmp", "failed to parse scheme"),
        ("src/github.com/org/repo/path", "failed to parse scheme"),
        ("iauhsdiuashduas", "failed to parse scheme"),
        ("htxxxtp://github.com/", "failed to parse scheme"),
        ("ssh://git.example.com", "failed to parse repo path segment"),
        ("git::___", "failed to parse scheme"),
        ("https://host?ref=group/version/minor_version", "failed to parse repo path segment"),
        ("https://github.com/org/repo.git//path/../../exits/repo", "url path exits repo"),
        ("github.com!org/repo.git//path", "failed to parse scheme"),
        ("gh:org/repo", "failed to parse scheme"),
        ("https://github.com/thisisa404.yaml", "failed to parse repo path segment"),
        ("file:////tmp//path/to/whatever", "failed to parse repo path segment"),
        ("git@scp://github.com/org/repo.git//path", "failed to parse repo path segment"),
        ("git@ssh://github.com/org/repo.git//path", "failed to parse repo path segment"),
        # not in kustomize's table, but what it does: git:// is not a scheme it knows
        ("git://127.0.0.1:9418/org/repo//path?ref=v1", "failed to parse scheme"),
    ],
)
def test_errors(url: str, error: str) -> None:
    with pytest.raises(RepoSpecError, match=error):
        parse_repo_spec(url)


SMOKE: list[tuple[str, str, str, RepoSpec]] = [
    (
        "https://git-codecommit.us-east-2.amazonaws.com/someorg/somerepo/somedir",
        "https://git-codecommit.us-east-2.amazonaws.com/someorg/somerepo",
        "somedir",
        RepoSpec("", "https://git-codecommit.us-east-2.amazonaws.com/", "someorg/somerepo", "somedir"),
    ),
    (
        "https://git-codecommit.us-east-2.amazonaws.com/someorg/somerepo/somedir?ref=testbranch",
        "https://git-codecommit.us-east-2.amazonaws.com/someorg/somerepo",
        "somedir",
        RepoSpec(
            "", "https://git-codecommit.us-east-2.amazonaws.com/", "someorg/somerepo", "somedir", "testbranch"
        ),
    ),
    (
        "https://fabrikops2.visualstudio.com/someorg/somerepo?ref=master",
        "https://fabrikops2.visualstudio.com/someorg/somerepo",
        "",
        RepoSpec("", "https://fabrikops2.visualstudio.com/", "someorg/somerepo", "", "master"),
    ),
    (
        "http://github.com/someorg/somerepo/somedir",
        "https://github.com/someorg/somerepo",
        "somedir",
        RepoSpec("", "https://github.com/", "someorg/somerepo", "somedir"),
    ),
    (
        "git@github.com:someorg/somerepo/somedir",
        "git@github.com:someorg/somerepo",
        "somedir",
        RepoSpec("", "git@github.com:", "someorg/somerepo", "somedir"),
    ),
    (
        "http://github.com/someorg/somerepo.git/somedir",
        "https://github.com/someorg/somerepo.git",
        "somedir",
        RepoSpec("", "https://github.com/", "someorg/somerepo.git", "somedir"),
    ),
    (
        "git@gitlab2.sqtools.ru:infra/kubernetes/thanos-base.git?ref=v0.1.0",
        "git@gitlab2.sqtools.ru:infra/kubernetes/thanos-base.git",
        "",
        RepoSpec("", "git@gitlab2.sqtools.ru:", "infra/kubernetes/thanos-base.git", "", "v0.1.0"),
    ),
    (
        "git@bitbucket.org:company/project.git//path?ref=branch",
        "git@bitbucket.org:company/project.git",
        "path",
        RepoSpec("", "git@bitbucket.org:", "company/project.git", "path", "branch"),
    ),
    (
        "git@bitbucket.org/company/project.git//path?ref=branch",
        "git@bitbucket.org/company/project.git",
        "path",
        RepoSpec("", "git@bitbucket.org/", "company/project.git", "path", "branch"),
    ),
    (
        "ssh://git@bitbucket.org/company/project.git//path?ref=branch",
        "ssh://git@bitbucket.org/company/project.git",
        "path",
        RepoSpec("", "ssh://git@bitbucket.org/", "company/project.git", "path", "branch"),
    ),
    (
        "https://itfs.mycompany.com/collection/project/_git/somerepos/somedir?version=v1.0.0",
        "https://itfs.mycompany.com/collection/project/_git/somerepos",
        "somedir",
        RepoSpec("", "https://itfs.mycompany.com/", "collection/project/_git/somerepos", "somedir", "v1.0.0"),
    ),
    (
        "git::https://itfs.mycompany.com/collection/project/_git/somerepos",
        "https://itfs.mycompany.com/collection/project/_git/somerepos",
        "",
        RepoSpec("", "https://itfs.mycompany.com/", "collection/project/_git/somerepos"),
    ),
    (
        "git@github.com/someorg/somerepo/somepath",
        "git@github.com:someorg/somerepo",
        "somepath",
        RepoSpec("", "git@github.com:", "someorg/somerepo", "somepath"),
    ),
    (
        "file://a/b/c/someRepo.git/somepath?ref=someBranch",
        "file://a/b/c/someRepo.git",
        "somepath",
        RepoSpec("", "file://", "a/b/c/someRepo.git", "somepath", "someBranch"),
    ),
    (
        "file://a/b/c/someRepo//somepath?ref=someBranch",
        "file://a/b/c/someRepo",
        "somepath",
        RepoSpec("", "file://", "a/b/c/someRepo", "somepath", "someBranch"),
    ),
    (
        "file:///a/b/c/someRepo?ref=someBranch",
        "file:///a/b/c/someRepo",
        "",
        RepoSpec("", "file://", "/a/b/c/someRepo", "", "someBranch"),
    ),
    ("file:///", "file:///", "", RepoSpec("", "file://", "/")),
    (
        "ssh://git@github.com/kubernetes-sigs/kustomize//examples/multibases/dev?ref=v1.0.6",
        "git@github.com:kubernetes-sigs/kustomize",
        "examples/multibases/dev",
        RepoSpec("", "git@github.com:", "kubernetes-sigs/kustomize", "examples/multibases/dev", "v1.0.6"),
    ),
    (
        "https://example.org/path/to/repo//examples/multibases/dev",
        "https://example.org/path/to/repo",
        "examples/multibases/dev",
        RepoSpec("", "https://example.org/", "path/to/repo", "examples/multibases/dev"),
    ),
    (
        "https://authority/org/repo/?ref=includes.git/for_some_reason",
        "https://authority/org/repo",
        "",
        RepoSpec("", "https://authority/", "org/repo", "", "includes.git/for_some_reason"),
    ),
    (
        "https://authority/org/repo/%-invalid-uri-so-not-parsable-by-net/url.Parse",
        "https://authority/org/repo",
        "%-invalid-uri-so-not-parsable-by-net/url.Parse",
        RepoSpec("", "https://authority/", "org/repo", "%-invalid-uri-so-not-parsable-by-net/url.Parse"),
    ),
    (
        "file://git@home/path/to/repository.git//path?ref=branch",
        "file://git@home/path/to/repository.git",
        "path",
        RepoSpec("", "file://", "git@home/path/to/repository.git", "path", "branch"),
    ),
    (
        "ssh://git@ssh.github.com:443/YOUR-USERNAME/YOUR-REPOSITORY.git",
        "ssh://git@ssh.github.com:443/YOUR-USERNAME/YOUR-REPOSITORY.git",
        "",
        RepoSpec("", "ssh://git@ssh.github.com:443/", "YOUR-USERNAME/YOUR-REPOSITORY.git"),
    ),
    (
        "git@gitlab.com/user:name/YOUR-REPOSITORY.git/path",
        "git@gitlab.com/user:name/YOUR-REPOSITORY.git",
        "path",
        RepoSpec("", "git@gitlab.com/", "user:name/YOUR-REPOSITORY.git", "path"),
    ),
    (
        "https://username@dev.azure.com/org/project/_git/repo//path/to/kustomization/root",
        "https://username@dev.azure.com/org/project/_git/repo",
        "path/to/kustomization/root",
        RepoSpec(
            "", "https://username@dev.azure.com/", "org/project/_git/repo", "path/to/kustomization/root"
        ),
    ),
    (
        "ssh://org-12345@github.com/kubernetes-sigs/kustomize",
        "org-12345@github.com:kubernetes-sigs/kustomize",
        "",
        RepoSpec("", "org-12345@github.com:", "kubernetes-sigs/kustomize"),
    ),
    (
        "git@gist.github.com:bc7947cb727d7f9217e7862d961a1ffd.git",
        "git@gist.github.com:bc7947cb727d7f9217e7862d961a1ffd.git",
        "",
        RepoSpec("", "git@gist.github.com:", "bc7947cb727d7f9217e7862d961a1ffd.git"),
    ),
]


@pytest.mark.parametrize(("url", "clone", "path", "want"), SMOKE, ids=[s[0] for s in SMOKE])
def test_smoke(url: str, clone: str, path: str, want: RepoSpec) -> None:
    spec = parse_repo_spec(url)
    assert spec.clone_spec == clone
    assert spec.kust_root_path == path
    assert (spec.host, spec.repo_path, spec.ref) == (want.host, want.repo_path, want.ref)
    assert spec.raw == url


@pytest.mark.parametrize(
    ("query", "ref", "timeout", "submodules"),
    [
        ("", "", None, True),
        ("ref=v1.0.0", "v1.0.0", None, True),
        ("ref=kustomize/v4.5.7", "kustomize/v4.5.7", None, True),
        ("version=master", "master", None, True),
        ("version=master&ref=v1.0.0", "v1.0.0", None, True),
        ("version=master&submodules=", "master", None, True),
        ("version=master&submodules=maybe", "master", None, True),
        ("version=master&submodules=true", "master", None, True),
        ("version=master&submodules=false", "master", None, False),
        ("version=master&timeout=", "master", None, True),
        ("version=master&timeout=jiffy", "master", None, True),
        ("version=master&timeout=0", "master", None, True),
        ("version=master&timeout=0s", "master", None, True),
        ("version=master&timeout=61", "master", 61.0, True),
        ("version=master&timeout=1m1s", "master", 61.0, True),
        ("version=master&submodules=false&timeout=1m1s", "master", 61.0, False),
        # Go's url.ParseQuery: one malformed pair and every parameter takes its default
        ("ref=v1&x=%zz", "", None, True),
        ("ref=v1;x=1", "", None, True),
        ("ref=a+b%2Fc", "a b/c", None, True),
        ("submodules=F&timeout=1.5s", "", 1.5, False),
    ],
)
def test_query(query: str, ref: str, timeout: float | None, submodules: bool) -> None:
    assert parse_query(query) == (ref, timeout, submodules)
    assert DEFAULT_SUBMODULES is True


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0", 0.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("300ms", 0.3),
        ("1.5s", 1.5),
        ("1.s", 1.0),
        ("-2s", -2.0),
        ("2", None),
        ("s", None),
        (".s", None),
        ("1d", None),
        ("", None),
    ],
)
def test_go_durations(text: str, seconds: float | None) -> None:
    got = go_parse_duration(text)
    assert got == pytest.approx(seconds) if seconds is not None else got is None


@pytest.mark.parametrize(
    ("text", "remote"),
    [
        ("https://example.com/x.yaml", True),
        ("HTTP://example.com/x.yaml", True),
        ("http://127.0.0.1:8080/a/b.yaml?x=1", True),
        ("ftp://example.com/x.yaml", False),
        ("github.com/org/repo", False),
        ("deploy.yaml", False),
        ("https://example.com/\x01", False),
    ],
)
def test_remote_files(text: str, remote: bool) -> None:
    assert is_remote_file(text) is remote


def test_display_names_repository_path_and_ref() -> None:
    spec = parse_repo_spec("https://example.org/org/repo//deploy/app?ref=v1")
    assert spec.display() == "https://example.org/org/repo//deploy/app?ref=v1"
    assert (
        spec.display("deploy/kustomization.yaml")
        == "https://example.org/org/repo//deploy/kustomization.yaml?ref=v1"
    )
    assert parse_repo_spec("git@example.org:org/repo").display() == "git@example.org:org/repo//"
