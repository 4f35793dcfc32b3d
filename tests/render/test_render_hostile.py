"""Hostile input: every attack on the renderer ends in a RenderError naming the file at fault (never a crash,
a hang, a Python recursion error, or a read outside the repository)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.render import RenderError, build, load_yaml_documents
from reconciler.render.yamlio import MAX_DEPTH, MAX_EXPANDED_NODES

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n"


def write(root: Path, files: dict[str, str | bytes]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            p.write_bytes(text)
        else:
            p.write_text(text)


def refused(path: Path, root: Path, **kwargs: int) -> RenderError:
    with pytest.raises(RenderError) as info:
        build(path, root=root, **kwargs)
    assert info.value.path, "the error names no file"
    return info.value


# -- YAML bombs and nesting -------------------------------------------------------------------------------


def test_alias_bomb_is_refused_by_expansion_budget(tmp_path: Path) -> None:
    lines = ["apiVersion: v1", "kind: ConfigMap", "metadata:", "  name: bomb", "data:"]
    lines.append("  a0: &a0 [x, x, x, x, x, x, x, x, x, x]")
    for i in range(1, 9):
        lines.append(f"  a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    write(tmp_path, {"kustomization.yaml": "resources: [bomb.yaml]\n", "bomb.yaml": "\n".join(lines) + "\n"})
    err = refused(tmp_path, tmp_path)
    assert err.path == "bomb.yaml"
    assert "aliases" in err.message and str(MAX_EXPANDED_NODES) in err.message


def test_alias_bomb_in_kustomization_file(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    write(tmp_path, {"kustomization.yaml": "\n".join(lines) + "\n"})
    err = refused(tmp_path, tmp_path)
    assert err.path == "kustomization.yaml" and "aliases" in err.message


@pytest.mark.parametrize("shape", ["flow", "block", "alias-chain"])
def test_deep_nesting_is_a_render_error_not_a_recursion_error(tmp_path: Path, shape: str) -> None:
    depth = MAX_DEPTH + 50
    if shape == "flow":
        body = "data:\n  k: " + "[" * depth + "]" * depth + "\n"
    elif shape == "block":
        body = "data:\n" + "".join("  " * (i + 1) + "k:\n" for i in range(depth)) + "  " * (depth + 1) + "v\n"
    else:
        # each alias adds one level; libyaml accepts it, the value builder must stop it
        chain = ["x0: &x0 [leaf]"] + [f"x{i}: &x{i} [*x{i - 1}]" for i in range(1, depth)]
        body = "spec:\n" + "".join("  " + c + "\n" for c in chain)
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [deep.yaml]\n",
            "deep.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n" + body,
        },
    )
    err = refused(tmp_path, tmp_path)
    assert err.path == "deep.yaml"
    assert "nesting" in err.message or "depth" in err.message


def test_recursive_alias_is_refused() -> None:
    with pytest.raises(RenderError) as info:
        load_yaml_documents("a: &x\n  b: *x\n", path="loop.yaml")
    assert info.value.path == "loop.yaml"


# -- sizes ------------------------------------------------------------------------------------------------


def test_file_over_the_size_cap_is_refused_and_cap_is_configurable(tmp_path: Path) -> None:
    big = CM.format(name="big") + "  filler: " + "x" * 5000 + "\n"
    write(tmp_path, {"kustomization.yaml": "resources: [big.yaml]\n", "big.yaml": big})
    err = refused(tmp_path, tmp_path, max_file_bytes=4096)
    assert err.path == "big.yaml" and "4096" in err.message
    assert build(tmp_path, root=tmp_path, max_file_bytes=1 << 20)[0]["metadata"]["name"] == "big"


def test_size_cap_applies_to_generator_sources_and_the_kustomization(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "configMapGenerator:\n- name: g\n  files: [blob.txt]\n",
            "blob.txt": "y" * 10000,
        },
    )
    assert refused(tmp_path, tmp_path, max_file_bytes=2048).path == "blob.txt"
    write(tmp_path, {"kustomization.yaml": "# " + "z" * 5000 + "\nresources: []\n"})
    assert refused(tmp_path, tmp_path, max_file_bytes=2048).path == "kustomization.yaml"


def test_number_with_thousands_of_digits_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [n.yaml]\n",
            "n.yaml": CM.format(name="n") + f"  big: {'9' * 5000}\n",
        },
    )
    err = refused(tmp_path, tmp_path)
    assert (err.path, err.line) == ("n.yaml", 7) and "too large" in err.message
    # up to the limit, go-yaml v3's reading applies: beyond 64 bits a float, beyond float range a string
    write(tmp_path, {"n.yaml": CM.format(name="n") + f"  big: {'9' * 30}\n  huge: {'9' * 400}\n"})
    data = build(tmp_path, root=tmp_path)[0]["data"]
    assert data["big"] == 1e30 and data["huge"] == "9" * 400


# -- files outside the repository -------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """``<tmp>/repo`` with an overlay; ``<tmp>/outside/stolen.yaml`` is a valid manifest outside it."""
    write(
        tmp_path,
        {
            "outside/stolen.yaml": CM.format(name="stolen"),
            "outside/kustomization.yaml": "resources: [stolen.yaml]\n",
        },
    )
    root = tmp_path / "repo"
    write(root, {"app/cm.yaml": CM.format(name="app")})
    return root


@pytest.mark.parametrize(
    "resource",
    [
        "../../outside/stolen.yaml",
        "sub/../../../outside/stolen.yaml",
        "../../outside",
        "/etc/hostname",
        "/proc/self/environ",
    ],
)
def test_dotdot_and_absolute_paths_are_refused(repo: Path, resource: str) -> None:
    write(repo, {"app/kustomization.yaml": f"resources:\n- cm.yaml\n- {resource}\n", "app/sub/.keep": ""})
    err = refused(repo / "app", repo)
    assert err.path == "app/kustomization.yaml"
    assert "load restrictor" in err.message or "security" in err.message


def test_file_symlink_escaping_the_root_is_refused(repo: Path) -> None:
    os.symlink(repo.parent / "outside" / "stolen.yaml", repo / "app" / "link.yaml")
    write(repo, {"app/kustomization.yaml": "resources: [cm.yaml, link.yaml]\n"})
    assert "load restrictor" in refused(repo / "app", repo).message


def test_directory_symlink_escaping_the_root_is_refused(repo: Path) -> None:
    os.symlink(repo.parent / "outside", repo / "app" / "base")
    write(repo, {"app/kustomization.yaml": "resources: [cm.yaml, base]\n"})
    assert "load restrictor" in refused(repo / "app", repo).message


def test_kustomization_file_symlinked_outside_is_refused(repo: Path) -> None:
    os.symlink(repo.parent / "outside" / "kustomization.yaml", repo / "app" / "kustomization.yaml")
    err = refused(repo / "app", repo)
    assert err.path == "app/kustomization.yaml" and "load restrictor" in err.message


def test_file_of_a_sibling_directory_is_refused_like_kustomize(repo: Path) -> None:
    """kustomize's root-only load restrictor: patches and generator files stay in the kustomization's
    own directory tree, even inside the repository."""
    write(
        repo,
        {
            "shared/patch.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app\ndata:\n  k: w\n",
            "app/kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: ../shared/patch.yaml\n",
        },
    )
    assert "load restrictor" in refused(repo / "app", repo).message


def test_special_files_are_refused(repo: Path) -> None:
    os.mkfifo(repo / "app" / "pipe.yaml")
    write(repo, {"app/kustomization.yaml": "resources: [cm.yaml, pipe.yaml]\n"})
    assert "regular file" in refused(repo / "app", repo).message
    os.unlink(repo / "app" / "pipe.yaml")
    os.symlink("/dev/zero", repo / "app" / "zero.yaml")
    write(repo, {"app/kustomization.yaml": "resources: [cm.yaml, zero.yaml]\n"})
    assert "load restrictor" in refused(repo / "app", repo).message


def test_symlink_loop_is_refused(repo: Path) -> None:
    os.symlink("b.yaml", repo / "app" / "a.yaml")
    os.symlink("a.yaml", repo / "app" / "b.yaml")
    write(repo, {"app/kustomization.yaml": "resources: [cm.yaml, a.yaml]\n"})
    assert refused(repo / "app", repo).path == "app/kustomization.yaml"


def test_ancestor_directory_is_a_cycle(repo: Path) -> None:
    write(
        repo,
        {"app/kustomization.yaml": "resources: [cm.yaml, ..]\n", "kustomization.yaml": "resources: []\n"},
    )
    assert "cycle" in refused(repo / "app", repo).message


def test_remote_references_are_refused_without_network(repo: Path) -> None:
    for ref in (
        "https://example.com/x.yaml",
        "github.com/org/repo//base?ref=v1",
        "git@github.com:org/repo.git",
    ):
        write(repo, {"app/kustomization.yaml": f"resources:\n- {ref}\n"})
        assert "remote" in refused(repo / "app", repo).message


# -- encodings and keys ---------------------------------------------------------------------------------


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [bad.yaml]\n",
            "bad.yaml": CM.format(name="x").encode() + b"  z: \xff\xfe\n",
        },
    )
    err = refused(tmp_path, tmp_path)
    assert (err.path, err.line) == ("bad.yaml", 7)
    assert "UTF-8" in err.message


def test_invalid_utf8_in_kustomization_and_env_files(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": b"resources: []\nnamespace: \xc3\x28\n"})
    assert refused(tmp_path, tmp_path).line == 2
    write(
        tmp_path,
        {
            "kustomization.yaml": "configMapGenerator:\n- name: g\n  envs: [a.env]\n",
            "a.env": b"A=1\nB=\xff\n",
        },
    )
    assert "UTF-8" in refused(tmp_path, tmp_path).message


def test_duplicate_keys_name_file_and_line(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"kustomization.yaml": "resources: [d.yaml]\n", "d.yaml": CM.format(name="x") + "  k: again\n"},
    )
    err = refused(tmp_path, tmp_path)
    assert (err.path, err.line) == ("d.yaml", 7) and "duplicate" in err.message


def test_non_string_keys_and_null_list_items(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"kustomization.yaml": "resources: [k.yaml]\n", "k.yaml": CM.format(name="x") + "  1: one\n"},
    )
    assert "not a string" in refused(tmp_path, tmp_path).message
    write(
        tmp_path, {"k.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  -\n"}
    )
    assert "empty item" in refused(tmp_path, tmp_path).message


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ("apiVersion: 1\nkind: ConfigMap\nmetadata:\n  name: x\n", "apiVersion"),
        ("apiVersion: v1\nmetadata:\n  name: x\n", "kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n", "metadata.name"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: [x]\n", "metadata"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: [a]\n", "namespace"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: [a]\n", "labels"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  annotations: text\n", "annotations"),
        ("- just\n- a list\n", "mapping"),
        ("just a string\n", "mapping"),
    ],
)
def test_manifests_that_are_not_objects(tmp_path: Path, doc: str, words: str) -> None:
    write(tmp_path, {"kustomization.yaml": "resources: [o.yaml]\n", "o.yaml": "# header\n" + doc})
    err = refused(tmp_path, tmp_path)
    assert (err.path, err.line) == ("o.yaml", 2)
    assert words in err.message


def test_python_tags_are_plain_data(tmp_path: Path) -> None:
    sentinel = tmp_path / "executed"
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [t.yaml]\n",
            "t.yaml": CM.format(name="t") + f"  x: !!python/object/apply:os.system ['touch {sentinel}']\n",
        },
    )
    (obj,) = build(tmp_path, root=tmp_path)
    assert not sentinel.exists()
    assert obj["data"]["x"] == ["touch " + str(sentinel)] or isinstance(obj["data"]["x"], (str, list))


# -- malformed patches ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ops", "words"),
    [
        ("- op: add\n  path: data/x\n  value: 1\n", "JSON pointer"),
        ("- op: add\n  path: /data/a~2b\n  value: 1\n", "escape"),
        ('[{"op": "add", "path": "/data/x" "value": 1}]\n', "invalid JSON"),
        ("- op: replace\n  path: /data/k/0\n  value: 1\n", "missing"),
        ("- op: explode\n  path: /data\n", "Unexpected kind"),
        ("{op: add, path: /data/x, value: y}\n", "list of operations"),
    ],
)
def test_malformed_json_patches_name_the_patch_file(tmp_path: Path, ops: str, words: str) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [cm.yaml]\npatches:\n- path: p.yaml\n"
            "  target: {kind: ConfigMap}\n",
            "cm.yaml": CM.format(name="x"),
            "p.yaml": ops,
        },
    )
    err = refused(tmp_path, tmp_path)
    assert err.path == "p.yaml" and words in err.message


def test_json_patch_array_index_checks(tmp_path: Path) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: a\n"
    for path in ("/spec/containers/9/image", "/spec/containers/01/image", "/spec/containers/-5/image"):
        write(
            tmp_path,
            {
                "kustomization.yaml": "resources: [pod.yaml]\npatches:\n- path: p.yaml\n"
                "  target: {kind: Pod}\n",
                "pod.yaml": pod,
                "p.yaml": f"- op: replace\n  path: {path}\n  value: b\n",
            },
        )
        assert "index" in refused(tmp_path, tmp_path).message


def test_env_file_keys_must_be_valid_configmap_keys(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"kustomization.yaml": "configMapGenerator:\n- name: g\n  envs: [a.env]\n", "a.env": "not a key=1\n"},
    )
    assert "invalid data key" in refused(tmp_path, tmp_path).message
    write(tmp_path, {"a.env": "A\x00B=1\n"})
    assert "invalid data key" in refused(tmp_path, tmp_path).message


# -- work bombs ------------------------------------------------------------------------------------


def test_kustomization_chain_too_deep_is_refused(tmp_path: Path) -> None:
    depth = 150
    files: dict[str, str | bytes] = {"kustomization.yaml": "resources: [l0]\n"}
    for i in range(depth):
        files[f"l{i}/kustomization.yaml"] = f"resources:\n- ../l{i + 1}\n"
    files[f"l{depth}/kustomization.yaml"] = "resources: [cm.yaml]\n"
    files[f"l{depth}/cm.yaml"] = CM.format(name="deep")
    write(tmp_path, files)
    err = refused(tmp_path, tmp_path)
    assert "deeper than" in err.message and err.path.endswith("kustomization.yaml")


def test_kustomization_fan_out_is_bounded(tmp_path: Path) -> None:
    levels = 14
    files: dict[str, str | bytes] = {"kustomization.yaml": "resources: [f0]\n"}
    for i in range(levels):
        files[f"f{i}/kustomization.yaml"] = "resources: [a, b]\n"
        for x in "ab":
            files[f"f{i}/{x}/kustomization.yaml"] = f"namePrefix: {x}-\nresources:\n- ../../f{i + 1}\n"
    files[f"f{levels}/kustomization.yaml"] = "resources: [cm.yaml]\n"
    files[f"f{levels}/cm.yaml"] = CM.format(name="leaf")
    write(tmp_path, files)
    assert "too many" in refused(tmp_path, tmp_path).message


@pytest.mark.timeout(20)
@pytest.mark.parametrize("field", ["name", "namespace"])
def test_backtracking_target_pattern_runs_in_linear_time(tmp_path: Path, field: str) -> None:
    """Patterns run on RE2 like kustomize's Go regexp: ``(a+)+$`` against ``aaa…a!`` returns at once."""
    from reconciler.render.patterns import ENGINE

    assert ENGINE == "re2", "google-re2 (a dependency in pyproject.toml) is not installed"
    name = "a" * 40 + "!"
    cm = CM.format(name=name)
    if field == "namespace":
        cm = CM.format(name="x").replace("metadata:\n", f"metadata:\n  namespace: {name}\n")
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [cm.yaml]\npatches:\n- target:\n"
            f"    {field}: '(a+)+$'\n  patch: |\n    - op: add\n      path: /data/x\n      value: y\n",
            "cm.yaml": cm,
        },
    )
    (obj,) = build(tmp_path, root=tmp_path)
    assert "x" not in obj["data"]
