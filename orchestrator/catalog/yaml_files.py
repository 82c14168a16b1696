"""Read the YAML files users write (models, specialists, workflows), within bounds.

YAML aliases let a small file stand for an enormous document: ``a: &a [x, x, x, x, x, x, x, x, x]``,
``b: &b [*a, *a, ...]`` nested nine levels is 300 bytes that mean 3.5 billion strings (an "alias
bomb"). PyYAML keeps each alias as a shared reference, so loading the file is cheap; what hangs is
everything that later walks the data (the JSON Schema check, ``cadre specialists show``, the
prompt sent to a model). So before anything is built, :func:`measure` walks the file's parse
events and counts the values the document would have with every alias expanded, and stops at
:data:`MAX_NODES`. It also refuses nesting deeper than :data:`MAX_DEPTH` (building the values
recurses) and aliases to their own ancestor (a cycle no JSON value can be); :func:`load_yaml`
refuses files over :data:`MAX_BYTES` before it parses them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import CatalogError, Problem, clip

MAX_BYTES = 1_000_000
"""Largest spec file read, in bytes (the shipped ones are under 4 KB)."""
MAX_NODES = 20_000
"""Most values (scalars, lists, mappings) a document may hold once its aliases are expanded
(the largest shipped spec holds 229)."""
MAX_DEPTH = 64
"""Deepest nesting of lists and mappings."""


LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader where PyYAML was built with it (pure Python is ~50x slower)."""


class LimitError(yaml.YAMLError):
    """A document past one of this module's bounds, and where (as PyYAML's errors say it)."""

    def __init__(self, problem: str, problem_mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = problem_mark


class DuplicateKeyError(LimitError):
    """A mapping that names one key twice (YAML forbids it; PyYAML keeps the last silently)."""


def measure(text: str) -> None:
    """Walk the document's parse events (nothing is built) and raise LimitError where it passes
    a bound.

    ``total`` counts the values of the document with aliases expanded: a scalar, a list or a
    mapping adds one, an alias adds the expanded size of what it names. Each open list or mapping
    keeps its own expanded size, added to its parent's when it closes; an anchor keeps the size
    of its value once that value is closed, and an alias to a value still open is a cycle.
    """
    total = 0
    open_sizes: list[int] = []
    open_anchors: list[str | None] = []
    open_keys: list[set[str] | None] = []  # per open mapping, its keys so far (None: a list)
    at_key: list[bool] = []  # per open collection: is the next value in it a mapping's key?
    sizes: dict[str, int] = {}

    def node(event: Any) -> None:
        """A value begins in the innermost open collection: a mapping's key is checked."""
        if not open_keys or open_keys[-1] is None:
            return
        if at_key[-1] and isinstance(event, yaml.ScalarEvent) and event.value != "<<":
            if event.value in open_keys[-1]:
                raise DuplicateKeyError(
                    f"key {clip(event.value, 80)!r} appears twice in one mapping (the second "
                    "would silently replace the first)",
                    event.start_mark,
                )
            open_keys[-1].add(event.value)
        at_key[-1] = not at_key[-1]

    def grow(count: int, event: yaml.Event) -> None:
        nonlocal total
        total += count
        if total > MAX_NODES:
            raise LimitError(
                f"the document expands to more than {MAX_NODES:,} values "
                "(an alias counts as a copy of what it names)",
                event.start_mark,
            )

    def close(size: int, anchor: str | None) -> None:
        if anchor is not None:
            sizes[anchor] = size
        if open_sizes:
            open_sizes[-1] += size

    for event in yaml.parse(text, Loader=LOADER):
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()
        elif isinstance(event, yaml.ScalarEvent):
            node(event)
            grow(1, event)
            close(1, event.anchor)
        elif isinstance(event, yaml.CollectionStartEvent):
            if len(open_sizes) >= MAX_DEPTH:
                raise LimitError(f"nested deeper than {MAX_DEPTH} levels", event.start_mark)
            node(event)
            grow(1, event)
            open_sizes.append(1)
            open_anchors.append(event.anchor)
            open_keys.append(set() if isinstance(event, yaml.MappingStartEvent) else None)
            at_key.append(True)
        elif isinstance(event, yaml.CollectionEndEvent):
            open_keys.pop()
            at_key.pop()
            close(open_sizes.pop(), open_anchors.pop())
        elif isinstance(event, yaml.AliasEvent):
            node(event)
            if event.anchor in open_anchors:
                raise LimitError(
                    f"alias *{event.anchor} refers to a value that contains it (a cycle)",
                    event.start_mark,
                )
            size = sizes.get(event.anchor or "", 0)  # an undefined alias: the loader says so
            grow(size, event)
            close(size, None)


def load_yaml(path: Path, name: str | None = None) -> Any:
    """The document in ``path``, or CatalogError naming the file (``name``: how to show it)
    and what is wrong with it: unreadable, too large, malformed or past a bound."""
    shown = name or str(path)

    def problem(where: str, message: str) -> CatalogError:
        return CatalogError([Problem(shown, where, message)])

    if not path.is_file():  # a folder, a FIFO (would block), /dev/zero behind a symlink
        raise problem("", "not a regular file")
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_BYTES + 1)
    except OSError as err:
        raise problem("", f"cannot read file: {err.strerror or err}") from None
    if len(raw) > MAX_BYTES:
        raise problem("", f"file is larger than the {MAX_BYTES:,}-byte limit for a spec file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise problem("", f"not UTF-8 text (byte {err.start})") from None
    try:
        measure(text)  # before anything is built from it
        data = yaml.load(text, Loader=LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem_text, context = getattr(err, "problem", None), getattr(err, "context", None)
        reason = ": ".join(filter(None, (context, problem_text))) or str(err)
        if (
            mark is not None
            and text.splitlines()[mark.line : mark.line + 1]
            and "\t" in (text.splitlines()[mark.line][: mark.column + 1])
        ):
            reason += " (a tab: YAML indents with spaces only)"
        past = isinstance(err, LimitError) and not isinstance(err, DuplicateKeyError)
        kind = "YAML past a limit" if past else "malformed YAML"
        raise problem(where, f"{kind}: {clip(reason)}") from None
    except ValueError as err:  # a value PyYAML cannot convert, e.g. an integer of 5,000 digits
        raise problem("", f"malformed YAML: {clip(str(err))}") from None
    found = control_character(data)
    if found is not None:
        where, char = found
        raise problem(
            where,
            f"holds the control character {char!r}; spec text may hold tabs and line breaks, "
            "nothing that could drive a terminal",
        )
    return data


CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""Control characters other than tab and line feed (C0, DEL and C1): in a description they
would be printed to a terminal as they are, to set its title, clear it, or hide text."""


def control_character(data: Any) -> tuple[str, str] | None:
    """The first string or key in ``data`` holding a :data:`CONTROL` character: its dotted
    path and the character; None when there is none."""
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            found = CONTROL.search(item)
            if found:
                return where, found.group()
        elif isinstance(item, dict | list):
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, inner in pairs:
                inside = f"{where}.{key}" if where else str(key)
                found = CONTROL.search(str(key))
                if found:
                    return inside, found.group()
                stack.append((inner, inside))
    return None
