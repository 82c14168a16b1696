"""Training and held-out data for a specialist: JSONL, one example per line.

A line is ``{"input": "<what the specialist is asked>", "output": {<the answer>}}``. Everything is
checked before any training starts, and every bad line is reported at once with its number and
why: not JSON, not an object, a missing or empty ``input``, an ``output`` that does not fit the
specialist's schema (a label outside the enum, a missing field), a repeated input. Too few good
examples is an error too.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema

from orchestrator.catalog.specs import SpecialistSpec
from orchestrator.errors import DataError, InputError, schema_misfit, unfit_json


@dataclass(frozen=True)
class Labeled:
    """One checked example and the line it came from."""

    input: str
    output: dict[str, Any]
    line: int


MAX_DATA_BYTES = 100_000_000
"""Largest examples file read (the shipped ones are under 100 KB): it is read whole."""


def data_hash(path: Path) -> str:
    """SHA-256 of the file's bytes: which data an adapter was trained on."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def load_examples(path: Path, spec: SpecialistSpec, minimum: int | None = None) -> list[Labeled]:
    """The file's examples, all checked against ``spec``; DataError lists every problem."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"no data file {path}")
    if not path.is_file():
        raise InputError(f"{path} is not a data file (a folder or a device); give a .jsonl file")
    if path.stat().st_size > MAX_DATA_BYTES:
        raise InputError(
            f"{path} is larger than {MAX_DATA_BYTES:,} bytes; a specialist's examples are far "
            "fewer: split the file, or keep the examples that teach the job"
        )
    validator = jsonschema.Draft202012Validator(spec.output_schema)
    problems: list[str] = []
    good: list[Labeled] = []
    seen: dict[str, int] = {}
    data = path.read_bytes().removeprefix(b"\xef\xbb\xbf")  # a byte-order mark is no example
    for number, line in enumerate(data.splitlines(), start=1):
        where = f"{path.name}:{number}"
        try:
            raw = line.decode("utf-8")
        except UnicodeDecodeError as err:
            problems.append(f"{where}: not UTF-8 text (byte {err.start + 1} of the line)")
            continue
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except json.JSONDecodeError as err:
            problems.append(f"{where}: not JSON ({err.msg}, column {err.colno})")
            continue
        except RecursionError:
            problems.append(f"{where}: nested deeper than JSON can be read here")
            continue
        fault = unfit_json(row)
        if fault is not None:  # too deep, a number outside 64 bits, NaN, half a character
            problems.append(f"{where}: {fault[0] or 'the line'} {fault[1]}")
            continue
        if not isinstance(row, dict):
            problems.append(f"{where}: a line must be an object with input and output")
            continue
        extra = sorted(set(row) - {"input", "output"})
        if extra:
            problems.append(f"{where}: unknown field {', '.join(extra)} (only input and output)")
        text, output = row.get("input"), row.get("output")
        if not isinstance(text, str) or not text.strip():
            problems.append(f"{where}: input must be a non-empty string")
            continue
        if not isinstance(output, dict):
            problems.append(f"{where}: output must be an object (the specialist's answer)")
            continue
        misfit = schema_misfit(validator, output, root="output", sep=".")
        if misfit is not None:
            problems.append(f"{where}: {misfit[0]} does not fit {spec.name}'s schema: {misfit[1]}")
            continue
        if text in seen:
            problems.append(f"{where}: the same input as line {seen[text]}")
            continue
        seen[text] = number
        good.append(Labeled(text, output, number))
    needed = spec.evaluation.min_examples if minimum is None else minimum
    if not problems and len(good) < needed:
        problems.append(f"{path.name}: {len(good)} examples; {spec.name} needs at least {needed}")
    if problems:
        raise DataError(path, problems)
    return good


def as_served(spec: SpecialistSpec, inputs: Sequence[str], corpora: Path) -> list[str]:
    """The inputs as the specialist is asked them when it serves: with its corpus's passages
    appended, as a workflow node and `cadre ask` do (unchanged when it has no corpus). Training
    and eval use this, so an adapter learns, and is scored, on what it will really be given."""
    if not spec.corpus:
        return list(inputs)
    from orchestrator.memory.corpus import Corpora, retrieve_into
    from orchestrator.storage.database import Database

    index = Corpora(corpora, Database())
    corpus = spec.corpus

    async def go() -> list[str]:
        return [await retrieve_into(index, corpus, text) for text in inputs]

    return asyncio.run(go())
