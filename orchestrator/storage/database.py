"""Where runs live: one database for LangGraph's checkpoints and Cadre's run and review records.

SQLite (WAL mode, a file under ``.cadre/``) by default; Postgres when ``CADRE_DATABASE_URL`` names
one (``postgresql://user@host:port/db``). Both hold the same tables; :class:`Database` hides the
two drivers' differences (placeholders, rows as dicts) behind ``execute`` and ``query``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.sqlite import SqliteSaver

from orchestrator import config
from orchestrator.errors import DatabaseUnavailable, UserError

DATABASE_ENV = config.DATABASE_ENV
POSTGRES_POOL = 8
"""Checkpointer connections one driver may open on Postgres."""
BUSY_TIMEOUT_MS = 30_000
"""How long a SQLite statement waits for the file's write lock before its error is raised."""
WRITE_RETRY_S = 0.0005
WRITE_RETRY_MAX_S = 0.01
"""A statement that met a locked SQLite file is tried again after these pauses (doubling)."""
T = TypeVar("T")
log = logging.getLogger(__name__)


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def _sqlite_path(url: str) -> Path:
    if not url.startswith("sqlite:///"):
        raise UserError(
            f"{DATABASE_ENV}={url!r} is not a database URL Cadre knows; use "
            "sqlite:///PATH or postgresql://USER@HOST:PORT/DB"
        )
    name = url.removeprefix("sqlite:///")
    if name in ("", ":memory:") or name.startswith(("file::memory:", ":memory:?")):
        raise UserError(
            f"{DATABASE_ENV}={url!r}: runs need a database file (an in-memory SQLite database "
            "is gone when the command ends, and other processes never see it); use "
            "sqlite:///PATH"
        )
    path = Path(name)
    if path.parent.name == config.STATE_DIR:  # a .cadre/ folder is Cadre's own to make
        path.parent.mkdir(parents=True, exist_ok=True)
    elif not path.parent.is_dir():
        raise UserError(
            f"{DATABASE_ENV}={url!r}: the folder {str(path.parent)!r} does not exist (a "
            "mistyped path would start an empty database); make it first, or correct the URL"
        )
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
            try:
                self._conn: Any = self._connect()
            except DatabaseUnavailable as err:
                raise UserError(err.message) from None
        else:
            # No busy timeout: a statement that meets another process's write lock is tried
            # again by retry_locked, after 0.5 ms at first, where SQLite's busy handler sleeps
            # 1 to 100 ms a try (this process's other writers meanwhile wait on its writer lock).
            path = _sqlite_path(self.url)
            conn = _sqlite_open(
                path,
                lambda: sqlite3.connect(
                    path, isolation_level=None, check_same_thread=False, timeout=0
                ),
            )
            conn.row_factory = sqlite3.Row
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
            return self._retry(
                lambda: int(self._conn.execute(self._sql(sql), tuple(params)).rowcount)
            )

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one transaction."""
        with self._lock, self._guard(sql):
            if self.postgres:

                def in_one() -> None:
                    with self._conn.transaction(), self._conn.cursor() as cursor:
                        cursor.executemany(self._sql(sql), [tuple(r) for r in rows])

                self._on_postgres(in_one)
                return

            def transaction() -> None:
                self._conn.execute("BEGIN IMMEDIATE")  # the write lock now, or locked
                try:
                    self._conn.executemany(sql, [tuple(r) for r in rows])
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

            self._retry(transaction)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Rows of a query, as dicts (an ``UPDATE ... RETURNING`` too)."""
        with self._lock, self._guard(sql):
            return self._retry(
                lambda: [
                    dict(r) for r in self._conn.execute(self._sql(sql), tuple(params)).fetchall()
                ]
            )

    def _retry(self, statement: Callable[[], T]) -> T:
        return self._on_postgres(statement) if self.postgres else retry_locked(statement)

    def _connect(self) -> Any:
        import psycopg
        from psycopg.rows import dict_row

        try:
            return psycopg.connect(
                self.url, autocommit=True, row_factory=dict_row, connect_timeout=10
            )
        except psycopg.OperationalError as err:
            raise DatabaseUnavailable(
                f"cannot connect to {shown_url(self.url)}: {str(err).strip()}"
            ) from None

    def _on_postgres(self, statement: Callable[[], T]) -> T:
        """Run a statement on Postgres over a live connection. A connection the server dropped
        (a restart, a failover, a killed backend) is opened again, and the statement asked
        again once: a server that went away ran nothing on the connection it dropped."""
        import psycopg

        if self._conn.closed:
            self._reopen()
        try:
            return statement()
        except psycopg.OperationalError:
            if not self._conn.closed:
                raise  # the statement failed, not the connection
        log.warning("the run database dropped its connection; connecting again")
        self._reopen()
        return statement()

    def _reopen(self) -> None:
        with contextlib.suppress(Exception):
            self._conn.close()  # what is left of the dropped one
        self._conn = self._connect()

    def columns(self, table: str) -> set[str]:
        """The column names of ``table``."""
        with self._lock:
            cursor = self._retry(lambda: self._conn.execute(f"SELECT * FROM {table} LIMIT 0"))
            return {column[0] for column in cursor.description}

    def close(self) -> None:
        with self._lock:  # never close under a query another thread is running
            self._conn.close()


_SET_UP: set[tuple[Any, ...]] = set()
"""The (table group, database) pairs this process has set up (see :meth:`Database.set_up`)."""


def shown_url(url: str) -> str:
    """A database URL as it may be shown: without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    where = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=where))


def _sqlite_open(path: Path, connect: Callable[[], sqlite3.Connection]) -> sqlite3.Connection:
    """A connection to a SQLite file in WAL mode; a file that is not a SQLite database, a
    damaged one, or one that cannot be opened is named in a UserError (not a traceback)."""
    conn: sqlite3.Connection | None = None
    try:
        conn = connect()
        use_wal(conn)
        return conn
    except sqlite3.DatabaseError as err:
        if conn is not None:
            conn.close()
        if isinstance(err, sqlite3.OperationalError) and _locked(err):
            raise
        where = f"the run database {path}"
        if isinstance(err, sqlite3.OperationalError):  # e.g. its folder does not exist
            raise UserError(f"cannot open {where}: {err} (CADRE_DATABASE_URL)") from None
        raise UserError(
            f"{where} is not a SQLite database, or is damaged ({err}); point "
            "CADRE_DATABASE_URL at another file, or restore it from a backup"
        ) from None


def use_wal(conn: sqlite3.Connection) -> None:
    """Put a SQLite file in WAL mode. Switching a fresh file needs it to itself, and SQLite
    answers "database is locked" at once, without its busy timeout, while another connection
    (a run worker starting beside the API) is switching it or writing: so wait and try again."""
    retry_locked(lambda: conn.execute("PRAGMA journal_mode=WAL"))
    conn.execute("PRAGMA synchronous=NORMAL")


def _pauses() -> Iterator[float]:
    """The pauses between tries at a locked SQLite file: 0.5 ms, doubling to 10 ms, until
    ``BUSY_TIMEOUT_MS`` has passed."""
    deadline, pause = time.monotonic() + BUSY_TIMEOUT_MS / 1000, WRITE_RETRY_S
    while time.monotonic() < deadline:
        yield pause
        pause = min(pause * 2, WRITE_RETRY_MAX_S)


def retry_locked(statement: Callable[[], T]) -> T:
    """Run ``statement`` (one SQLite statement, or a transaction that rolls itself back), and
    again after each pause while the file is locked; the last error once the pauses run out."""
    pauses = _pauses()
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as err:
            pause = next(pauses, None) if _locked(err) else None
            if pause is None:
                raise
        time.sleep(pause)


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
        # Each connection is checked as it is lent: one the server dropped (a restart) is
        # replaced instead of failing the checkpoint write it was lent for.
        async with AsyncConnectionPool(
            url,
            min_size=1,
            max_size=POSTGRES_POOL,
            kwargs=kwargs,
            open=False,
            check=AsyncConnectionPool.check_connection,
        ) as pool:
            saver = AsyncPostgresSaver(pool)  # type: ignore[arg-type]
            await saver.setup()
            yield saver
        return
    path = _sqlite_path(url)
    conn = _sqlite_open(
        path,
        lambda: sqlite3.connect(path, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000),
    )
    try:
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
    task either, so no transaction is left open.

    What a write can wait for is the file's write lock: held by this process's other writers
    (``writer``, see :func:`sqlite_writer`) or by another process (the API, another worker),
    each for one short transaction. It never waits for them on the event loop, where the wait
    would stop every run the driver has: it takes ``writer`` without blocking and the file's
    lock with ``BEGIN IMMEDIATE`` under a zero busy timeout, and while either is taken it
    sleeps a moment on the loop and tries again. One write of the loop tries at a time (the
    others wait their turn in ``_turns``). SQLite's own busy handler would instead sleep 1 to
    100 ms per try with the loop stopped. After ``BUSY_TIMEOUT_MS`` it gives up with SQLite's
    "database is locked", as the busy handler did.
    """

    def __init__(self, conn: sqlite3.Connection, writer: threading.RLock) -> None:
        super().__init__(conn)
        self.writer = writer
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )

    def setup(self) -> None:
        if self.is_setup:  # the saver calls this before every statement
            return
        with self.writer:
            super().setup()

    async def _write(self, write: Callable[[], T]) -> T:
        """Run ``write`` (one of the saver's own transactions, which commits) once this loop
        holds the file's write lock, waiting for it without stopping the loop."""
        self.setup()
        turn = self._turns.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with turn:
            for pause in _pauses():
                if self.writer.acquire(blocking=False):
                    try:
                        if _begin_immediate(self.conn):
                            try:
                                return write()
                            finally:
                                if self.conn.in_transaction:  # write failed before its commit
                                    self.conn.rollback()
                    finally:
                        self.writer.release()
                await asyncio.sleep(pause)
        raise sqlite3.OperationalError(
            f"database is locked: no checkpoint write for {BUSY_TIMEOUT_MS / 1000:g} s"
        )

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
        return await self._write(lambda: self.put(config, checkpoint, metadata, versions))

    async def aput_writes(
        self, config: Any, writes: Any, task_id: str, task_path: str = ""
    ) -> None:
        await self._write(lambda: self.put_writes(config, writes, task_id, task_path))

    async def adelete_thread(self, thread_id: str) -> None:
        await self._write(lambda: self.delete_thread(thread_id))


def database_trouble(err: BaseException) -> bool:
    """Whether an error is the run database's, for a while, and not the work's: SQLite locked
    past the bound, or Postgres out of reach or dropping the connection."""
    if isinstance(err, DatabaseUnavailable):
        return True
    if isinstance(err, sqlite3.OperationalError):
        return _locked(err)
    try:
        import psycopg
    except ImportError:  # psycopg is a dependency; without it nothing is Postgres
        return False
    return isinstance(err, psycopg.OperationalError)


def _locked(err: sqlite3.OperationalError) -> bool:
    """Another connection holds what the statement needs (SQLITE_BUSY or SQLITE_LOCKED)."""
    return "locked" in str(err) or "busy" in str(err)


def _begin_immediate(conn: sqlite3.Connection) -> bool:
    """Start a write transaction if the file's write lock is free now; False if another
    connection holds it (no wait: SQLite's busy timeout is zero for this one statement)."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        conn.execute("BEGIN IMMEDIATE")
        return True
    except sqlite3.OperationalError as err:
        if _locked(err):
            return False
        raise
    finally:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
