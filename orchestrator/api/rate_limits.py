"""Request rate limits per API key that hold across every API process sharing one run database.

Each key has a token bucket: ``burst`` requests at once, then ``rate`` per second. The bucket is a
row in the run database, and taking a token is one statement (an upsert whose update only happens
when a token is there), so two API replicas behind a load balancer share one limit instead of
allowing twice the rate. Times are wall-clock seconds, which replicas on different machines
agree on closely enough for a one-second granularity.
"""

from __future__ import annotations

import time

from orchestrator.storage import schema
from orchestrator.storage.database import Database

# The bucket refilled up to now, capped at the burst; a token is taken only if one is there.
_REFILLED = (
    "CASE WHEN api_rate_buckets.tokens + (? - api_rate_buckets.at) * ? > ? THEN ? "
    "ELSE api_rate_buckets.tokens + (? - api_rate_buckets.at) * ? END"
)
_TAKE = f"""
INSERT INTO api_rate_buckets (key_id, tokens, at) VALUES (?, ?, ?)
ON CONFLICT (key_id) DO UPDATE SET tokens = {_REFILLED} - 1, at = ?
WHERE {_REFILLED} >= 1
RETURNING tokens
"""


class RateLimits:
    """The shared token buckets of one run database."""

    def __init__(self, db: Database, rate: float, burst: int) -> None:
        self.db, self.rate, self.burst = db, float(rate), int(burst)
        db.set_up("rate_limits", lambda: schema.create(db, schema.RATE_BUCKETS))

    def take(self, key: str) -> float:
        """0 if the request may go now (its token is taken), else the seconds until one is there."""
        now = time.time()
        refill = (now, self.rate, self.burst, self.burst, now, self.rate)
        taken = self.db.query(_TAKE, (key, self.burst - 1, now, *refill, now, *refill))
        if taken:
            return 0.0
        rows = self.db.query("SELECT tokens, at FROM api_rate_buckets WHERE key_id = ?", (key,))
        if not rows:  # deleted in between: the next request starts a fresh bucket
            return 0.0
        tokens = min(self.burst, rows[0]["tokens"] + (now - rows[0]["at"]) * self.rate)
        return max(0.0, (1 - tokens) / self.rate) if self.rate > 0 else float("inf")
