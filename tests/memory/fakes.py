"""A tiny deterministic embedder for store and corpus tests: no model to load, same vectors on
every run, and texts that share words are close."""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

import numpy as np


class WordEmbedder:
    """Bag of words hashed into ``dims`` buckets, scaled to unit length (the Embedder protocol).
    A text with no words embeds to the zero vector, which scores 0 against everything."""

    def __init__(self, dims: int = 256) -> None:
        self.dims = dims

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = np.zeros((len(texts), self.dims), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"\w+", text.lower()):
                vectors[row, zlib.crc32(word.encode()) % self.dims] += 1.0
            norm = float(np.linalg.norm(vectors[row]))
            if norm:
                vectors[row] /= norm
        return vectors
