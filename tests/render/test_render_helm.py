"""helmCharts: byte-for-byte parity with `kustomize build --enable-helm --helm-command <pinned helm>` on the
charts of tests/render/helm_corpus (see its PROVENANCE.md), Helm off by default, errors, the environment
setting and the command line's --enable-helm."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tarfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.model.environment import Environment
from reconciler.model.result import Revision
from reconciler.reconcile.pass_ import render_environment
from reconciler.render import HelmOptions, RemoteOptions, RenderError, build, dump_yaml
from reconciler.render.helm import environment_options
from reconciler.source.git import Snapshot

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "helm_corpus"
CASES = sorted(p.name for p in (CORPUS / "cases").iterdir() if p.is_dir())


def _unpack(case_dir: Path, spec: str) -> None:
    for line in spec.splitlines():
        if not line.strip():
            continue
        archive, home = line.split()
        (case_dir / home).mkdir(parents=True, exist_ok=True)
        with tarfile.open(CORPUS / "charts" / archive) as tar:
            tar.extractall(case_dir / home, filter="data")


def _prepare(tmp: Path, case: str) -> Path:
    """Copy a case with its charts unpacked; the directory to build."""
    src = CORPUS / "cases" / case
    dst = tmp / case
    shutil.copytree(src, dst)
    _unpack(dst, (src / "CHARTS").read_text())
    build_file = src / "BUILD"
    return dst / build_file.read_text().strip() if build_file.exists() else dst


def _kustomize(kustomize_bin: Path, helm_bin: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(kustomize_bin), "build", "--enable-helm", "--helm-command", str(helm_bin), str(directory)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _tree(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _write(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


@pytest.mark.parametrize("case", CASES)
def test_case_matches_kustomize(case: str, tmp_path: Path, kustomize_bin: Path, helm_bin: Path) -> None:
    directory = _prepare(tmp_path, case)
    before = _tree(tmp_path)
    ref = _kustomize(kustomize_bin, helm_bin, directory)
    assert ref.returncode == 0, ref.stderr
    assert "kind: Deployment" in ref.stdout  # every case inflates a chart with a Deployment
    ours = dump_yaml(build(directory, root=tmp_path, helm=HelmOptions(command=str(helm_bin))))
    assert ours == ref.stdout
    assert _tree(tmp_path) == before  # nothing written into the tree (kustomize writes nothing either)


def test_helm_is_off_by_default(tmp_path: Path, kustomize_bin: Path) -> None:
    directory = _prepare(tmp_path, "podinfo-inline")
    ref = subprocess.run(
        [str(kustomize_bin), "build", str(directory)], capture_output=True, text=True, check=False
    )
    assert ref.returncode != 0 and "--enable-helm" in ref.stderr
    with pytest.raises(RenderError) as err:
        build(directory, root=tmp_path)
    assert err.value.path is not None and err.value.path.endswith("kustomization.yaml")
    assert "--enable-helm" in err.value.message and "render.helm.enabled: true" in err.value.message


_PODINFO = "podinfo-6.9.1.tgz charts"


@pytest.mark.parametrize(
    ("kustomization", "message"),
    [
        ("helmCharts:\n- name: absent\n  releaseName: r\n", "no chart found at 'app/charts/absent'"),
        (
            "helmCharts:\n- name: podinfo\n  valuesMerge: sideways\n  valuesInline: {a: 1}\n",
            "valuesMerge must be one of [merge override replace]",
        ),
        (
            "helmCharts:\n- name: podinfo\n  valuesFiles: [x.yaml]\n",
            "field helmCharts[0].valuesFiles: unknown field",
        ),
        ("helmCharts:\n- releaseName: nameless\n", "chart name cannot be empty"),
        ("helmCharts:\n- name: podinfo\n  valuesFile: ../outside.yaml\n", "load restrictor"),
        (
            "helmCharts:\n- name: podinfo\n  additionalValuesFiles: [missing.yaml]\n",
            "file 'missing.yaml' not found",
        ),
        (
            "helmCharts:\n- name: podinfo\n  releaseName: bad\n  valuesInline:\n    hooks: 5\n",
            "could not merge values: cannot merge a map with a non-map value",
        ),
        (
            "helmCharts:\n- name: podinfo\n  releaseName: bad\n  valuesMerge: replace\n"
            "  valuesInline:\n    hooks: 5\n",
            "exited with status 1: Error: template: podinfo/templates/hooks/job.yaml",
        ),
    ],
)
def test_errors_fail_like_kustomize(
    kustomization: str, message: str, tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo = tmp_path / "repo"
    directory = _write(repo / "app", {"kustomization.yaml": kustomization})
    (repo / "outside.yaml").write_text("replicaCount: 2\n")
    _unpack(directory, _PODINFO)
    ref = _kustomize(kustomize_bin, helm_bin, directory)
    assert ref.returncode != 0, ref.stdout
    with pytest.raises(RenderError) as err:
        build(directory, root=repo, helm=HelmOptions(command=str(helm_bin)))
    assert message in str(err.value)
    assert err.value.path == "app/kustomization.yaml"


def test_helm_stderr_is_in_the_error(tmp_path: Path, helm_bin: Path) -> None:
    directory = _write(
        tmp_path / "app",
        {
            "kustomization.yaml": "helmCharts:\n- name: agent-stack\n  releaseName: s\n"
            '  kubeVersion: "1.20.0"\n'
        },
    )
    _unpack(directory, "agent-stack-0.3.0.tgz charts")
    with pytest.raises(RenderError) as err:
        build(directory, root=tmp_path, helm=HelmOptions(command=str(helm_bin)))
    assert "helm template s" in err.value.message and "--kube-version 1.20.0" in err.value.message
    assert "incompatible with Kubernetes v1.20.0" in err.value.message


@pytest.mark.parametrize(
    "repo", ["https://charts.example.invalid/stable", "oci://registry.example.invalid/charts"]
)
def test_a_chart_not_in_chart_home_is_pulled_only_when_allowed(
    repo: str, tmp_path: Path, helm_bin: Path
) -> None:
    directory = _write(
        tmp_path / "app",
        {"kustomization.yaml": f"helmCharts:\n- name: podinfo\n  version: 6.9.1\n  repo: {repo}\n"},
    )
    remote = RemoteOptions(
        allow=["github.com/acme/*"], setting="--allow-remote", cache_dir=tmp_path / "cache"
    )
    with pytest.raises(RenderError) as err:
        build(directory, root=tmp_path, remote=remote, helm=HelmOptions(command=str(helm_bin)))
    assert "remote chart" in err.value.message and "is not allowed" in err.value.message
    assert not (tmp_path / "cache").exists() and remote.used == []


def test_a_repo_that_is_no_url_is_refused(tmp_path: Path, helm_bin: Path) -> None:
    directory = _write(
        tmp_path / "app", {"kustomization.yaml": "helmCharts:\n- name: podinfo\n  repo: bitnami\n"}
    )
    with pytest.raises(RenderError, match="must be an http\\(s\\):// or oci:// URL"):
        build(directory, root=tmp_path, helm=HelmOptions(command=str(helm_bin)))


def test_chart_home_outside_the_repository_is_refused(tmp_path: Path, helm_bin: Path) -> None:
    repo = tmp_path / "repo"
    _unpack(tmp_path / "elsewhere", _PODINFO)
    directory = _write(
        repo / "app",
        {
            "kustomization.yaml": f"helmGlobals:\n  chartHome: {tmp_path / 'elsewhere' / 'charts'}\n"
            "helmCharts:\n- name: podinfo\n"
        },
    )
    with pytest.raises(RenderError, match=r"chartHome .* is not in or below the repository root"):
        build(directory, root=repo, helm=HelmOptions(command=str(helm_bin)))


def test_a_chart_linking_outside_the_repository_is_refused(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    repo = tmp_path / "repo"
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the render\n")
    directory = _write(
        repo / "app",
        {"kustomization.yaml": "helmCharts:\n- name: podinfo\n  releaseName: r\n"},
    )
    _unpack(directory, _PODINFO)
    (directory / "charts" / "podinfo" / "leak.txt").symlink_to(secret)
    (directory / "charts" / "podinfo" / "templates" / "leak.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leak\ndata:\n"
        '  v: {{ .Files.Get "leak.txt" | quote }}\n'
    )
    # kustomize lets helm read it
    assert "not for the render" in _kustomize(kustomize_bin, helm_bin, directory).stdout
    with pytest.raises(RenderError, match=r"links outside the repository"):
        build(directory, root=repo, helm=HelmOptions(command=str(helm_bin)))


def test_a_hung_helm_times_out(tmp_path: Path) -> None:
    fake = tmp_path / "fixture-helm"  # a fixture standing in for a helm that never answers
    fake.write_text("#!/bin/sh\nexec sleep 30\n")
    fake.chmod(0o755)
    directory = _write(tmp_path / "app", {"kustomization.yaml": "helmCharts:\n- name: podinfo\n"})
    with pytest.raises(RenderError, match=r"did not finish within 0\.5 s"):
        build(directory, root=tmp_path, helm=HelmOptions(command=str(fake), timeout=0.5))


def test_missing_helm_binary_says_how_to_get_it(tmp_path: Path) -> None:
    directory = _write(tmp_path / "app", {"kustomization.yaml": "helmCharts:\n- name: podinfo\n"})
    with pytest.raises(RenderError, match=r"tools/helm/build\.sh"):
        build(directory, root=tmp_path, helm=HelmOptions(command=str(tmp_path / "no-helm")))


def test_command_line_enable_helm(tmp_path: Path, kustomize_bin: Path, helm_bin: Path) -> None:
    directory = _prepare(tmp_path, "two-charts")
    runner = CliRunner()
    off = runner.invoke(app, ["build", str(directory), "--root", str(tmp_path)])
    assert off.exit_code != 0 and "--enable-helm" in off.output
    on = runner.invoke(
        app,
        ["build", str(directory), "--root", str(tmp_path), "--enable-helm", "--helm-command", str(helm_bin)],
    )
    assert on.exit_code == 0, on.output
    assert on.stdout == _kustomize(kustomize_bin, helm_bin, directory).stdout


def test_environment_setting_enables_helm(
    tmp_path: Path, kustomize_bin: Path, helm_bin: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    directory = _prepare(tmp_path, "agent-crds")
    monkeypatch.setenv("RECONCILER_HELM", str(helm_bin))
    snapshot = Snapshot(Revision(branch="main", sha="0" * 40), tmp_path)
    off = Environment.model_validate({"name": "dev", "overlay": "agent-crds"})
    assert environment_options(off) is None
    with pytest.raises(RenderError, match=r"render\.helm\.enabled: true"):
        render_environment(off, snapshot)
    on = Environment.model_validate(
        {"name": "dev", "overlay": "agent-crds", "render": {"helm": {"enabled": True, "timeout": 60}}}
    )
    opts = environment_options(on)
    assert opts is not None and opts.command == str(helm_bin) and opts.timeout == 60
    ours = dump_yaml(render_environment(on, snapshot))
    assert ours == _kustomize(kustomize_bin, helm_bin, directory).stdout
    # kubeVersion/apiVersions of the environment replace the charts' (kustomize's --helm-kube-version)
    pinned = Environment.model_validate(
        {
            "name": "dev",
            "overlay": "agent-crds",
            "render": {"helm": {"enabled": True, "kubeVersion": "1.33.1", "apiVersions": ["v1"]}},
        }
    )
    config = next(o for o in render_environment(pinned, snapshot) if o["kind"] == "ConfigMap")
    assert config["data"]["kubeVersion"] == "v1.33.1" and config["data"]["routes"] == "none"


def test_helm_environment_is_minimal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """helm sees no HELM_* settings of the caller (a HELM_NAMESPACE would change the release namespace)."""
    fake = tmp_path / "fixture-helm"  # a fixture that prints its environment as a ConfigMap
    fake.write_text(
        "#!/bin/sh\n"
        'if [ "$1" = version ]; then echo v4.3.2; exit 0; fi\n'
        "printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: env\\ndata:\\n'\n"
        "env | grep '^HELM_' | sort | sed 's/^\\([^=]*\\)=\\(.*\\)$/  \\1: \"\\2\"/'\n"
    )
    fake.chmod(0o755)
    directory = _write(tmp_path / "app", {"kustomization.yaml": "helmCharts:\n- name: podinfo\n"})
    _unpack(directory, _PODINFO)
    monkeypatch.setenv("HELM_NAMESPACE", "leak")
    (cm,) = build(directory, root=tmp_path, helm=HelmOptions(command=str(fake)))
    assert "HELM_NAMESPACE" not in cm["data"]
    assert sorted(cm["data"]) == ["HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME", "HELM_PLUGINS"]
    assert all(not v.startswith(str(tmp_path)) for v in cm["data"].values())


# -- charts from an OCI registry (a real CNCF Distribution registry on 127.0.0.1) -----------------------


def _registry_binary() -> Path:
    """The pinned CNCF Distribution registry, built (or found cached) by ``tools/controlplane/build.sh
    registry``."""
    script = HERE.parents[1] / "tools" / "controlplane" / "build.sh"
    proc = subprocess.run(
        [str(script), "registry"], capture_output=True, text=True, timeout=1800, check=False
    )
    assert proc.returncode == 0, proc.stderr
    found = sorted(Path(proc.stdout.strip().splitlines()[-1]).glob("registry-*/registry"))
    assert found, (
        f"tools/controlplane/build.sh registry printed {proc.stdout!r}: no registry-*/registry there"
    )
    return found[-1]


@pytest.fixture
def oci_registry(tmp_path: Path) -> Iterator[str]:
    """``127.0.0.1:<port>``: a real registry (plain HTTP, loopback only), stopped after the test."""
    from reconciler_testing import free_port

    port = free_port()
    config = tmp_path / "registry.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp_path / 'registry-data'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen(
        [str(_registry_binary()), "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        for _ in range(100):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"the registry exited: {proc.stderr.read() if proc.stderr else ''!r}")
                time.sleep(0.1)
        else:
            pytest.fail("the registry did not answer within 10 s")
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_chart_pulled_from_an_oci_registry(
    oci_registry: str, tmp_path: Path, kustomize_bin: Path, helm_bin: Path
) -> None:
    home = tmp_path / "helm-home"
    subprocess.run(
        [
            str(helm_bin),
            "push",
            "--plain-http",
            str(CORPUS / "charts" / "podinfo-6.9.1.tgz"),
            f"oci://{oci_registry}/charts",
        ],
        check=True,
        capture_output=True,
        timeout=60,
        env={
            "PATH": os.environ["PATH"],
            "HOME": str(home),
            "HELM_CONFIG_HOME": str(home / "config"),
            "HELM_CACHE_HOME": str(home / "cache"),
            "HELM_DATA_HOME": str(home / "data"),
        },
    )
    kustomization = (
        "namespace: oci\nnamePrefix: o-\nhelmCharts:\n- name: podinfo\n  version: 6.9.1\n"
        f"  repo: oci://{oci_registry}/charts/\n  releaseName: pulled\n"
    )
    repo = tmp_path / "repo"
    directory = _write(repo / "app", {"kustomization.yaml": kustomization})
    cache = tmp_path / "cache"
    remote = RemoteOptions(allow=[f"oci://{oci_registry}/charts/*"], cache_dir=cache)
    helm = HelmOptions(command=str(helm_bin), cache_dir=cache)
    ours = dump_yaml(build(directory, root=repo, remote=remote, helm=helm))
    assert list(directory.iterdir()) == [directory / "kustomization.yaml"]  # nothing written into the tree
    digest = hashlib.sha256((CORPUS / "charts" / "podinfo-6.9.1.tgz").read_bytes()).hexdigest()
    assert [(u.url, u.ref, u.sha256) for u in remote.used] == [
        (f"oci://{oci_registry}/charts/podinfo", "6.9.1", digest)
    ]
    # kustomize's helm pull has no --plain-http, so it cannot pull from this registry; what it renders with
    # the same chart where its pull would have put it (chartHome/<name>-<version>/<name>):
    reference = tmp_path / "reference"
    shutil.copytree(repo / "app", reference)
    _unpack(reference, "podinfo-6.9.1.tgz charts/podinfo-6.9.1")
    ref = _kustomize(kustomize_bin, helm_bin, reference)
    assert ref.returncode == 0, ref.stderr
    assert ours == ref.stdout
    # a second render uses the cached chart
    again = RemoteOptions(allow=[f"oci://{oci_registry}/charts/*"], cache_dir=cache)
    assert dump_yaml(build(directory, root=repo, remote=again, helm=helm)) == ours
    assert [u.sha256 for u in again.used] == [digest]
    # a version the registry does not have: helm's error
    missing = _write(repo / "missing", {"kustomization.yaml": kustomization.replace("6.9.1", "9.9.9")})
    with pytest.raises(RenderError, match=r"pull .*exited with status 1: .*not found"):
        build(missing, root=repo, remote=again, helm=helm)
