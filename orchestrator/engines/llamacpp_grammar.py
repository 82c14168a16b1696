"""llama.cpp's constrained decoding: the grammar made from an output schema, and asked about the
chosen token first.

**The grammar.** :func:`schema_grammar` turns an output schema into a GBNF grammar with
llama-cpp-python's converter, and fixes what that converter gets wrong for llama.cpp:

- A ``pattern``'s escapes were copied into the grammar as they are, and llama.cpp's grammars know
  none of ``\\d``, ``\\w``, ``\\s`` or ``\\.``: the grammar did not parse, and the null sampler
  crashed the model host at every call. Patterns are rewritten first (:func:`portable_pattern`).
- Counts (``maxLength``, ``maxItems``, a pattern's ``{m,n}``) were written as nested optional
  groups, whose depth crashed llama.cpp's parser (``maxItems: 100000``); they are written in
  llama.cpp's own ``{m,n}`` syntax.
- A schema the converter cannot handle (``not``, ``if``) silently became "any JSON"; it is an
  error now, as is a grammar llama.cpp still refuses, naming the schema's patterns.

**The sampler.** llama-cpp-python puts the grammar inside its sampler chain, so at every token
the grammar is matched against the whole vocabulary (49,152 candidates for SmolLM2) before one is
chosen: 37% of a ``cadre eval``'s time, beside 57% for the decode itself. llama.cpp's own sampler
(``common/sampling.cpp``) samples without the grammar, asks the grammar about the one token
chosen, and matches the whole vocabulary only when that token is refused, then samples again from
what the grammar allows. Greedily, the answer is the same: the best token the grammar allows. With
a temperature, a refused draw is redrawn from the allowed tokens, as llama.cpp does; top-k and
top-p then cut the whole vocabulary for the first draw rather than the allowed tokens, so the
distribution can differ slightly from llama-cpp-python's.

:class:`GrammarLastLlama` is llama-cpp-python's ``Llama`` with that sampler; everything else is
llama-cpp-python's. This module imports ``llama_cpp``, so the engine imports it only when it loads
a model.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import threading
import weakref
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama, llama_grammar
from llama_cpp.llama_grammar import LlamaGrammar

TOKEN_DATA = np.dtype([("id", np.int32), ("logit", np.float32), ("p", np.float32)], align=True)
"""llama.cpp's ``llama_token_data``, as a numpy record."""


class GrammarLastSampler:
    """A sampler chain without the grammar, and the grammar beside it; see the module docstring.

    It stands where llama-cpp-python keeps its ``LlamaSampler`` (``Llama._sampler``), which the
    ``Llama`` only asks to ``sample``.
    """

    def __init__(self, chain: Any, grammar: Any, n_vocab: int) -> None:
        self.chain = chain
        """llama-cpp-python's ``LlamaSampler``: penalties, then greedy or the random draw."""
        self.grammar = grammar
        """The grammar's own llama.cpp sampler, freed with this object."""
        weakref.finalize(self, llama_cpp.llama_sampler_free, grammar)
        self._candidates = np.empty(n_vocab, dtype=TOKEN_DATA)
        self._ids = np.arange(n_vocab, dtype=np.int32)
        self._one = np.empty(1, dtype=TOKEN_DATA)
        self.checked = 0
        """Tokens the grammar allowed at the first ask."""
        self.refused = 0
        """Tokens the grammar refused, so that the whole vocabulary was matched."""

    def sample(self, ctx: Any, idx: int = -1) -> int:
        """The next token from the logits at ``idx``, accepted by the chain and the grammar."""
        logits = np.ctypeslib.as_array(
            llama_cpp.llama_get_logits_ith(ctx.ctx, idx), shape=(len(self._ids),)
        )
        token = self._choose(self.chain.sampler, logits)
        self._one[0] = (token, 0.0, 0.0)
        llama_cpp.llama_sampler_apply(self.grammar, _array(self._one))
        if np.isneginf(self._one["logit"][0]):
            self.refused += 1
            token = self._choose(self.grammar, logits, then=self.chain.sampler)
        else:
            self.checked += 1
        llama_cpp.llama_sampler_accept(self.chain.sampler, token)
        llama_cpp.llama_sampler_accept(self.grammar, token)
        return token

    def _choose(self, first: Any, logits: Any, then: Any = None) -> int:
        """Apply ``first`` (and ``then``) to every token's logit; the token selected."""
        candidates = self._candidates
        candidates["id"] = self._ids
        candidates["logit"] = logits
        candidates["p"] = 0.0
        array = _array(candidates)
        llama_cpp.llama_sampler_apply(first, array)
        if then is not None:
            llama_cpp.llama_sampler_apply(then, array)
        chosen = array.contents
        return int(chosen.data[chosen.selected].id)


def _array(records: Any) -> Any:
    """A ``llama_token_data_array`` over ``records`` (no copy), unsorted, nothing selected."""
    return ctypes.pointer(
        llama_cpp.llama_token_data_array(
            data=records.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            size=len(records),
            selected=-1,
            sorted=False,
        )
    )


class GrammarLastLlama(Llama):
    """``Llama`` whose constrained sampling asks the grammar about the chosen token first."""

    def _init_sampler(self, *args: Any, **kwargs: Any) -> Any:
        grammar = kwargs.pop("grammar", None)  # llama-cpp-python passes every setting by name
        chain = super()._init_sampler(*args, **kwargs)
        if grammar is None:
            return chain
        handle = llama_cpp.llama_sampler_init_grammar(
            self._model.vocab, grammar._grammar.encode(), grammar._root.encode()
        )
        if not handle:
            raise ValueError("llama.cpp could not compile the grammar")
        return GrammarLastSampler(chain, handle, self._n_vocab)


SHORTHANDS = {"d": "0-9", "w": "0-9A-Za-z_", "s": " \\t\\n\\r\\x0b\\x0c"}
"""What a regex's ``\\d``, ``\\w`` and ``\\s`` stand for, as the inside of a grammar's class."""


class SchemaGrammarError(ValueError):
    """An output schema llama.cpp's grammars cannot express; the message says what."""


RELAXED_BOUND = 16
"""When llama.cpp refuses a grammar with the schema's exact bounds (too many rules repeated too
many times), bounds above this are left to the check of the answer against the schema."""

_converting = threading.Lock()
"""The converter's repetition is swapped for the length of one conversion."""


def schema_grammar(schema: dict[str, Any], model: Llama) -> LlamaGrammar:
    """The grammar of answers that fit ``schema``, checked to compile on ``model``. If llama.cpp
    refuses the grammar with the schema's exact counts (too many rules repeated too many times),
    it is made again with counts above :data:`RELAXED_BOUND` left open: the answer is checked
    against the whole schema after it is generated either way (``parse_answer``)."""
    patterns = sorted(_patterns(schema))
    portable = json.dumps(_portable(schema))
    for cap in (None, RELAXED_BOUND):
        with _converting:
            llama_grammar._build_repetition = functools.partial(_repetition, cap=cap)
            try:
                grammar = LlamaGrammar.from_json_schema(portable, verbose=False)
            except Exception as err:  # the converter asserts on what it does not support
                raise SchemaGrammarError(
                    f"llama-cpp-python cannot turn it into a grammar ({err}){_naming(patterns)}"
                ) from None
            finally:
                llama_grammar._build_repetition = _CONVERTERS_OWN
        handle = _quietly(
            functools.partial(
                llama_cpp.llama_sampler_init_grammar,
                model._model.vocab,
                grammar._grammar.encode(),
                grammar._root.encode(),
            )
        )
        if handle:
            llama_cpp.llama_sampler_free(handle)
            return grammar
    raise SchemaGrammarError(
        "llama.cpp cannot parse the grammar made from it (a pattern with a construct its "
        f"grammars lack, such as \\b, a lookaround or a backreference?){_naming(patterns)}"
    )


_CONVERTERS_OWN = llama_grammar._build_repetition


def _repetition(
    item: str,
    min_items: int,
    max_items: int | None,
    separator_rule: str | None = None,
    item_rule_is_literal: bool = False,
    *,
    cap: int | None,
) -> str:
    """``item`` repeated ``min_items`` to ``max_items`` times (None: no limit), separated by
    ``separator_rule``, in llama.cpp's ``{m,n}`` syntax; counts above ``cap`` left open."""
    low = min_items if cap is None else min(min_items, cap)
    high = max_items if cap is None or max_items is None or max_items <= cap else None
    if high == 0:
        return '""'
    if not separator_rule:
        return f"({item}){_times(low, high)}"
    if high == 1:
        return item if low >= 1 else f"({item})?"
    rest = f"({separator_rule} {item}){_times(max(0, low - 1), None if high is None else high - 1)}"
    return f"{item} {rest}" if low >= 1 else f"({item} {rest})?"


def _times(low: int, high: int | None) -> str:
    if high is None:
        return {0: "*", 1: "+"}.get(low, f"{{{low},}}")
    if (low, high) == (0, 1):
        return "?"
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def portable_pattern(pattern: str) -> str:
    """``pattern`` with the escapes llama.cpp's grammars lack spelled out: ``\\d``, ``\\w``,
    ``\\s`` (and ``\\D``, ``\\W``, ``\\S`` outside a class) as classes, an escaped punctuation
    mark as its ``\\x`` code, and ``(?:`` as ``(``. Other escapes are left as they are."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        c = pattern[i]
        if c == "\\" and i + 1 < len(pattern):
            n = pattern[i + 1]
            i += 2
            body = SHORTHANDS.get(n.lower())
            if body is not None and in_class:
                out.append(body if n.islower() else "\\" + n)  # \D in a class: no way to say it
            elif body is not None:
                out.append(f"[{'' if n.islower() else '^'}{body}]")
            elif n.isascii() and not n.isalnum() and n != "\\":
                code = f"\\x{ord(n):02x}"
                out.append(code if in_class else f"[{code}]")
            else:
                out.append("\\" + n)
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":  # a negated class: its ^ is not a character
                out.append("[^")
                i += 2
                continue
        elif pattern.startswith("(?:", i):
            out.append("(")
            i += 3
            continue
        out.append(c)
        i += 1
    return "".join(out)


def _portable(schema: Any) -> Any:
    """``schema`` with every ``pattern`` made portable (:func:`portable_pattern`)."""
    if isinstance(schema, dict):
        return {
            k: portable_pattern(v) if k == "pattern" and isinstance(v, str) else _portable(v)
            for k, v in schema.items()
        }
    if isinstance(schema, list):
        return [_portable(v) for v in schema]
    return schema


def _patterns(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {v for k, v in schema.items() if k == "pattern" and isinstance(v, str)}
        return found.union(*(_patterns(v) for v in schema.values()))
    if isinstance(schema, list):
        return set().union(*(_patterns(v) for v in schema))
    return set()


def _naming(patterns: list[str]) -> str:
    return f"; its patterns: {', '.join(repr(p) for p in patterns)}" if patterns else ""


_stderr = threading.Lock()
"""One redirection of the process's stderr at a time: two at once could restore each other's."""


def _quietly(make: Any) -> Any:
    """``make()`` with llama.cpp's parse errors kept off the process's stderr."""
    with _stderr:
        saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, 2)
            return make()
        finally:
            os.dup2(saved, 2)
            os.close(devnull)
            os.close(saved)
