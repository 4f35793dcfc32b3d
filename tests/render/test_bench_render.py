"""bench/render/bench_render.py in its quick mode and its corpus mode, against the pinned kustomize: the JSON
it writes has its shape, outputs are compared, the corpus is classified per repository. No timing is
asserted here (the speed goals live in bench/)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from test_render_parity import CORPUS, ERROR_OVERLAYS, OVERLAYS

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "render" / "bench_render.py"


def _bench(*args: str, out: Path) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data: dict[str, Any] = json.loads(out.read_text())
    return proc, data


def test_quick_mode_measures_the_render_and_the_command_line(kustomize_bin: Path, tmp_path: Path) -> None:
    proc, data = _bench("--quick", "--kustomize", str(kustomize_bin), out=tmp_path / "render.json")
    render = data["render"]
    assert render["identical"] is True and render["rounds"] == 2
    for key in ("ratio_cold_new_process", "ratio_cold_in_process", "ratio_warm"):
        assert isinstance(render[key], float) and render[key] > 0
    assert isinstance(render["meets_in_process_goal"], bool)

    cli = data["cli"]
    assert cli["rounds"] == 3 and cli["build_output_identical"] is True
    assert set(cli["median_ms"]) == {
        "reconciler --help",
        "reconciler build",
        "kustomize --help",
        "kustomize build",
        "python -c pass",
    }
    assert set(cli["median_cpu_ms"]) == set(cli["median_ms"])
    assert all(isinstance(v, float) and v > 0 for v in cli["median_ms"].values())
    assert isinstance(cli["help_ratio"], float) and isinstance(cli["build_ratio"], float)
    assert isinstance(cli["help_meets_goal"], bool) and isinstance(cli["build_meets_goal"], bool)
    assert "(goal <= 150 ms: " in proc.stdout and "(goal <= 250 ms: " in proc.stdout


def test_corpus_mode_classifies_every_directory_per_repository(kustomize_bin: Path, tmp_path: Path) -> None:
    other = tmp_path / "other-repo"
    for name, kustomization in {
        "ok": "resources:\n- cm.yaml\nnamePrefix: x-\n",
        "broken": "resources:\n- missing.yaml\n",
        ".git/hidden": "resources:\n- cm.yaml\n",  # hidden directories are not walked
    }.items():
        (other / name).mkdir(parents=True)
        (other / name / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n")
        (other / name / "kustomization.yaml").write_text(kustomization)

    proc, data = _bench(
        "--corpus", str(CORPUS), str(other), "--kustomize", str(kustomize_bin), out=tmp_path / "corpus.json"
    )
    ours, theirs = data["corpus"]["repositories"]
    assert ours["repository"] == "tests/render/corpus"
    outcomes = ("identical", "different", "refused", "lenient", "both-fail")
    for repo in (ours, theirs):
        assert repo["directories"] == len(repo["cases"]) == sum(repo[o] for o in outcomes)
    by_dir = {c["dir"]: c["outcome"] for c in ours["cases"]}
    assert {name: by_dir[name] for name in OVERLAYS} == dict.fromkeys(OVERLAYS, "identical")
    errors = {f"errors/{name}": by_dir[f"errors/{name}"] for name in ERROR_OVERLAYS}
    assert errors == {f"errors/{name}": "both-fail" for name in ERROR_OVERLAYS}

    assert {c["dir"]: c["outcome"] for c in theirs["cases"]} == {"ok": "identical", "broken": "both-fail"}
    assert "missing.yaml" in theirs["cases"][0]["detail"]
    table = proc.stdout.splitlines()
    assert table[0].split() == ["repository", "dirs", *outcomes]
    assert table[1].split()[0] == "tests/render/corpus" and table[3].split()[0] == "total"


def test_helm_mode_compares_the_helm_corpus(kustomize_bin: Path, helm_bin: Path, tmp_path: Path) -> None:
    proc, data = _bench(
        "--helm",
        str(helm_bin),
        "--kustomize",
        str(kustomize_bin),
        "--rounds",
        "1",
        out=tmp_path / "helm.json",
    )
    helm = data["helm"]
    cases = [p for p in (REPO / "tests" / "render" / "helm_corpus" / "cases").iterdir() if p.is_dir()]
    assert helm["identical"] is True and helm["kustomizations"] == len(cases) and helm["rounds"] == 1
    assert isinstance(helm["ratio"], float) and helm["ratio"] > 0 and isinstance(helm["meets_goal"], bool)
    assert "(goal <= 1.0: " in proc.stdout
