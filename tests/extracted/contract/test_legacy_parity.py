"""The contract's copies equal the legacy's originals (`legacy_monolith` is the reference).

`extracted.contract` copies texts, codes, limits and formats from the legacy on purpose (the
services deploy without its code); this is where a drift between a copy and its original
fails. The HTTP-level check of whole error bodies is tests/contract/test_error_texts.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from extracted.contract import errors, shapes, validation

legacy_errors = pytest.importorskip("legacy_monolith.errors")
legacy_validation = pytest.importorskip("legacy_monolith.validation")
legacy_db = pytest.importorskip("legacy_monolith.db")

TEXTS = [
    name
    for name, value in vars(errors).items()
    if name.isupper() and isinstance(value, str | int) and name != "INTERNAL_ERROR"
]

# (contract constructor, legacy constructor, arguments)
CONSTRUCTORS: list[tuple[Callable[..., Any], Callable[..., Any], tuple[Any, ...]]] = [
    (errors.path_not_found, legacy_errors.path_not_found, ()),
    (errors.order_not_found, legacy_errors.order_not_found, (42,)),
    (errors.order_not_found, legacy_errors.order_not_found, ("x1",)),
    (errors.item_not_found, legacy_errors.item_not_found, ("SKU-0001",)),
    (errors.validation_error, legacy_errors.validation_error, ("items[1].qty", errors.MISSING)),
    (errors.invalid_body, legacy_errors.invalid_body, (errors.INVALID_JSON,)),
    (errors.unknown_customer, legacy_errors.unknown_customer, (9,)),
    (errors.unknown_sku, legacy_errors.unknown_sku, ("ZZ",)),
    (errors.insufficient_stock, legacy_errors.insufficient_stock, ("SKU-0002",)),
    (errors.reservation_conflict, legacy_errors.reservation_conflict, ("SKU-0003", 7)),
    (errors.idempotency_key_reused, legacy_errors.idempotency_key_reused, ()),
    (errors.dependency_unavailable, legacy_errors.dependency_unavailable, ("inventory",)),
    (errors.body_too_large, legacy_errors.body_too_large, ()),
    (errors.method_not_allowed, legacy_errors.method_not_allowed, ("PUT",)),
]


def test_every_text_is_the_legacy_text() -> None:
    assert len(TEXTS) > 15
    for name in TEXTS:
        assert getattr(errors, name) == getattr(legacy_errors, name), name


@pytest.mark.parametrize(
    "ours,theirs,args", CONSTRUCTORS, ids=[f"{c[0].__name__}{c[2]}" for c in CONSTRUCTORS]
)
def test_every_error_is_the_legacy_error(
    ours: Callable[..., Any], theirs: Callable[..., Any], args: tuple[Any, ...]
) -> None:
    a, b = ours(*args), theirs(*args)
    assert (a.status, a.code, a.detail, a.body()) == (b.status, b.code, b.detail, b.body())


def test_the_internal_error_is_the_legacy_answer() -> None:
    # The legacy writes this one inline in its error handler (legacy_monolith/app.py).
    assert errors.internal_error().body() == {
        "error": "internal_error",
        "detail": "internal server error",
    }


def test_limits_and_formats_are_the_legacy_ones() -> None:
    assert validation.DEFAULT_LIMIT == legacy_validation.DEFAULT_LIMIT
    assert validation.MAX_LIMIT == legacy_validation.MAX_LIMIT
    assert validation.MAX_PATH_ID == legacy_validation._MAX_PATH_ID
    assert shapes.TIMESTAMP_FORMAT == legacy_db.TS_FORMAT
    assert shapes.NEW_SERVICES_ID_FLOOR == legacy_db.ID_CEILING


def _outcome(parse: Callable[[], Any]) -> Any:
    try:
        value = parse()
    except (errors.ContractError, legacy_errors.ShopError) as exc:  # compare the answers
        return ("error", exc.status, exc.body())
    return ("value", (value.limit, value.offset) if hasattr(value, "limit") else value)


QUERIES = [
    {},
    {"limit": "1", "offset": "0"},
    {"limit": "500"},
    {"limit": "501"},
    {"limit": "0"},
    {"limit": "x"},
    {"limit": " 5"},
    {"offset": "-1"},
    {"offset": str(10**30)},
    {"customer_id": "abc"},
]


@pytest.mark.parametrize("query", QUERIES, ids=[str(q) for q in QUERIES])
def test_page_parsing_is_the_legacys(query: dict[str, str]) -> None:
    assert _outcome(lambda: validation.parse_page(query)) == _outcome(
        lambda: legacy_validation.parse_page(query)
    )


@pytest.mark.parametrize("raw", ["1", "0", "-1", "abc", "2147483647", "2147483648", "1.0"])
def test_query_integer_parsing_is_the_legacys(raw: str) -> None:
    query = {"customer_id": raw}
    assert _outcome(lambda: validation.parse_query_positive_int(query, "customer_id")) == _outcome(
        lambda: legacy_validation.parse_customer_filter(query)
    )


BODIES = [b"{", b"[]", b"{}", b'{"qty": true}', b'{"qty": 1.5}', b'{"qty": 0}', b'{"qty": 3}']


@pytest.mark.parametrize("raw", BODIES, ids=[b.decode() for b in BODIES])
def test_body_parsing_is_the_legacys(raw: bytes) -> None:
    def ours() -> int:
        body = validation.parse_json_object(raw)
        return validation.positive_int(validation.required(body, "qty", "qty"), "qty")

    assert _outcome(ours) == _outcome(lambda: legacy_validation.parse_restock(raw))


@pytest.mark.parametrize("raw", ["7", "0", "x", str(2**63), "007"])
def test_path_id_parsing_is_the_legacys(raw: str) -> None:
    assert _outcome(lambda: validation.parse_path_id(raw, errors.order_not_found(raw))) == _outcome(
        lambda: legacy_validation.parse_path_id(raw, legacy_errors.order_not_found(raw))
    )
