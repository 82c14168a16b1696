"""Run inputs given on the command line: one JSON object (``--input``, a file or inline JSON) or a
JSON Lines file of many (``--inputs``), read within bounds.

Whatever a user points these at (nothing, a folder, a binary file, ``/dev/zero``, a file of
gigabytes) ends in an :class:`~orchestrator.errors.InputError` that says what is wrong, never in a
traceback or an unbounded read: at most :data:`MAX_INPUT_BYTES` are read for one input.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from orchestrator.errors import InputError, clip

MAX_INPUT_BYTES = 10 * 1024 * 1024
"""Largest input file (``--input``), or line of an inputs file (``--inputs``), in bytes."""
LIMIT_TEXT = "10 MB"
MAX_INPUT_DEPTH = 100
"""Deepest nesting of lists and objects in an input."""
MAX_SKIP_BYTES = 1024**3
"""How far past an over-long line ``--inputs`` looks for the next line before it gives up."""


def parse_input(value: str, option: str = "--input") -> Any:
    """The JSON value of ``--input``: inline JSON, or the file it names."""
    if not value.strip():
        raise InputError(
            f"{option} is empty: give a JSON file, or inline JSON such as "
            f'{option} \'{{"claim": "..."}}\''
        )
    if value.lstrip().startswith(("{", "[")):
        return decode_json(value, option)
    path = Path(value)
    if path.exists() or path.is_symlink():
        return decode_json(read_input_file(path), str(path))
    try:
        return json.loads(value)  # inline JSON that is not an object: the schema check says so
    except (json.JSONDecodeError, RecursionError):
        raise InputError(f"{option} {value}: no such file (nor is it inline JSON)") from None


def read_input_file(path: Path) -> str:
    """The text of an input file, or InputError: missing, a folder, unreadable, over
    :data:`MAX_INPUT_BYTES` or not UTF-8."""
    with open_input(path) as file:
        raw = file.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise InputError(f"{path} is larger than the {LIMIT_TEXT} limit for an input")
    return decode_text(raw, str(path))


def open_input(path: Path) -> IO[bytes]:
    """``path`` opened for reading bytes, or InputError saying why it cannot be."""
    if path.is_dir():
        raise InputError(f"{path} is a directory; give a JSON file")
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as err:
        raise InputError(f"{path}: cannot read it ({err.strerror or err})") from None


def decode_text(raw: bytes, source: str) -> str:
    """UTF-8 text (a byte-order mark is allowed), or InputError: binary data is not JSON."""
    if b"\x00" in raw:
        raise InputError(f"{source} is a binary file, not UTF-8 JSON")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(
            f"{source} is not UTF-8 JSON (byte {err.start} is not UTF-8; a binary file?)"
        ) from None


def decode_json(text: str, source: str, one_line: bool = False) -> Any:
    """The JSON value of ``text``, or InputError with where it breaks (the column only, for
    ``one_line`` text such as a line of JSON Lines)."""
    too_deep = InputError(f"{source}: JSON nested deeper than {MAX_INPUT_DEPTH} levels")
    try:
        value = json.loads(text, object_pairs_hook=_once_each)
    except _RepeatedKey as err:
        raise InputError(
            f"{source}: the key {clip(str(err), 80)!r} appears twice in one object (JSON keeps "
            "only the last, so the first value would be lost without a word)"
        ) from None
    except json.JSONDecodeError as err:
        at = f"column {err.colno}" if one_line else f"line {err.lineno}, column {err.colno}"
        raise InputError(f"{source} is not JSON ({at}): {err.msg}") from None
    except RecursionError:  # deeper than the interpreter's recursion limit, so past ours too
        raise too_deep from None
    if _deeper_than(value, MAX_INPUT_DEPTH):
        raise too_deep
    return value


class _RepeatedKey(ValueError):
    """A key given twice in one JSON object (its text is the key)."""


def _once_each(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    made: dict[str, Any] = {}
    for key, value in pairs:
        if key in made:
            raise _RepeatedKey(key)
        made[key] = value
    return made


def _deeper_than(value: Any, limit: int) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            if depth > limit:
                return True
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return False


def checked_input(loaded: Any, workflow: str, value: str) -> tuple[Any, Any]:
    """The workflow and its input (a JSON file or inline JSON), checked against the workflow's
    input schema before anything starts: a bad input creates nothing."""
    spec = loaded.workflow(workflow)
    data = parse_input(value)
    check(spec, data)
    return spec, data


def check(spec: Any, data: Any) -> None:
    """The runner's input check, with a message of bounded length (it may quote the input)."""
    from orchestrator.runs.runner import check_input

    try:
        check_input(spec, data)
    except InputError as err:
        raise InputError(clip(err.message)) from None


@dataclass(frozen=True)
class InputLine:
    """One line of an inputs file: its number and its JSON value, or why it has none."""

    number: int
    data: Any = None
    error: str | None = None


def input_lines(file: IO[bytes], source: str) -> Iterator[InputLine]:
    """Each non-blank line of a JSON Lines file, parsed, one at a time: at most one line
    (:data:`MAX_INPUT_BYTES`) is held. A line that is too long, not UTF-8 or not JSON comes as
    an InputLine with an error, and reading goes on at the next line."""
    number = 0
    while raw := file.readline(MAX_INPUT_BYTES + 1):
        number += 1
        if len(raw) > MAX_INPUT_BYTES and not raw.endswith(b"\n"):
            if not _skip_line(file):
                yield InputLine(
                    number,
                    error=f"longer than the {LIMIT_TEXT} limit for an input, with no end of "
                    f"line in the next {MAX_SKIP_BYTES // 1024**2} MB; stopped reading {source}",
                )
                return
            yield InputLine(number, error=f"longer than the {LIMIT_TEXT} limit for an input")
            continue
        where = f"line {number}"
        try:
            text = decode_text(raw, where)
            if not text.strip():
                continue
            yield InputLine(number, decode_json(text, where, one_line=True))
        except InputError as err:
            yield InputLine(number, error=err.message)


def _skip_line(file: IO[bytes]) -> bool:
    """Read past the rest of an over-long line; False when no end of line came in time."""
    skipped = 0
    while chunk := file.readline(1024 * 1024):
        if chunk.endswith(b"\n"):
            return True
        skipped += len(chunk)
        if skipped > MAX_SKIP_BYTES:
            return False
    return True


def count_lines(path: Path) -> int | None:
    """How many non-blank lines a regular file has (a progress bar's total); None for a pipe or
    a device, which cannot be read twice."""
    if not path.is_file():
        return None
    lines, content = 0, False
    with path.open("rb") as file:
        while part := file.readline(1024 * 1024):  # bounded pieces of a line, never a whole one
            content = content or bool(part.strip())
            if part.endswith(b"\n"):
                lines, content = lines + content, False
    return lines + content
