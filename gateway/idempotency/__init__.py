"""Idempotency at the edge (SPEC §4.12): repeats of a keyed request are answered from a store.

- :mod:`~gateway.idempotency.core`: fingerprints, records and the decision (pure);
- :mod:`~gateway.idempotency.store`: the store port, the in-memory adapter, choosing a store;
- :mod:`~gateway.idempotency.sqlite_store` / :mod:`~gateway.idempotency.redis_store`: adapters.
"""

from gateway.idempotency.core import Answer, InFlight, Record, Stored, Verdict, decide, fingerprint
from gateway.idempotency.store import (
    IdempotencyStore,
    MemoryStore,
    StoreUnavailable,
    open_store,
    store_url,
)

__all__ = [
    "Answer",
    "IdempotencyStore",
    "InFlight",
    "MemoryStore",
    "Record",
    "StoreUnavailable",
    "Stored",
    "Verdict",
    "decide",
    "fingerprint",
    "open_store",
    "store_url",
]
