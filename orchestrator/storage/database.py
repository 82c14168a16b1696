"""Where runs live: one database for LangGraph's checkpoints and Cadre's run and review records.

SQLite (WAL mode, a file under ``.cadre/``) by default; Postgres when ``CADRE_DATABASE_URL`` names
one (``postgresql://user@host:port/db``). Both hold the same tables; :class:`Database` hides the
two drivers' differences (placeholders, rows as dicts) behind ``execute`` and ``query``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from orchestrator import config
from orchestrator.errors import UserError

DATABASE_ENV = config.DATABASE_ENV
POSTGRES_POOL = 8
"""Checkpointer connections one driver may open on Postgres."""


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise UserError(
            f"{DATABASE_ENV}={url!r} is not a database URL Cadre knows; use "
            "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    path = Path(url.removeprefix("sqlite:///"))
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


_WRITERS: dict[Path, threading.RLock] = {}
_WRITERS_LOCK = threading.Lock()


def sqlite_writer(url: str) -> threading.RLock:
    """The one lock this process's writers of a SQLite file take: they queue on it and are
    woken at once, instead of meeting in SQLite's busy handler, which sleeps 1 to 100 ms
    between tries (on a run worker's event loop, that sleep would stop every run)."""
    path = _sqlite_path(url).resolve()
    with _WRITERS_LOCK:
        return _WRITERS.setdefault(path, threading.RLock())


def _writes(sql: str) -> bool:
    return not sql.lstrip()[:6].upper().startswith(("SELECT", "PRAGMA"))


class Database:
    """A connection to the run database, with ``?`` placeholders on both backends."""

    def __init__(self, url: str | None = None) -> None:
        self.url = url or config.database_url()
        self.postgres = _is_postgres(self.url)
        # One connection, used from several threads (API handlers, run workers): one at a time.
        self._lock = threading.Lock()
        if self.postgres:
            import psycopg
            from psycopg.rows import dict_row

            try:
                self._conn: Any = psycopg.connect(self.url, autocommit=True, row_factory=dict_row)
            except psycopg.OperationalError as err:
                raise UserError(f"cannot connect to {self.url}: {err}".strip()) from None
        else:
            conn = sqlite3.connect(
                _sqlite_path(self.url), isolation_level=None, check_same_thread=False, timeout=30
            )
            conn.row_factory = sqlite3.Row
            use_wal(conn)
            self._conn = conn
        self._writer = contextlib.nullcontext() if self.postgres else sqlite_writer(self.url)

    def set_up(self, name: str, create: Callable[[], object]) -> None:
        """Run ``create`` (a table's idempotent DDL and upgrades) once per database and process,
        not once per connection: an API opens one connection per handler thread, and a burst
        of requests on new threads would otherwise repeat every table's DDL under the writer
        lock. A SQLite file removed and made again is a new database."""
        key = (name, self._identity())
        if key not in _SET_UP:
            create()
            _SET_UP.add(key)

    def _identity(self) -> tuple[Any, ...]:
        if self.postgres:
            return (self.url,)
        where = os.stat(_sqlite_path(self.url))
        return (self.url, where.st_dev, where.st_ino)

    def _guard(self, sql: str) -> Any:
        """What a statement holds besides the connection: SQLite writes, the file's writer."""
        return self._writer if _writes(sql) else contextlib.nullcontext()

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock, self._guard(sql):
            cursor = self._conn.execute(self._sql(sql), tuple(params))
            return int(cursor.rowcount)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one transaction."""
        with self._lock, self._guard(sql):
            if self.postgres:
                with self._conn.transaction(), self._conn.cursor() as cursor:
                    cursor.executemany(self._sql(sql), [tuple(r) for r in rows])
                return
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(sql, [tuple(r) for r in rows])
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query, as dicts (an ``UPDATE ... RETURNING`` too)."""
        with self._lock, self._guard(sql):
            cursor = self._conn.execute(self._sql(sql), tuple(params))
            return [dict(row) for row in cursor.fetchall()]

    def columns(self, table: str) -> set[str]:
        """The column names of ``table``."""
        with self._lock:
            cursor = self._conn.execute(f"SELECT * FROM {table} LIMIT 0")
            return {column[0] for column in cursor.description}

    def close(self) -> None:
        with self._lock:  # never close under a query another thread is running
            self._conn.close()


_SET_UP: set[tuple[Any, ...]] = set()
"""The (table group, database) pairs this process has set up (see :meth:`Database.set_up`)."""


def use_wal(conn: sqlite3.Connection, timeout_s: float = 30.0) -> None:
    """Put a SQLite file in WAL mode. Switching a fresh file needs it to itself, and SQLite
    answers "database is locked" at once, without its busy timeout, while another connection
    (a run worker starting beside the API) is switching it or writing: so wait and try again."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            break
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
    conn.execute("PRAGMA synchronous=NORMAL")


@asynccontextmanager
async def open_checkpointer(url: str | None = None) -> AsyncIterator[BaseCheckpointSaver[Any]]:
    """LangGraph's async checkpointer on the run database, set up and ready."""
    url = url or config.database_url()
    if _is_postgres(url):
        from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        from psycopg.rows import dict_row
        from psycopg_pool import AsyncConnectionPool

        # A pool: the many runs one worker drives at once write their checkpoints side by side.
        kwargs = {"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row}
        async with AsyncConnectionPool(
            url, min_size=1, max_size=POSTGRES_POOL, kwargs=kwargs, open=False
        ) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            yield saver
        return
    conn = sqlite3.connect(_sqlite_path(url), check_same_thread=False, timeout=30)
    try:
        use_wal(conn)
        sqlite_saver = InlineSqliteSaver(conn, sqlite_writer(url))
        sqlite_saver.setup()
        yield sqlite_saver
    finally:
        conn.close()


class InlineSqliteSaver(SqliteSaver):
    """LangGraph's SQLite saver, its async methods run inline on the event loop.

    A checkpoint write in WAL mode with synchronous=NORMAL takes tens of microseconds;
    handing it to a thread (aiosqlite) and back costs more than the write, on every step
    (about 0.9 ms a node measured here). Inline, a write is never cut short by a cancelled
    task either, so no transaction is left open. What it can wait for is SQLite's write
    lock, held by another process only for the length of one short transaction; this
    process's other writers it waits for on ``writer`` (see :func:`sqlite_writer`).
    """

    def __init__(self, conn: sqlite3.Connection, writer: threading.RLock) -> None:
        super().__init__(conn)
        self.writer = writer

    def setup(self) -> None:
        if self.is_setup:  # the saver calls this before every statement
            return
        with self.writer:
            super().setup()

    async def aget_tuple(self, config: Any) -> Any:
        return self.get_tuple(config)

    async def alist(
        self,
        config: Any,
        *,
        filter: dict[str, Any] | None = None,
        before: Any = None,
        limit: int | None = None,
    ) -> AsyncIterator[Any]:
        for item in self.list(config, filter=filter, before=before, limit=limit):
            yield item

    async def aput(self, config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        with self.writer:
            return self.put(config, checkpoint, metadata, versions)

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        with self.writer:
            self.put_writes(config, writes, task_id, task_path)

    async def adelete_thread(self, thread_id: str) -> None:
        with self.writer:
            self.delete_thread(thread_id)
