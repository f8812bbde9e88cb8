"""Timestamps and list pages as the contract shows them."""

from __future__ import annotations

from datetime import UTC, datetime

from extracted.contract.shapes import TIMESTAMP_FORMAT, list_body, now_stamp, utc_stamp


def test_utc_stamp_is_second_precision_with_z() -> None:
    assert utc_stamp(0) == "1970-01-01T00:00:00Z"
    assert utc_stamp(1_795_000_000.9) == "2026-11-18T11:06:40Z"


def test_list_body_keys_in_contract_order_and_generated_now() -> None:
    body = list_body([{"a": 1}], 7)
    assert list(body) == ["items", "total", "generated_at"]
    assert body["items"] == [{"a": 1}] and body["total"] == 7
    generated = datetime.strptime(body["generated_at"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - generated).total_seconds()) < 5
    assert len(now_stamp()) == len("2026-11-18T11:06:40Z")
