"""Built-in tools beyond the calculator: read-only SQL, corpus search, allow-listed HTTP GET, and
``notify`` (a side effect: a message into the run database's outbox).

Each stays inside its bounds: ``sql_query`` reads one file under the catalog's ``data/`` folder and
is interrupted at its deadline by a SQLite progress handler; ``corpus_search`` reads corpora under
``corpora/`` only (:meth:`Corpora.folder`); ``http_get`` follows redirects itself, checking every
hop against the allowlist; ``notify`` commits its idempotency key with its outbox row.
"""

from __future__ import annotations

import sqlite3
import time
import urllib.error
import urllib.request
import uuid
from typing import Any
from urllib.parse import urljoin, urlparse

from pydantic import BaseModel, Field

from orchestrator import config
from orchestrator.errors import InputError, RunError, ToolTimeoutError
from orchestrator.tools import idempotency
from orchestrator.tools.base import Tool, ToolContext

HTTP_ALLOWLIST_ENV = config.HTTP_ALLOWLIST_ENV
MAX_HTTP_BYTES = 200_000
MAX_REDIRECTS = 5
HTTP_TIMEOUT_S = 10.0
"""The longest one HTTP exchange may take (less when the call's deadline is nearer)."""
SQL_MAX_LENGTH = 10_000_000
"""The longest string or blob a query may build, in bytes (SQLite's limit is 1 GB)."""


class SqlArgs(BaseModel):
    """Arguments of sql_query."""

    database: str = Field(description="SQLite file under the catalog's data/ folder.")
    query: str = Field(min_length=1, description="One SELECT statement; ? for parameters.")
    params: list[Any] = Field(default_factory=list, description="Values for the ? placeholders.")
    max_rows: int = Field(default=50, ge=1, le=1000, description="Most rows returned.")


def sql_query(args: SqlArgs, context: ToolContext) -> list[dict[str, Any]]:
    data = (context.catalog_root / "data").resolve()
    path = (data / args.database).resolve()
    if data not in path.parents or not path.is_file():
        raise InputError(f"sql_query: no database {args.database!r} under {data}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # read-only at the file level
    # and at the statement level: anything but reading is refused before it runs.
    allowed = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION}
    conn.set_authorizer(
        lambda action, *_: sqlite3.SQLITE_OK if action in allowed else sqlite3.SQLITE_DENY
    )
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, SQL_MAX_LENGTH)
    deadline = context.deadline
    if deadline is not None:
        # Every 1,000 virtual-machine steps: past the deadline, SQLite stops the query (a
        # thread cannot be stopped from outside, so the query stops itself).
        conn.set_progress_handler(lambda: int(time.monotonic() > deadline), 1000)
    conn.row_factory = sqlite3.Row
    try:
        rows = conn.execute(args.query, args.params).fetchmany(args.max_rows)
    except sqlite3.DatabaseError as err:
        if deadline is not None and time.monotonic() > deadline:
            raise ToolTimeoutError(
                "sql_query: the query ran past its deadline and was stopped"
            ) from None
        raise InputError(f"sql_query: {err} (only reading queries are allowed)") from None
    finally:
        conn.close()
    return [dict(r) for r in rows]


class CorpusArgs(BaseModel):
    """Arguments of corpus_search."""

    corpus: str = Field(description="Corpus name (a folder under the catalog's corpora/).")
    query: str = Field(min_length=1, description="What to look for.")
    k: int = Field(default=3, ge=1, le=20, description="How many passages.")


def corpus_search(args: CorpusArgs, context: ToolContext) -> list[dict[str, Any]]:
    from orchestrator.memory.corpus import Corpora
    from orchestrator.storage.database import Database

    db = Database(context.database_url)
    try:
        passages = Corpora(context.catalog_root / "corpora", db).search(
            args.corpus, args.query, args.k
        )
    finally:
        db.close()  # one connection per call, closed like notify's and outbox's
    return [{"source": p.source, "text": p.text, "score": p.score} for p in passages]


class HttpArgs(BaseModel):
    """Arguments of http_get."""

    url: str = Field(description="http(s) URL on an allow-listed host.")


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Hand every redirect back to http_get (urllib would follow it to any host)."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)
_REDIRECTS = {301, 302, 303, 307, 308}


def http_get(args: HttpArgs, context: ToolContext) -> dict[str, Any]:
    allowed = set(config.http_allowlist())
    url = args.url
    for _hop in range(MAX_REDIRECTS + 1):
        _check_allowed(url, allowed, first=args.url)
        timeout = HTTP_TIMEOUT_S
        if context.deadline is not None:
            timeout = min(timeout, context.deadline - time.monotonic())
            if timeout <= 0:
                raise ToolTimeoutError(f"http_get: {args.url}: ran past its deadline")
        request = urllib.request.Request(url, headers={"User-Agent": "cadre-http-get"})
        try:
            with _OPENER.open(request, timeout=timeout) as response:  # allow-listed
                body = response.read(MAX_HTTP_BYTES + 1)
                return {
                    "status": response.status,
                    "content_type": response.headers.get("Content-Type", ""),
                    "text": body[:MAX_HTTP_BYTES].decode("utf-8", errors="replace"),
                    "truncated": len(body) > MAX_HTTP_BYTES,
                }
        except urllib.error.HTTPError as err:
            location = err.headers.get("Location") if err.code in _REDIRECTS else None
            err.close()
            if not location:
                return {"status": err.code, "content_type": "", "text": "", "truncated": False}
            url = urljoin(url, location)  # checked against the allowlist at the loop's top
        except (urllib.error.URLError, TimeoutError) as err:
            raise RunError(f"http_get: {url}: {getattr(err, 'reason', err)}") from None
    raise RunError(f"http_get: {args.url}: more than {MAX_REDIRECTS} redirects")


def _check_allowed(url: str, allowed: set[str], first: str) -> None:
    """Refuse a URL (the one asked for, or a redirect's target) off http(s) or the allowlist."""
    parsed = urlparse(url)
    host = (parsed.hostname or "").lower()
    hop = "" if url == first else f" (a redirect from {first!r})"
    if parsed.scheme not in ("http", "https") or not host:
        raise InputError(f"http_get: {url!r}{hop} is not an http(s) URL")
    if host not in allowed:
        listed = ", ".join(sorted(allowed)) or "none"
        raise InputError(
            f"http_get: host {host!r}{hop} is not in the allowlist ({HTTP_ALLOWLIST_ENV}: {listed})"
        )


class NotifyArgs(BaseModel):
    """Arguments of notify."""

    channel: str = Field(min_length=1, max_length=100, description="Where to, e.g. claims-desk.")
    message: str = Field(min_length=1, max_length=4000, description="What to say.")


def notify(args: NotifyArgs, context: ToolContext) -> dict[str, Any]:
    """Put a message in the outbox table of the run database (a delivery worker sends it).

    With an idempotency key (the runner's), the key and the message commit in one transaction:
    a node re-run after a crash finds the key and returns the first message, never a second."""
    from orchestrator.storage import schema
    from orchestrator.storage.database import Database

    db = Database(context.database_url)
    try:
        schema.create(db, schema.OUTBOX)
        idempotency.ensure_table(db)
        message_id = f"msg-{uuid.uuid4().hex[:10]}"
        result = {"message_id": message_id, "channel": args.channel}
        key = context.idempotency_key
        with idempotency.transaction(db):
            if key is not None and not idempotency.claim(db, key, result):
                recorded = idempotency.outcome(db, key)
                return recorded.result if recorded else result
            db.execute(
                "INSERT INTO cadre_outbox (id, run_id, node, channel, message, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (
                    message_id,
                    context.run_id,
                    context.node_id,
                    args.channel,
                    args.message,
                    time.time(),
                ),
            )
    finally:
        db.close()
    return result


SQL_QUERY = Tool(
    "sql_query", "Run one read-only SELECT on a SQLite file of the catalog.", SqlArgs, sql_query
)
CORPUS_SEARCH = Tool(
    "corpus_search", "Search a document corpus by meaning.", CorpusArgs, corpus_search
)
HTTP_GET = Tool("http_get", "GET a URL on an allow-listed host.", HttpArgs, http_get)
NOTIFY = Tool(
    "notify",
    "Send a message to a channel (through the outbox).",
    NotifyArgs,
    notify,
    side_effect=True,
    transactional=True,
)


def outbox(database_url: str | None) -> list[dict[str, Any]]:
    """The outbox's messages, oldest first (for tests and operators)."""
    from orchestrator.storage.database import Database

    db = Database(database_url)
    try:
        return db.query("SELECT * FROM cadre_outbox ORDER BY created_at")
    except Exception:  # no outbox table yet means no messages
        return []
    finally:
        db.close()
