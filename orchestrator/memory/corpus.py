"""Document corpora: a folder of text and Markdown files that specialists retrieve from.

``index`` chunks every document (paragraphs, packed to about 700 characters, each chunk carrying
its Markdown heading), embeds the chunks and stores them in the run database. It is incremental: a
file whose SHA-256 has not changed is skipped, a removed file's chunks are dropped. ``search`` ranks
chunks by meaning (cosine over MiniLM embeddings, ``dense``, the default), by words (Okapi BM25),
or by both fused with reciprocal rank fusion (``hybrid``). On the shipped corpora and their
labelled queries (``bench/bench_retrieval.py``) hybrid found exactly what dense found (hit@1 12/15,
hit@3 14/15; BM25 alone 9/15 and 13/15) and costs a BM25 pass per query, so dense is the default.
``retrieve_into`` is the one way a specialist's input gets its passages: in a workflow node, in
``cadre ask``, and in the training and eval data of a specialist with a corpus.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import re
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from orchestrator import telemetry
from orchestrator.errors import InputError, NotFoundError
from orchestrator.memory.embeddings import Embedder, default_embedder, from_blob, to_blob
from orchestrator.storage import schema
from orchestrator.storage.database import Database
from orchestrator.telemetry import gen_ai

Mode = Literal["hybrid", "dense", "bm25"]
SUFFIXES = (".md", ".txt")
CHUNK_CHARS = 700
MAX_FILE_BYTES = 5_000_000
"""Largest corpus file indexed (the shipped ones are a few KB); a larger one is skipped, said
so, rather than read whole (a 2 GB file ran the machine out of memory)."""
RRF_K = 60


CHUNK_UPSERT = (
    "INSERT INTO cadre_corpus_chunks (corpus, path, chunk, text, embedding) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (corpus, path, chunk) DO UPDATE SET text = excluded.text, "
    "embedding = excluded.embedding"
)
FILE_UPSERT = (
    "INSERT INTO cadre_corpus_files (corpus, path, sha, indexed_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (corpus, path) DO UPDATE SET sha = excluded.sha, indexed_at = excluded.indexed_at"
)


@dataclass(frozen=True)
class Passage:
    """A retrieved chunk and where it came from (``source`` is ``file#chunk``)."""

    source: str
    text: str
    score: float


@dataclass(frozen=True)
class IndexReport:
    """What an indexing pass did."""

    added: int
    updated: int
    removed: int
    unchanged: int
    chunks: int
    seconds: float
    skipped: tuple[str, ...] = ()
    """Files not indexed, each with why (too large, not UTF-8 text)."""


def chunk_text(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Paragraphs packed into chunks of about ``size`` characters; each chunk starts with the
    Markdown heading it falls under, so a clause keeps its title. A heading with no text under
    it is a chunk of its own (a file of headings only used to index to nothing)."""
    chunks: list[str] = []
    heading, current, bare = "", "", False
    for block in re.split(r"\n\s*\n", text):
        block = block.strip()
        if not block:
            continue
        if block.startswith("#"):
            if current:
                chunks.append(current)
            elif bare and heading:
                chunks.append(heading)
            heading, current = block.splitlines()[0].lstrip("# ").strip(), ""
            rest = "\n".join(block.splitlines()[1:]).strip()
            bare = not rest
            if not rest:
                continue
            block = rest
        bare = False
        for piece in _pieces(block, size):
            if current and len(current) + len(piece) > size:
                chunks.append(current)
                current = ""
            current = (
                f"{current}\n{piece}" if current else (f"{heading}: {piece}" if heading else piece)
            )
    if current:
        chunks.append(current)
    elif bare and heading:
        chunks.append(heading)
    return chunks


def _pieces(block: str, size: int) -> list[str]:
    """A paragraph cut into pieces of at most ``size`` characters, at sentence ends where it
    can, else at spaces, else anywhere (a paragraph of 6,000 characters was one chunk, of which
    the embedder saw only the start)."""
    pieces: list[str] = []
    while len(block) > size:
        window = block[: size + 1]
        cut = max(window.rfind(". "), window.rfind("? "), window.rfind("! "), window.rfind("\n"))
        cut = cut + 1 if cut > size // 3 else window.rfind(" ")
        cut = cut if cut > size // 3 else size
        pieces.append(block[:cut].strip())
        block = block[cut:].strip()
    return [*pieces, block] if block else pieces


def _read_text(path: Path) -> tuple[str | None, str]:
    """A corpus file's text, or None and why it is not indexed: larger than MAX_FILE_BYTES, or
    not UTF-8 text (undecodable, or holding NUL bytes: a binary file)."""
    with path.open("rb") as file:
        raw = file.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        return None, f"larger than {MAX_FILE_BYTES:,} bytes"
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        return None, f"not UTF-8 text (byte {err.start})"
    if "\x00" in text:
        return None, "not text (it holds NUL bytes)"
    return text, ""


def tokenize(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


class Corpora:
    """The corpora of a catalog (``agents/corpora/NAME/``), indexed in the run database."""

    def __init__(self, root: Path, db: Database, embedder: Embedder | None = None) -> None:
        self.root = Path(root)
        self.db = db
        self.embedder = embedder or default_embedder()
        schema.create(db, schema.CORPUS_FILES, schema.CORPUS_CHUNKS)
        self._checked: set[str] = set()

    def folder(self, name: str) -> Path:
        """The corpus's folder: a folder inside ``root``, after symlinks are followed. A name
        that leads anywhere else (``../..``, ``/etc``, a symlink out) is refused."""
        root = self.root.resolve()
        folder = (root / name).resolve()
        if root not in folder.parents:
            raise InputError(
                f"corpus {name!r}: a corpus is a folder inside {self.root}; "
                "this name leads outside it"
            )
        if not folder.is_dir():
            known = (
                sorted(p.name for p in self.root.glob("*") if p.is_dir())
                if self.root.is_dir()
                else []
            )
            raise NotFoundError(
                f"unknown corpus {name!r}: no folder {self.root / name} "
                f"(known: {', '.join(known) or 'none'})"
            )
        return folder

    def canonical(self, name: str) -> str:
        """The corpus's name as its index keeps it: its folder's path inside ``root``
        (``good/../good`` and ``./good`` are ``good``, not corpora of their own)."""
        return self.folder(name).relative_to(self.root.resolve()).as_posix()

    def index(self, name: str) -> IndexReport:
        """Bring the corpus index up to date with its folder (only changed files are embedded)."""
        started = time.perf_counter()
        folder = self.folder(name)
        root = self.root.resolve()
        name = self.canonical(name)
        files = {
            str(p.relative_to(folder)): p
            for p in sorted(folder.rglob("*"))
            # a file linked from outside the corpora is not part of any corpus
            if p.is_file() and p.suffix.lower() in SUFFIXES and root in p.resolve().parents
        }
        known = {
            r["path"]: r["sha"]
            for r in self.db.query(
                "SELECT path, sha FROM cadre_corpus_files WHERE corpus = ?", (name,)
            )
        }
        added = updated = unchanged = chunks = 0
        skipped: list[str] = []
        for rel, path in list(files.items()):
            text, why = _read_text(path)
            if text is None:
                skipped.append(f"{rel}: {why}")
                del files[rel]  # an index of it from before goes, as for a removed file
                continue
            sha = hashlib.sha256(text.encode()).hexdigest()
            if known.get(rel) == sha:
                unchanged += 1
                continue
            pieces = chunk_text(text)
            if not pieces:
                skipped.append(f"{rel}: holds no text to index")
                del files[rel]
                continue
            vectors = self.embedder.embed(pieces)
            # Upserts, then the old version's surplus chunks dropped: two workers indexing a
            # corpus on first use at once both write the same rows, and neither collides.
            self.db.execute_many(
                CHUNK_UPSERT,
                [
                    (name, rel, i, piece, to_blob(vector))
                    for i, (piece, vector) in enumerate(zip(pieces, vectors, strict=True))
                ],
            )
            self.db.execute(
                "DELETE FROM cadre_corpus_chunks WHERE corpus = ? AND path = ? AND chunk >= ?",
                (name, rel, len(pieces)),
            )
            self.db.execute(FILE_UPSERT, (name, rel, sha, time.time()))
            chunks += len(pieces)
            if rel in known:
                updated += 1
            else:
                added += 1
        removed = [rel for rel in known if rel not in files]
        for rel in removed:
            self._drop(name, rel)
        self._checked.add(name)
        return IndexReport(
            added,
            updated,
            len(removed),
            unchanged,
            chunks,
            time.perf_counter() - started,
            tuple(skipped),
        )

    def _drop(self, name: str, rel: str) -> None:
        self.db.execute(
            "DELETE FROM cadre_corpus_chunks WHERE corpus = ? AND path = ?", (name, rel)
        )
        self.db.execute("DELETE FROM cadre_corpus_files WHERE corpus = ? AND path = ?", (name, rel))

    def search(self, name: str, query: str, k: int = 3, mode: Mode = "dense") -> list[Passage]:
        """The ``k`` best chunks for ``query``; the corpus is (re)indexed first if it changed."""
        if not query.strip():
            raise InputError("corpus search: the query is empty")
        name = self.canonical(name)
        if name not in self._checked:
            self.index(name)
        rows = self.db.query(
            "SELECT path, chunk, text, embedding FROM cadre_corpus_chunks WHERE corpus = ? "
            "ORDER BY path, chunk",
            (name,),
        )
        if not rows:
            return []
        rankings: list[list[int]] = []
        scores: dict[int, float] = {}
        if mode in ("dense", "hybrid"):
            matrix = np.stack([from_blob(r["embedding"]) for r in rows])
            similarity = matrix @ self.embedder.embed([query])[0]
            order = [int(i) for i in np.argsort(-similarity)]
            rankings.append(order)
            scores = {i: float(similarity[i]) for i in order}
        if mode in ("bm25", "hybrid"):
            bm25 = _bm25([tokenize(r["text"]) for r in rows], tokenize(query))
            order = sorted(range(len(rows)), key=lambda i: -bm25[i])
            rankings.append(order)
            if mode == "bm25":
                scores = {i: bm25[i] for i in order}
        if mode == "hybrid":
            fused: dict[int, float] = {}
            for ranking in rankings:
                for rank, i in enumerate(ranking):
                    fused[i] = fused.get(i, 0.0) + 1.0 / (RRF_K + rank + 1)
            best = sorted(fused, key=lambda i: -fused[i])[:k]
            scores = fused
        else:
            best = rankings[0][:k]
        return [
            Passage(f"{rows[i]['path']}#{rows[i]['chunk']}", rows[i]["text"], round(scores[i], 4))
            for i in best
        ]


def _bm25(
    documents: list[list[str]], query: list[str], k1: float = 1.5, b: float = 0.75
) -> list[float]:
    """Okapi BM25 score of each document for the query."""
    n = len(documents)
    average = sum(len(d) for d in documents) / max(1, n)
    frequency = Counter(term for d in documents for term in set(d))
    scores = []
    for document in documents:
        counts = Counter(document)
        score = 0.0
        for term in set(query):
            if term not in counts:
                continue
            idf = math.log(1 + (n - frequency[term] + 0.5) / (frequency[term] + 0.5))
            tf = counts[term]
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(document) / average))
        scores.append(score)
    return scores


def cite(passages: list[Passage]) -> str:
    """Passages as a numbered block to add to a prompt, so the answer can cite [n]."""
    lines = [f"[{i}] ({p.source}) {p.text}" for i, p in enumerate(passages, 1)]
    return "Reference passages (cite them as [1], [2], ...):\n" + "\n".join(lines)


RETRIEVED_PASSAGES = 3


async def retrieve_into(corpora: Corpora, corpus: str, text: str, node_id: str = "") -> str:
    """The specialist's input with the corpus passages most relevant to it appended, numbered
    so the answer can cite them; one ``retrieval {corpus}`` span."""
    attributes = {
        gen_ai.OPERATION_NAME: gen_ai.RETRIEVAL,
        "cadre.corpus": corpus,
        "cadre.node": node_id,
    }
    with telemetry.span(f"retrieval {corpus}", attributes) as span:
        passages = await asyncio.to_thread(corpora.search, corpus, text, RETRIEVED_PASSAGES)
        span.set_attribute("cadre.retrieval.sources", [p.source for p in passages])
    return f"{text}\n\n{cite(passages)}" if passages else text
