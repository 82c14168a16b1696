"""The shape of a workflow's state, for checking paths into it before anything runs.

A state key's schema is what the workflow declares for it and, ``allOf``, the output schema of
every specialist node that writes it: a key declared as a bare ``{type: object}`` still has its
real fields. Templates (``{vendor.name}``), branch conditions and review edits are all walked
against these schemas, so a misspelled field is found when the workflow is checked, not rendered
as empty text in a run.
"""

from __future__ import annotations

from typing import Any

from orchestrator.catalog import SpecialistCatalog
from orchestrator.workflow.spec import (
    BranchNode,
    MapNode,
    PlanNode,
    SpecialistNode,
    WorkflowSpec,
)


def produced_schemas(
    workflow: WorkflowSpec, catalog: SpecialistCatalog
) -> dict[str, dict[str, Any]]:
    """Each state key's schema, as declared and as produced by the nodes that write it: a
    specialist node its specialist's answer, a map a list of its specialist's answers, a plan
    a list of {specialist, task, answer}, a router branch its router's answer."""
    schemas = dict(workflow.state_schemas())
    for node in workflow.nodes:
        output = getattr(node, "output", None)
        if output not in schemas:  # none, or undeclared: a problem of its own
            continue
        produced = _produced(node, catalog)
        if produced is not None:
            declared = schemas[output]
            schemas[output] = {"allOf": [declared, produced]} if declared else produced
    return schemas


def _produced(node: Any, catalog: SpecialistCatalog) -> dict[str, Any] | None:
    """The schema of what a node writes to its output key, where the catalog says it."""
    answer = catalog.specialists.get
    if isinstance(node, SpecialistNode) and (spec := answer(node.specialist)) is not None:
        return spec.output_schema
    if isinstance(node, MapNode) and (spec := answer(node.specialist)) is not None:
        return {"type": "array", "items": spec.output_schema}
    if isinstance(node, BranchNode) and node.router and (spec := answer(node.router)):
        return spec.output_schema
    if isinstance(node, PlanNode):
        task = {
            "type": "object",
            "properties": {
                "specialist": {"type": "string", "enum": list(node.specialists)},
                "task": {"type": "string"},
                "answer": {"type": "object"},
            },
            "required": ["specialist", "task", "answer"],
        }
        return {"type": "array", "items": task}
    return None


def fields(schema: Any) -> set[str] | None:
    """The field names an object schema declares, or None when it declares none (then any
    field may be there)."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("properties"), dict) and schema["properties"]:
        return set(schema["properties"])
    for part in schema.get("allOf", []):
        named = fields(part)
        if named is not None:
            return named
    return None


def sub_schema(schema: Any, keyword: str, name: str | None = None) -> dict[str, Any]:
    """The schema one step down (an object's property, or a list's items), looking through
    allOf; {} when the schema does not say."""
    if not isinstance(schema, dict):
        return {}
    found = schema.get(keyword, {})
    if name is not None:
        found = found.get(name, {}) if isinstance(found, dict) else {}
    if found:
        return found if isinstance(found, dict) else {}
    for part in schema.get("allOf", []):
        inner = sub_schema(part, keyword, name)
        if inner:
            return inner
    return {}


def allowed_values(schema: Any) -> list[Any] | None:
    """The values an ``enum`` or ``const`` allows (looking through allOf), or None."""
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    if "const" in schema:
        return [schema["const"]]
    for part in schema.get("allOf", []):
        found = allowed_values(part)
        if found is not None:
            return found
    return None


def walk(schema: dict[str, Any], path: str) -> tuple[dict[str, Any], str | None]:
    """The schema at a dotted path below a state key (``path`` includes the key), and what is
    wrong with the path if a step names a field the schema does not declare."""
    parts = path.split(".")
    for i, part in enumerate(parts[1:], start=1):
        here = ".".join(parts[:i])
        kind = schema.get("type")
        if kind == "array" or (part.isdigit() and sub_schema(schema, "items")):
            if not part.isdigit():
                return {}, f"{here} is a list; {part!r} is not an index"
            schema = sub_schema(schema, "items")
            continue
        if isinstance(kind, str) and kind != "object":
            return (
                {},
                f"{here} is {'an' if kind[0] in 'ai' else 'a'} {kind}; it has no field {part!r}",
            )
        known = fields(schema)
        if known is not None and part not in known:
            listed = ", ".join(sorted(known))
            return {}, f"{here} has no field {part!r} (its fields: {listed})"
        schema = sub_schema(schema, "properties", part)
        if not schema:
            return {}, None  # the schema says no more: the rest is not checked
    return schema, None
