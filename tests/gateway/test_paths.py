"""gateway.paths: normalise (RFC 3986 dot-segments, hostile input, a fast common case) and
the route pattern grammar (path_segments, pattern_shape; its errors are in test_config)."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.paths import BadPath, normalise, path_segments, pattern_shape


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/", "/"),
        ("", "/"),
        ("/api/orders", "/api/orders"),
        ("/api/orders/", "/api/orders/"),
        ("/api//orders", "/api/orders"),
        ("//api///orders//", "/api/orders/"),
        ("/api/./orders", "/api/orders"),
        ("/api/x/../orders", "/api/orders"),
        ("/api/orders/.", "/api/orders/"),
        ("/api/orders/..", "/api/"),
        ("/api/orders/7/..", "/api/orders/"),
        ("/a/b/c/./../../g", "/a/g"),
        ("/api/%2e%2e/admin", "/admin"),
        ("/api/x/%2E%2e/orders", "/api/orders"),
        ("/api/.%2e/orders", "/orders"),
        ("/api/%2e/orders", "/api/orders"),
        ("/api/orders/a%20b", "/api/orders/a%20b"),
        ("/api/%7Eme/%c3%a9", "/api/%7Eme/%c3%a9"),
        ("/files/report.v2.json", "/files/report.v2.json"),
        ("/files/.../x", "/files/.../x"),
        ("/files/..a/.b", "/files/..a/.b"),
        ("/api/a%2e", "/api/a%2e"),
        ("relative/path", "/relative/path"),
    ],
)
def test_normalise(raw: str, expected: str) -> None:
    assert normalise(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "/..",
        "/../etc/passwd",
        "/api/../../etc",
        "/%2e%2e/x",
        "/a/%2E%2E/%2e%2e",
        "/api\x00/x",
        "/api/%00",
        "/api/%2f/x",
        "/api/a%2Fb",
        "/api/%",
        "/api/%4",
        "/api/%zz",
        "/api/%g1",
    ],
)
def test_bad_paths_are_rejected(raw: str) -> None:
    with pytest.raises(BadPath):
        normalise(raw)


def test_bad_path_is_a_value_error() -> None:
    assert issubclass(BadPath, ValueError)


def test_common_case_is_returned_as_is_and_fast() -> None:
    path = "/api/orders/1234/items"
    assert normalise(path) is path
    n = 200_000
    start = time.perf_counter()
    for _ in range(n):
        normalise(path)
    per_call = (time.perf_counter() - start) / n
    # ~0.1 us on an idle core; a generous bound for a busy shared machine.
    assert per_call < 2e-6, f"{per_call * 1e6:.2f} us per call"


# --- properties -------------------------------------------------------------------------

SEGMENTS = ["a", "b", "api", ".", "..", "%2e", "%2E%2e", ".%2e", "", "x.y", "...", "%41", "%7e"]
raw_paths = st.lists(st.sampled_from(SEGMENTS), max_size=8).map(lambda segs: "/" + "/".join(segs))
any_text = st.text(alphabet="/.%2eEfF0a\x00gz", max_size=20)

_DOTS = re.compile(r"%2e", re.IGNORECASE)


def reference(raw: str) -> str:
    """A straightforward RFC 3986 §5.2.4 normaliser plus the gateway's extra rules."""
    if "\x00" in raw:
        raise BadPath("nul")
    for found in re.finditer("%", raw):
        code = raw[found.start() + 1 : found.start() + 3]
        if len(code) < 2 or not all(c in "0123456789abcdefABCDEF" for c in code):
            raise BadPath("bad escape")
        if code.lower() in ("00", "2f"):
            raise BadPath("forbidden escape")
    parts = [p for p in raw.split("/") if p != ""]
    stack: list[str] = []
    for part in parts:
        decoded = _DOTS.sub(".", part)
        if decoded == ".":
            continue
        if decoded == "..":
            if not stack:
                raise BadPath("escape")
            stack.pop()
            continue
        stack.append(part)
    if not stack:
        return "/"
    last = [p for p in raw.split("/")][-1]
    directory = last == "" or _DOTS.sub(".", last) in (".", "..")
    return "/" + "/".join(stack) + ("/" if directory else "")


def _outcome(fn, raw: str) -> str:
    try:
        return fn(raw)
    except BadPath:
        return "BadPath"


@given(raw_paths)
def test_agrees_with_reference(raw: str) -> None:
    assert _outcome(normalise, raw) == _outcome(reference, raw)


@given(any_text)
def test_agrees_with_reference_on_arbitrary_text(raw: str) -> None:
    assert _outcome(normalise, raw) == _outcome(
        reference, raw if raw.startswith("/") else "/" + raw
    )


@given(st.one_of(raw_paths, any_text))
def test_output_is_canonical_and_idempotent(raw: str) -> None:
    try:
        out = normalise(raw)
    except BadPath:
        return
    assert out.startswith("/")
    assert "//" not in out
    assert "/./" not in out and "/../" not in out
    assert not out.endswith(("/.", "/.."))
    for seg in out.split("/"):
        assert _DOTS.sub(".", seg) not in (".", ".."), out
    assert normalise(out) == out


@given(raw_paths)
def test_never_escapes_root(raw: str) -> None:
    depth = 0
    escapes = False
    for seg in raw.split("/"):
        kind = _DOTS.sub(".", seg)
        if kind == "..":
            if depth == 0:
                escapes = True
                break
            depth -= 1
        elif seg not in ("", ".") and kind != ".":
            depth += 1
    if escapes:
        with pytest.raises(BadPath):
            normalise(raw)
    else:
        out = normalise(raw)
        assert len([s for s in out.split("/") if s]) == depth


# -- route path patterns --------------------------------------------------------------------
def test_pattern_segments_and_shape() -> None:
    assert path_segments("/") == []
    assert path_segments("/api/orders/{id}/lines") == ["api", "orders", "{id}", "lines"]
    assert pattern_shape("/api/orders/{id}") == ("api", "orders", None)
    assert pattern_shape("/api/orders/{order}") == pattern_shape("/api/orders/{id}")


@pytest.mark.parametrize(
    ("pattern", "problem"),
    [
        ("api", "must start with '/'"),
        ("/api/{id", "bad parameter segment"),
        ("/api/{a}/{a}", "appears twice"),
        ("/api/%2e%2e/x", "not normalised"),
        ("/api/%zz", "bad path"),
        ("/api/", "must not end with '/'"),
    ],
)
def test_bad_patterns(pattern: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        path_segments(pattern)
