"""Benchmark: retrieval quality by mode, index and search throughput, memory search at 10k.

1. On the shipped corpora and the labelled queries in bench/retrieval_queries.json (written for
   this project): hit@1 and hit@3 for dense (MiniLM cosine), bm25 and hybrid (reciprocal rank
   fusion). This is what decides the default mode.
2. A corpus of generated passages (fixed seed): chunks per second indexed, queries per second
   and p95 latency of the default (dense) search.
3. Shared memory with 10,000 records: search latency (p50, p95), against a pure NumPy scan of the
   same vectors as the baseline.

Run: `make bench` (or `python bench/bench_retrieval.py --passages 3000 --records 10000`).
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from orchestrator.memory.corpus import Corpora
from orchestrator.memory.embeddings import default_embedder
from orchestrator.memory.store import SqlStore
from orchestrator.storage.database import Database

ROOT = Path(__file__).resolve().parent.parent
WORDS = [
    "policy",
    "claim",
    "roof",
    "storm",
    "water",
    "pipe",
    "invoice",
    "refund",
    "login",
    "export",
    "currency",
    "deductible",
    "garage",
    "window",
    "theft",
    "police",
    "hotel",
    "repair",
    "quote",
    "adjuster",
    "payment",
    "card",
    "session",
    "token",
    "report",
    "customer",
    "plan",
    "upgrade",
    "cancel",
    "annual",
    "monthly",
    "jewellery",
    "mould",
    "damp",
    "fence",
    "hedge",
    "flood",
    "fire",
    "smoke",
]


def quality(corpora: Corpora) -> None:
    queries = json.loads((ROOT / "bench" / "retrieval_queries.json").read_text())
    print(f"retrieval quality on {len(queries)} labelled queries over the shipped corpora")
    for mode in ("dense", "bm25", "hybrid"):
        hit1 = hit3 = 0
        for corpus, query, expected in queries:
            passages = corpora.search(corpus, query, 3, mode)  # type: ignore[arg-type]
            ranks = [i for i, p in enumerate(passages) if expected in p.text]
            hit1 += bool(ranks and ranks[0] == 0)
            hit3 += bool(ranks)
        print(f"  {mode:<7} hit@1 {hit1}/{len(queries)}   hit@3 {hit3}/{len(queries)}")


def throughput(db: Database, passages: int) -> None:
    rng = random.Random(7)
    root = Path(tempfile.mkdtemp(prefix="cadre-corpus-"))
    folder = root / "generated"
    folder.mkdir()
    per_file = 10
    for f in range(passages // per_file):
        paragraphs = [" ".join(rng.choice(WORDS) for _ in range(60)) for _ in range(per_file)]
        (folder / f"doc{f:04d}.txt").write_text("\n\n".join(paragraphs))
    corpora = Corpora(root, db)
    report = corpora.index("generated")
    latencies = []
    for _ in range(50):
        query = " ".join(rng.choice(WORDS) for _ in range(6))
        started = time.perf_counter()
        corpora.search("generated", query, 5)
        latencies.append(time.perf_counter() - started)
    p95 = statistics.quantiles(latencies, n=100)[94]
    print(f"generated corpus: {report.chunks} chunks from {passages // per_file} files")
    print(f"  index: {report.chunks / report.seconds:8.1f} chunks/s ({report.seconds:.1f} s)")
    print(
        f"  dense search: {len(latencies) / sum(latencies):8.1f} queries/s, p95 {p95 * 1000:.1f} ms"
    )
    shutil.rmtree(root)


def memory(db: Database, records: int) -> None:
    rng = random.Random(11)
    store = SqlStore(db)
    namespace = ("tenant", "bench", "global", "semantic")
    items = {
        f"r{i}": {"text": " ".join(rng.choice(WORDS) for _ in range(20))} for i in range(records)
    }
    started = time.perf_counter()
    store.put_many(namespace, items)
    loaded = time.perf_counter() - started
    queries = [" ".join(rng.choice(WORDS) for _ in range(6)) for _ in range(30)]
    latencies = []
    for query in queries:
        started = time.perf_counter()
        store.search(("tenant", "bench"), query=query, limit=5)
        latencies.append(time.perf_counter() - started)
    matrix = default_embedder().embed(list(v["text"] for v in items.values()))
    scans = []
    for query in queries:
        started = time.perf_counter()
        vector = default_embedder().embed([query])[0]
        np.argsort(-(matrix @ vector))[:5]
        scans.append(time.perf_counter() - started)
    p50, p95 = statistics.median(latencies), statistics.quantiles(latencies, n=100)[94]
    base = statistics.median(scans)
    print(f"shared memory with {records} records (put_many {records / loaded:.0f} records/s)")
    print(f"  search: p50 {p50 * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms")
    print(f"  baseline (embed query + NumPy scan in memory): p50 {base * 1000:.1f} ms")
    print(f"  ratio store/baseline: x{p50 / base:.1f}")


def main(passages: int, records: int) -> None:
    db = Database(f"sqlite:///{tempfile.mkdtemp(prefix='cadre-bench-')}/bench.db")
    quality(Corpora(ROOT / "agents" / "corpora", db))
    throughput(db, passages)
    memory(db, records)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--passages", type=int, default=3000)
    parser.add_argument("--records", type=int, default=10000)
    args = parser.parse_args()
    main(args.passages, args.records)
