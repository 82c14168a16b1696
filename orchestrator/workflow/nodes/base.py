"""What every node kind builds with: the specialist call (retrieval, token budget, tools or a
stream, inside an ``invoke_agent`` span), the fan-out budget check, the run's span attributes,
the join that waits for every item of a map or plan, and the wrapper that names the node in any
error it raises.

A kind's module (``nodes/<kind>.py``) turns its spec into LangGraph nodes and edges with these.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from langgraph.config import get_config, get_stream_writer
from langgraph.errors import GraphBubbleUp
from langgraph.graph import END, StateGraph

from orchestrator import telemetry
from orchestrator.catalog import SpecialistCatalog
from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.config import DEFAULT_TENANT
from orchestrator.errors import BudgetExceeded, CadreError, OutputSchemaError, RunError
from orchestrator.memory.corpus import retrieve_into
from orchestrator.specialists.asking import Asker
from orchestrator.specialists.calls import SpecialistAnswer, model_label
from orchestrator.specialists.tool_loop import ask_with_tools
from orchestrator.telemetry import gen_ai
from orchestrator.tools.base import ToolContext
from orchestrator.workflow.budget import (
    Hold,
    RunRef,
    TokenBudget,
    budget_attributes,
    call_estimate,
    tokens_used,
)
from orchestrator.workflow.spec import END_NODE, WorkflowSpec
from orchestrator.workflow.state import TOKEN, state_type
from orchestrator.workflow.templates import lookup, render, whole


def render_arg(value: Any, state: dict[str, Any], text: bool = True) -> Any:
    """A node argument filled from state: a template string, or a list of them. With
    ``text=False`` (where text is not what is wanted: a number field, a list argument), a
    template that is one placeholder only (``{amount}``) gives the value itself, its type
    kept, not its JSON text."""
    if isinstance(value, str):
        path = None if text else whole(value)
        if path is not None and (found := lookup(state, path, None)) is not None:
            return found
        return render(value, state)
    if isinstance(value, list):
        return [render_arg(v, state, text) for v in value]
    return value


def wants_text(schema: Any) -> bool:
    """Whether a field's JSON Schema asks for text (or says nothing of its type)."""
    if not isinstance(schema, dict):
        return True
    kind = schema.get("type")
    return kind is None or kind == "string" or (isinstance(kind, list) and "string" in kind)


def target(node_id: str) -> str:
    """The LangGraph name of an edge's end (``end`` is LangGraph's END)."""
    return END if node_id == END_NODE else node_id


def in_node(node_id: str, fn: Callable[..., Any]) -> Callable[..., Any]:
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


class DriverStopped(Exception):
    """This driver must stop driving a run before its next model call, tool call or checkpoint
    write: the run was cancelled, or its lease ran out and another driver may hold it. Not a
    CadreError: nothing turns it into a tool error or a failed run."""


Guard = Callable[[str], Awaitable[None]]
"""A driver's check, before a model or tool call of a run, that it may still drive the run
(awaited with the run id; raises DriverStopped when it may not)."""


class NodeBuilder:
    """The graph being built for one workflow spec, and the services its nodes share."""

    def __init__(
        self,
        spec: WorkflowSpec,
        catalog: SpecialistCatalog,
        asker: Asker | None,
        corpora: Any = None,
        budget: TokenBudget | None = None,
        guard: Guard | None = None,
    ) -> None:
        self.spec = spec
        self.catalog = catalog
        self.asker = asker
        self.corpora = corpora
        self.budget = budget or TokenBudget()
        self._guard = guard
        self.graph: StateGraph[Any] = StateGraph(state_type(spec))

    async def ask(
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
        # What a template leaves at the ends (`{claim}\n{review_feedback}` before any rejection)
        # is not sent: the specialist gets its input as `cadre ask`, eval and training give it.
        text = text.strip()
        attributes = {
            **self.run_attributes(node_id),
            gen_ai.OPERATION_NAME: gen_ai.INVOKE_AGENT,
            gen_ai.AGENT_NAME: specialist.name,
            gen_ai.AGENT_DESCRIPTION: specialist.description,
            gen_ai.REQUEST_MODEL: model_label(specialist.model, specialist.adapter),
        }
        await self.guard()
        with telemetry.span(f"invoke_agent {specialist.name}", attributes) as span:
            if specialist.corpus and self.corpora is not None:
                text = await retrieve_into(self.corpora, specialist.corpus, text, node_id)
            hold = await self._reserve(state, specialist, text, span)
            try:
                if specialist.tools:
                    context = self.tool_context(node_id)
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
            except OutputSchemaError as err:  # answered, unfit: its tokens were spent
                spent = err.input_tokens + err.output_tokens
                self.budget.settle(hold, spent)
                span.set_attributes(
                    {
                        gen_ai.USAGE_INPUT_TOKENS: err.input_tokens,
                        gen_ai.USAGE_OUTPUT_TOKENS: err.output_tokens,
                    }
                )
                err.cadre_usage = {  # type: ignore[attr-defined]
                    specialist.name: {
                        "calls": 1,
                        "input_tokens": err.input_tokens,
                        "output_tokens": err.output_tokens,
                    }
                }
                raise
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

    async def guard(self) -> None:
        """Before a call with effects (a model's tokens, a tool's side effect): may this driver
        still drive the run? (DriverStopped if it was cancelled or its lease went elsewhere.)"""
        if self._guard is not None:
            await self._guard(get_config().get("configurable", {}).get("thread_id", ""))

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

    async def check_fan_out(
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
            attributes = {**self.run_attributes(node_id), **budget_attributes(err)}
            with telemetry.span("cadre.budget", attributes):
                raise

    def run_attributes(self, node_id: str) -> dict[str, Any]:
        run_id = get_config().get("configurable", {}).get("thread_id", "")
        return {
            gen_ai.CONVERSATION_ID: run_id,
            gen_ai.WORKFLOW_NAME: self.spec.name,
            "cadre.node": node_id,
        }

    def tool_context(self, node_id: str) -> ToolContext:
        """What a tool called from ``node_id`` knows of the run (for its idempotency key)."""
        configurable = get_config().get("configurable", {})
        return ToolContext(
            catalog_root=self.catalog.root,
            database_url=configurable.get("database_url"),
            run_id=configurable.get("thread_id", ""),
            node_id=node_id,
        )

    def add(self, name: str, fn: Callable[..., Any], **kwargs: Any) -> None:
        """A LangGraph node; ``NODE__part`` names belong to spec node ``NODE``."""
        self.graph.add_node(name, in_node(name.split("__")[0], fn), **kwargs)

    def join(self, node_id: str, output: str, then: str | None) -> None:
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
            return [target(then or END_NODE)] if complete(state) else []

        name = f"{node_id}__join"
        self.add(name, join)
        self.graph.add_conditional_edges(name, onward, [target(then or END_NODE)])
