"""Parity with the real `kustomize build` on the inputs of kustomize's own `api/krusty` Go tests.

krusty.py replays the Go tests' harness calls from the `sigs.k8s.io/kustomize/api` module in the Go
module cache (the module tools/controlplane/kustomize builds kustomize from; nothing is vendored) into
directories; each is built by the pinned kustomize and by our renderer. Where kustomize renders, the
output must be byte-identical; where it refuses, we must refuse too (the messages may differ).
Every case that does not agree today is listed in KNOWN_DIFFERENCES with its kind and why, so that a
new difference fails the test, and so does a listed one that starts to agree.
"""

from __future__ import annotations

import difflib
import json
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from krusty import Extraction, KrustyCase, extract, materialize

from reconciler.render import RenderError, build, dump_yaml

KUSTOMIZE_MODULE = Path(__file__).resolve().parents[2] / "tools" / "controlplane" / "kustomize"
API_MODULE = "sigs.k8s.io/kustomize/api"
MIN_COMPARED = 150  # the least number of cases compared (today: 212, from 207 of 320 test functions)

# Outcome kinds; "identical" and "both refuse" are agreement.
IDENTICAL = "identical"
BOTH_REFUSE = "both refuse"
OUTPUT_DIFFERS = "output differs"
WE_REFUSE = "we refuse, kustomize renders"
WE_RENDER = "we render, kustomize refuses"
WE_CRASH = "we crash"  # an exception other than RenderError
AGREEMENT = frozenset({IDENTICAL, BOTH_REFUSE})

# case -> (kind, reason): the cases where our renderer and kustomize v5.8.1 disagree today.
KNOWN_DIFFERENCES: dict[str, tuple[str, str]] = {}

# cases where the kustomize binary's outcome differs from the Go test's expectation, and why
NOT_AS_IN_GO: dict[str, str] = {
    "TestDuplicateKeys": "the Go test's build succeeds and printing it (AsYaml) fails; the binary does both",
}


@dataclass(frozen=True)
class Outcome:
    case: KrustyCase
    kind: str
    kustomize_ok: bool  # the real kustomize rendered the directory
    detail: str  # a diff or the two errors, for the failure message


@pytest.fixture(scope="session")
def krusty_dir(kustomize_bin: Path) -> Path:
    """`api/krusty` of the kustomize api module the pinned kustomize is built from (in the module cache)."""
    env = {**os.environ, "GOFLAGS": "-buildvcs=false", "GOTOOLCHAIN": "local", "GOPROXY": "off"}
    proc = subprocess.run(
        ["go", "mod", "download", "-json", API_MODULE],
        cwd=KUSTOMIZE_MODULE,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    try:
        info = json.loads(proc.stdout)
    except json.JSONDecodeError:
        info = {}
    directory = Path(info["Dir"]) / "krusty" if info.get("Dir") else None
    if proc.returncode != 0 or directory is None or not directory.is_dir():
        pytest.fail(
            f"the Go module cache lacks {API_MODULE} (the kustomize api module whose api/krusty tests this "
            f"compares on): run `go mod download {API_MODULE}` in {KUSTOMIZE_MODULE} "
            f"(go said: {info.get('Error') or proc.stderr.strip() or 'no Dir'})"
        )
    return directory


def _compare(case: KrustyCase, kustomize: Path, root: Path) -> Outcome:
    target = materialize(case, root)
    ref = subprocess.run(
        [str(kustomize), "build", str(target)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=root,
    )
    try:
        ours = dump_yaml(build(target, root=root))
    except RenderError as exc:
        if ref.returncode != 0:
            return Outcome(case, BOTH_REFUSE, False, "")
        return Outcome(case, WE_REFUSE, True, f"ours: {exc}")
    except Exception as exc:  # a crash is an outcome to report, not to propagate
        return Outcome(case, WE_CRASH, ref.returncode == 0, f"ours: {type(exc).__name__}: {exc}")
    if ref.returncode != 0:
        return Outcome(case, WE_RENDER, False, f"kustomize: {ref.stderr.strip()}")
    if ours == ref.stdout:
        return Outcome(case, IDENTICAL, True, "")
    diff = difflib.unified_diff(
        ref.stdout.splitlines(), ours.splitlines(), "kustomize", "ours", n=1, lineterm=""
    )
    return Outcome(case, OUTPUT_DIFFERS, True, "\n".join(list(diff)[:30]))


def _summary(extraction: Extraction, outcomes: list[Outcome]) -> str:
    kinds: dict[str, int] = {}
    for o in outcomes:
        kinds[o.kind] = kinds.get(o.kind, 0) + 1
    skipped = ", ".join(f"{reason}: {n}" for reason, n in extraction.skipped.most_common())
    return (
        f"{extraction.functions} test functions, {len(extraction.cases)} cases compared: {kinds}; "
        f"functions skipped ({sum(extraction.skipped.values())}): {skipped}"
    )


def test_krusty_cases_match_kustomize(krusty_dir: Path, kustomize_bin: Path, tmp_path: Path) -> None:
    start = time.monotonic()
    extraction = extract(krusty_dir)
    cases = extraction.cases
    assert len({c.name for c in cases}) == len(cases), "case names must be unique"
    assert len(cases) >= MIN_COMPARED, (
        f"only {len(cases)} krusty cases extracted (expected ≥ {MIN_COMPARED}): {_summary(extraction, [])}"
    )
    roots = [tmp_path / f"{k:03d}" for k in range(len(cases))]
    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = list(pool.map(_compare, cases, [kustomize_bin] * len(cases), roots))
    print(f"\nkrusty parity: {_summary(extraction, outcomes)} in {time.monotonic() - start:.1f} s")

    # the directories reproduce the Go tests: kustomize fails exactly where the Go test expects an error
    problems = [
        f"{o.case.name}: the Go test expects {'an error' if o.case.expect_error else 'a build'}, "
        f"the kustomize binary {'rendered' if o.kustomize_ok else 'refused'} the extracted directory"
        for o in outcomes
        if (o.kustomize_ok == o.case.expect_error) != (o.case.name in NOT_AS_IN_GO)
    ]
    for o in outcomes:
        known = KNOWN_DIFFERENCES.get(o.case.name)
        if o.kind in AGREEMENT and known is not None:
            problems.append(
                f"{o.case.name}: now agrees with kustomize ({o.kind}); drop it from KNOWN_DIFFERENCES"
            )
        elif o.kind not in AGREEMENT and known is None:
            problems.append(f"{o.case.name} ({o.case.source}): new difference, {o.kind}\n{o.detail}")
        elif known is not None and known[0] != o.kind:
            problems.append(f"{o.case.name}: listed as {known[0]!r}, now {o.kind!r}\n{o.detail}")
    names = {c.name for c in cases}
    problems += [
        f"{name}: in KNOWN_DIFFERENCES but not extracted" for name in KNOWN_DIFFERENCES if name not in names
    ]
    assert not problems, "\n\n".join(problems)


def test_extractor_replays_harness_calls(tmp_path: Path) -> None:
    """The extractor on a synthetic Go test file: what is replayed, and what is skipped and why."""
    (tmp_path / "a_test.go").write_text(
        """package krusty_test

const shared = `kind: ConfigMap
metadata:
  name: ` + "c\\x41\\tx"

func writeBase(th kusttest_test.Harness, dir string) {
	th.WriteF(filepath.Join(dir, "cm.yaml"), shared)
	th.WriteK(dir, `
resources:
- cm.yaml
`)
}

func TestReplayed(t *testing.T) {
	th := kusttest_test.MakeHarness(t)
	writeBase(th, "/base")
	opts := th.MakeDefaultOptions()
	m := th.Run("/base", opts)
	th.AssertActualEqualsExpected(m, `ignored`)
	th.WriteC("comp", strings.ReplaceAll("namePrefix: OLD", "OLD", "new-"))
	if err := doSomething(); err != nil { // ignored: no harness inside
		t.Fatal(err)
	}
	require.Error(t, th.RunWithErr("comp", th.MakeDefaultOptions()))
}

func TestSprintf(t *testing.T) {
	th := kusttest_test.MakeHarness(t)
	th.WriteF("a.yaml", fmt.Sprintf(`x: %s`, "y"))
	th.Run(".", th.MakeDefaultOptions())
}

func TestOptions(t *testing.T) {
	th := kusttest_test.MakeHarness(t)
	opts := th.MakeDefaultOptions()
	opts.LoadRestrictions = types.LoadRestrictionsNone
	th.Run(".", opts)
}

func TestPlugin(t *testing.T) {
	th := kusttest_test.MakeEnhancedHarness(t)
	th.Run(".", th.MakeOptionsPluginsEnabled())
}

func TestLoop(t *testing.T) {
	th := kusttest_test.MakeHarness(t)
	for _, n := range names {
		th.WriteF(n, "")
	}
	th.Run(".", th.MakeDefaultOptions())
}

func TestRemote(t *testing.T) {
	th := kusttest_test.MakeHarness(t)
	th.WriteK(".", "resources:\\n- https://github.com/x/y//z\\n")
	th.Run(".", th.MakeDefaultOptions())
}
"""
    )
    extraction = extract(tmp_path)
    assert extraction.functions == 6
    assert dict(extraction.skipped) == {
        "fmt.Sprintf": 1,
        "non-default options": 1,
        "plugins": 1,
        "`for` around harness calls": 1,
        "remote URL": 1,
    }
    first, second = extraction.cases
    assert (first.name, first.target, first.expect_error) == ("TestReplayed", "base", False)
    assert first.files == {
        "base/cm.yaml": "kind: ConfigMap\nmetadata:\n  name: cA\tx",
        "base/kustomization.yaml": (
            "\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n\nresources:\n- cm.yaml\n"
        ),
    }
    assert (second.name, second.target, second.expect_error) == ("TestReplayed#2", "comp", True)
    assert second.files["comp/kustomization.yaml"].endswith("kind: Component\nnamePrefix: new-")
    target = materialize(second, tmp_path / "out")
    assert target == tmp_path / "out" / "comp"
    assert (tmp_path / "out" / "base" / "cm.yaml").read_text() == first.files["base/cm.yaml"]
