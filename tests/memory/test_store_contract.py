"""The store contract: what LangGraph's own stores promise (their store tests, ported by
expectation), held against SqlStore on SQLite and on Postgres."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from langgraph.store.base import GetOp, Item, ListNamespacesOp, MatchCondition, PutOp, SearchOp

from orchestrator.errors import InputError
from orchestrator.memory.store import SqlStore
from orchestrator.storage.database import Database
from tests.memory.fakes import WordEmbedder


@pytest.fixture
def store(database_url: str) -> Iterator[SqlStore]:
    db = Database(database_url)
    yield SqlStore(db, WordEmbedder())
    db.close()


def keys(items: list[Any]) -> list[str]:
    return [item.key for item in items]


# -- put, get, delete ------------------------------------------------------------------------


def test_put_get_delete(store: SqlStore) -> None:
    store.put(("users", "alice"), "prefs", {"theme": "dark", "langs": ["en", "fr"]})
    item = store.get(("users", "alice"), "prefs")
    assert item is not None
    assert (item.namespace, item.key) == (("users", "alice"), "prefs")
    assert item.value == {"theme": "dark", "langs": ["en", "fr"]}
    assert store.get(("users", "bob"), "prefs") is None
    assert store.get(("users", "alice"), "other") is None
    store.delete(("users", "alice"), "prefs")
    assert store.get(("users", "alice"), "prefs") is None
    store.delete(("users", "alice"), "prefs")  # deleting what is gone is no error


def test_overwrite_keeps_created_at_and_bumps_updated_at(store: SqlStore) -> None:
    store.put(("docs",), "d", {"v": 1})
    first = store.get(("docs",), "d")
    time.sleep(0.02)
    store.put(("docs",), "d", {"v": 2})
    second = store.get(("docs",), "d")
    assert first is not None and second is not None
    assert second.value == {"v": 2}
    assert second.created_at == first.created_at
    assert second.updated_at > first.updated_at


def test_batch_answers_each_op_in_order(store: SqlStore) -> None:
    store.put(("test", "foo"), "key1", {"data": "value1"})
    store.put(("test", "bar"), "key2", {"data": "value2"})
    results = store.batch(
        [
            GetOp(("test", "foo"), "key1"),
            PutOp(("test", "bar"), "key3", {"data": "value3"}),
            SearchOp(("test",), filter={"data": "value1"}),
            ListNamespacesOp(limit=10),
            GetOp(("test",), "missing"),
        ]
    )
    assert isinstance(results[0], Item) and results[0].value == {"data": "value1"}
    assert results[1] is None
    assert isinstance(results[2], list) and keys(results[2]) == ["key1"]
    assert results[3] == [("test", "bar"), ("test", "foo")]
    assert results[4] is None
    assert store.get(("test", "bar"), "key3") is not None


def test_async_api(store: SqlStore) -> None:
    async def go() -> tuple[Any, Any]:
        await store.aput(("a",), "k", {"text": "hello world"})
        return await store.aget(("a",), "k"), await store.asearch(("a",), query="hello")

    item, found = asyncio.run(go())
    assert item is not None and item.value == {"text": "hello world"}
    assert keys(found) == ["k"] and found[0].score is not None


# -- concurrency -----------------------------------------------------------------------------


def test_concurrent_puts_to_one_key_never_fail_and_the_last_wins(database_url: str) -> None:
    writers, rounds = 4, 25
    stores = [SqlStore(Database(database_url), WordEmbedder()) for _ in range(writers)]
    start = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        start.wait()
        try:
            for i in range(rounds):
                stores[n].put(("race",), "key", {"writer": n, "round": i})
        except BaseException as err:  # collected: a thread's exception would be lost
            errors.append(err)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    item = stores[0].get(("race",), "key")
    assert item is not None
    assert item.value in [{"writer": n, "round": rounds - 1} for n in range(writers)]
    assert item.created_at < item.updated_at
    stores[1].put(("race",), "key", {"writer": "last"})
    again = stores[2].get(("race",), "key")
    assert again is not None and again.value == {"writer": "last"}
    assert again.created_at == item.created_at
    assert len(stores[3].search(("race",))) == 1
    for s in stores:
        s.db.close()


# -- search scope ----------------------------------------------------------------------------


def test_search_scope_stops_at_namespace_boundaries(store: SqlStore) -> None:
    for namespace in [("foo",), ("foo", "child"), ("foo", "child", "deep"), ("foobar",), ("fo",)]:
        store.put(namespace, "k", {"v": 1})

    def scope(prefix: tuple[str, ...]) -> set[tuple[str, ...]]:
        return {item.namespace for item in store.search(prefix, limit=100)}

    assert scope(("foo",)) == {("foo",), ("foo", "child"), ("foo", "child", "deep")}
    assert scope(("foo", "child")) == {("foo", "child"), ("foo", "child", "deep")}
    assert scope(("foobar",)) == {("foobar",)}
    assert scope(("f",)) == set()
    assert len(scope(())) == 5  # an empty prefix constrains nothing


def test_like_metacharacters_are_plain_text(store: SqlStore) -> None:
    for namespace in [("user_1",), ("user_1", "child"), ("userX1",), ("a%b",), ("axxb",)]:
        store.put(namespace, "k", {"v": 1})
    assert {i.namespace for i in store.search(("user_1",))} == {("user_1",), ("user_1", "child")}
    assert {i.namespace for i in store.search(("a%b",))} == {("a%b",)}


def test_namespaces_are_case_sensitive(store: SqlStore) -> None:
    store.put(("tenant", "acme"), "k", {"v": "lower"})
    store.put(("Tenant", "ACME"), "k", {"v": "upper"})
    assert [i.value["v"] for i in store.search(("tenant",))] == ["lower"]
    assert [i.value["v"] for i in store.search(("Tenant", "ACME"))] == ["upper"]
    assert store.search(("TENANT",)) == []
    assert store.get(("tenant", "ACME"), "k") is None
    assert store.list_namespaces(prefix=("tenant",)) == [("tenant", "acme")]
    assert store.list_namespaces(prefix=("Tenant",)) == [("Tenant", "ACME")]
    assert store.list_namespaces(suffix=("acme",)) == [("tenant", "acme")]


# -- filters ---------------------------------------------------------------------------------

BOOKS: dict[str, dict[str, Any]] = {
    "b1": {"title": "Dune", "year": 1965, "rating": 4.5, "genre": "sf", "by": {"name": "Herbert"}},
    "b2": {
        "title": "Emma",
        "year": 1815,
        "rating": 4.0,
        "genre": "novel",
        "by": {"name": "Austen"},
    },
    "b3": {"title": "Ubik", "year": 1969, "rating": 4.0, "genre": "sf", "by": {"name": "Dick"}},
    "b4": {"title": "Notes", "genre": "essay", "by": {"name": "Austen", "alias": "A"}},
}


@pytest.fixture
def library(store: SqlStore) -> SqlStore:
    for key, value in BOOKS.items():
        store.put(("library",), key, value)
    return store


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"genre": "sf"}, {"b1", "b3"}),
        ({"genre": {"$eq": "sf"}}, {"b1", "b3"}),
        ({"genre": {"$ne": "sf"}}, {"b2", "b4"}),
        ({"year": {"$gt": 1965}}, {"b3"}),
        ({"year": {"$gte": 1965}}, {"b1", "b3"}),
        ({"year": {"$lt": 1965}}, {"b2"}),
        ({"year": {"$lte": 1965}}, {"b1", "b2"}),
        ({"year": {"$gte": 1900, "$lt": 1968}}, {"b1"}),
        ({"rating": {"$gte": 4.5}}, {"b1"}),
        ({"rating": 4}, {"b2", "b3"}),
        ({"title": {"$gt": "E"}}, {"b2", "b3", "b4"}),
        ({"genre": "sf", "rating": {"$lt": 4.5}}, {"b3"}),
        ({"year": {"$ne": 1965}}, {"b2", "b3", "b4"}),  # a missing field is not equal
        ({"genre": "poetry"}, set()),
    ],
)
def test_filter_operators(library: SqlStore, condition: dict[str, Any], expected: set[str]) -> None:
    assert set(keys(library.search(("library",), filter=condition))) == expected


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ({"by.name": "Austen"}, {"b2", "b4"}),
        ({"by": {"name": "Austen"}}, {"b2", "b4"}),  # a nested dict matches a subset of fields
        ({"by": {"name": "Austen", "alias": "A"}}, {"b4"}),
        ({"by.alias": {"$ne": "A"}}, {"b1", "b2", "b3"}),
        ({"by": {"name": {"$gt": "Dz"}}}, {"b1"}),
        ({"by.name.first": "Austen"}, set()),  # a path through a string leads nowhere
    ],
)
def test_filter_nested_keys(
    library: SqlStore, condition: dict[str, Any], expected: set[str]
) -> None:
    assert set(keys(library.search(("library",), filter=condition))) == expected


def test_an_unknown_filter_operator_is_the_users_mistake(library: SqlStore) -> None:
    with pytest.raises(InputError, match=r"unknown operator '\$regex'.*\$eq"):
        library.search(("library",), filter={"title": {"$regex": "D.*"}})


def test_filters_apply_to_query_search_too(library: SqlStore) -> None:
    found = library.search(("library",), query="Dune", filter={"genre": "sf"})
    assert set(keys(found)) == {"b1", "b3"}


# -- paging ----------------------------------------------------------------------------------


def test_limit_and_offset_page_newest_first(store: SqlStore) -> None:
    for i in range(5):
        store.put(("pages",), f"k{i}", {"i": i})
        time.sleep(0.005)  # distinct updated_at, so the order is defined
    assert keys(store.search(("pages",), limit=2)) == ["k4", "k3"]
    assert keys(store.search(("pages",), limit=2, offset=2)) == ["k2", "k1"]
    assert keys(store.search(("pages",), limit=2, offset=4)) == ["k0"]
    assert store.search(("pages",), offset=5) == []


def test_query_search_pages_by_score(store: SqlStore) -> None:
    texts = ["red apple", "red apple pie", "red car", "blue car", "green tree"]
    for i, text in enumerate(texts):
        store.put(("docs",), f"d{i}", {"text": text})
    everything = store.search(("docs",), query="red apple", limit=10)
    assert keys(everything)[:2] == ["d0", "d1"]
    scores = [item.score for item in everything]
    assert all(s is not None for s in scores)
    assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
    pages = store.search(("docs",), query="red apple", limit=2) + store.search(
        ("docs",), query="red apple", limit=2, offset=2
    )
    assert keys(pages) == keys(everything)[:4]


# -- list_namespaces -------------------------------------------------------------------------

NAMESPACES = [
    ("a", "b", "c"),
    ("a", "b", "d", "e"),
    ("a", "b", "d", "i"),
    ("a", "b", "f"),
    ("a", "c", "f"),
    ("b", "a", "f"),
    ("users", "123"),
    ("users", "456", "settings"),
    ("admin", "users", "789"),
]


@pytest.fixture
def spread(store: SqlStore) -> SqlStore:
    for i, namespace in enumerate(NAMESPACES):
        store.put(namespace, f"id_{i}", {"data": i})
    return store


def test_list_namespaces_by_prefix_and_suffix(spread: SqlStore) -> None:
    assert spread.list_namespaces() == sorted(NAMESPACES)
    assert spread.list_namespaces(prefix=("a", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]
    assert spread.list_namespaces(suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert spread.list_namespaces(prefix=("a",), suffix=("f",)) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
    ]
    assert spread.list_namespaces(prefix=("users", "123")) == [("users", "123")]
    assert spread.list_namespaces(prefix=("nonexistent",)) == []
    assert spread.list_namespaces(prefix=("u",)) == []  # whole parts only


def test_list_namespaces_wildcards(spread: SqlStore) -> None:
    assert spread.list_namespaces(prefix=("a", "*", "f")) == [("a", "b", "f"), ("a", "c", "f")]
    assert spread.list_namespaces(suffix=("*", "f")) == [
        ("a", "b", "f"),
        ("a", "c", "f"),
        ("b", "a", "f"),
    ]
    assert spread.list_namespaces(prefix=("*", "users")) == [("admin", "users", "789")]
    assert spread.list_namespaces(prefix=("*", "users"), suffix=("*", "settings")) == []
    both = (MatchCondition("prefix", ("a",)), MatchCondition("suffix", ("d", "*")))
    assert spread.batch([ListNamespacesOp(both)])[0] == [("a", "b", "d", "e"), ("a", "b", "d", "i")]


def test_list_namespaces_max_depth_limit_offset(spread: SqlStore) -> None:
    assert spread.list_namespaces(prefix=("a", "b"), max_depth=3) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "b", "f"),
    ]
    assert spread.list_namespaces(max_depth=1) == [("a",), ("admin",), ("b",), ("users",)]
    assert spread.list_namespaces(prefix=("a", "b"), limit=2) == [
        ("a", "b", "c"),
        ("a", "b", "d", "e"),
    ]
    assert spread.list_namespaces(prefix=("a", "b"), offset=2) == [
        ("a", "b", "d", "i"),
        ("a", "b", "f"),
    ]


# -- TTL -------------------------------------------------------------------------------------

TTL_SECONDS = 1.5
TTL = TTL_SECONDS / 60  # LangGraph's TTLs are in minutes


def test_items_expire_after_their_ttl(store: SqlStore) -> None:
    store.put(("t",), "brief", {"text": "brief"}, ttl=TTL)
    store.put(("t",), "lasting", {"text": "lasting"})
    store.put(("t", "gone"), "brief", {"text": "brief"}, ttl=TTL)
    assert store.get(("t",), "brief", refresh_ttl=False) is not None
    time.sleep(TTL_SECONDS + 0.3)
    assert store.get(("t",), "brief") is None
    assert keys(store.search(("t",), query="brief")) == ["lasting"]
    assert store.list_namespaces() == [("t",)]
    assert store.sweep() == 2


def test_overwriting_without_ttl_clears_it(store: SqlStore) -> None:
    store.put(("t",), "k", {"v": 1}, ttl=TTL)
    store.put(("t",), "k", {"v": 2})
    time.sleep(TTL_SECONDS + 0.3)
    item = store.get(("t",), "k")
    assert item is not None and item.value == {"v": 2}


def test_a_get_refreshes_the_ttl(store: SqlStore) -> None:
    store.put(("t",), "k", {"text": "remember me"}, ttl=TTL)
    time.sleep(0.9)
    assert store.get(("t",), "k", refresh_ttl=True) is not None  # expires 1.5 s from now
    time.sleep(0.9)  # past the first expiry, within the refreshed one
    assert store.get(("t",), "k", refresh_ttl=False) is not None
    time.sleep(0.9)  # a read without refresh did not push it out
    assert store.get(("t",), "k") is None


def test_a_search_refreshes_the_ttl_of_what_it_returns(store: SqlStore) -> None:
    store.put(("t",), "seen", {"text": "remember me"}, ttl=TTL)
    store.put(("t",), "unseen", {"text": "forget me"}, ttl=TTL)
    time.sleep(0.9)
    assert keys(store.search(("t",), filter={"text": "remember me"})) == ["seen"]
    time.sleep(0.9)
    assert keys(store.search(("t",), refresh_ttl=False)) == ["seen"]
    time.sleep(0.9)
    assert store.search(("t",)) == []


# -- embeddings ------------------------------------------------------------------------------


def test_query_search_returns_items_without_embeddings_after_the_scored(store: SqlStore) -> None:
    store.put(("m",), "apple", {"text": "apples are red"})
    store.put(("m",), "untexted", {"title": "nothing to embed"})
    store.put(("m",), "car", {"text": "cars are fast"})
    store.put(("m",), "unindexed", {"text": "apples again"}, index=False)
    found = store.search(("m",), query="red apples")
    assert keys(found)[:2] == ["apple", "car"]
    assert all(item.score is not None for item in found[:2])
    assert set(keys(found)[2:]) == {"untexted", "unindexed"}
    assert [item.score for item in found[2:]] == [None, None]
    assert keys(store.search(("m",), query="red apples", offset=1, limit=2)) == keys(found)[1:3]


def test_nested_index_fields(database_url: str) -> None:
    db = Database(database_url)
    store = SqlStore(db, WordEmbedder(), index_fields=("content.text", "tags"))
    store.put(("n",), "fruit", {"content": {"text": "apples and pears"}, "tags": ["orchard"]})
    store.put(("n",), "vehicle", {"content": {"text": "cars and vans"}, "tags": ["garage"]})
    store.put(("n",), "bare", {"content": {"title": "no text here"}})
    found = store.search(("n",), query="pears")
    assert keys(found) == ["fruit", "vehicle", "bare"]
    assert found[0].score is not None and found[1].score is not None and found[2].score is None
    assert found[0].score > found[1].score
    # the strings of a list are embedded too
    assert keys(store.search(("n",), query="garage"))[0] == "vehicle"
    db.close()


@pytest.mark.parametrize("path", ["meta.tags", "meta.tags[*]"])
def test_a_put_can_name_its_own_index_paths(store: SqlStore, path: str) -> None:
    store.put(("p",), "a", {"meta": {"tags": ["alpha", "beta"]}, "text": "zulu"}, index=[path])
    store.put(("p",), "b", {"meta": {"tags": ["gamma"]}, "text": "alpha"}, index=[path])
    found = store.search(("p",), query="alpha")
    assert keys(found) == ["a", "b"]
    assert found[0].score is not None and found[1].score is not None
    assert found[0].score > found[1].score


def test_put_many_upserts(store: SqlStore) -> None:
    store.put(("bulk",), "x", {"text": "old"})
    before = store.get(("bulk",), "x")
    store.put_many(("bulk",), {"x": {"text": "new words"}, "y": {"title": "no text"}})
    after = store.get(("bulk",), "x")
    assert before is not None and after is not None
    assert after.value == {"text": "new words"} and after.created_at == before.created_at
    found = store.search(("bulk",), query="new words")
    assert [(i.key, i.score is None) for i in found] == [("x", False), ("y", True)]
