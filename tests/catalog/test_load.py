"""The shipped specialist catalog loads; every kind of bad model or specialist spec is reported
with its file and field (tools and workflows are checked a room up: tests/workflow/test_catalog.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.catalog import load_specialists
from orchestrator.errors import CatalogError, NotFoundError
from tests.catalogs import scripted_model, specialist, write_catalog
from tests.conftest import ROOT


def test_shipped_catalog_is_clean() -> None:
    catalog = load_specialists(ROOT / "agents")
    assert "smollm2-135m" in catalog.models
    assert len(catalog.specialists) >= 9
    assert catalog.weights_path(catalog.model("smollm2-135m")).is_file()
    for spec in catalog.specialists.values():
        assert spec.model == "smollm2-135m"
        assert spec.description and spec.output_schema["type"] == "object"


def problems_of(root: Path) -> list[str]:
    with pytest.raises(CatalogError) as info:
        load_specialists(root)
    return [str(p) for p in info.value.problems]


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    write_catalog(tmp_path, [scripted_model("m")], [])
    (tmp_path / "specialists" / "broken.yaml").write_text("name: broken\ninstructions: [unclosed\n")
    (problem,) = problems_of(tmp_path)
    assert "specialists/broken.yaml" in problem
    assert "line 3" in problem and "malformed YAML" in problem


def test_unknown_model_suggests_the_close_one(tmp_path: Path) -> None:
    write_catalog(tmp_path, [scripted_model("echo")], [specialist("s", "ecko")])
    (problem,) = problems_of(tmp_path)
    assert "specialists/s.yaml: model: unknown model 'ecko'; did you mean 'echo'?" in problem


def test_output_schema_that_is_not_json_schema(tmp_path: Path) -> None:
    bad = {"type": "object", "properties": {"label": {"type": "strng"}}}
    write_catalog(tmp_path, [scripted_model("m")], [specialist("s", "m", output_schema=bad)])
    (problem,) = problems_of(tmp_path)
    assert "output_schema.properties.label.type: not a valid JSON Schema" in problem


def test_output_schema_must_describe_an_object(tmp_path: Path) -> None:
    write_catalog(
        tmp_path, [scripted_model("m")], [specialist("s", "m", output_schema={"type": "string"})]
    )
    (problem,) = problems_of(tmp_path)
    assert "output_schema" in problem and "type: object" in problem


def test_missing_adapter_file(tmp_path: Path) -> None:
    write_catalog(
        tmp_path, [scripted_model("m")], [specialist("s", "m", adapter="adapters/s.gguf")]
    )
    (problem,) = problems_of(tmp_path)
    assert "specialists/s.yaml: adapter: adapter file" in problem
    assert str(tmp_path / "specialists" / "adapters" / "s.gguf") in problem


def test_an_adapter_or_corpus_that_is_not_one_is_refused_before_a_run(tmp_path: Path) -> None:
    """A folder that exists is not yet an adapter, and a corpus is a name under corpora/: both
    were found only when a run reached the node."""
    write_catalog(
        tmp_path,
        [scripted_model("m")],
        [
            specialist("a", "m", adapter="../../../../../../etc"),
            specialist("c", "m", corpus="../../../../etc"),
        ],
    )
    problems = problems_of(tmp_path)
    assert len(problems) == 2, problems
    assert any(
        "specialists/a.yaml: adapter: /etc is not a LoRA adapter: give a GGUF LoRA file, or a "
        "PEFT adapter folder (adapter_config.json and adapter_model.safetensors)" in p
        for p in problems
    ), problems
    assert any(
        "specialists/c.yaml: corpus: '../../../../etc': name a folder under corpora/" in p
        for p in problems
    ), problems


def test_few_shot_example_must_fit_the_schema(tmp_path: Path) -> None:
    examples = [{"input": "great", "output": {"sentiment": "ecstatic"}}]
    write_catalog(tmp_path, [scripted_model("m")], [specialist("s", "m", examples=examples)])
    (problem,) = problems_of(tmp_path)
    assert "examples.0.output: does not fit output_schema" in problem


def test_unknown_field_and_missing_field(tmp_path: Path) -> None:
    spec = specialist("s", "m", temprature=0.2)
    del spec["instructions"]
    write_catalog(tmp_path, [scripted_model("m")], [spec])
    problems = problems_of(tmp_path)
    assert any("temprature: unknown field; did you mean 'temperature'?" in p for p in problems)
    assert any("instructions: required field is missing" in p for p in problems)


def test_bad_engine_options_and_missing_weights(tmp_path: Path) -> None:
    model = {
        "name": "local",
        "engine": "llamacpp",
        "weights": {"kind": "path", "path": "weights/model.gguf"},
        "context_length": 2048,
        "engine_options": {"n_threads": 0},
    }
    write_catalog(
        tmp_path, [model, {**scripted_model("other"), "engine_options": {"delay": 1}}], []
    )
    problems = problems_of(tmp_path)
    assert any("models/local.yaml: engine_options.n_threads" in p for p in problems)
    assert any("models/local.yaml: weights: path" in p and "does not exist" in p for p in problems)
    assert any("models/other.yaml: engine_options.delay: unknown field" in p for p in problems)


def test_missing_catalog_folder(tmp_path: Path) -> None:
    (problem,) = problems_of(tmp_path / "nowhere")
    assert "catalog folder not found" in problem


def test_a_file_or_a_folder_that_is_no_catalog_is_refused_as_what_it_is(tmp_path: Path) -> None:
    """`--catalog README.md` said "not found"; `--catalog .` (the project, not agents/) was
    "ok: 0 models, 0 specialists"."""
    (tmp_path / "README.md").write_text("# hi")
    (problem,) = problems_of(tmp_path / "README.md")
    assert "README.md: is a file, not a folder; pass --catalog" in problem
    (problem,) = problems_of(tmp_path)
    assert "not a catalog: it has neither models/ nor specialists/" in problem


def test_unknown_specialist_lookup(tmp_path: Path) -> None:
    catalog = load_specialists(
        write_catalog(tmp_path, [scripted_model("m")], [specialist("sentiment", "m")])
    )
    with pytest.raises(
        NotFoundError, match="unknown specialist 'sentimnt'; did you mean 'sentiment'"
    ):
        catalog.specialist("sentimnt")


def test_relative_adapter_path_resolves_from_the_spec_file(tmp_path: Path) -> None:
    write_catalog(tmp_path, [scripted_model("m")], [specialist("s", "m", adapter="s.gguf")])
    (tmp_path / "specialists" / "s.gguf").write_bytes(b"lora")  # not GGUF: refused
    (problem,) = problems_of(tmp_path)
    assert "specialists/s.yaml: adapter: " in problem and "is not a GGUF LoRA file" in problem
    (tmp_path / "specialists" / "s.gguf").write_bytes(b"GGUF" + b"\0" * 12)
    catalog = load_specialists(tmp_path)
    assert catalog.declared_adapter(catalog.specialist("s")) == str(
        tmp_path / "specialists" / "s.gguf"
    )


def prepared_model(name: str, source: str) -> dict[str, object]:
    return {
        "name": name,
        "engine": "vllm",
        "weights": {"kind": "prepared", "model": source},
        "context_length": 1024,
    }


def test_prepared_weights_name_the_command_that_makes_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = tmp_path / "models-dir"
    monkeypatch.setenv("CADRE_MODELS_DIR", str(models))
    root = tmp_path / "catalog"
    write_catalog(
        root,
        [
            scripted_model("source"),
            prepared_model("on-vllm", "source"),
            prepared_model("x", "nope"),
        ],
        [],
    )
    first, second = sorted(problems_of(root))
    assert "models/on-vllm.yaml" in first and "weights" in first
    assert "not prepared yet; run `cadre models prepare source`" in first
    assert str(models / "source") in first
    assert "models/x.yaml" in second and "weights.model" in second and "'nope'" in second

    (root / "models" / "x.yaml").unlink()
    (models / "source").mkdir(parents=True)
    (models / "source" / "config.json").write_text("{}")
    catalog = load_specialists(root)
    assert catalog.weights_path(catalog.model("on-vllm")) == models / "source"


@pytest.mark.parametrize(
    ("ref", "defs", "message"),
    [
        ("http://127.0.0.1:9/s.json", {}, "is outside the schema; only references inside it"),
        ("file:///etc/passwd", {}, "is outside the schema"),
        ("#/$defs/nope", {}, "points at nothing in the schema"),
        ("#/$defs/x", {"x": {"$ref": "#/$defs/y"}, "y": {"$ref": "#/$defs/x"}}, "in a circle"),
    ],
    ids=["url", "file", "nowhere", "circle"],
)
def test_a_reference_the_schema_cannot_follow_by_itself_is_refused_and_nothing_is_read(
    tmp_path: Path, ref: str, defs: dict[str, object], message: str
) -> None:
    """A `$ref` to a URL or file would have the validator fetch or read it (an SSRF through a
    specialist or a workflow's input schema); one that points nowhere or only at other
    references crashed validate with a traceback."""
    schema = {
        "type": "object",
        "properties": {"a": {"$ref": ref}},
        "$defs": defs,
    }
    write_catalog(tmp_path, [scripted_model("m")], [specialist("s", "m", output_schema=schema)])
    (problem,) = problems_of(tmp_path)
    assert "specialists/s.yaml: output_schema." in problem and ".$ref: " in problem
    assert message in problem


def test_references_inside_the_schema_are_followed(tmp_path: Path) -> None:
    tree = {
        "type": "object",
        "properties": {"root": {"$ref": "#/$defs/node"}},
        "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array",
                  "items": {"$ref": "#/$defs/node"}}}}},
    }  # fmt: skip
    example = {"input": "x", "output": {"root": {"kids": [{"kids": []}]}}}
    write_catalog(
        tmp_path,
        [scripted_model("m")],
        [specialist("s", "m", output_schema=tree, examples=[example])],
    )
    assert "s" in load_specialists(tmp_path).specialists


def test_settings_no_engine_can_serve_are_refused_with_their_field(tmp_path: Path) -> None:
    """An empty stop string (every answer empty), a seed no engine takes, Ray's own resources,
    an infinite one, and max_tokens that leave no room for a prompt all passed validate and
    failed every call."""
    write_catalog(
        tmp_path / "a",
        [scripted_model("m", context_length=512)],
        [
            specialist("stops", "m", generation={"stop": [""]}),
            specialist("seeds", "m", generation={"seed": 10**24}),
            specialist("long", "m", generation={"max_tokens": 512}),
        ],
    )
    problems = "\n".join(problems_of(tmp_path / "a"))
    assert "stops.yaml: generation.stop.0: String should have at least 1 character" in problems
    assert "seeds.yaml: generation.seed: Input should be less than 4294967296" in problems
    assert "long.yaml: generation.max_tokens: 512 leaves no room for a prompt" in problems
    model = scripted_model("m", context_length=512)
    model["hosting"] = {"resources": {"CPU": 1}, "num_gpus": -1, "num_cpus": float("inf")}
    write_catalog(tmp_path / "b", [model], [])
    problems = "\n".join(problems_of(tmp_path / "b"))
    assert "m.yaml: hosting.num_gpus: Input should be greater than or equal to 0" in problems
    assert "m.yaml: hosting.num_cpus: Input should be a finite number" in problems
    assert "CPU are Ray's own resources: use num_cpus and num_gpus" in problems
