"""The run queue on both backends: claims are exclusive, leases expire and renew, claims are
fair across tenants, and cancellation reaches the driver with the renewal."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from orchestrator.runs.queue import RunQueue
from orchestrator.runs.store import RunStore
from orchestrator.storage.database import Database


def queued(store: RunStore, n: int, tenant: str = "acme") -> list[str]:
    return [
        store.create_run("chain", {"text": f"t{i}"}, tenant=tenant, queued=True)[0].id
        for i in range(n)
    ]


@pytest.fixture
def store(database_url: str) -> RunStore:
    return RunStore(Database(database_url))


def test_racing_drivers_never_claim_the_same_run(store: RunStore, database_url: str) -> None:
    runs = set(queued(store, 120))
    got: Counter[str] = Counter()
    lock = threading.Lock()

    def driver(name: str) -> None:
        queue = RunQueue(Database(database_url))  # a connection of its own, as a process has
        while True:
            claimed = queue.claim(name, 7)
            if not claimed:
                return
            with lock:
                got.update(claimed)

    threads = [threading.Thread(target=driver, args=(f"h:1:{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert set(got) == runs
    assert max(got.values()) == 1, "a run was claimed twice"


def test_a_lease_that_runs_out_is_claimed_by_another_driver(store: RunStore) -> None:
    (run_id,) = queued(store, 1)
    queue = RunQueue(store.db, lease_s=0.3)
    assert queue.claim("dead:1:a", 5) == [run_id]
    assert queue.claim("live:2:b", 5) == [], "a live lease is not taken"
    store.set_status(run_id, "running")
    time.sleep(0.4)  # dead:1:a never renews
    assert queue.claim("live:2:b", 5) == [run_id]
    assert store.run(run_id).owner == "live:2:b"


def test_renewal_keeps_the_lease_and_reports_cancelled_and_lost_runs(store: RunStore) -> None:
    a, b = queued(store, 2)
    queue = RunQueue(store.db, lease_s=0.3)
    assert sorted(queue.claim("me:1:a", 5)) == sorted([a, b])
    for _ in range(4):
        time.sleep(0.15)
        renewal = queue.renew("me:1:a")
    assert renewal.held == {a, b} and not renewal.cancelled
    assert queue.claim("other:2:b", 5) == [], "renewed leases held for 0.6 s of a 0.3 s lease"
    store.cancel(a)
    assert queue.renew("me:1:a").cancelled == {a}
    queue.release(b, "me:1:a")
    assert queue.renew("me:1:a").held == {a}
    assert store.run(b).owner is None


def test_a_cancelled_or_finished_run_is_not_claimed_and_a_decision_makes_one_claimable(
    store: RunStore,
) -> None:
    done, cancelled, waiting = queued(store, 3)
    store.set_status(done, "succeeded", output={})
    store.cancel(cancelled)
    store.set_status(waiting, "awaiting_review")
    store.add_review(waiting, "i-1", "check", {"kind": "review", "values": {}})
    queue = RunQueue(store.db)
    assert queue.claim("w:1:a", 10) == []
    (review,) = store.reviews("pending", waiting)
    store.decide(review.id, "approve", "ann")
    assert queue.waiting() == 1
    assert queue.claim("w:1:a", 10) == [waiting]


def test_claims_are_fair_across_tenants(store: RunStore) -> None:
    """One tenant's 200 queued runs do not delay another tenant's one run past one claim."""
    queued(store, 200, tenant="big")
    (small,) = queued(store, 1, tenant="small")
    queue = RunQueue(store.db)
    first = queue.claim("w:1:a", 8)
    assert small in first
    assert len(first) == 8
    # A newcomer goes before the tenant that already has runs in flight, one slot at a time.
    (late,) = queued(store, 1, tenant="late")
    assert queue.claim("w:1:a", 1) == [late]
    assert store.run(queue.claim("w:1:a", 1)[0]).tenant == "big"


def test_a_dead_process_of_this_machine_is_replaced_at_once(store: RunStore) -> None:
    import socket

    (run_id,) = queued(store, 1)
    dead = f"{socket.gethostname()}:{2**22 + 1}:x"  # above Linux's largest pid: never alive
    queue = RunQueue(store.db)
    assert queue.claim(dead, 1) == [run_id]
    assert queue.acquire(run_id, "me:2:b"), "the owner is not alive: the run is taken over"
    assert not queue.acquire(run_id, "other:3:c"), "a live lease is not taken over"
