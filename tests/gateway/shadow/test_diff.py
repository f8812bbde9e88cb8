"""gateway/shadow/diff.py: structural JSON comparison, ignore rules, noise (pure)."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from gateway.shadow.diff import (
    ABSENT,
    BODY,
    CONTENT_TYPE,
    STATUS,
    Answer,
    Diff,
    IgnoreRules,
    compare_answers,
    compare_json,
    covered_by,
    is_noise_only,
    media_type,
    noise_patterns,
    pattern,
)

JSON = [("Content-Type", "application/json")]


def answer(doc: object, status: int = 200, headers: list[tuple[str, str]] | None = None) -> Answer:
    return Answer(status, headers if headers is not None else JSON, orjson.dumps(doc))


def paths(diffs: list[Diff]) -> set[str]:
    return {d.path for d in diffs}


def test_equal_documents_have_no_diffs() -> None:
    doc = {"a": 1, "b": [1, 2, {"c": None}], "d": "x"}
    assert compare_json(doc, orjson.loads(orjson.dumps(doc))) == []


def test_keys_compared_as_sets_order_irrelevant() -> None:
    assert compare_json({"a": 1, "b": 2}, {"b": 2, "a": 1}) == []


def test_missing_key_on_either_side_uses_absent_marker() -> None:
    diffs = compare_json({"a": 1, "b": 2}, {"a": 1, "c": 3})
    by_path = {d.path: d for d in diffs}
    assert by_path["b"] == Diff("b", 2, ABSENT)
    assert by_path["c"] == Diff("c", ABSENT, 3)
    assert by_path["b"].to_json() == {
        "path": "b",
        "primary": 2,
        "shadow": None,
        "missing": "shadow",
    }


def test_null_is_not_absent() -> None:
    (d,) = compare_json({"a": None}, {})
    assert d.primary is None and d.shadow is ABSENT


def test_numbers_by_value_but_bool_is_not_int() -> None:
    assert compare_json({"n": 1}, {"n": 1.0}) == []
    assert compare_json([True], [1]) == [Diff("[0]", True, 1)]
    assert compare_json([0], [False]) == [Diff("[0]", 0, False)]
    assert compare_json([True], [True]) == []


def test_string_vs_number_differs() -> None:
    assert compare_json({"id": 1}, {"id": "1"}) == [Diff("id", 1, "1")]


def test_nested_paths_name_array_indexes() -> None:
    primary = {"items": [{"price_cents": 1}] * 4, "customer": {"name": "Ann"}}
    shadow = {
        "items": [{"price_cents": 1}] * 3 + [{"price_cents": 2}],
        "customer": {"name": "Bob"},
    }
    assert paths(compare_json(primary, shadow)) == {"items[3].price_cents", "customer.name"}


def test_top_level_array_and_length_difference() -> None:
    diffs = compare_json([1, 2], [1, 3, 4])
    assert diffs == [Diff("[1]", 2, 3), Diff("[2]", ABSENT, 4)]


def test_type_change_object_vs_array() -> None:
    assert compare_json({"a": {"x": 1}}, {"a": [1]}) == [Diff("a", {"x": 1}, [1])]


def test_root_scalar_difference_is_named_dollar() -> None:
    assert compare_json(1, 2) == [Diff("$", 1, 2)]


def test_odd_keys_are_quoted() -> None:
    (d,) = compare_json({"a.b": 1}, {"a.b": 2})
    assert d.path == '["a.b"]'


def test_pattern_normalises_indexes() -> None:
    assert pattern("items[3].price_cents") == "items[*].price_cents"
    assert pattern("[0]") == "[*]"
    assert pattern("a.b") == "a.b"


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("application/json", "Application/JSON"),
        ("application/json; charset=utf-8", "application/json"),
        ("text/html; charset=UTF-8; q=1", "text/html;q=1;charset=utf-8"),
    ],
)
def test_media_type_ignores_parameters_and_case(a: str, b: str) -> None:
    assert media_type(a) == media_type(b)


def test_status_and_content_type_are_compared() -> None:
    diffs = compare_answers(
        answer({"a": 1}), answer({"a": 1}, 404, [("content-type", "text/plain")])
    )
    # Same bytes: no body diff at all.
    assert {d.path: (d.primary, d.shadow) for d in diffs} == {
        STATUS: (200, 404),
        CONTENT_TYPE: ("application/json", "text/plain"),
    }


def test_missing_content_type_on_one_side() -> None:
    (d,) = compare_answers(answer({}), answer({}, headers=[]))
    assert d == Diff(CONTENT_TYPE, "application/json", ABSENT)


def test_content_type_parameters_do_not_count() -> None:
    p = answer({"a": 1}, headers=[("Content-Type", "application/json; charset=utf-8")])
    s = answer({"a": 1}, headers=[("content-type", "APPLICATION/JSON")])
    assert compare_answers(p, s) == []


def test_json_bodies_compared_structurally_whitespace_irrelevant() -> None:
    p = Answer(200, JSON, b'{"a": 1, "b": [1, 2]}')
    s = Answer(200, JSON, b'{"b":[1,2.0],"a":1}')
    assert compare_answers(p, s) == []


def test_non_json_bodies_by_length_and_hash() -> None:
    html = [("Content-Type", "text/html")]
    (d,) = compare_answers(Answer(200, html, b"<p>a</p>"), Answer(200, html, b"<p>bb</p>"))
    assert d.path == BODY
    assert d.primary == {"length": 8, "sha256": hashlib.sha256(b"<p>a</p>").hexdigest()}
    assert d.shadow["length"] == 9
    assert compare_answers(Answer(200, html, b"same"), Answer(200, html, b"same")) == []


def test_invalid_json_falls_back_to_hash() -> None:
    (d,) = compare_answers(Answer(200, JSON, b"{bad"), Answer(200, JSON, b"{}"))
    assert d.path == BODY


@pytest.mark.parametrize(
    ("rules", "path", "ignored"),
    [
        (["generated_at"], "generated_at", True),
        (["generated_at"], "items[0].generated_at", False),
        (["items[*].generated_at"], "items[7].generated_at", True),
        (["items[*].generated_at"], "items[*].generated_at", True),
        (["items[*].generated_at"], "items[7].price", False),
        (["a.*.b"], "a.x.b", True),
        (["a.*.b"], "a.x.c", False),
        (["a.*.b"], "a.x.y.b", False),
        (["customer"], "customer.name", True),
        (["customer"], "customers", False),
        (["items[2]"], "items[2].sku", True),
        (["items[2]"], "items[3].sku", False),
        (["<status>"], "<status>", True),
        ([], "anything", False),
    ],
)
def test_ignore_rules(rules: list[str], path: str, ignored: bool) -> None:
    assert IgnoreRules(rules).matches(path) is ignored


def test_ignored_paths_never_count() -> None:
    p = answer({"generated_at": "t1", "items": [{"generated_at": "t1", "sku": "A"}], "total": 1})
    s = answer({"generated_at": "t2", "items": [{"generated_at": "t3", "sku": "A"}], "total": 1})
    rules = IgnoreRules(["generated_at", "items[*].generated_at"])
    assert compare_answers(p, s, rules) == []
    assert paths(compare_answers(p, s)) == {"generated_at", "items[0].generated_at"}


def test_noise_patterns_from_two_primary_answers() -> None:
    first = answer({"now": "t1", "items": [{"at": 1, "sku": "A"}, {"at": 2, "sku": "B"}]})
    second = answer({"now": "t2", "items": [{"at": 3, "sku": "A"}, {"at": 4, "sku": "B"}]})
    assert noise_patterns(first, second) == {"now", "items[*].at"}


def test_status_flap_is_not_learned_as_noise() -> None:
    assert noise_patterns(answer({}, 200), answer({}, 500)) == set()


def test_covered_by_and_noise_only() -> None:
    noise = {"now", "items[*].meta"}
    assert covered_by("now", noise)
    assert covered_by("items[*].meta.x", noise)
    assert not covered_by("items[*].sku", noise)
    assert not covered_by("nowhere", noise)
    assert is_noise_only([Diff("now", 1, 2), Diff("items[3].meta", 1, 2)], noise)
    assert not is_noise_only([Diff("now", 1, 2), Diff("items[3].sku", 1, 2)], noise)
    assert not is_noise_only([], noise)
