"""YAML alias bombs: a few hundred bytes that expand to hundreds of millions of values."""

from __future__ import annotations


def alias_chain(indent: str, *, mapping: bool, levels: int = 9, width: int = 9) -> str:
    """YAML lines defining anchors ``a0`` .. ``a{levels}``, each a list of ``width`` copies of
    the one before (``a0``: ``width`` strings), so ``*a{levels}`` is ``width ** (levels + 1)``
    strings once expanded. As mapping entries (``a3: &a3 [...]``) or list items
    (``- &a3 [...]``)."""

    def entry(i: int, items: list[str]) -> str:
        head = f"a{i}: " if mapping else "- "
        return f"{indent}{head}&a{i} [{', '.join(items)}]"

    lines = [entry(0, ["x"] * width)]
    lines += [entry(i, [f"*a{i - 1}"] * width) for i in range(1, levels + 1)]
    return "\n".join(lines)


def defs_bomb(name: str, model: str) -> str:
    """A specialist whose output schema's ``$defs`` is the bomb (not a valid schema: checking
    it walked every expanded value)."""
    return f"""name: {name}
description: an alias bomb under $defs
model: {model}
instructions: Classify.
output_schema:
  type: object
  properties: {{label: {{type: string}}}}
  $defs:
{alias_chain("    ", mapping=True)}
"""


def enum_bomb(name: str, model: str) -> str:
    """A specialist whose schema is valid: the anchors sit under ``examples`` and the label's
    ``enum`` is the last one (``specialists show`` and the prompt expanded it)."""
    return f"""name: {name}
description: an alias bomb as an enum
model: {model}
instructions: Classify.
output_schema:
  type: object
  examples:
{alias_chain("    ", mapping=False)}
  properties:
    label:
      type: string
      enum: *a9
"""


def workflow_bomb(name: str) -> str:
    """A workflow whose input schema holds the bomb."""
    return f"""name: {name}
description: an alias bomb in a workflow
input_schema:
  type: object
  examples:
{alias_chain("    ", mapping=False)}
  properties:
    text:
      type: string
      enum: *a9
start: only
nodes:
  - {{kind: specialist, id: only, specialist: plain, input: "{{text}}", output: answer, next: end}}
"""
