"""The run database on SQLite when another process holds the file's write lock: writers wait
without stopping a worker's event loop, go on once it is free, and give up after the bound."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from orchestrator.errors import DatabaseUnavailable
from orchestrator.storage import database
from orchestrator.storage.database import Database, open_checkpointer


def hold_write_lock(path: Path, seconds: float) -> threading.Event:
    """Another connection takes the file's write lock now and lets it go after ``seconds``;
    the event is set once it has."""
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    released = threading.Event()

    def release() -> None:
        other.execute("COMMIT")
        other.close()
        released.set()

    threading.Timer(seconds, release).start()
    return released


def test_a_statement_waits_for_another_writer_then_goes_on(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'cadre.db'}")
    db.execute("CREATE TABLE t (n INTEGER)")
    released = hold_write_lock(tmp_path / "cadre.db", 0.3)
    started = time.monotonic()
    db.execute("INSERT INTO t (n) VALUES (1)")
    db.execute_many("INSERT INTO t (n) VALUES (?)", [(2,), (3,)])
    assert released.is_set() and time.monotonic() - started >= 0.25
    assert [r["n"] for r in db.query("SELECT n FROM t ORDER BY n")] == [1, 2, 3]


def test_a_checkpoint_write_waits_without_stopping_the_event_loop(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cadre.db'}"

    async def scenario() -> tuple[int, bool]:
        async with open_checkpointer(url) as saver:
            released = hold_write_lock(tmp_path / "cadre.db", 0.4)
            ticks = 0

            async def tick() -> None:
                nonlocal ticks
                while True:
                    await asyncio.sleep(0.01)
                    ticks += 1

            ticker = asyncio.create_task(tick())
            await saver.adelete_thread("run-1")  # a write: it needs the lock
            ticker.cancel()
            return ticks, released.is_set()

    ticks, released = asyncio.run(scenario())
    assert released
    assert ticks >= 10  # the loop ran other work all the while (0.4 s at 10 ms a tick)


def test_writers_give_up_with_database_is_locked_after_the_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 200)
    url = f"sqlite:///{tmp_path / 'cadre.db'}"
    db = Database(url)
    db.execute("CREATE TABLE t (n INTEGER)")
    released = hold_write_lock(tmp_path / "cadre.db", 2.0)
    started = time.monotonic()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        db.execute("INSERT INTO t (n) VALUES (1)")

    async def checkpoint_write() -> None:
        async with open_checkpointer(url) as saver:
            await saver.adelete_thread("run-1")

    with pytest.raises(sqlite3.OperationalError, match="locked"):
        asyncio.run(checkpoint_write())
    assert time.monotonic() - started < 1.5 and not released.is_set()
    released.wait(5)
    db.execute("INSERT INTO t (n) VALUES (1)")  # the lock is free: nothing was left half-done
    assert db.query("SELECT COUNT(*) AS n FROM t")[0]["n"] == 1


def drop_connections(url: str) -> int:
    """What a Postgres restart does to this database's clients: every other backend ends."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        return len(
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchall()
        )


def test_a_connection_postgres_dropped_is_opened_again(database_url: str) -> None:
    """A restart or failover ends the server side of every connection: the next statement, and
    the next checkpoint write, go through on a new one instead of failing for good."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has no server to drop the connection")
    from langgraph.checkpoint.base import empty_checkpoint

    db = Database(database_url)
    db.execute("CREATE TABLE t (n INTEGER)")
    db.execute("INSERT INTO t VALUES (?)", (1,))

    async def write_twice() -> int:
        async with open_checkpointer(database_url) as saver:
            config = {"configurable": {"thread_id": "t1", "checkpoint_ns": ""}}
            await saver.aput(config, empty_checkpoint(), {}, {})
            assert drop_connections(database_url) >= 1
            await saver.aput(config, empty_checkpoint(), {}, {})
            return len([c async for c in saver.alist(config)])

    assert asyncio.run(write_twice()) == 2  # which dropped this connection too
    db.execute("INSERT INTO t VALUES (?)", (2,))  # a write on a dropped connection
    assert drop_connections(database_url) >= 1
    assert [r["n"] for r in db.query("SELECT n FROM t ORDER BY n")] == [1, 2]
    # While the server cannot be reached, a statement says so (the API answers 503).
    drop_connections(database_url)
    down = DatabaseUnavailable("cannot connect to the run database")
    db._connect = lambda: (_ for _ in ()).throw(down)  # type: ignore[method-assign]
    with pytest.raises(DatabaseUnavailable, match="cannot connect"):
        db.query("SELECT n FROM t")


def test_a_database_that_cannot_be_reached_is_named_without_its_password() -> None:
    from orchestrator.errors import UserError
    from orchestrator.storage.database import shown_url

    with pytest.raises(UserError, match=r"cannot connect to postgresql://cadre:\*\*\*@127") as err:
        Database("postgresql://cadre:s3cret@127.0.0.1:9/runs")
    assert "s3cret" not in str(err.value)
    assert shown_url("postgresql://a@h/db") == "postgresql://a@h/db"


@pytest.mark.parametrize("content", [b"\x8f" * 20_000, b"SQLite format 3\x00" + b"\x00" * 100])
def test_a_file_that_is_not_a_sqlite_database_is_named_not_a_traceback(
    tmp_path: Path, content: bytes
) -> None:
    from orchestrator.errors import UserError

    path = tmp_path / "runs.db"
    path.write_bytes(content)
    with pytest.raises(UserError, match=rf"the run database {path} is not a SQLite database"):
        Database(f"sqlite:///{path}")

    async def checkpointer() -> None:
        async with open_checkpointer(f"sqlite:///{path}"):
            pass

    with pytest.raises(UserError, match="is not a SQLite database, or is damaged"):
        asyncio.run(checkpointer())


def test_a_database_url_that_would_hold_nothing_or_start_afresh_by_mistake_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-memory database is gone when the command ends (it gave a traceback); a path in a
    folder that does not exist is a typo, which used to start an empty database (and make the
    folders) even for `cadre runs list`."""
    from orchestrator.errors import UserError

    for url in ("sqlite:///:memory:", "sqlite:///"):
        with pytest.raises(UserError, match="runs need a database file"):
            Database(url)
    missing = tmp_path / "nonexistent" / "dir"
    with pytest.raises(UserError, match=f"the folder '{missing}' does not exist"):
        Database(f"sqlite:///{missing / 'x.db'}")
    assert not missing.parent.exists()
    # The default .cadre/ folder is Cadre's own to make.
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CADRE_DATABASE_URL", raising=False)
    Database().query("SELECT 1")
    assert (tmp_path / ".cadre" / "cadre.db").is_file()
