"""The shared parsing rules: first failure reported, with the contract's texts."""

from __future__ import annotations

import pytest

from extracted.contract.errors import ContractError
from extracted.contract.validation import (
    MAX_PATH_ID,
    Page,
    is_digits,
    non_empty_str,
    parse_json_object,
    parse_page,
    positive_int,
    required,
)


@pytest.mark.parametrize(
    "args,detail",
    [
        ({"limit": "0"}, "limit: must be an integer between 1 and 500"),
        ({"limit": "501"}, "limit: must be an integer between 1 and 500"),
        ({"limit": "x"}, "limit: must be an integer between 1 and 500"),
        ({"offset": "-1"}, "offset: must be an integer >= 0"),
    ],
)
def test_page_errors(args: dict[str, str], detail: str) -> None:
    with pytest.raises(ContractError) as exc:
        parse_page(args)
    assert (exc.value.status, exc.value.detail) == (422, detail)


def test_page_defaults_and_clamped_offset() -> None:
    assert parse_page({}) == Page(50, 0) == parse_page({"limit": "50", "offset": "0"})
    assert parse_page({"offset": str(10**30)}).offset == MAX_PATH_ID


@pytest.mark.parametrize(
    "value,detail",
    [
        (True, "q: must be an integer"),
        (1.0, "q: must be an integer"),
        (0, "q: must be >= 1"),
        (2_147_483_648, "q: must be <= 2147483647"),
    ],
)
def test_positive_int(value: object, detail: str) -> None:
    assert positive_int(2_147_483_647, "q") == 2_147_483_647
    with pytest.raises(ContractError) as exc:
        positive_int(value, "q")
    assert exc.value.detail == detail


def test_fields_and_strings() -> None:
    assert required({"a": 1}, "a", "x.a") == 1
    with pytest.raises(ContractError, match="x.b: is required"):
        required({"a": 1}, "b", "x.b")
    assert non_empty_str("s", "f") == "s"
    for bad, reason in ((5, "must be a string"), ("", "must not be empty")):
        with pytest.raises(ContractError) as exc:
            non_empty_str(bad, "f")
        assert exc.value.detail == f"f: {reason}"


def test_json_object() -> None:
    assert parse_json_object(b'{"a": 1}') == {"a": 1}
    for raw, detail in (
        (b"{", "request body is not valid JSON"),
        (b"[]", "request body must be a JSON object"),
    ):
        with pytest.raises(ContractError) as exc:
            parse_json_object(raw)
        assert exc.value.body() == {"error": "validation_error", "detail": detail}


def test_digits_are_ascii_only() -> None:
    assert is_digits("0123") and not any(map(is_digits, ["", "-1", "1.0", " 1", "١"]))
