"""The run queue: the run database itself, with leases.

A run is *claimable* when it has work waiting (``queued``; ``running`` but its driver is gone; or
``awaiting_review`` with a decision recorded and not yet applied) and no live lease: its owner is
NULL or its ``lease_until`` has passed. A driver claims runs with one statement (an atomic
``UPDATE ... RETURNING`` on SQLite, ``FOR UPDATE SKIP LOCKED`` on Postgres), so two workers never
take the same run; it renews the leases of every run it holds in one statement each tick, and
lets a run go when the run ends or waits for a person. A driver that dies stops renewing: its runs
become claimable when their leases run out, and the next claim resumes them from their last
checkpoint.

Claims are fair across tenants: the claimable runs are taken in turns, each tenant's oldest first,
then each tenant's second, and so on, counting the runs a tenant already has in flight; so 10,000
runs of one tenant delay another tenant's one run by at most one claim.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from orchestrator import config
from orchestrator.runs.store import owner_alive
from orchestrator.storage.database import Database

DEFAULT_LEASE_S = config.LEASE_S

_WORK_WAITING = (
    "(r.status IN ('queued', 'running') OR (r.status = 'awaiting_review' AND r.id IN "
    "(SELECT v.run_id FROM cadre_reviews v WHERE v.status = 'decided')))"
)
_FREE = "(r.owner IS NULL OR r.lease_until < ?)"
"""No live lease. An owner without a lease (a row from before leases) stays held: only
:meth:`RunQueue.acquire` takes it over, once it knows the owner died."""


@dataclass(frozen=True)
class Renewal:
    """What one lease renewal found about the runs a driver thinks it holds."""

    held: frozenset[str]
    """Runs still leased to the driver."""
    cancelled: frozenset[str]
    """Of those, the ones someone cancelled: stop driving them."""


class RunQueue:
    """Claims, renews and releases run leases in the run database."""

    def __init__(self, db: Database, lease_s: float = DEFAULT_LEASE_S) -> None:
        self.db = db
        self.lease_s = lease_s

    def claim(self, owner: str, limit: int) -> list[str]:
        """Lease up to ``limit`` claimable runs to ``owner``, fairly across tenants."""
        if limit <= 0:
            return []
        now = time.time()
        # A run's turn: its rank among its tenant's waiting runs, after the runs the tenant
        # already has in flight.
        ranked = (
            "SELECT id FROM (SELECT r.id, r.created_at, COALESCE(h.held, 0) + ROW_NUMBER() "
            "OVER (PARTITION BY r.tenant ORDER BY r.created_at, r.id) AS turn "
            "FROM cadre_runs r LEFT JOIN (SELECT tenant, COUNT(*) AS held FROM cadre_runs "
            "WHERE owner IS NOT NULL AND lease_until >= ? GROUP BY tenant) h "
            f"ON h.tenant = r.tenant WHERE {_WORK_WAITING} AND {_FREE}) t "
            "ORDER BY turn, created_at, id LIMIT ?"
        )
        if self.db.postgres:
            chosen = (
                f"SELECT id FROM cadre_runs WHERE id IN ({ranked}) "
                "AND (owner IS NULL OR lease_until < ?) FOR UPDATE SKIP LOCKED"
            )
            params: tuple[object, ...] = (now, now, limit, now)
        else:
            chosen, params = ranked, (now, now, limit)
        rows = self.db.query(
            "UPDATE cadre_runs SET owner = ?, lease_until = ? "
            f"WHERE id IN ({chosen}) AND (owner IS NULL OR lease_until < ?) RETURNING id",
            (owner, now + self.lease_s, *params, now),
        )
        return [row["id"] for row in rows]

    def acquire(self, run_id: str, owner: str) -> bool:
        """Lease one particular run to ``owner`` (a command resuming or applying it): it must
        be free, already ``owner``'s, or held by a process of this machine that died."""
        now = time.time()
        if self.db.execute(
            "UPDATE cadre_runs SET owner = ?, lease_until = ? "
            "WHERE id = ? AND (owner IS NULL OR owner = ? OR lease_until < ?)",
            (owner, now + self.lease_s, run_id, owner, now),
        ):
            return True
        rows = self.db.query("SELECT owner FROM cadre_runs WHERE id = ?", (run_id,))
        current = rows[0]["owner"] if rows else None
        if current is None or owner_alive(current):
            return False
        return bool(
            self.db.execute(
                "UPDATE cadre_runs SET owner = ?, lease_until = ? WHERE id = ? AND owner = ?",
                (owner, now + self.lease_s, run_id, current),
            )
        )

    def renew(self, owner: str, *, extend: bool = True) -> Renewal:
        """Say which runs ``owner`` still holds and which of them were cancelled (one SELECT,
        however many runs); with ``extend``, first extend all those leases (one UPDATE)."""
        if extend:
            self.db.execute(
                "UPDATE cadre_runs SET lease_until = ? WHERE owner = ?",
                (time.time() + self.lease_s, owner),
            )
        rows = self.db.query("SELECT id, status FROM cadre_runs WHERE owner = ?", (owner,))
        return Renewal(
            held=frozenset(r["id"] for r in rows),
            cancelled=frozenset(r["id"] for r in rows if r["status"] == "cancelled"),
        )

    def release(self, run_id: str, owner: str) -> None:
        """Let a run go (it ended, or waits for a person); a later decision makes it
        claimable again."""
        self.db.execute(
            "UPDATE cadre_runs SET owner = NULL, lease_until = NULL WHERE id = ? AND owner = ?",
            (run_id, owner),
        )

    def waiting(self) -> int:
        """How many runs have work waiting and no live lease."""
        rows = self.db.query(
            f"SELECT COUNT(*) AS n FROM cadre_runs r WHERE {_WORK_WAITING} AND {_FREE}",
            (time.time(),),
        )
        return int(rows[0]["n"])
