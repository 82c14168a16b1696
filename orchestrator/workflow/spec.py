"""Workflow specs: what a user writes in ``graphs/*.yaml``.

A workflow names its input schema, its state keys (each with a JSON Schema) and its nodes. Nodes are
a union discriminated by ``kind``; each names where control goes next (``next``, a node id or
``end``). Text given to a specialist or a tool is a template over state: ``{claim}``,
``{fields.amount}``; ``{{`` and ``}}`` are literal braces. Inside a map, ``{item}`` and ``{index}``
are the current element and its position.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, NewType

from pydantic import Field, field_validator, model_validator

from orchestrator.catalog.specs import NAME_PATTERN, Spec

NodeId = NewType("NodeId", str)
END_NODE = "end"
NODE_ID_PATTERN = r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$"
"""Lowercase words joined by single underscores (double underscores name internal nodes)."""


class SpecialistNode(Spec):
    """Ask a specialist; its checked answer (a JSON object) goes into a state key."""

    kind: Literal["specialist"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    specialist: str = Field(description="Specialist to ask (a name in the catalog).")
    input: str = Field(min_length=1, description="Template of the text the specialist gets.")
    output: str = Field(description="State key the answer is written to.")
    fixed: dict[str, Any] = Field(
        default_factory=dict,
        description="Answer fields the workflow decides, not the specialist (a policy rule's "
        "outcome, e.g. `{decision: deny}`). The specialist is asked with its output schema "
        "narrowed to these values, so it writes the other fields (a rationale) knowing them. "
        "Text is a template over state.",
    )
    stream: bool = Field(
        default=False,
        description="Send the answer's text to the run's stream (`token` events) as the "
        "engine generates it (llama.cpp, vLLM); an engine that cannot stream sends it whole "
        "once it is done.",
    )
    next: str = Field(description="Node to run afterwards, or `end`.")


class ToolNode(Spec):
    """Call a registered tool with arguments rendered from state."""

    kind: Literal["tool"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    tool: str = Field(description="Registered tool name.")
    args: dict[str, Any] = Field(
        default_factory=dict,
        description="Tool arguments: text is a template over state (so are the items of a list); "
        "numbers and booleans are passed as they are.",
    )
    output: str = Field(description="State key the tool's result is written to.")
    timeout_s: float = Field(
        default=10.0, gt=0, le=600, description="Most seconds the tool may take."
    )
    next: str = Field(description="Node to run afterwards, or `end`.")
    on_error: str | None = Field(
        default=None,
        description="Node to go to when the tool fails (its error is in state `tool_error`); "
        "default: `next`.",
    )


DURATION_PATTERN = r"[1-9][0-9]{0,5}[smhd]"
"""A duration: a whole number and a unit (s, m, h or d), e.g. ``30m``."""
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class ReviewNode(Spec):
    """A human gate: the run stops until a reviewer approves, rejects or edits."""

    kind: Literal["review"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    title: str = Field(default="", description="What the reviewer is asked, in one line.")
    show: tuple[str, ...] = Field(
        min_length=1, description="State keys the reviewer sees (the proposal first)."
    )
    editable: tuple[str, ...] = Field(
        default=(), description="State keys a reviewer may edit; empty means the `show` keys."
    )
    next: str = Field(description="Node to run after approval (or an edit), or `end`.")
    on_reject: str = Field(
        description="Node to route back to on rejection; the reason is in state `review_feedback`."
    )
    key_fields: tuple[str, ...] = Field(
        default=(),
        max_length=6,
        description="State paths shown on the review's row in the queue, e.g. "
        "`fields.policy_number`, so reviewers can tell reviews apart without opening them.",
    )
    approvals: int = Field(
        default=1,
        ge=1,
        le=5,
        description="Approvals from different reviewers the run needs to go on; one rejection "
        "sends it back.",
    )
    escalate_after: str | None = Field(
        default=None,
        description="How long a review may wait (e.g. `30m`, `4h`, `2d`) before a "
        "`review.overdue` webhook event is sent for it.",
    )

    @field_validator("escalate_after")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None and re.fullmatch(r"0+[smhd]", value):
            raise ValueError(f"{value!r}: give a time after which to escalate, above zero")
        if value is not None and re.fullmatch(r"[1-9][0-9]{6,}[smhd]", value):
            raise ValueError(f"{value[:40]!r}: at most 999999 of a unit; use a larger one")
        if value is not None and not re.fullmatch(DURATION_PATTERN, value):
            raise ValueError(
                f"{value[:40]!r} is not a duration: a whole number and a unit (s, m, h or d), "
                "e.g. 90s, 30m, 4h or 2d"
            )
        return value

    @property
    def escalate_after_s(self) -> float | None:
        """``escalate_after`` in seconds."""
        if self.escalate_after is None:
            return None
        return int(self.escalate_after[:-1]) * DURATION_UNITS[self.escalate_after[-1]]


Op = Literal["eq", "ne", "gt", "ge", "lt", "le", "in", "not_in", "exists", "truthy"]


class Condition(Spec):
    """A test on one state value: ``key op value``."""

    key: str = Field(description="State path to test, e.g. `fields.amount`.")
    op: Op = Field(
        default="eq", description="Comparison: eq ne gt ge lt le in not_in exists truthy."
    )
    value: Any = Field(default=None, description="What to compare with (a list for in/not_in).")

    @model_validator(mode="after")
    def _value_fits_op(self) -> Condition:
        if self.op in ("in", "not_in") and not isinstance(self.value, list):
            raise ValueError(
                f"op {self.op} compares with a list of values, e.g. value: [a, b]; "
                f"got {type(self.value).__name__}"
            )
        ordered = isinstance(self.value, (int, float, str)) and not isinstance(self.value, bool)
        if self.op in ("gt", "ge", "lt", "le") and not ordered:
            raise ValueError(f"op {self.op} compares with a number or a text, not {self.value!r}")
        return self


class Case(Spec):
    """One way out of a branch."""

    when: Condition | None = Field(
        default=None, description="Condition on state (condition branch)."
    )
    equals: str | bool | int | float | None = Field(
        default=None,
        description="Router answer that selects this case (router branch): the value of the "
        "router's `route_on` field, text, a number or true/false as the field is.",
    )
    next: str = Field(description="Node to run when this case matches.")


class BranchNode(Spec):
    """Choose the next node: the first case whose condition holds, or a router specialist's pick."""

    kind: Literal["branch"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    router: str | None = Field(
        default=None, description="Specialist whose answer picks the case (router branch)."
    )
    input: str | None = Field(default=None, description="Template of the text the router gets.")
    route_on: str | None = Field(
        default=None, description="Field of the router's answer matched against `equals`."
    )
    output: str | None = Field(default=None, description="State key for the router's answer.")
    cases: tuple[Case, ...] = Field(min_length=1, description="Cases, tried in order.")
    default: str = Field(description="Node when no case matches.")


class MapNode(Spec):
    """Fan out: ask a specialist about every element of a list, concurrently; results are joined."""

    kind: Literal["map"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    over: str = Field(description="State key holding the list (a dotted path is allowed).")
    specialist: str = Field(description="Specialist asked once per element.")
    input: str = Field(min_length=1, description="Template per element: {item}, {index}, state.")
    review: bool = Field(
        default=False, description="Put every element's answer before a reviewer, in parallel."
    )
    output: str = Field(description="State key for the list of answers, in input order.")
    join: str = Field(description="Node to run once all elements are done.")
    max_items: int = Field(
        default=1000,
        ge=1,
        le=100_000,
        description="Most elements the list may have; a longer one fails the node before any "
        "call (a run's input can be 10 MB: a million elements).",
    )


class PlanNode(Spec):
    """A planner specialist splits the task into sub-tasks for named specialists, run as a map."""

    kind: Literal["plan"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    planner: str = Field(description="Specialist that writes the plan.")
    input: str = Field(min_length=1, description="Template of the task given to the planner.")
    specialists: tuple[str, ...] = Field(
        min_length=1, description="Specialists the plan may use; anything else is refused."
    )
    max_tasks: int = Field(default=6, ge=1, le=64, description="Most sub-tasks a plan may have.")
    output: str = Field(description="State key for the list of {task, specialist, answer}.")
    join: str = Field(description="Node to run once all sub-tasks are done.")


class MemoryNode(Spec):
    """Read from shared memory (search by meaning into state) or write a record to it: a
    :class:`MemoryRead` or a :class:`MemoryWrite`, told apart by ``op``."""

    kind: Literal["memory"]
    id: str = Field(pattern=NODE_ID_PATTERN, description="Node id, unique in the workflow.")
    op: Literal["read", "write"]
    memory: Literal["semantic", "episodic"] = Field(
        default="semantic",
        description="semantic: facts (with provenance); episodic: summaries of finished runs.",
    )
    scope: Literal["run", "workflow", "global"] = Field(
        default="global",
        description="Whose memory, within the run's tenant: this run, this workflow, or one "
        "space all its workflows share. Each scope is its own: a read finds what was written "
        "with the same scope (`remember_runs` writes episodic summaries with scope workflow).",
    )
    next: str = Field(description="Node to run afterwards, or `end`.")


class MemoryRead(MemoryNode):
    """Search memory by meaning; the ``top_k`` closest records go into state."""

    op: Literal["read"] = Field(description="read: query -> top_k records.")
    query: str = Field(min_length=1, description="Template of the search text.")
    top_k: int = Field(default=3, ge=1, le=50, description="How many records to return.")
    output: str = Field(description="State key for the list of {text, score, provenance}.")


class MemoryWrite(MemoryNode):
    """Write one record to memory (keyed by run and node: a resumed run overwrites it)."""

    op: Literal["write"] = Field(description="write: one record of text.")
    text: str = Field(min_length=1, description="Template of the record's text.")
    ttl_minutes: float | None = Field(
        default=None, gt=0, description="The record expires after this long (none: never)."
    )


NodeSpec = Annotated[
    SpecialistNode
    | ToolNode
    | ReviewNode
    | BranchNode
    | MapNode
    | PlanNode
    | Annotated[MemoryRead | MemoryWrite, Field(discriminator="op")],
    Field(discriminator="kind"),
]


class Budget(Spec):
    """What one run of a workflow may spend."""

    tokens: int = Field(
        gt=0,
        description="Most tokens (input + output, every specialist call) one run may use. A call, "
        "or a map's or plan's fan-out, that would go over stops before it is made "
        "(BudgetExceeded); a call counts its prompt (estimated) plus its max_tokens until it "
        "answers, then what it used.",
    )


class WorkflowSpec(Spec):
    """A workflow: input, state, and a graph of nodes starting at ``start``."""

    name: str = Field(pattern=NAME_PATTERN, description="Unique workflow name.")
    description: str = Field(min_length=1, description="What the workflow does, for people.")
    input_schema: dict[str, Any] = Field(
        description="JSON Schema (type: object) of a run's input; its properties become state."
    )
    state: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="State keys beyond the input, each with a JSON Schema."
    )
    output: tuple[str, ...] = Field(
        default=(), description="State keys that make up the run's output; empty means all."
    )
    start: str = Field(description="First node to run.")
    remember_runs: bool = Field(
        default=False,
        description="Write a summary of each finished run to episodic memory (workflow scope), "
        "for later runs to search.",
    )
    budget: Budget | None = Field(
        default=None, description="Token budget of one run, e.g. `budget: {tokens: 20000}`."
    )
    nodes: tuple[NodeSpec, ...] = Field(min_length=1, description="The nodes.")

    def state_schemas(self) -> dict[str, dict[str, Any]]:
        """Every state key with its JSON Schema: input properties, declared keys, built-ins."""
        keys: dict[str, dict[str, Any]] = dict(self.input_schema.get("properties", {}))
        keys.update(self.state)
        keys.setdefault("review_feedback", {"type": "string"})
        keys.setdefault("tool_error", {"type": ["object", "null"]})
        return keys


BUILT_IN_KEYS = ("review_feedback", "tool_error")
"""State keys every workflow has, which Cadre writes: a reviewer's reason and a tool's error."""


def reserved_key(key: str) -> str | None:
    """Why ``key`` cannot be a declared state key or a run input's key, or None if it can."""
    if key in BUILT_IN_KEYS:
        return f"{key!r} is a key Cadre writes itself"
    if not key or key.startswith("_"):
        return f"{key!r}: a key must not be empty or start with '_' (Cadre's and LangGraph's)"
    if "." in key:
        return f"{key!r}: a key must not hold '.', which templates and conditions read as a path"
    return None
