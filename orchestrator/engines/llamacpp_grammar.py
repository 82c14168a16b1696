"""Constrained sampling that checks the grammar on the chosen token first, as llama.cpp does.

llama-cpp-python puts the JSON-Schema grammar inside its sampler chain, so at every token the
grammar is matched against the whole vocabulary (49,152 candidates for SmolLM2) before one is
chosen. That was 37% of a ``cadre eval``'s time, beside 57% for the decode itself.

llama.cpp's own sampler (``common/sampling.cpp``) does it the other way round: it samples without
the grammar, asks the grammar about the one token chosen, and matches the whole vocabulary only
when that token is refused, then samples again from what the grammar allows. The answer is the
same: greedily, the best token the grammar allows; with a temperature, a token the grammar allows,
drawn from the model's distribution over the allowed tokens (a draw that is accepted at once has
exactly that probability, and a refused draw is redrawn from the allowed ones).

:class:`GrammarLastLlama` is llama-cpp-python's ``Llama`` with that sampler; everything else is
llama-cpp-python's. It imports ``llama_cpp``, so the engine imports this module only when it loads
a model.

:func:`schema_grammar` turns an output schema into that grammar. llama-cpp-python's converter
copies a ``pattern``'s escapes into the grammar as they are, and llama.cpp's grammars know none of
``\\d``, ``\\w``, ``\\s`` or ``\\.``: such a grammar did not parse, and the model host crashed
on it (a null sampler). The patterns are first rewritten in what the grammar does know (character
classes, ``\\x`` escapes); a pattern that still cannot be expressed is an error that names it.
"""

from __future__ import annotations

import ctypes
import json
import os
import weakref
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama
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


def schema_grammar(schema: dict[str, Any], model: Llama) -> LlamaGrammar:
    """The grammar of answers that fit ``schema``, checked to compile on ``model``."""
    patterns = sorted(_patterns(schema))
    try:
        grammar = LlamaGrammar.from_json_schema(json.dumps(_portable(schema)), verbose=False)
    except Exception as err:  # the converter asserts on what it does not support
        raise SchemaGrammarError(
            f"llama-cpp-python cannot turn it into a grammar ({err}){_naming(patterns)}"
        ) from None
    handle = _quietly(
        lambda: llama_cpp.llama_sampler_init_grammar(
            model._model.vocab, grammar._grammar.encode(), grammar._root.encode()
        )
    )
    if not handle:
        raise SchemaGrammarError(
            "llama.cpp cannot parse the grammar made from it (a pattern with a construct its "
            f"grammars lack, such as \\b, a lookaround or a backreference?){_naming(patterns)}"
        )
    llama_cpp.llama_sampler_free(handle)
    return grammar


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


def _quietly(make: Any) -> Any:
    """``make()`` with llama.cpp's parse errors kept off the process's stderr."""
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        return make()
    finally:
        os.dup2(saved, 2)
        os.close(devnull)
        os.close(saved)
