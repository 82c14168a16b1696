"""The store suite: the persistent memory store on SQLite and Postgres, with real embeddings."""

from __future__ import annotations

import time

import pytest

from orchestrator.memory.embeddings import default_embedder
from orchestrator.memory.store import SqlStore
from orchestrator.storage.database import Database
from tests.memory.fakes import WordEmbedder

ACME = ("tenant", "acme", "global", "semantic")
GLOBEX = ("tenant", "globex", "global", "semantic")


@pytest.fixture
def store(database_url: str) -> SqlStore:
    return SqlStore(Database(database_url), default_embedder())


def test_put_get_update_delete(store: SqlStore) -> None:
    store.put(ACME, "f1", {"text": "Roofs are covered for storm damage.", "source": "policy"})
    item = store.get(ACME, "f1")
    assert item is not None and item.value["source"] == "policy"
    created = item.created_at
    store.put(ACME, "f1", {"text": "Roofs are covered up to 10,000 euros."})
    again = store.get(ACME, "f1")
    assert again is not None and again.value == {"text": "Roofs are covered up to 10,000 euros."}
    assert again.created_at == created and again.updated_at >= created
    store.delete(ACME, "f1")
    assert store.get(ACME, "f1") is None


def test_search_ranks_by_meaning_not_words(store: SqlStore) -> None:
    store.put(ACME, "roof", {"text": "Storm damage to the roof of an insured house is covered."})
    store.put(ACME, "coffee", {"text": "The office coffee machine needs descaling every month."})
    store.put(ACME, "car", {"text": "Windscreen chips are repaired free of charge."})
    found = store.search(("tenant", "acme"), query="wind tore tiles off my home, am I insured?")
    assert [i.key for i in found][0] == "roof"
    assert found[0].score is not None and found[0].score > found[-1].score  # type: ignore[operator]


def test_tenants_never_see_each_other(store: SqlStore) -> None:
    store.put(ACME, "secret", {"text": "Acme's reinsurance treaty renews in March."})
    store.put(GLOBEX, "other", {"text": "Globex pays claims within five days."})
    assert [i.key for i in store.search(("tenant", "globex"), query="reinsurance treaty")] == [
        "other"
    ]
    assert store.get(GLOBEX, "secret") is None
    # A tenant whose name is a prefix of another's sees nothing of it either.
    store.put(("tenant", "acme2", "global", "semantic"), "x", {"text": "Acme2 fact."})
    assert {i.key for i in store.search(("tenant", "acme"))} == {"secret"}


def test_records_expire(store: SqlStore) -> None:
    store.put(ACME, "lasting", {"text": "A lasting fact."})  # first: embedding takes time
    store.put(ACME, "brief", {"text": "A short-lived fact."}, ttl=0.5 / 60)  # half a second
    assert store.get(ACME, "brief") is not None
    time.sleep(0.7)
    assert store.get(ACME, "brief") is None
    assert [i.key for i in store.search(("tenant", "acme"))] == ["lasting"]
    assert store.sweep() == 1


def test_filter_paging_and_namespaces(store: SqlStore) -> None:
    for i in range(5):
        store.put(ACME, f"k{i}", {"text": f"fact {i}", "kind": "even" if i % 2 == 0 else "odd"})
    store.put(GLOBEX, "g", {"text": "globex"})
    evens = store.search(("tenant", "acme"), filter={"kind": "even"}, limit=10)
    assert sorted(i.key for i in evens) == ["k0", "k2", "k4"]
    assert len(store.search(("tenant", "acme"), limit=2, offset=4)) == 1
    assert store.list_namespaces(prefix=("tenant", "globex")) == [GLOBEX]
    assert set(store.list_namespaces(max_depth=2)) == {("tenant", "acme"), ("tenant", "globex")}
    assert store.list_namespaces(suffix=("semantic",)) == sorted([ACME, GLOBEX])


def test_a_table_from_before_ttls_were_kept_gains_the_column(database_url: str) -> None:
    db = Database(database_url)
    blob = "BYTEA" if db.postgres else "BLOB"
    db.execute(
        "CREATE TABLE cadre_store (prefix TEXT NOT NULL, key TEXT NOT NULL, namespace TEXT NOT "
        f"NULL, value TEXT NOT NULL, embedding {blob}, created_at DOUBLE PRECISION NOT NULL, "
        "updated_at DOUBLE PRECISION NOT NULL, expires_at DOUBLE PRECISION, "
        "PRIMARY KEY (prefix, key))"
    )
    db.execute(
        "INSERT INTO cadre_store VALUES (?, ?, ?, ?, NULL, ?, ?, NULL)",
        ("tenant\x1f", "old", '["tenant"]', '{"text": "kept"}', 1.0, 1.0),
    )
    store = SqlStore(db, WordEmbedder())
    assert "ttl" in db.columns("cadre_store")
    old = store.get(("tenant",), "old")
    assert old is not None and old.value == {"text": "kept"}
    store.put(("tenant",), "new", {"text": "brief"}, ttl=0.5 / 60)
    assert store.get(("tenant",), "new") is not None
    SqlStore(db, WordEmbedder())  # opening it again changes nothing
    db.close()
