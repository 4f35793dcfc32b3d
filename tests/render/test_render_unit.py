"""Unit tests of the renderer's parts on small inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.render import RenderCache, RenderError, build, dump_yaml, load_yaml_documents
from reconciler.render.generators import content_hash
from reconciler.render.patches import apply_json6902, apply_strategic_merge
from reconciler.render.transformers import new_image
from reconciler.render.yamlio import YamlTimestamp


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


# -- errors and YAML loading -----------------------------------------------------------------------


def test_render_error_format() -> None:
    assert str(RenderError("boom", path="a.yaml", line=3)) == "a.yaml:3: boom"
    assert str(RenderError("boom", path="a.yaml")) == "a.yaml: boom"
    assert str(RenderError("boom")) == "boom"


def test_invalid_yaml_names_path_and_line() -> None:
    with pytest.raises(RenderError) as info:
        load_yaml_documents("a: 1\nb: [x\n", path="f.yaml")
    assert info.value.path == "f.yaml"
    assert info.value.line == 3


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(RenderError) as info:
        load_yaml_documents("kind: A\nkind: B\n", path="d.yaml")
    assert info.value.line == 2


def test_non_mapping_document_rejected_and_empty_skipped() -> None:
    assert load_yaml_documents("---\n# only a comment\n---\na: 1\n", path="x") == [{"a": 1}]
    with pytest.raises(RenderError) as info:
        load_yaml_documents("a: 1\n---\n- x\n", path="l.yaml")
    assert info.value.line == 3


def test_alias_bomb_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(RenderError, match="aliases"):
        load_yaml_documents("\n".join(lines) + "\n", path="bomb.yaml")


def test_timestamps_keep_their_text_and_print_as_go_json_times() -> None:
    docs = load_yaml_documents("apiVersion: v1\nkind: X\nd: 2024-01-02\nq: '2024-01-02'\n", path="t")
    assert docs[0]["d"] == "2024-01-02"
    assert 'd: "2024-01-02T00:00:00Z"' in dump_yaml(docs)
    assert 'q: "2024-01-02"' in dump_yaml(docs)


# -- output format ---------------------------------------------------------------------------------


def test_dump_sorts_keys_and_quotes_like_go_yaml() -> None:
    text = dump_yaml(
        [{"kind": "A", "apiVersion": "v1", "data": {"b": "true", "a": "8", "c": "", "m": "x\ny"}}]
    )
    assert text == 'apiVersion: v1\ndata:\n  a: "8"\n  b: "true"\n  c: ""\n  m: |-\n    x\n    y\nkind: A\n'


def test_dump_wraps_long_plain_strings_at_80_columns() -> None:
    value = " ".join(["word"] * 30)
    text = dump_yaml([{"a": value}])
    first = text.splitlines()[0]
    assert len(first) > 80 and "\n  word" in text


# -- patches ---------------------------------------------------------------------------------------


def test_smp_delete_absent_is_noop_and_order_kept() -> None:
    obj = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {"containers": [{"name": "a", "env": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}]}]},
    }
    patch = {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "env": [{"name": "Y", "$patch": "delete"}, {"name": "NOPE", "$patch": "delete"}],
                },
                {"name": "ghost", "$patch": "delete"},
            ]
        },
    }
    out = apply_strategic_merge(obj, patch)
    assert out is not None
    assert out["spec"] == {"containers": [{"name": "a", "env": [{"name": "X"}, {"name": "Z"}]}]}


def test_smp_volume_mounts_merge_on_mount_path_and_replace_directive() -> None:
    def pod(container: dict[str, object]) -> dict[str, object]:
        return {"apiVersion": "v1", "kind": "Pod", "spec": {"containers": [container]}}

    obj = pod(
        {"name": "c", "volumeMounts": [{"mountPath": "/a", "name": "x"}], "ports": [{"containerPort": 1}]}
    )
    patch = pod(
        {
            "name": "c",
            "volumeMounts": [{"mountPath": "/a", "readOnly": True}],
            "ports": [{"$patch": "replace"}, {"containerPort": 2}],
        }
    )
    out = apply_strategic_merge(obj, patch)
    assert out is not None
    container = out["spec"]["containers"][0]
    assert container["volumeMounts"] == [{"mountPath": "/a", "name": "x", "readOnly": True}]
    assert container["ports"] == [{"containerPort": 2}]


def test_json6902_escaping_and_errors() -> None:
    obj = {"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}
    out = apply_json6902(
        obj,
        [
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/metadata/annotations/c~0d"},
        ],
        where="p",
    )
    assert out == {"metadata": {"annotations": {"a/b": "x"}}}
    # evanphx/json-patch (kustomize's library): replacing a missing object key adds it
    assert apply_json6902(obj, [{"op": "replace", "path": "/nope", "value": 1}], where="p")["nope"] == 1
    with pytest.raises(RenderError, match="missing path"):
        apply_json6902(obj, [{"op": "replace", "path": "/nope/deeper", "value": 1}], where="p")


# -- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "entry", "expected"),
    [
        ("r/app:1", {"name": "r/app", "newTag": "2"}, "r/app:2"),
        ("r/app@sha256:aa", {"name": "r/app", "newName": "m/app"}, "m/app@sha256:aa"),
        ("r/app:1", {"name": "r/app", "digest": "sha256:bb"}, "r/app@sha256:bb"),
        ("r/app", {"name": "r/app", "newTag": "3", "digest": "sha256:cc"}, "r/app:3@sha256:cc"),
        ("host:5000/app:1", {"name": "host:5000/app", "newTag": "2"}, "host:5000/app:2"),
        ("r/other:1", {"name": "r/app", "newTag": "2"}, None),
    ],
)
def test_new_image(image: str, entry: dict[str, str], expected: str | None) -> None:
    assert new_image(image, entry) == expected


def test_agent_and_mcpserver_images_without_configuration(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [a.yaml]\nimages:\n- name: reg/agent\n  newTag: '2'\n"
            "- name: reg/mcp\n  newName: mirror/mcp\n",
            "a.yaml": "apiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata: {name: a}\nspec:\n"
            "  type: BYO\n  byo:\n    deployment: {image: reg/agent:1}\n"
            "---\napiVersion: kagent.dev/v1alpha2\n"
            "kind: Agent\nmetadata: {name: b}\nspec:\n  declarative:\n    deployment: {image: reg/agent}\n"
            "---\napiVersion: kagent.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: m}\n"
            "spec:\n  deployment: {image: 'reg/mcp:5'}\n",
        },
    )
    objs = {o["metadata"]["name"]: o for o in build(tmp_path, root=tmp_path)}
    assert objs["a"]["spec"]["byo"]["deployment"]["image"] == "reg/agent:2"
    assert objs["b"]["spec"]["declarative"]["deployment"]["image"] == "reg/agent:2"
    assert objs["m"]["spec"]["deployment"]["image"] == "mirror/mcp:5"


# -- generators ------------------------------------------------------------------------------------


def test_hash_changes_with_content() -> None:
    a = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"K": "1"}}
    b = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"K": "2"}}
    assert content_hash(a) != content_hash(b)
    assert len(content_hash(a)) == 10


# -- build: load restrictor, remote refs, discovery ------------------------------------------------


def test_remote_resource_refused(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources:\n- https://github.com/x/y//base?ref=v1\n"})
    with pytest.raises(RenderError, match="remote"):
        build(tmp_path, root=tmp_path)


def test_file_outside_root_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "outside.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "repo/app/kustomization.yaml": "resources: [../../outside.yaml]\n",
        },
    )
    with pytest.raises(RenderError, match="load restrictor"):
        build(tmp_path / "repo" / "app", root=tmp_path / "repo")


def test_kustomization_discovery_variants(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/Kustomization": "resources: [cm.yaml]\n",
            "a/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "b/kustomization.yml": "resources: [../a]\nnamespace: ns1\n",
        },
    )
    assert build(tmp_path / "b", root=tmp_path)[0]["metadata"] == {"name": "x", "namespace": "ns1"}
    write(tmp_path, {"b/kustomization.yaml": "resources: []\n"})
    with pytest.raises(RenderError, match="multiple kustomization files"):
        build(tmp_path / "b", root=tmp_path)


def test_unknown_kustomization_field_names_file(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resourcez: [a.yaml]\n"})
    with pytest.raises(RenderError) as info:
        build(tmp_path, root=tmp_path)
    assert info.value.path == "kustomization.yaml"
    assert "resourcez" in info.value.message


def test_cache_reuses_until_content_changes(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [cm.yaml]\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\n",
        },
    )
    cache = RenderCache()
    first = build(tmp_path, root=tmp_path, cache=cache)
    first[0]["data"]["a"] = "mutated"
    again = build(tmp_path, root=tmp_path, cache=cache)
    assert again[0]["data"]["a"] == "1" and cache.hits == 1
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '2'}\n"
    )
    assert build(tmp_path, root=tmp_path, cache=cache)[0]["data"]["a"] == "2"
    assert cache.misses == 2


# -- YAML reading rules (go-yaml v3; v2 for kustomization files) -------------------------------------------


@pytest.mark.parametrize(
    ("text", "v3", "v2"),
    [
        ("yes", "yes", True),
        ("on", "on", True),
        ("n", "n", False),
        ("true", True, True),
        ("TRUE", True, True),
        ("~", None, None),
        ("0777", 511, 511),
        ("0o17", 15, 15),
        ("0x1F", 31, 31),
        ("0b101", 5, 5),
        ("1_000", 1000, 1000),
        ("09", 9.0, 9.0),
        ("1e3", 1000.0, 1000.0),
        (".5", 0.5, 0.5),
        ("9223372036854775808", 9223372036854775808, 9223372036854775808),
        ("18446744073709551616", 1.8446744073709552e19, 1.8446744073709552e19),
        ("1e400", "1e400", "1e400"),
        ("2024-01-02", YamlTimestamp("2024-01-02"), "2024-01-02"),
        ("12:30", "12:30", "12:30"),
        ("-", "-", "-"),
    ],
)
def test_plain_scalar_resolution(text: str, v3: object, v2: object) -> None:
    from reconciler.render.yamlio import resolve_plain

    assert resolve_plain(text) == v3 and type(resolve_plain(text)) is type(v3)
    assert resolve_plain(text, yaml11=True) == v2


def test_annotation_values_and_top_level_keys_keep_their_text() -> None:
    (doc,) = load_yaml_documents(
        "apiVersion: v1\nkind: X\nmetadata:\n  name: n\n  annotations:\n    a: 0777\n    b: yes\n    c: ~\n"
        "1.0: top\n",
        path="t",
    )
    assert doc["metadata"]["annotations"] == {"a": "0777", "b": "yes", "c": "~"}
    assert doc["1.0"] == "top"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1"),
        (0.5, "0.5"),
        (1234567.5, "1.2345675e+06"),
        (123456.5, "123456.5"),
        (1e20, "1e+20"),
        (1e19, "10000000000000000000"),
        (2.0**64, "1.8446744073709552e+19"),
        (1e21, "1e+21"),
        (0.00001, "1e-05"),
        (-0.0, "0"),
    ],
)
def test_floats_print_like_kustomize(value: float, text: str) -> None:
    assert dump_yaml([{"v": value}]) == f"v: {text}\n"


def test_nan_cannot_be_printed() -> None:
    with pytest.raises(RenderError, match="NaN"):
        dump_yaml([{"v": float("nan")}])


def test_strings_that_read_back_as_other_types_are_quoted() -> None:
    text = dump_yaml([{"a": "1e400", "b": "1e3", "c": "yes", "d": "0x1F", "e": "12:30", "f": "~"}])
    assert text == 'a: 1e400\nb: "1e3"\nc: "yes"\nd: "0x1F"\ne: "12:30"\nf: "~"\n'


# -- label selectors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web,tier", {"app": "web", "tier": "x"}, True),
        ("app!=web", {}, True),
        ("app!=web", {"app": "web"}, False),
        ("!app", {"tier": "x"}, True),
        ("app in (a, b)", {"app": "b"}, True),
        ("app notin (a,b)", {"app": "c"}, True),
        ("app notin (a,b)", {}, True),
        ("rank>5", {"rank": "7"}, True),
        ("rank<5", {"rank": "x"}, False),
        ("app in (a,), tier", {"app": "", "tier": "1"}, True),
        ("", {"anything": "goes"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    from reconciler.render.selectors import selector_matches

    assert selector_matches(selector, labels) is expected


@pytest.mark.parametrize(
    "selector", ["app=", "=web", "app in ()x", "app in a", "rank>x", "a b", "Bad Key=1", "app=a=b"]
)
def test_invalid_label_selectors(selector: str) -> None:
    from reconciler.render.selectors import selector_matches

    if selector == "app=":
        assert selector_matches(selector, {"app": ""}) is True  # an empty value is valid
        return
    with pytest.raises(RenderError, match="invalid selector"):
        selector_matches(selector, {})


# -- images --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "parts"),
    [
        ("nginx", ("nginx", "", "")),
        ("nginx:1.27", ("nginx", "1.27", "")),
        ("host:5000/app:1", ("host:5000/app", "1", "")),
        ("host:5000/app", ("host:5000/app", "", "")),
        ("app@sha256:aa", ("app", "", "sha256:aa")),
        ("app:1@sha256:aa", ("app", "1", "sha256:aa")),
    ],
)
def test_split_image(image: str, parts: tuple[str, str, str]) -> None:
    from reconciler.render.transformers import split_image

    assert split_image(image) == parts


def test_image_name_is_a_regular_expression_like_in_kustomize() -> None:
    assert new_image("registryXexample/app:1", {"name": "registry.example/app", "newTag": "2"}) == (
        "registryXexample/app:2"
    )
    assert new_image("r/app:1", {"name": "r/app", "tagSuffix": "-debug"}) == "r/app:1-debug"
    assert new_image("r/app-extra:1", {"name": "r/app", "newTag": "2"}) is None


# -- generators ---------------------------------------------------------------------------------


def test_secret_base64_wraps_at_70_columns_like_kyaml() -> None:
    from reconciler.render.generators import encode_base64

    assert encode_base64(b"a" * 51) == "YWFh" * 17
    wrapped = encode_base64(b"a" * 60)
    assert wrapped.endswith("\n") and all(len(line) <= 70 for line in wrapped.splitlines())
    assert "".join(wrapped.split()) == "YWFh" * 20


# -- strategic merge by schema ---------------------------------------------------------------------


def test_service_ports_merge_on_port_and_protocol() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"ports": [{"port": 53, "protocol": "UDP", "name": "u"}, {"port": 80, "name": "web"}]},
    }
    patch = {
        "apiVersion": "v1",
        "kind": "Service",
        "spec": {"ports": [{"port": 53, "protocol": "TCP", "name": "t"}, {"port": 80, "targetPort": 8080}]},
    }
    out = apply_strategic_merge(svc, patch)
    assert out is not None
    # the order kustomize v5.8.1 prints for this input (checked with the binary)
    assert out["spec"]["ports"] == [
        {"port": 53, "protocol": "TCP", "name": "t"},
        {"port": 53, "protocol": "UDP", "name": "u"},
        {"port": 80, "name": "web", "targetPort": 8080},
    ]


def test_custom_resource_lists_are_replaced_and_maps_merged() -> None:
    agent = {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "Agent",
        "spec": {"tools": [{"name": "a"}, {"name": "b"}], "deployment": {"env": {"A": "1", "B": "2"}}},
    }
    patch = {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "Agent",
        "spec": {"tools": [{"name": "b", "x": 1}], "deployment": {"env": {"B": None, "C": "3"}}},
    }
    out = apply_strategic_merge(agent, patch)
    assert out is not None
    assert out["spec"] == {"tools": [{"name": "b", "x": 1}], "deployment": {"env": {"A": "1", "C": "3"}}}


def test_finalizers_merge_as_a_set_with_patch_order_first() -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["a", "b"]}}
    patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"finalizers": ["c", "a"]}}
    out = apply_strategic_merge(obj, patch)
    assert out is not None and out["metadata"]["finalizers"] == ["c", "a", "b"]


def test_cluster_scope_comes_from_the_schema_by_api_version() -> None:
    from reconciler.render.resource import is_cluster_scoped

    assert is_cluster_scoped("rbac.authorization.k8s.io", "v1", "ClusterRole")
    assert is_cluster_scoped("", "v1", "Namespace")
    assert not is_cluster_scoped("example.test", "v1", "Namespace")
    assert not is_cluster_scoped("flowcontrol.apiserver.k8s.io", "v1", "FlowSchema")  # unknown to v1.21.2
    assert not is_cluster_scoped("gateway.networking.k8s.io", "v1", "GatewayClass")


def test_cache_hands_out_independent_copies_keyed_by_tree(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [cm.yaml]\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\n",
        },
    )
    cache = RenderCache()
    one = build(tmp_path, root=tmp_path, cache=cache, tree_id="t1")
    one[0]["data"]["a"] = "changed"
    two = build(tmp_path, root=tmp_path, cache=cache, tree_id="t1")
    assert two[0]["data"]["a"] == "1" and cache.hits == 1
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '2'}\n"
    )
    assert build(tmp_path, root=tmp_path, cache=cache, tree_id="t1")[0]["data"]["a"] == "1"  # same tree id
    assert build(tmp_path, root=tmp_path, cache=cache, tree_id="t2")[0]["data"]["a"] == "2"


def test_generator_plugins_refused_naming_the_kustomization(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "generators:\n- |-\n  apiVersion: example.test/v1\n  kind: Gen\n"
            "  metadata:\n    name: g\n",
        },
    )
    with pytest.raises(RenderError) as info:
        build(tmp_path, root=tmp_path)
    assert "kustomization.yaml" in str(info.value)
    assert "generator plugins are not supported" in str(info.value)
    assert "'Gen'" in str(info.value)


def test_transformer_annotations_with_transformers_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources:\n- cm.yaml\ntransformers:\n- prefix.yaml\n"
            "buildMetadata: [transformerAnnotations]\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
            "prefix.yaml": "apiVersion: builtin\nkind: PrefixSuffixTransformer\nmetadata:\n  name: p\n"
            "prefix: p-\nfieldSpecs:\n- path: metadata/name\n",
        },
    )
    with pytest.raises(RenderError, match="transformerAnnotations") as info:
        build(tmp_path, root=tmp_path)
    assert "kustomization.yaml" in str(info.value)
