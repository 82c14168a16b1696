"""Corpora: chunking, incremental indexing, search by words and by meaning, retrieval into a
specialist's prompt during a run, and the CLI."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import yaml

from orchestrator.errors import InputError, NotFoundError
from orchestrator.memory import corpus as corpus_module
from orchestrator.memory.corpus import Corpora, chunk_text
from orchestrator.memory.embeddings import default_embedder
from orchestrator.runs.runner import Runner
from orchestrator.specialists.local import LocalAsker
from orchestrator.storage.database import Database
from orchestrator.workflow.catalog import load_catalog
from tests.conftest import ROOT, TelemetryHarness
from tests.memory.fakes import WordEmbedder
from tests.workflow.fixtures import scripted_workflow_catalog

CADRE = str(Path(sys.executable).parent / "cadre")


@pytest.fixture
def corpora(tmp_path: Path, database_url: str) -> Corpora:
    root = tmp_path / "corpora"
    shutil.copytree(ROOT / "agents" / "corpora", root)
    return Corpora(root, Database(database_url), default_embedder())


def test_chunks_keep_their_heading_and_stay_small() -> None:
    text = "# Deductible\n\nEvery claim carries 250 euros.\n\n" + "\n\n".join(["word " * 60] * 4)
    chunks = chunk_text(text, size=700)
    assert chunks[0].startswith("Deductible: Every claim carries 250 euros.")
    assert all(c.startswith("Deductible: ") for c in chunks)
    assert all(len(c) < 1100 for c in chunks) and len(chunks) > 1


def test_a_heading_with_no_text_under_it_is_a_chunk_of_its_own() -> None:
    assert chunk_text("# Exclusions") == ["Exclusions"]
    assert chunk_text("# A\n\n# B\n\ntext here") == ["A", "B: text here"]
    assert chunk_text("# A\n\ntext\n\n# B") == ["A: text", "B"]


def test_a_long_paragraph_is_cut_at_sentence_ends() -> None:
    """One paragraph of 6,000 characters was one chunk, of which the embedder saw the start."""
    sentences = [f"Clause {i} says the deductible is {i} euros." for i in range(150)]
    chunks = chunk_text("# Terms\n\n" + " ".join(sentences), size=700)
    assert len(chunks) > 8 and all(len(c) <= 700 + len("Terms: ") for c in chunks)
    assert all(c.endswith("euros.") for c in chunks)  # whole sentences
    assert " ".join(c.removeprefix("Terms: ") for c in chunks) == " ".join(sentences)
    assert [len(c) for c in chunk_text("x" * 1500, size=700)] == [700, 700, 100]  # no spaces


def test_files_too_large_or_not_text_are_skipped_and_said_so(
    corpora: Corpora, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(corpus_module, "MAX_FILE_BYTES", 10_000)
    folder = corpora.folder("home-policy")
    with (folder / "huge.md").open("wb") as huge:
        huge.truncate(2_000_000_000)  # sparse: 2 GB read would have taken the machine's memory
    (folder / "binary.md").write_bytes(bytes(range(256)) * 10)
    (folder / "nul.txt").write_text("half\x00hidden")
    (folder / "blank.md").write_text("\n  \n")
    report = corpora.index("home-policy")
    assert (report.added, report.chunks > 0) == (1, True)  # wording.md alone
    assert sorted(report.skipped) == [
        "binary.md: not UTF-8 text (byte 128)",
        "blank.md: holds no text to index",
        "huge.md: larger than 10,000 bytes",
        "nul.txt: not text (it holds NUL bytes)",
    ]
    assert all(p.source.startswith("wording.md") for p in corpora.search("home-policy", "x", 10))


def test_indexing_is_incremental(corpora: Corpora) -> None:
    first = corpora.index("home-policy")
    assert (first.added, first.updated, first.removed, first.unchanged) == (1, 0, 0, 0)
    assert first.chunks >= 5
    again = corpora.index("home-policy")
    assert (again.added, again.updated, again.unchanged, again.chunks) == (0, 0, 1, 0)
    folder = corpora.folder("home-policy")
    (folder / "endorsement.md").write_text("# Solar panels\n\nSolar panels are covered for hail.\n")
    with open(folder / "wording.md", "a") as wording:
        wording.write("\n# Section 6 - Pets\n\nPet damage is never covered.\n")
    changed = corpora.index("home-policy")
    assert (changed.added, changed.updated, changed.unchanged) == (1, 1, 0)
    (folder / "endorsement.md").unlink()
    assert corpora.index("home-policy").removed == 1
    assert all(p.source.startswith("wording.md") for p in corpora.search("home-policy", "solar", 5))


def test_workers_indexing_one_corpus_at_once_do_not_collide(
    tmp_path: Path, database_url: str
) -> None:
    root = tmp_path / "corpora"
    shutil.copytree(ROOT / "agents" / "corpora", root)
    workers = [Corpora(root, Database(database_url), WordEmbedder()) for _ in range(4)]
    start = threading.Barrier(len(workers))
    errors: list[BaseException] = []

    def index(corpora: Corpora) -> None:
        start.wait()
        try:
            corpora.index("home-policy")
        except BaseException as err:  # collected: a thread's exception would be lost
            errors.append(err)

    threads = [threading.Thread(target=index, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    expected = len(chunk_text((root / "home-policy" / "wording.md").read_text()))
    rows = workers[0].db.query(
        "SELECT chunk FROM cadre_corpus_chunks WHERE corpus = ?", ("home-policy",)
    )
    assert sorted(r["chunk"] for r in rows) == list(range(expected))
    assert workers[0].index("home-policy").unchanged == 1


def test_a_file_that_shrinks_leaves_no_stale_chunks(corpora: Corpora) -> None:
    corpora.index("home-policy")
    (corpora.folder("home-policy") / "wording.md").write_text("# Short\n\nOnly this now.\n")
    assert corpora.index("home-policy").chunks == 1
    assert [p.text for p in corpora.search("home-policy", "only", 5)] == ["Short: Only this now."]


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_search_finds_the_clause(corpora: Corpora, mode: str) -> None:
    passages = corpora.search(
        "home-policy", "what deductible applies to a burst water pipe?", 3, mode
    )  # type: ignore[arg-type]
    assert any("deductible is 500 euros" in p.text for p in passages), [p.source for p in passages]
    assert all(p.source.startswith("wording.md#") for p in passages)


def test_search_errors(corpora: Corpora) -> None:
    with pytest.raises(
        NotFoundError, match="unknown corpus 'policies'.*known: home-policy, product-faq"
    ):
        corpora.search("policies", "x")
    with pytest.raises(InputError, match="query is empty"):
        corpora.search("home-policy", "  ")


def test_a_specialist_with_a_corpus_gets_the_passages_in_its_prompt(
    tmp_path: Path, telemetry_session: TelemetryHarness
) -> None:
    agents = scripted_workflow_catalog(tmp_path, amount=300)
    shutil.copytree(ROOT / "agents" / "corpora", agents / "corpora")
    spec_file = agents / "specialists" / "decider.yaml"
    spec = yaml.safe_load(spec_file.read_text())
    spec["corpus"] = "home-policy"
    spec_file.write_text(yaml.safe_dump(spec))
    model_file = next((agents / "models").glob("*.yaml"))
    model = yaml.safe_load(model_file.read_text())
    model["engine_options"]["rules"].insert(
        0, {"tag": "decider", "contains": "Reference passages", "reply": '{"decision": "deny"}'}
    )
    model_file.write_text(yaml.safe_dump(model))
    catalog = load_catalog(agents)
    pool = LocalAsker(catalog)

    async def go() -> object:
        async with Runner(
            catalog, database_url=f"sqlite:///{tmp_path / 'r.db'}", asker=pool
        ) as runner:
            return await runner.start("claim", {"claim": "small dent"})

    record = asyncio.run(go())
    asyncio.run(pool.aclose())
    assert record.output["decision"] == {"decision": "deny"}, (
        "the scripted decider saw the passages"
    )  # type: ignore[attr-defined]
    retrievals = [
        s
        for s in telemetry_session.spans.get_finished_spans()
        if s.name == "retrieval home-policy" and (s.attributes or {}).get("cadre.node") == "decide"
    ]
    assert retrievals and len(retrievals[-1].attributes["cadre.retrieval.sources"]) == 3


def test_corpus_cli(tmp_path: Path) -> None:
    env = {**os.environ, "CADRE_DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}

    def cadre(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CADRE, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    indexed = cadre("corpus", "index", "product-faq")
    assert indexed.returncode == 0, indexed.stderr
    assert "product-faq: 1 added" in indexed.stdout and "Loading" not in indexed.stderr
    assert "1 unchanged files" in cadre("corpus", "index", "product-faq").stdout
    found = cadre("corpus", "search", "product-faq", "charged twice on my card", "--k", "1")
    assert found.returncode == 0 and "[1] faq.md#" in found.stdout and "refunded" in found.stdout
    unknown = cadre("corpus", "search", "faq", "x")
    assert unknown.returncode == 2 and "unknown corpus 'faq'" in unknown.stderr
    bad = cadre("corpus", "search", "product-faq", "x", "--mode", "fuzzy")
    assert bad.returncode == 2 and "use dense, bm25 or hybrid" in bad.stderr


def test_one_folder_is_one_corpus_however_it_is_named(tmp_path: Path) -> None:
    root = tmp_path / "corpora"
    shutil.copytree(ROOT / "agents" / "corpora", root)
    corpora = Corpora(root, Database(f"sqlite:///{tmp_path / 'c.db'}"), WordEmbedder())
    assert corpora.index("home-policy").added == 1
    for alias in ("home-policy/../home-policy", "./home-policy", "home-policy/"):
        assert corpora.canonical(alias) == "home-policy"
        assert corpora.index(alias).unchanged == 1  # the same index, not a second one
    names = corpora.db.query("SELECT DISTINCT corpus FROM cadre_corpus_files")
    assert [r["corpus"] for r in names] == ["home-policy"]
