"""Idempotency at the edge (SPEC §4.12): repeats of a keyed request are answered from a store.

- :mod:`~gateway.idempotency.core`: fingerprints, records and the decision (pure);
- :mod:`~gateway.idempotency.store`: the store port, the in-memory adapter, choosing a store;
- :mod:`~gateway.idempotency.sqlite_store` / :mod:`~gateway.idempotency.redis_store`: adapters;
- :mod:`~gateway.idempotency.stage`: what the proxy calls.
"""

from gateway.idempotency.core import Answer, InFlight, Record, Stored, Verdict, decide, fingerprint
from gateway.idempotency.stage import (
    MAX_REQUEST_BODY,
    REPLAY_UPSTREAM,
    Claim,
    RouteIdempotency,
    replay_response,
    settle_pending,
)
from gateway.idempotency.store import (
    IdempotencyStore,
    MemoryStore,
    StoreUnavailable,
    open_store,
    store_url,
)

__all__ = [
    "MAX_REQUEST_BODY",
    "REPLAY_UPSTREAM",
    "Answer",
    "Claim",
    "IdempotencyStore",
    "InFlight",
    "MemoryStore",
    "Record",
    "RouteIdempotency",
    "StoreUnavailable",
    "Stored",
    "Verdict",
    "decide",
    "fingerprint",
    "open_store",
    "replay_response",
    "settle_pending",
    "store_url",
]
