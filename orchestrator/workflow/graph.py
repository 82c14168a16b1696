"""Compile a checked WorkflowSpec into a LangGraph graph.

Each spec node becomes one LangGraph node (map and plan nodes add a worker, an optional per-item
review, and a deferred join). State is a TypedDict of the workflow's keys plus internal channels
with reducers: ``_usage`` (tokens per specialist, summed), ``_parts`` (map/plan results by index),
``_expect`` (how many results each map/plan waits for), ``_tools`` (tool time), ``_plans`` and
``_routes``. Review gates
call ``interrupt()`` first thing: LangGraph re-runs a
resumed node from its top, so nothing before the interrupt may do work.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import json
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

from langgraph.config import get_config, get_store, get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from orchestrator import telemetry
from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.config import DEFAULT_TENANT
from orchestrator.errors import BudgetExceeded, CadreError, InputError, RunError
from orchestrator.specialists.calls import (
    Asker,
    SpecialistAnswer,
    check_answer,
    model_label,
    with_fixed,
)
from orchestrator.telemetry import gen_ai
from orchestrator.tools.base import ToolContext
from orchestrator.tools.runner import call_tool
from orchestrator.workflow.budget import (
    Hold,
    RunRef,
    TokenBudget,
    budget_attributes,
    call_estimate,
    tokens_used,
)
from orchestrator.workflow.spec import (
    END_NODE,
    BranchNode,
    Condition,
    MapNode,
    MemoryNode,
    MemoryRead,
    MemoryWrite,
    PlanNode,
    ReviewNode,
    SpecialistNode,
    ToolNode,
    WorkflowSpec,
)
from orchestrator.workflow.templates import lookup, render

TOKEN = "token"
"""The key of a piece of streamed text in the graph's custom stream (see ``_ask``)."""
INTERNAL_KEYS = ("_usage", "_tools", "_parts", "_plans", "_routes", "_expect", "_approvals")
_MISSING = object()


def add_usage(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: tokens and calls per specialist, summed."""
    out = {name: dict(u) for name, u in (left or {}).items()}
    for name, usage in (right or {}).items():
        current = out.setdefault(name, {})
        for field, value in usage.items():
            current[field] = current.get(field, 0) + value
    return out


def merge_parts(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: results of map/plan items by node and index; ``{node: None}`` resets a node."""
    out = dict(left or {})
    for node, items in (right or {}).items():
        if items is None:
            out.pop(node, None)
        else:
            out[node] = {**out.get(node, {}), **items}
    return out


def merge(left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
    """Reducer: a dict updated key by key."""
    return {**(left or {}), **(right or {})}


def state_type(spec: WorkflowSpec) -> type:
    fields: dict[str, Any] = {key: Any for key in spec.state_schemas()}
    fields.update(
        _usage=Annotated[dict, add_usage],
        _parts=Annotated[dict, merge_parts],
        _plans=Annotated[dict, merge],
        _routes=Annotated[dict, merge],
        _expect=Annotated[dict, merge],
        _tools=Annotated[dict, add_usage],
        _approvals=Annotated[dict, merge],
    )
    return TypedDict(f"State_{spec.name.replace('-', '_')}", fields, total=False)  # type: ignore[operator,no-any-return]


def usage_of(answer: SpecialistAnswer) -> dict[str, dict[str, float]]:
    """One call's accounting for the ``_usage`` channel (summed per specialist); a call an
    adapter answered also counts under ``adapter SPECIALIST/vN``, so results stay attributable."""
    usage: dict[str, float] = {
        "calls": 1,
        "input_tokens": answer.input_tokens,
        "output_tokens": answer.output_tokens,
        "model_time_s": answer.model_time_s,
        "queue_time_s": answer.queue_time_s,
    }
    if answer.adapter:
        usage[f"adapter {answer.adapter}"] = 1
    return {answer.specialist: usage}


def holds(condition: Condition, state: dict[str, Any]) -> bool:
    """Whether a branch condition is true of state (a missing value is false)."""
    value = lookup(state, condition.key, _MISSING)
    if condition.op == "exists":
        return value is not _MISSING and value is not None
    if value is _MISSING:
        return False
    if condition.op == "truthy":
        return bool(value)
    compare: dict[str, Callable[[], bool]] = {
        "eq": lambda: value == condition.value,
        "ne": lambda: value != condition.value,
        "gt": lambda: value > condition.value,
        "ge": lambda: value >= condition.value,
        "lt": lambda: value < condition.value,
        "le": lambda: value <= condition.value,
        "in": lambda: value in condition.value,
        "not_in": lambda: value not in condition.value,
    }
    try:
        return compare[condition.op]()
    except TypeError:
        return False


def approvers(approvals: dict[str, Any]) -> list[str]:
    """Everyone who approved a review of the run so far (a review that needs several approvals
    records a list of names), sorted and each once."""
    names: set[str] = set()
    for who in approvals.values():
        names.update([who] if isinstance(who, str) else who or [])
    return sorted(name for name in names if name)


def _render_arg(value: Any, state: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return render(value, state)
    if isinstance(value, list):
        return [_render_arg(v, state) for v in value]
    return value


def _target(node_id: str) -> str:
    return END if node_id == END_NODE else node_id


def _in_node(node_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """Name the node in any error a node function raises. Cadre's errors stay typed, with the
    node in their message; anything else is a bug and stays what it is, with the node in its
    ``cadre_node`` (the runner records either as the run's error; LangGraph notes the task on
    the traceback). LangGraph's own signals (an interrupt for review) pass untouched."""

    def name(err: Exception) -> None:
        if isinstance(err, CadreError):
            err.message = f"node {node_id!r}: {err.message}"
            err.args = (err.message,)
        elif not isinstance(err, GraphBubbleUp):
            with contextlib.suppress(AttributeError):  # an exception type with __slots__
                err.cadre_node = node_id  # type: ignore[attr-defined]

    if inspect.iscoroutinefunction(fn):

        @functools.wraps(fn)
        async def async_wrapper(*args: Any) -> Any:
            try:
                return await fn(*args)
            except Exception as err:
                name(err)
                raise

        return async_wrapper

    @functools.wraps(fn)
    def wrapper(*args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as err:
            name(err)
            raise

    return wrapper


class GraphBuilder:
    """Builds the LangGraph StateGraph for one workflow spec."""

    def __init__(
        self,
        spec: WorkflowSpec,
        catalog: Any,
        asker: Asker | None,
        corpora: Any = None,
        budget: TokenBudget | None = None,
    ) -> None:
        self.spec = spec
        self.catalog = catalog
        self.asker = asker
        self.corpora = corpora
        self.budget = budget or TokenBudget()
        self.graph: StateGraph[Any] = StateGraph(state_type(spec))

    async def _ask(
        self,
        specialist: SpecialistSpec,
        text: str,
        node_id: str,
        state: dict[str, Any] | None = None,
        stream: bool = False,
    ) -> SpecialistAnswer:
        """One specialist call inside an ``invoke_agent {specialist}`` span, within the run's
        token budgets (``state``, where the node has it, tells what the run already used).
        With ``stream``, the answer's text goes to the graph's custom stream as it comes
        (``{"node", "text"}`` pieces, which the runner logs as ``token`` events)."""
        if self.asker is None:
            raise RunError("this graph was compiled for drawing only; it cannot call specialists")
        attributes = {
            **self._run_attributes(node_id),
            gen_ai.OPERATION_NAME: gen_ai.INVOKE_AGENT,
            gen_ai.AGENT_NAME: specialist.name,
            gen_ai.AGENT_DESCRIPTION: specialist.description,
            gen_ai.REQUEST_MODEL: model_label(specialist.model, specialist.adapter),
        }
        with telemetry.span(f"invoke_agent {specialist.name}", attributes) as span:
            if specialist.corpus and self.corpora is not None:
                text = await retrieve_into(self.corpora, specialist.corpus, text, node_id)
            hold = await self._reserve(state, specialist, text, span)
            try:
                if specialist.tools:
                    from orchestrator.specialists.tool_loop import ask_with_tools

                    configurable = get_config().get("configurable", {})
                    context = ToolContext(
                        catalog_root=self.catalog.root,
                        database_url=configurable.get("database_url"),
                        run_id=configurable.get("thread_id", ""),
                        node_id=node_id,
                    )
                    answer = await ask_with_tools(self.asker, specialist, text, context)
                elif stream:
                    write = get_stream_writer()
                    answer = await self.asker.ask_spec(
                        specialist,
                        text,
                        on_text=lambda piece: write({TOKEN: piece, "node": node_id}),
                    )
                else:
                    answer = await self.asker.ask_spec(specialist, text)
            except BaseException:
                self.budget.settle(hold, None)
                raise
            self.budget.settle(hold, answer.input_tokens + answer.output_tokens)
            span.set_attributes(
                {
                    gen_ai.USAGE_INPUT_TOKENS: answer.input_tokens,
                    gen_ai.USAGE_OUTPUT_TOKENS: answer.output_tokens,
                    gen_ai.RESPONSE_FINISH_REASONS: [answer.finish_reason],
                }
            )
            return answer

    def _budget_run(self, state: dict[str, Any] | None) -> RunRef:
        configurable = get_config().get("configurable", {})
        return RunRef(
            run_id=configurable.get("thread_id", ""),
            tenant=configurable.get("tenant", DEFAULT_TENANT),
            workflow=self.spec.name,
            limit=self.spec.budget.tokens if self.spec.budget else None,
            used=tokens_used(state.get("_usage")) if state else 0,
        )

    async def _reserve(
        self, state: dict[str, Any] | None, specialist: SpecialistSpec, text: str, span: Any
    ) -> Hold | None:
        """Reserve a call's estimate in the run's budget; a refusal is recorded on ``span``."""
        run = self._budget_run(state)
        if not self.budget.applies(run):
            return None
        try:
            estimate = call_estimate(specialist, text)
            return await self.budget.reserve(run, estimate, f"a call of {specialist.name!r}")
        except BudgetExceeded as err:
            span.set_attributes(budget_attributes(err))
            raise

    async def _check_fan_out(
        self,
        state: dict[str, Any],
        node_id: str,
        what: str,
        estimates: Callable[[], list[int]],
    ) -> None:
        """Refuse a map's or plan's whole fan-out before any branch is sent if its calls, all
        together, would go over a budget; the refusal is a ``cadre.budget`` span."""
        run = self._budget_run(state)
        if not self.budget.applies(run):
            return
        try:
            await self.budget.check(run, estimates(), what)
        except BudgetExceeded as err:
            attributes = {**self._run_attributes(node_id), **budget_attributes(err)}
            with telemetry.span("cadre.budget", attributes):
                raise

    def _run_attributes(self, node_id: str) -> dict[str, Any]:
        run_id = get_config().get("configurable", {}).get("thread_id", "")
        return {
            gen_ai.CONVERSATION_ID: run_id,
            gen_ai.WORKFLOW_NAME: self.spec.name,
            "cadre.node": node_id,
        }

    def _add(self, name: str, fn: Callable[..., Any], **kwargs: Any) -> None:
        self.graph.add_node(name, _in_node(name.split("__")[0], fn), **kwargs)

    def build(self) -> StateGraph[Any]:
        self.graph.add_edge(START, self.spec.start)
        for node in self.spec.nodes:
            getattr(self, f"_{node.kind}")(node)
        return self.graph

    # -- node kinds ------------------------------------------------------------------------

    def _specialist(self, node: SpecialistNode) -> None:
        spec = self.catalog.specialist(node.specialist)

        fields = set(spec.output_schema.get("properties", {}))
        decided = bool(fields) and fields <= set(node.fixed)

        async def run(state: dict[str, Any]) -> dict[str, Any]:
            fixed = {k: _render_arg(v, state) for k, v in node.fixed.items()}
            if decided:  # every field is the workflow's: nothing is left to ask
                return {node.output: check_answer(spec, fixed, f"node {node.id!r}'s fixed answer")}
            asked = with_fixed(spec, fixed)
            answer = await self._ask(
                asked, render(node.input, state), node.id, state, stream=node.stream
            )
            return {node.output: {**answer.output, **fixed}, "_usage": usage_of(answer)}

        self._add(node.id, run)
        self.graph.add_edge(node.id, _target(node.next))

    def _tool(self, node: ToolNode) -> None:
        from orchestrator.tools import registry

        tool = registry()[node.tool]

        async def run(state: dict[str, Any]) -> Command[str]:
            args = {name: _render_arg(value, state) for name, value in node.args.items()}
            configurable = get_config().get("configurable", {})
            context = ToolContext(
                catalog_root=self.catalog.root,
                database_url=configurable.get("database_url"),
                run_id=configurable.get("thread_id", ""),
                node_id=node.id,
            )
            attributes = {
                **self._run_attributes(node.id),
                gen_ai.OPERATION_NAME: gen_ai.EXECUTE_TOOL,
                gen_ai.TOOL_NAME: tool.name,
                gen_ai.TOOL_DESCRIPTION: tool.description,
            }
            started = time.perf_counter()
            error: dict[str, Any] | None = None
            result: Any = None
            try:
                with telemetry.span(f"execute_tool {tool.name}", attributes):
                    result = await call_tool(tool, args, context, node.timeout_s)
            except CadreError as err:
                # A tool's failure is the workflow's to handle: into state, not a crash.
                error = {"node": node.id, "tool": tool.name, "error": err.message}
            timing = {
                tool.name: {
                    "calls": 1,
                    "errors": int(error is not None),
                    "time_s": time.perf_counter() - started,
                }
            }
            update = {node.output: result, "tool_error": error, "_tools": timing}
            target = node.on_error if error and node.on_error else node.next
            return Command(goto=_target(target), update=update)

        ways = {_target(node.next)} | ({_target(node.on_error)} if node.on_error else set())
        self._add(node.id, run, destinations=tuple(sorted(ways)))

    def _review(self, node: ReviewNode) -> None:
        editable = node.editable or node.show

        def run(state: dict[str, Any]) -> Command[str]:
            decision = interrupt(
                {
                    "kind": "review",
                    "node": node.id,
                    "title": node.title or f"Review {node.id}",
                    "show": {key: lookup(state, key, None) for key in node.show},
                    "editable": list(editable),
                    "values": {key.split(".")[0]: state.get(key.split(".")[0]) for key in editable},
                    "key_fields": {key: lookup(state, key, None) for key in node.key_fields},
                    "approvals": node.approvals,
                    "escalate_after_s": node.escalate_after_s,
                }
            )
            if decision["decision"] == "reject":
                return Command(
                    goto=_target(node.on_reject), update={"review_feedback": decision["reason"]}
                )
            update = {**(decision.get("update") or {}), "_approvals": {node.id: decision.get("by")}}
            return Command(goto=_target(node.next), update=update)

        self._add(node.id, run, destinations=(_target(node.next), _target(node.on_reject)))

    def _branch(self, node: BranchNode) -> None:
        router = self.catalog.specialist(node.router) if node.router else None

        async def run(state: dict[str, Any]) -> dict[str, Any]:
            if router is None:
                return {}
            answer = await self._ask(router, render(node.input or "", state), node.id, state)
            choice = answer.output.get(node.route_on or "")
            update: dict[str, Any] = {"_routes": {node.id: choice}, "_usage": usage_of(answer)}
            if node.output:
                update[node.output] = answer.output
            return update

        def choose(state: dict[str, Any]) -> str:
            for case in node.cases:
                if router is not None:
                    if state.get("_routes", {}).get(node.id) == case.equals:
                        return _target(case.next)
                elif case.when is not None and holds(case.when, state):
                    return _target(case.next)
            return _target(node.default)

        targets = sorted({_target(c.next) for c in node.cases} | {_target(node.default)})
        self._add(node.id, run)
        self.graph.add_conditional_edges(node.id, choose, targets)

    def _map(self, node: MapNode) -> None:
        spec = self.catalog.specialist(node.specialist)
        item, review, join = f"{node.id}__item", f"{node.id}__review", f"{node.id}__join"

        async def start(state: dict[str, Any]) -> dict[str, Any]:
            items = lookup(state, node.over, None)
            if not isinstance(items, list):
                raise InputError(f"{node.over!r} must be a list to map over, not {items!r}")
            await self._check_fan_out(
                state,
                node.id,
                f"the {len(items)} calls of map {node.id!r}",
                lambda: [
                    call_estimate(spec, render(node.input, {**state, "item": x, "index": i}))
                    for i, x in enumerate(items)
                ],
            )
            return {"_parts": {node.id: None}, "_expect": {node.id: len(items)}}

        def fan_out(state: dict[str, Any]) -> list[Send] | str:
            items = lookup(state, node.over)
            return [
                Send(
                    item, {"index": i, "text": render(node.input, {**state, "item": x, "index": i})}
                )
                for i, x in enumerate(items)
            ] or join

        async def one(task: dict[str, Any]) -> Command[str]:
            answer = await self._ask(spec, task["text"], node.id)
            usage = usage_of(answer)
            if node.review:
                return Command(
                    update={"_usage": usage}, goto=Send(review, {**task, "answer": answer.output})
                )
            return Command(
                update={"_usage": usage, "_parts": {node.id: {str(task["index"]): answer.output}}},
                goto=join,
            )

        def gate(task: dict[str, Any]) -> Command[str]:
            decision = interrupt(
                {
                    "kind": "map_item",
                    "node": node.id,
                    "index": task["index"],
                    "specialist": spec.name,
                    "title": f"{node.id}: item {task['index']} ({spec.name})",
                    "show": {"input": task["text"], "answer": task["answer"]},
                    "editable": sorted(task["answer"]),
                    "values": {"answer": task["answer"]},
                }
            )
            if decision["decision"] == "reject":
                feedback = (
                    f"{task['text']}\n\nA reviewer rejected the answer "
                    f"{json.dumps(task['answer'])}: {decision['reason']}"
                )
                return Command(goto=Send(item, {"index": task["index"], "text": feedback}))
            answer = (decision.get("update") or {}).get("answer", task["answer"])
            return Command(update={"_parts": {node.id: {str(task["index"]): answer}}}, goto=join)

        self._add(node.id, start)
        self.graph.add_conditional_edges(node.id, fan_out, [item, join])
        self._add(item, one, destinations=(review, join) if node.review else (join,))
        if node.review:
            self._add(review, gate, destinations=(item, join))
        self._join(node.id, node.output, node.join)

    def _plan(self, node: PlanNode) -> None:
        planner = self.catalog.specialist(node.planner)
        schema = json.loads(json.dumps(planner.output_schema))
        tasks_schema = schema["properties"]["tasks"]
        tasks_schema["maxItems"] = node.max_tasks
        task_props = tasks_schema.setdefault("items", {}).setdefault("properties", {})
        task_props["specialist"] = {"type": "string", "enum": list(node.specialists)}
        narrowed = planner.model_copy(update={"output_schema": schema})
        task, join = f"{node.id}__task", f"{node.id}__join"

        async def plan(state: dict[str, Any]) -> dict[str, Any]:
            answer = await self._ask(narrowed, render(node.input, state), node.id, state)
            steps = answer.output.get("tasks", [])
            # The narrowed schema already held every task to the allowed specialists.
            for i, step in enumerate(steps):
                if not str(step.get("input", "")).strip():
                    raise InputError(f"the plan's task {i} has no input")
            await self._check_fan_out(
                state,
                node.id,
                f"the {len(steps)} tasks of plan {node.id!r}",
                lambda: [
                    call_estimate(self.catalog.specialist(s["specialist"]), s["input"])
                    for s in steps
                ],
            )
            return {
                "_plans": {node.id: steps},
                "_parts": {node.id: None},
                "_expect": {node.id: len(steps)},
                "_usage": usage_of(answer),
            }

        def fan_out(state: dict[str, Any]) -> list[Send] | str:
            steps = state.get("_plans", {}).get(node.id, [])
            return [Send(task, {"index": i, **step}) for i, step in enumerate(steps)] or join

        async def run_task(step: dict[str, Any]) -> Command[str]:
            spec = self.catalog.specialist(step["specialist"])
            answer = await self._ask(spec, step["input"], node.id)
            result = {"specialist": spec.name, "task": step["input"], "answer": answer.output}
            return Command(
                update={
                    "_usage": usage_of(answer),
                    "_parts": {node.id: {str(step["index"]): result}},
                },
                goto=join,
            )

        self._add(node.id, plan)
        self.graph.add_conditional_edges(node.id, fan_out, [task, join])
        self._add(task, run_task, destinations=(join,))
        self._join(node.id, node.output, node.join)

    def _memory(self, node: MemoryNode) -> None:
        async def run(state: dict[str, Any]) -> dict[str, Any]:
            store = get_store()
            configurable = get_config().get("configurable", {})
            run_id = configurable.get("thread_id", "")
            namespace = memory_namespace(
                configurable.get("tenant", DEFAULT_TENANT),
                node.scope,
                self.spec.name,
                run_id,
                node.memory,
            )
            attributes = {
                **self._run_attributes(node.id),
                "cadre.memory.op": node.op,
            }
            if isinstance(node, MemoryRead):
                query = render(node.query, state)
                with telemetry.span(f"retrieval memory:{node.memory}", attributes):
                    found = await store.asearch(namespace, query=query, limit=node.top_k)
                records = [
                    {
                        "text": i.value.get("text"),
                        "score": round(i.score or 0.0, 4),
                        "provenance": i.value.get("provenance", {}),
                    }
                    for i in found
                ]
                return {node.output: records}
            provenance = {
                "run": run_id,
                "workflow": self.spec.name,
                "node": node.id,
                "approved_by": approvers(state.get("_approvals", {})),
            }
            assert isinstance(node, MemoryWrite)
            value = {"text": render(node.text, state), "provenance": provenance}
            with telemetry.span("cadre.memory.write", attributes):
                # Keyed by run and node: a resumed run overwrites its record, never doubles it.
                await store.aput(namespace, f"{run_id}:{node.id}", value, ttl=node.ttl_minutes)
            return {}

        self._add(node.id, run)
        self.graph.add_edge(node.id, _target(node.next))

    def _join(self, node_id: str, output: str, then: str | None) -> None:
        """The join runs each time an item finishes, but goes on only once every item is in:
        an item sent back for rework by its reviewer finishes later than the others."""

        def complete(state: dict[str, Any]) -> bool:
            parts = state.get("_parts", {}).get(node_id, {})
            expected: int = state.get("_expect", {}).get(node_id, 0)
            return len(parts) >= expected

        def join(state: dict[str, Any]) -> dict[str, Any]:
            if not complete(state):
                return {}
            parts = state.get("_parts", {}).get(node_id, {})
            return {output: [parts[k] for k in sorted(parts, key=int)]}

        def onward(state: dict[str, Any]) -> list[str]:
            return [_target(then or END_NODE)] if complete(state) else []

        name = f"{node_id}__join"
        self._add(name, join)
        self.graph.add_conditional_edges(name, onward, [_target(then or END_NODE)])


RETRIEVED_PASSAGES = 3


async def retrieve_into(corpora: Any, corpus: str, text: str, node_id: str = "") -> str:
    """The specialist's input with the corpus passages most relevant to it appended, numbered
    so the answer can cite them; one ``retrieval {corpus}`` span."""
    from orchestrator.memory.corpus import cite

    attributes = {
        gen_ai.OPERATION_NAME: gen_ai.RETRIEVAL,
        "cadre.corpus": corpus,
        "cadre.node": node_id,
    }
    with telemetry.span(f"retrieval {corpus}", attributes) as span:
        passages = await asyncio.to_thread(corpora.search, corpus, text, RETRIEVED_PASSAGES)
        span.set_attribute("cadre.retrieval.sources", [p.source for p in passages])
    return f"{text}\n\n{cite(passages)}" if passages else text


def memory_namespace(
    tenant: str, scope: str, workflow: str, run_id: str, memory: str
) -> tuple[str, ...]:
    """Where a memory node reads and writes: always inside the run's tenant."""
    where = {"global": ("global",), "workflow": ("workflow", workflow), "run": ("run", run_id)}
    return ("tenant", tenant, *where[scope], memory)


def compile_workflow(
    spec: WorkflowSpec,
    catalog: Any,
    asker: Asker | None = None,
    checkpointer: Any = None,
    store: Any = None,
    corpora: Any = None,
    budget: TokenBudget | None = None,
) -> Any:
    """The runnable LangGraph graph for a checked workflow spec; ``budget`` holds its calls to
    the workflow's token budget and, with a ledger, to tenants' daily budgets."""
    graph = GraphBuilder(spec, catalog, asker, corpora, budget).build()
    return graph.compile(checkpointer=checkpointer, store=store)


def mermaid(spec: WorkflowSpec, catalog: Any) -> str:
    """The workflow drawn as a Mermaid flowchart."""
    return str(compile_workflow(spec, catalog).get_graph().draw_mermaid())
