"""Remote bases and files, served from a loopback ``git daemon`` and HTTP server, checked against the real
kustomize on the same URLs, and the failures: not allowed, unreachable, unknown ref, timeout, cycles, a
repository over the size cap."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import git
import pytest
from remote_servers import GitDaemon, HttpFiles, blackhole, closed_port

from reconciler.render import RemoteOptions, RenderError, build, dump_yaml
from reconciler.source import remote as source_remote

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: {value}\n"
SVC = (
    "apiVersion: v1\nkind: Service\nmetadata:\n  name: common\nspec:\n  ports:\n  - port: 80\n"
    "  selector:\n    app: common\n"
)


@dataclass
class Repos:
    daemon: GitDaemon
    v1: str  # acme/base at tags v1 and v1a
    main: str  # acme/base at main (after v1)
    loop: str

    @property
    def host(self) -> str:
        return self.daemon.host


@pytest.fixture(scope="module")
def repos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Repos]:
    daemon = GitDaemon(tmp_path_factory.mktemp("gitd")).start()
    host = daemon.host
    try:
        daemon.repo(
            "acme/common",
            {
                "base/kustomization.yaml": "resources:\n- svc.yaml\n",
                "base/svc.yaml": SVC,
                "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
                "commonAnnotations:\n  from-component: remote\n",
            },
        )
        base_files: dict[str, str | bytes] = {
            "deploy/kustomization.yaml": "resources:\n- cm.yaml\nnamePrefix: remote-\n",
            "deploy/cm.yaml": CM.format(name="cfg", value="v1"),
        }
        v1 = daemon.repo("acme/base", base_files, tags=("v1",), annotated=("v1a",))
        base_files["deploy/cm.yaml"] = CM.format(name="cfg", value="main")
        base_files["app/kustomization.yaml"] = (
            "resources:\n- ../deploy\n"
            f"- https://{host}/acme/common//base?ref=main\n"
            f"components:\n- https://{host}/acme/common//comp?ref=main\n"
            "namespace: app\n"
        )
        base_files["escape/kustomization.yaml"] = "resources:\n- ../../outside.yaml\n"
        main = daemon.repo("acme/base", base_files)
        loop = daemon.repo(
            "acme/loop",
            {"deploy/kustomization.yaml": f"resources:\n- https://{host}/acme/loop//deploy?ref=main\n"},
        )
        daemon.repo(
            "acme/ping",
            {"deploy/kustomization.yaml": f"resources:\n- https://{host}/acme/pong//deploy?ref=main\n"},
            tags=("v1",),
        )
        daemon.repo(
            "acme/pong",
            {"deploy/kustomization.yaml": f"resources:\n- https://{host}/acme/ping//deploy?ref=main\n"},
        )
        noise = random.Random(7).randbytes(300_000)
        daemon.repo(
            "acme/big",
            {
                "deploy/kustomization.yaml": "resources:\n- cm.yaml\n",
                "deploy/cm.yaml": CM.format(name="big", value="1"),
                "blob.bin": noise,
            },
        )
        with git.Repo(daemon.base / "acme/common.git") as common:
            common_sha = common.git.rev_parse("HEAD")
        daemon.repo(
            "acme/sub",
            {"kustomization.yaml": "resources:\n- vendor/common/base\nnamePrefix: sub-\n"},
            submodules={"vendor/common": ("../common", common_sha)},
        )
        yield Repos(daemon, v1, main, loop)
    finally:
        daemon.stop()


@pytest.fixture(autouse=True)
def git_env(repos: Repos, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Git (ours and kustomize's) sends the daemon's https/ssh/scp URLs to git://."""
    env = repos.daemon.git_env()
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    return env


def write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


def render(
    root: Path, kustomization: str, *, allow: list[str] | None = None, **kwargs: Any
) -> tuple[list[dict[str, Any]], RemoteOptions]:
    write(root, {"ov/kustomization.yaml": kustomization})
    kwargs.setdefault("cache_dir", root / "cache")
    opts = RemoteOptions(allow=["127.0.0.1"] if allow is None else allow, **kwargs)
    return build(root / "ov", root=root, remote=opts), opts


def refused(root: Path, kustomization: str, **kwargs: Any) -> RenderError:
    with pytest.raises(RenderError) as info:
        render(root, kustomization, **kwargs)
    return info.value


def kustomize(kustomize_bin: Path, directory: Path) -> str:
    proc = subprocess.run(
        [str(kustomize_bin), "build", str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=dict(os.environ),
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- parity with kustomize ------------------------------------------------------------------------------

FORMS = [
    "https://{host}/acme/base//deploy?ref=v1",  # '//' separator, lightweight tag
    "ssh://{host}/acme/base.git/deploy?ref=v1a",  # '.git' ends the repository, annotated tag
    "git@127.0.0.1:acme/base//deploy?ref=main",  # SCP style, branch
    "git::https://{host}/acme/base//deploy?version={v1}",  # go-getter prefix, version=, a commit id
    "https://{host}/acme/base/deploy?ref=v1&timeout=30&submodules=false",  # org/repo split, parameters
    "https://{host}/acme/base//deploy",  # the remote's HEAD
    "file://{gitd}/acme/base.git//deploy?ref=v1",  # a repository on this disk
    "https://{host}/acme/base//app?ref=main",  # nested remote base and remote component
    "https://{host}/acme/sub?ref=main",  # a submodule with a relative URL
]


@pytest.mark.parametrize("form", FORMS)
def test_remote_base_matches_kustomize(form: str, repos: Repos, tmp_path: Path, kustomize_bin: Path) -> None:
    url = form.format(host=repos.host, v1=repos.v1, gitd=repos.daemon.base)
    objs, opts = render(tmp_path, f"resources:\n- {url}\n", allow=["127.0.0.1", "file:///"])
    assert dump_yaml(objs) == kustomize(kustomize_bin, tmp_path / "ov")
    assert opts.used[0].url == url
    assert opts.used[0].kustomization == "ov/kustomization.yaml"
    assert len(opts.used[0].commit) == 40


def test_records_name_each_remote_and_its_commit(repos: Repos, tmp_path: Path) -> None:
    url = f"https://{repos.host}/acme/base//app?ref=main"
    _, opts = render(tmp_path, f"resources:\n- {url}\n")
    got = [(u.url, u.kustomization, u.repo, u.ref, u.commit[:7]) for u in opts.used]
    inner = f"https://{repos.host}/acme/base//app/kustomization.yaml?ref=main"
    assert got[0] == (url, "ov/kustomization.yaml", f"https://{repos.host}/acme/base", "main", repos.main[:7])
    assert [(g[0].split("//")[-1], g[1]) for g in got[1:]] == [
        ("base?ref=main", inner),
        ("comp?ref=main", inner),
    ]


def test_tags_and_commits_resolve_to_the_commit(repos: Repos, tmp_path: Path) -> None:
    for ref, want in (("v1", repos.v1), ("v1a", repos.v1), ("main", repos.main), (repos.v1, repos.v1)):
        _, opts = render(tmp_path, f"resources:\n- https://{repos.host}/acme/base//deploy?ref={ref}\n")
        assert opts.used[0].commit == want, ref


def test_remote_files_over_http_match_kustomize(tmp_path: Path, kustomize_bin: Path) -> None:
    server = HttpFiles().start()
    try:
        server.routes["/cm.yaml"] = (200, CM.format(name="web", value="1").encode(), {})
        server.routes["/patch.yaml"] = (200, b"- op: replace\n  path: /data/value\n  value: patched\n", {})
        server.routes["/moved.yaml"] = (302, b"", {"Location": "/cm.yaml"})
        text = (
            f"resources:\n- {server.url('/cm.yaml')}\n"
            f"patches:\n- path: {server.url('/patch.yaml')}\n  target:\n    kind: ConfigMap\n"
        )
        objs, opts = render(tmp_path, text)
        assert dump_yaml(objs) == kustomize(kustomize_bin, tmp_path / "ov")
        assert [u.url for u in opts.used] == [server.url("/cm.yaml"), server.url("/patch.yaml")]
        assert all(len(u.sha256) == 64 and not u.commit for u in opts.used)
        objs, _ = render(tmp_path, f"resources:\n- {server.url('/moved.yaml')}\n")
        assert objs[0]["metadata"]["name"] == "web"
        # a URL that also parses as a repository (org/repo + path) is a file when it serves a manifest
        server.routes["/org/repo/cm.yaml"] = server.routes["/cm.yaml"]
        objs, opts = render(tmp_path, f"resources:\n- {server.url('/org/repo/cm.yaml')}\n")
        assert objs[0]["metadata"]["name"] == "web" and opts.used[0].sha256
        assert dump_yaml(objs) == kustomize(kustomize_bin, tmp_path / "ov")
        # a redirect is checked against the allow-list too
        server.routes["/away.yaml"] = (302, b"", {"Location": "http://localhost:1/x.yaml"})
        err = refused(tmp_path, f"resources:\n- {server.url('/away.yaml')}\n")
        assert "redirected to http://localhost:1/x.yaml" in err.message and "not allowed" in err.message
        # an unsuccessful status is kustomize's ErrHTTP
        err = refused(tmp_path, f"resources:\n- {server.url('/gone.yaml')}\n")
        assert "HTTP Error: status code 404 (Not Found)" in err.message
        assert err.path == "ov/kustomization.yaml"
    finally:
        server.stop()


def test_remote_transformer_and_generator_configs_match_kustomize(
    repos: Repos, tmp_path: Path, kustomize_bin: Path
) -> None:
    """``transformers:``, ``generators:`` and ``validators:`` entries load remote files and remote
    kustomizations as ``resources`` entries do (kustomize accumulates them as resources), under the same
    allow-list."""
    host = repos.host
    repos.daemon.repo(
        "acme/tconf",
        {
            "prefix/kustomization.yaml": "resources:\n- prefix.yaml\n",
            "prefix/prefix.yaml": "apiVersion: builtin\nkind: PrefixSuffixTransformer\n"
            "metadata:\n  name: pfx\nprefix: team-\nfieldSpecs:\n- path: metadata/name\n",
            "gen/kustomization.yaml": "resources:\n- gen.yaml\n",
            "gen/gen.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: settings\n"
            "literals:\n- mode=remote\n",
        },
    )
    server = HttpFiles().start()
    try:
        server.routes["/labels.yaml"] = (
            200,
            b"apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: lbl\nlabels:\n  from: http\n"
            b"fieldSpecs:\n- path: metadata/labels\n  create: true\n",
            {},
        )
        write(tmp_path, {"ov/cm.yaml": CM.format(name="web", value="1")})
        prefix, gen = (f"https://{host}/acme/tconf//{d}?ref=main" for d in ("prefix", "gen"))
        server.routes["/check.yaml"] = (
            200,
            b"apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: check\nlabels:\n"
            b"  validated-by: http\nfieldSpecs:\n- path: metadata/labels\n  create: true\n",
            {},
        )
        text = (
            f"resources:\n- cm.yaml\ntransformers:\n- {prefix}\n- {server.url('/labels.yaml')}\n"
            f"generators:\n- {gen}\nvalidators:\n- {server.url('/check.yaml')}\n"
        )
        objs, opts = render(tmp_path, text)
        assert dump_yaml(objs) == kustomize(kustomize_bin, tmp_path / "ov")
        assert [o["metadata"]["name"] for o in objs] == ["team-settings-86th22b7fb", "team-web"]
        assert all(o["metadata"]["labels"] == {"from": "http", "validated-by": "http"} for o in objs)
        assert {u.url for u in opts.used} == {
            prefix,
            gen,
            server.url("/labels.yaml"),
            server.url("/check.yaml"),
        }
        err = refused(tmp_path, f"resources:\n- cm.yaml\ntransformers:\n- {prefix}\n", allow=[])
        assert "not allowed" in err.message and prefix in err.message
        assert err.path == "ov/kustomization.yaml"
    finally:
        server.stop()


# -- bad input ------------------------------------------------------------------------------------------


class NoFetch:
    """A fetcher that must not be called."""

    def fetch(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("fetched a remote that is not allowed")


def test_host_not_allowed_names_file_entry_and_setting(repos: Repos, tmp_path: Path) -> None:
    url = f"https://{repos.host}/acme/base//deploy?ref=v1"
    err = refused(
        tmp_path,
        f"resources:\n- {url}\n",
        allow=["github.com/acme/*", "127.0.0.1/other/*"],
        setting="render.remoteBases.allow in envs/dev.yaml",
        fetcher=NoFetch(),
    )
    assert err.path == "ov/kustomization.yaml"
    assert url in err.message
    assert "render.remoteBases.allow in envs/dev.yaml" in err.message
    assert f"'{repos.host}/acme/base'" in err.message
    # components and the SCP form are checked too; nothing allowed by default
    for text in (f"components:\n- {url}\n", "resources:\n- git@github.com:acme/base//deploy?ref=v1\n"):
        err = refused(tmp_path, text, allow=[], fetcher=NoFetch())
        assert "is not allowed" in err.message and err.path == "ov/kustomization.yaml"
    # a build without remote options allows nothing and says how to allow
    write(tmp_path, {"ov/kustomization.yaml": f"resources:\n- {url}\n"})
    with pytest.raises(RenderError, match="--allow-remote"):
        build(tmp_path / "ov", root=tmp_path)


def test_unreachable_remote(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}/acme/base//deploy?ref=v1"
    t0 = time.monotonic()
    err = refused(tmp_path, f"resources:\n- {url}\n")
    assert time.monotonic() - t0 < 30
    assert err.path == "ov/kustomization.yaml"
    assert f"remote base {url!r}" in err.message
    assert "ls-remote" in err.message
    assert not any((tmp_path / "cache").rglob("*.tmp*"))


def test_remote_that_does_not_answer_times_out(tmp_path: Path) -> None:
    with blackhole() as port:
        url = f"https://127.0.0.1:{port}/acme/base//deploy?ref=v1"
        t0 = time.monotonic()
        err = refused(tmp_path, f"resources:\n- {url}\n", timeout=1.0)
        assert time.monotonic() - t0 < 15
    assert "timed out (the fetch's timeout is 1 s)" in err.message
    assert err.path == "ov/kustomization.yaml" and url in err.message


def test_ref_that_does_not_exist(repos: Repos, tmp_path: Path, kustomize_bin: Path) -> None:
    url = f"https://{repos.host}/acme/base//deploy?ref=nosuch"
    err = refused(tmp_path, f"resources:\n- {url}\n")
    assert err.path == "ov/kustomization.yaml"
    assert f"remote base {url!r}" in err.message
    assert "couldn't find remote ref 'nosuch'" in err.message
    proc = subprocess.run(
        [str(kustomize_bin), "build", str(tmp_path / "ov")], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0 and "couldn't find remote ref nosuch" in proc.stderr


def test_remote_base_that_includes_itself(repos: Repos, tmp_path: Path, kustomize_bin: Path) -> None:
    url = f"https://{repos.host}/acme/loop//deploy?ref=main"
    err = refused(tmp_path, f"resources:\n- {url}\n")
    assert err.message.startswith(f"cycle detected: URI '{url}' referenced by previous URI '{url}'")
    assert f"ov -> {url} -> {url}" in err.message
    assert err.path == f"https://{repos.host}/acme/loop//deploy/kustomization.yaml?ref=main"
    proc = subprocess.run(
        [str(kustomize_bin), "build", str(tmp_path / "ov")], capture_output=True, text=True, check=False
    )
    assert proc.returncode != 0 and "cycle detected" in proc.stderr


def test_cycle_across_two_remotes_and_refs(repos: Repos, tmp_path: Path) -> None:
    ping, pong = (f"https://{repos.host}/acme/{n}//deploy?ref=main" for n in ("ping", "pong"))
    err = refused(tmp_path, f"resources:\n- {ping}\n")
    assert "cycle detected" in err.message and f"{ping} -> {pong} -> {ping}" in err.message
    # entered through another ref of the same commit: kustomize's URL check misses it, the commit check not
    tag = f"https://{repos.host}/acme/ping//deploy?ref=v1"
    err = refused(tmp_path, f"resources:\n- {tag}\n")
    assert f"cycle detected: remote base '{ping}' is '{tag}' again" in err.message
    assert f"{tag} -> {pong} -> {ping}" in err.message


def test_repository_over_the_size_cap(repos: Repos, tmp_path: Path) -> None:
    url = f"https://{repos.host}/acme/big//deploy?ref=main"
    err = refused(tmp_path, f"resources:\n- {url}\n", max_bytes=100_000)
    assert err.path == "ov/kustomization.yaml" and f"remote base {url!r}" in err.message
    assert "over the 100000-byte limit" in err.message and "render.remoteBases.maxBytes" in err.message
    cache = tmp_path / "cache" / "remote-bases"
    assert [list(d.iterdir()) for d in cache.iterdir() if d.is_dir()] == [[]]  # nothing left
    # allowed with a larger cap
    objs, _ = render(tmp_path, f"resources:\n- {url}\n", max_bytes=1_000_000)
    assert objs[0]["kind"] == "ConfigMap"


def test_download_over_the_cap_is_stopped(
    repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_remote, "_SLACK_BYTES", 0)
    url = f"https://{repos.host}/acme/big//deploy?ref=main"
    err = refused(tmp_path, f"resources:\n- {url}\n", max_bytes=20_000)
    assert "limit" in err.message
    assert not any(p.name.startswith(repos.main[:7]) for p in (tmp_path / "cache").rglob("*"))


def test_remote_files_stay_inside_the_checkout(repos: Repos, tmp_path: Path) -> None:
    err = refused(tmp_path, f"resources:\n- https://{repos.host}/acme/base//escape?ref=main\n")
    assert "load restrictor" in err.message
    assert err.path == f"https://{repos.host}/acme/base//escape/kustomization.yaml?ref=main"


def test_path_that_is_a_file(repos: Repos, tmp_path: Path) -> None:
    err = refused(tmp_path, f"resources:\n- https://{repos.host}/acme/base//deploy/cm.yaml?ref=v1\n")
    assert "refers to file 'cm.yaml'; expecting directory" in err.message


def test_git_scheme_is_refused_like_kustomize(tmp_path: Path) -> None:
    err = refused(tmp_path, "resources:\n- git://127.0.0.1:9418/acme/base//deploy?ref=v1\n")
    assert "failed to parse scheme" in err.message


# -- the cache ------------------------------------------------------------------------------------------


def test_a_cached_commit_needs_no_network(repos: Repos, tmp_path: Path) -> None:
    src = tmp_path / "src.git"
    shutil.copytree(repos.daemon.base / "acme" / "base.git", src)
    url = f"file://{src}//deploy?ref={repos.v1}"
    first, _ = render(tmp_path, f"resources:\n- {url}\n", allow=["file:///"])
    shutil.rmtree(src)
    again, opts = render(tmp_path, f"resources:\n- {url}\n", allow=["file:///"])
    assert again == first and opts.used[0].commit == repos.v1


def test_a_tag_is_fetched_once(repos: Repos, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    original = source_remote.RemoteRepos._fetch_locked

    def counting(self: Any, base: Path, url: str, commit: str, *args: Any) -> Path:
        calls.append(commit)
        return original(self, base, url, commit, *args)

    monkeypatch.setattr(source_remote.RemoteRepos, "_fetch_locked", counting)
    for ref in ("v1", "v1", "v1a", repos.v1):  # an annotated tag resolves to its commit, already cached
        render(tmp_path, f"resources:\n- https://{repos.host}/acme/base//deploy?ref={ref}\n")
    assert calls == [repos.v1]


def test_concurrent_renders_share_the_cache(repos: Repos, tmp_path: Path) -> None:
    url = f"https://{repos.host}/acme/base//deploy?ref=v1a"
    write(tmp_path, {"ov/kustomization.yaml": f"resources:\n- {url}\n"})
    results: list[str] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            opts = RemoteOptions(allow=["127.0.0.1"], cache_dir=tmp_path / "cache")
            results.append(dump_yaml(build(tmp_path / "ov", root=tmp_path, remote=opts)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors and len(results) == 4 and len(set(results)) == 1
    trees = [p for p in (tmp_path / "cache" / "remote-bases").glob("*/*") if p.is_dir()]
    assert [p.name for p in trees] == [repos.v1]
    script = (
        "import sys; from pathlib import Path; from reconciler.render import RemoteOptions, build, dump_yaml;"
        "o = RemoteOptions(allow=['127.0.0.1'], cache_dir=Path(sys.argv[1]) / 'cache2');"
        "print(dump_yaml(build(Path(sys.argv[1]) / 'ov', root=Path(sys.argv[1]), remote=o)), end='')"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path)],
            stdout=subprocess.PIPE,
            text=True,
            env=dict(os.environ),
        )
        for _ in range(3)
    ]
    outs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs) and set(outs) == {results[0]}


@pytest.mark.parametrize(
    ("base", "rel", "want"),
    [
        ("https://host.test/org/repo", "../common", "https://host.test/org/common"),
        ("https://host.test/org/repo.git", "./sub.git", "https://host.test/org/repo.git/sub.git"),
        ("https://host.test/org/repo", "../../other/x", "https://host.test/other/x"),
        ("git@github.com:org/repo", "../other", "git@github.com:org/other"),
        ("git@host.test:repo", "../other", "git@host.test:other"),
        ("https://host.test/org/repo", "https://elsewhere.test/x", "https://elsewhere.test/x"),
    ],
)
def test_relative_submodule_urls(base: str, rel: str, want: str) -> None:
    assert source_remote.resolve_relative_url(base, rel) == want
