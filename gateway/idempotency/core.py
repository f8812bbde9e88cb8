"""The pure part of idempotency at the edge (SPEC §4.12): fingerprints, records, the decision.

No I/O here. A keyed request is fingerprinted, the store atomically either claims its key or
returns the live record under it, and :func:`decide` says what the gateway does next.
"""

from __future__ import annotations

import enum
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.hop_by_hop import HOP_BY_HOP

__all__ = [
    "Answer",
    "InFlight",
    "Record",
    "Stored",
    "Verdict",
    "claim_hold",
    "decide",
    "decode_answer",
    "decode_record",
    "encode_answer",
    "encode_record",
    "fingerprint",
    "is_storable",
    "storable_headers",
    "store_key",
]

MAX_ANSWER_BODY = 1024 * 1024  # larger 2xx answers are passed on but not stored
CLAIM_SLACK = 30.0  # seconds an in-flight claim outlives the longest exchange it can cover

# Response headers never stored: hop-by-hop (RFC 9110 §7.6.1), framing the replay recomputes, the
# gateway's own, and Set-Cookie (a session must not be handed to whoever replays the key).
_NOT_STORED = HOP_BY_HOP | frozenset(
    {
        "content-length",
        "date",
        "set-cookie",
        "set-cookie2",
        "x-request-id",
        "x-gateway-route",
        "x-gateway-upstream",
        "idempotent-replayed",
    }
)


@dataclass(frozen=True, slots=True)
class Answer:
    """A stored upstream answer: what a replay sends back, and which upstream gave it."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    upstream: str


@dataclass(frozen=True, slots=True)
class InFlight:
    """The key is claimed by a request that has not been answered yet."""

    fingerprint: str


@dataclass(frozen=True, slots=True)
class Stored:
    """The key's first request was answered 2xx; `answer` is replayed to repeats."""

    fingerprint: str
    answer: Answer


Record = InFlight | Stored


class Verdict(enum.Enum):
    """What the gateway does with a keyed request, given the store's answer to its claim."""

    FORWARD = "forward"  # the claim is ours: forward to the upstream
    REPLAY = "replayed"  # answer from the store
    IN_PROGRESS = "in_progress"  # 409: the same request is being answered right now
    REUSED = "reused"  # 422: the key was used for another request


def decide(existing: Record | None, fingerprint: str) -> Verdict:
    """The policy: `existing` is the live record the claim ran into (None: the claim succeeded).

    A different fingerprint is a client bug whatever the key's state, so it wins over in-flight.
    """
    if existing is None:
        return Verdict.FORWARD
    if existing.fingerprint != fingerprint:
        return Verdict.REUSED
    if isinstance(existing, InFlight):
        return Verdict.IN_PROGRESS
    return Verdict.REPLAY


def is_storable(status: int, body_size: int) -> bool:
    """Only 2xx answers up to MAX_ANSWER_BODY are kept; anything else frees the key for a retry."""
    return 200 <= status < 300 and body_size <= MAX_ANSWER_BODY


def claim_hold(timeout: float, retries: int, fallback: bool) -> float:
    """How long an in-flight claim lives: every attempt the route may make, plus slack.

    A gateway that dies mid-request leaves its claim behind; it expires after this, so the key is
    locked for at most about one request's worth of time.
    """
    return timeout * (1 + retries + (1 if fallback else 0)) + CLAIM_SLACK


def store_key(route: str, key: str) -> str:
    """Where a client key lives in the store: scoped by route, hashed to a bounded size."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{route}:{digest}"


def fingerprint(method: str, target: str, body: bytes | None, content_type: str | None) -> str:
    """sha256 of the method, the normalised path with its query, and the body.

    A JSON body counts by value (key order, whitespace, ``1`` vs ``1.0`` do not matter; ``true``
    is not ``1``): the shop's contract says a repeat with equal JSON is the same request. Any
    other body counts byte for byte.
    """
    h = hashlib.sha256()
    h.update(f"{method} {target}\n".encode("utf-8", "surrogatepass"))
    data = body or b""
    canonical = _canonical_json(data, content_type)
    if canonical is None:
        h.update(b"bytes\n")
        h.update(data)
    else:
        h.update(b"json\n")
        h.update(canonical)
    return h.hexdigest()


def _canonical_json(data: bytes, content_type: str | None) -> bytes | None:
    if not data or (content_type is not None and "json" not in content_type.lower()):
        return None
    try:
        value = orjson.loads(data)
        return orjson.dumps(_normalised(value), option=orjson.OPT_SORT_KEYS)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError, TypeError):
        return None


_EXACT_FLOAT_INTS = 2**53


def _normalised(value: Any) -> Any:
    if isinstance(value, float):
        # 1.0 and 1 are the same JSON number; past 2**53 floats are not exact integers.
        if value.is_integer() and abs(value) < _EXACT_FLOAT_INTS:
            return int(value)
        return value
    if isinstance(value, dict):
        return {k: _normalised(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    return value


def storable_headers(headers: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """The upstream's response headers a replay repeats (order and duplicates kept)."""
    pairs = list(headers)
    listed: set[str] = set()
    for name, value in pairs:
        if name.lower() == "connection":
            listed.update(t.strip().lower() for t in value.split(","))
    return tuple(
        (n, v) for n, v in pairs if n.lower() not in _NOT_STORED and n.lower() not in listed
    )


# -- encodings shared by the store adapters ------------------------------------------------------------
# An answer is one line of JSON metadata, a newline, then the body bytes as they are.


def encode_answer(answer: Answer) -> bytes:
    meta = {
        "status": answer.status,
        "reason": answer.reason,
        "headers": answer.headers,
        "upstream": answer.upstream,
    }
    return orjson.dumps(meta) + b"\n" + answer.body


def decode_answer(data: bytes) -> Answer:
    meta_line, _, body = data.partition(b"\n")
    meta = orjson.loads(meta_line)
    return Answer(
        status=int(meta["status"]),
        reason=str(meta["reason"]),
        headers=tuple((str(n), str(v)) for n, v in meta["headers"]),
        body=body,
        upstream=str(meta["upstream"]),
    )


# A record with its owner's token: ``token \n F|S \n fingerprint \n [answer]`` (F in flight, S stored).
IN_FLIGHT_TAG = b"F"
STORED_TAG = b"S"


def encode_record(token: str, record: Record) -> bytes:
    head = token.encode() + b"\n"
    if isinstance(record, InFlight):
        return head + IN_FLIGHT_TAG + b"\n" + record.fingerprint.encode() + b"\n"
    return (
        head
        + STORED_TAG
        + b"\n"
        + record.fingerprint.encode()
        + b"\n"
        + encode_answer(record.answer)
    )


def decode_record(data: bytes) -> tuple[str, Record]:
    token, tag, fp, rest = data.split(b"\n", 3)
    if tag == IN_FLIGHT_TAG:
        return token.decode(), InFlight(fp.decode())
    if tag == STORED_TAG:
        return token.decode(), Stored(fp.decode(), decode_answer(rest))
    raise ValueError(f"unknown idempotency record tag {tag!r}")
