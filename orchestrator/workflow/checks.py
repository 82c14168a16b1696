"""Check a workflow spec whole, before anything runs (STYLE.md 9).

Every problem is reported at once, with the workflow file and the node field it is in: unknown
specialists and tools, edges to nodes that do not exist, nodes nobody reaches, nodes with no way
out, templates or keys that name state the workflow does not have or a field its schema lacks
(``{vendor.nmae}``), and branch values that the state's enum never holds. A misspelled edge is
reported once, with the node it probably meant, not again as every node after it being
unreachable. What the specs require (a branch's default, a map's or plan's join, a memory read's
query and output) pydantic enforces when the file is read, before these checks.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Any

import jsonschema
from pydantic import ValidationError

from orchestrator.catalog import SpecialistCatalog
from orchestrator.catalog.load import schema_ref_problem
from orchestrator.errors import Problem, clip, schema_message, schema_misfit
from orchestrator.tools import registry
from orchestrator.tools.base import Tool
from orchestrator.workflow.schemas import allowed_values, fields, produced_schemas, sub_schema, walk
from orchestrator.workflow.spec import (
    END_NODE,
    BranchNode,
    MapNode,
    MemoryNode,
    MemoryRead,
    MemoryWrite,
    NodeSpec,
    PlanNode,
    ReviewNode,
    SpecialistNode,
    ToolNode,
    WorkflowSpec,
    reserved_key,
)
from orchestrator.workflow.templates import malformed, placeholders, same


def successors(node: NodeSpec) -> list[str]:
    """Where control can go after ``node``."""
    if isinstance(node, ToolNode):
        return [node.next, node.on_error] if node.on_error else [node.next]
    if isinstance(node, SpecialistNode | MemoryNode):
        return [node.next]
    if isinstance(node, ReviewNode):
        return [node.next, node.on_reject]
    if isinstance(node, BranchNode):
        return [c.next for c in node.cases] + [node.default]
    return [node.join]


def check_workflow(spec: WorkflowSpec, catalog: SpecialistCatalog, file: str) -> list[Problem]:
    """Every problem in ``spec`` (empty when it is sound)."""
    return list(_problems(spec, catalog, file))


def _problems(spec: WorkflowSpec, catalog: SpecialistCatalog, file: str) -> Iterator[Problem]:
    if spec.input_schema.get("type") != "object":
        yield Problem(file, "input_schema", "must be a JSON Schema with type: object")
    for where, schema in [("input_schema", spec.input_schema)] + [
        (f"state.{k}", v) for k, v in spec.state.items()
    ]:
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as err:
            yield Problem(file, where, f"not a valid JSON Schema: {schema_message(err)}")
            continue
        if (wrong := schema_ref_problem(schema)) is not None:
            yield Problem(file, f"{where}.{wrong[0]}", wrong[1])

    properties = spec.input_schema.get("properties")
    properties = properties if isinstance(properties, dict) else {}
    declared = [(f"input_schema.properties.{k}", k) for k in properties]
    for where, key in [*declared, *((f"state.{k}", k) for k in spec.state)]:
        why = reserved_key(str(key))
        if why is not None:
            yield Problem(file, where, why)

    state = produced_schemas(spec, catalog)
    ids: dict[str, int] = {}
    for i, node in enumerate(spec.nodes):
        if node.id in ids or node.id == END_NODE:
            yield Problem(file, f"nodes.{i}.id", f"node id {node.id!r} is used twice or reserved")
        ids.setdefault(node.id, i)
    for key in spec.output:
        if key not in state:
            yield Problem(file, "output", f"{key!r} is not a state key")
    if spec.start not in ids:
        yield Problem(file, "start", f"no node {spec.start!r}")

    tools = registry()
    for i, node in enumerate(spec.nodes):
        at = f"nodes.{i}"
        yield from _node_problems(node, at, file, state, catalog, set(tools))
        if isinstance(node, ToolNode) and node.tool in tools:
            yield from _tool_args_problems(node, tools[node.tool], at, file)
        for target in successors(node):
            if target != END_NODE and target not in ids:
                known = [*ids, END_NODE]
                same = [k for k in known if k.lower() == target.lower()]  # `END` for `end`
                close = same or difflib.get_close_matches(target, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                yield Problem(
                    file, at, f"node {node.id!r} goes to {target!r}, which is not a node{hint}"
                )

    yield from _type_problems(spec, file)
    yield from _graph_problems(spec, ids, file)


def _type_problems(spec: WorkflowSpec, file: str) -> Iterator[Problem]:
    """A node that writes an object or a list to a state key declared as something else, and a
    map over a key declared as something other than a list: a run would fail or hold what its
    schema says it cannot."""
    declared = spec.state_schemas()

    def types(key: str) -> set[str] | None:
        named = declared.get(key, {}).get("type") if isinstance(declared.get(key), dict) else None
        if isinstance(named, str):
            return {named}
        return {t for t in named if isinstance(t, str)} if isinstance(named, list) else None

    for i, node in enumerate(spec.nodes):
        writes = "object" if isinstance(node, SpecialistNode) else None
        if isinstance(node, MapNode | PlanNode | MemoryRead):
            writes = "array"
        output = getattr(node, "output", None)
        allowed = types(output) if isinstance(output, str) else None
        if writes is not None and allowed is not None and writes not in allowed:
            yield Problem(
                file,
                f"nodes.{i}.output",
                f"node {node.id!r} writes {'an object' if writes == 'object' else 'a list'} to "
                f"{output!r}, which the workflow declares as {' or '.join(sorted(allowed))}",
            )
        if isinstance(node, MapNode) and "." not in node.over:
            allowed = types(node.over)
            if allowed is not None and "array" not in allowed:
                yield Problem(
                    file,
                    f"nodes.{i}.over",
                    f"map {node.id!r} goes over {node.over!r}, which the workflow declares as "
                    f"{' or '.join(sorted(allowed))}, not a list",
                )


def _tool_args_problems(node: ToolNode, tool: Tool, at: str, file: str) -> Iterator[Problem]:
    """Arguments the tool does not take, those it needs and are missing, and values given as
    they are (no placeholder) that do not fit: a run would only find them at the node."""
    taken = tool.args.model_fields
    for name in node.args:
        if name not in taken:
            close = difflib.get_close_matches(name, list(taken), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            yield Problem(
                file,
                f"{at}.args.{name}",
                f"tool {tool.name!r} takes no argument {name!r} ({hint}it takes "
                f"{', '.join(taken)})",
            )
    for name, info in taken.items():
        if info.is_required() and name not in node.args:
            yield Problem(file, f"{at}.args", f"tool {tool.name!r} needs the argument {name!r}")
    literal = {
        name: value for name, value in node.args.items() if name in taken and not _templated(value)
    }
    try:
        tool.args.model_validate(literal)
    except ValidationError as err:
        for item in err.errors():
            name = str(item["loc"][0]) if item["loc"] else ""
            if name in literal:
                where = ".".join(str(part) for part in item["loc"])
                yield Problem(file, f"{at}.args.{where}", clip(item["msg"]))


def _templated(value: Any) -> bool:
    """True when an argument has a placeholder, so its value is known only at run time."""
    if isinstance(value, str):
        return bool(placeholders(value))
    if isinstance(value, list):
        return any(_templated(item) for item in value)
    return False


def _node_problems(
    node: NodeSpec,
    at: str,
    file: str,
    state: dict[str, Any],
    catalog: SpecialistCatalog,
    tools: set[str],
) -> Iterator[Problem]:
    def known_specialist(name: str | None, field: str) -> Iterator[Problem]:
        if name is not None and name not in catalog.specialists:
            hint = _did_you_mean(name, catalog.specialists)
            yield Problem(
                file, f"{at}.{field}", f"unknown specialist {name!r} in node {node.id!r}{hint}"
            )

    def state_key(path: str, field: str, local: tuple[str, ...] = ()) -> Iterator[Problem]:
        root = path.split(".", 1)[0]
        if root in local:
            return
        if root not in state:
            hint = _did_you_mean(root, [*state, *local])
            yield Problem(file, f"{at}.{field}", f"{path!r} is not in the workflow's state{hint}")
            return
        wrong = walk(state[root], path)[1]
        if wrong is not None:
            yield Problem(file, f"{at}.{field}", f"{path!r}: {wrong}")

    def template(text: str | None, field: str, local: tuple[str, ...] = ()) -> Iterator[Problem]:
        for piece in malformed(text or ""):
            yield Problem(
                file,
                f"{at}.{field}",
                f"{clip(piece, 60)!r} is not a placeholder: write {{key}} or {{key.field}} (no "
                "spaces, formats or conversions), or {{ and }} for literal braces",
            )
        for path in placeholders(text or ""):
            yield from state_key(path, field, local)

    def values_allowed(
        schema: dict[str, Any], values: list[Any], where: str, what: str, enum: bool = True
    ) -> Iterator[Problem]:
        """Problems with ``values`` as values of ``schema``: another type, or (``enum``) not
        one of the values it allows."""
        declared = schema.get("type")
        types: list[str] = [declared] if isinstance(declared, str) else list(declared or [])
        for value in values if types else ():
            kind = json_type(value)
            if kind not in types and not (kind == "integer" and "number" in types):
                yield Problem(
                    file,
                    f"{at}.{where}",
                    f"{value!r} is never {what}: that is {' or '.join(types)}, and this is "
                    f"{kind}" + (" (write it without quotes)" if kind == "string" else ""),
                )
                return
        allowed = allowed_values(schema) if enum else None
        if allowed is None:
            return
        for value in values:
            if not any(same(value, a) for a in allowed):
                choices = ", ".join(repr(a) for a in allowed)
                yield Problem(
                    file, f"{at}.{where}", f"{value!r} is never {what} (it is one of {choices})"
                )

    output = getattr(node, "output", None)
    if output is not None and output not in state:
        yield Problem(file, f"{at}.output", f"{output!r} is not declared in the workflow's state")

    if isinstance(node, SpecialistNode):
        yield from known_specialist(node.specialist, "specialist")
        yield from template(node.input, "input")
        answer = catalog.specialists.get(node.specialist)
        for name, value in node.fixed.items():
            where = f"fixed.{name}"
            if isinstance(value, str) and placeholders(value):
                yield from template(value, where)
                continue
            if answer is None:
                continue
            field = sub_schema(answer.output_schema, "properties", name)
            if not field:
                known = ", ".join(sorted(fields(answer.output_schema) or ())) or "none"
                yield Problem(
                    file,
                    f"{at}.{where}",
                    f"{node.specialist!r} answers no field {name!r} (its fields: {known})",
                )
            else:
                misfit = schema_misfit(field, value)
                if misfit is not None:
                    yield Problem(file, f"{at}.{where}", f"{value!r}: {misfit[1]}")
    elif isinstance(node, ToolNode):
        if node.tool not in tools:
            hint = _did_you_mean(node.tool, tools)
            yield Problem(
                file, f"{at}.tool", f"unknown tool {node.tool!r} in node {node.id!r}{hint}"
            )
        for name, value in node.args.items():
            for text in value if isinstance(value, list) else [value]:
                if isinstance(text, str):
                    yield from template(text, f"args.{name}")
    elif isinstance(node, ReviewNode):
        for key in node.show:
            yield from state_key(key, "show")
        for key in node.editable:
            yield from state_key(key, "editable")
        for key in node.key_fields:
            yield from state_key(key, "key_fields")
    elif isinstance(node, BranchNode):
        router = catalog.specialists.get(node.router) if node.router else None
        route_schema: dict[str, Any] = {}
        if node.router is not None:
            yield from known_specialist(node.router, "router")
            if node.input is None or node.route_on is None:
                yield Problem(file, at, f"router branch {node.id!r} needs input and route_on")
            yield from template(node.input, "input")
            if router is not None and node.route_on is not None:
                route_schema, wrong = walk(router.output_schema, f"{router.name}.{node.route_on}")
                if wrong is not None:
                    yield Problem(file, f"{at}.route_on", wrong)
        for j, case in enumerate(node.cases):
            if node.router is None and case.when is None:
                yield Problem(file, f"{at}.cases.{j}", "a condition branch's case needs `when`")
            if node.router is not None and case.equals is None:
                yield Problem(file, f"{at}.cases.{j}", "a router branch's case needs `equals`")
            if case.equals is not None:
                what = f"{node.router}'s {node.route_on}"
                yield from values_allowed(route_schema, [case.equals], f"cases.{j}.equals", what)
            if case.when is not None:
                key = case.when.key
                yield from state_key(key, f"cases.{j}.when.key")
                root = key.split(".", 1)[0]
                if root in state and case.when.op not in ("exists", "truthy"):
                    # an order compares with any value of the field's type, not only its enum's
                    value = case.when.value
                    values = value if isinstance(value, list) else [value]
                    yield from values_allowed(
                        walk(state[root], key)[0],
                        values,
                        f"cases.{j}.when.value",
                        key,
                        enum=case.when.op in ("eq", "ne", "in", "not_in"),
                    )
    elif isinstance(node, MapNode):
        yield from known_specialist(node.specialist, "specialist")
        yield from state_key(node.over, "over")
        yield from template(node.input, "input", ("item", "index"))
    elif isinstance(node, MemoryRead):
        yield from template(node.query, "query")
    elif isinstance(node, MemoryWrite):
        yield from template(node.text, "text")
    elif isinstance(node, PlanNode):
        yield from known_specialist(node.planner, "planner")
        for j, name in enumerate(node.specialists):
            yield from known_specialist(name, f"specialists.{j}")
        yield from template(node.input, "input")
        planner = catalog.specialists.get(node.planner)
        tasks = (planner.output_schema.get("properties", {}) if planner else {}).get("tasks", {})
        if planner is not None and tasks.get("type") != "array":
            yield Problem(
                file,
                f"{at}.planner",
                f"planner {node.planner!r} must answer {{tasks: [{{specialist, input}}]}}",
            )


def json_type(value: Any) -> str:
    """The JSON Schema type of a value as YAML or JSON gave it."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    names = {float: "number", str: "string", list: "array", dict: "object", type(None): "null"}
    return names.get(type(value), "unknown")


def _graph_problems(spec: WorkflowSpec, ids: dict[str, int], file: str) -> Iterator[Problem]:
    def resolved(target: str) -> str:
        """A misspelled edge read as the node it probably meant (already reported, with that
        hint), or as a way out: its typo is not reported again as the nodes after it being
        unreachable or stuck."""
        if target == END_NODE or target in ids:
            return target
        close = difflib.get_close_matches(target, [*ids, END_NODE], n=1)
        return close[0] if close else END_NODE

    edges = {n.id: [resolved(t) for t in successors(n)] for n in spec.nodes}
    reached: set[str] = set()
    frontier = [spec.start] if spec.start in ids else []
    while frontier:
        current = frontier.pop()
        if current in reached or current == END_NODE or current not in edges:
            continue
        reached.add(current)
        frontier.extend(edges[current])
    for node in spec.nodes:
        if node.id not in reached:
            yield Problem(
                file, f"nodes.{ids[node.id]}", f"node {node.id!r} is never reached from start"
            )

    # A way out: END reachable. Walk edges backwards from END.
    incoming: dict[str, list[str]] = {}
    for source, targets in edges.items():
        for target in targets:
            incoming.setdefault(target, []).append(source)
    exits: set[str] = set()
    frontier = [END_NODE]
    while frontier:
        current = frontier.pop()
        for source in incoming.get(current, []):
            if source not in exits:
                exits.add(source)
                frontier.append(source)
    for node in spec.nodes:
        if node.id in reached and node.id not in exits:
            yield Problem(
                file,
                f"nodes.{ids[node.id]}",
                f"node {node.id!r} has no way out (never reaches end)",
            )


def _did_you_mean(name: str, known: Any) -> str:
    """``; did you mean 'x'?`` for the closest of ``known`` to a misspelt ``name``, or ''."""
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""
