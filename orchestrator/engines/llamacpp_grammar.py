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
"""

from __future__ import annotations

import ctypes
import weakref
from typing import Any

import llama_cpp
import numpy as np
from llama_cpp import Llama

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
