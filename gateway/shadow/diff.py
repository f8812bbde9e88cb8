"""Compare two HTTP answers (pure): status, media type and body, each difference named by path.

JSON bodies are compared structurally: object keys as sets, arrays by index, numbers by value
(``1 == 1.0`` but ``True != 1``). Other bodies are compared by length and sha256. Paths look like
``items[3].price_cents``; :func:`pattern` turns them into ``items[*].price_cents`` for counting.
The pseudo-paths ``<status>``, ``<content-type>`` and ``<body>`` name the non-JSON parts.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final

import orjson

__all__ = [
    "ABSENT",
    "BODY",
    "CONTENT_TYPE",
    "STATUS",
    "Answer",
    "Diff",
    "IgnoreRules",
    "compare_answers",
    "compare_json",
    "covered_by",
    "ignore_rules",
    "is_noise_only",
    "media_type",
    "noise_patterns",
    "pattern",
]

STATUS: Final = "<status>"
CONTENT_TYPE: Final = "<content-type>"
BODY: Final = "<body>"


class _Absent:
    """The value of a key that one side does not have (distinct from JSON null)."""

    _instance: _Absent | None = None

    def __new__(cls) -> _Absent:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Final = _Absent()


@dataclass(frozen=True, slots=True)
class Diff:
    """One difference: the concrete path and both sides' values (ABSENT when missing)."""

    path: str
    primary: Any
    shadow: Any

    @property
    def pattern(self) -> str:
        """The path with array indexes replaced by ``[*]``, for per-field counts."""
        return pattern(self.path)

    def to_json(self) -> dict[str, Any]:
        """``{"path","primary","shadow"}``; a missing side is null, named under ``missing``."""
        out: dict[str, Any] = {
            "path": self.path,
            "primary": None if self.primary is ABSENT else self.primary,
            "shadow": None if self.shadow is ABSENT else self.shadow,
        }
        if self.primary is ABSENT:
            out["missing"] = "primary"
        elif self.shadow is ABSENT:
            out["missing"] = "shadow"
        return out


@dataclass(frozen=True, slots=True)
class Answer:
    """What one upstream answered: status, headers and the (complete) body."""

    status: int
    headers: Sequence[tuple[str, str]]
    body: bytes

    @property
    def content_type(self) -> str:
        for name, value in self.headers:
            if len(name) == 12 and name.lower() == "content-type":
                return value
        return ""


_INDEX = re.compile(r"\[\d+\]")
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_\-$@]+")


def pattern(path: str) -> str:
    """``items[3].price_cents`` -> ``items[*].price_cents``."""
    return _INDEX.sub("[*]", path) if "[" in path else path


def _key_path(prefix: str, key: str) -> str:
    if _PLAIN_KEY.fullmatch(key):
        return f"{prefix}.{key}" if prefix else key
    return f"{prefix}[{orjson.dumps(key).decode()}]"


def compare_json(primary: Any, shadow: Any, path: str = "") -> list[Diff]:
    """Every structural difference between two decoded JSON values."""
    out: list[Diff] = []
    _walk(primary, shadow, path, out)
    return out


def _same_scalar(a: Any, b: Any) -> bool:
    # bool is an int subclass: keep true != 1 while letting 1 == 1.0.
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _walk(a: Any, b: Any, path: str, out: list[Diff]) -> None:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in a.keys() | b.keys():
            sub = _key_path(path, key)
            if key not in b:
                out.append(Diff(sub, a[key], ABSENT))
            elif key not in a:
                out.append(Diff(sub, ABSENT, b[key]))
            else:
                _walk(a[key], b[key], sub, out)
        return
    if isinstance(a, list) and isinstance(b, list):
        for i in range(max(len(a), len(b))):
            sub = f"{path}[{i}]"
            if i >= len(b):
                out.append(Diff(sub, a[i], ABSENT))
            elif i >= len(a):
                out.append(Diff(sub, ABSENT, b[i]))
            else:
                _walk(a[i], b[i], sub, out)
        return
    if not _same_scalar(a, b):
        out.append(Diff(path or "$", a, b))


def media_type(content_type: str) -> str:
    """The media type without parameters, lower-cased: ``Application/JSON; charset=x`` -> ``application/json``."""
    return content_type.split(";", 1)[0].strip().lower()


def _json_like(mtype: str) -> bool:
    return mtype == "" or mtype == "application/json" or mtype.endswith("+json")


_NOT_JSON = object()


def _decode(body: bytes, mtype: str) -> Any:
    if not body or not _json_like(mtype):
        return _NOT_JSON
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return _NOT_JSON


def _fingerprint(body: bytes) -> dict[str, Any]:
    return {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def compare_answers(
    primary: Answer, shadow: Answer, ignore: IgnoreRules | None = None
) -> list[Diff]:
    """Differences in status, media type and body, minus those `ignore` covers."""
    diffs: list[Diff] = []
    if primary.status != shadow.status:
        diffs.append(Diff(STATUS, primary.status, shadow.status))
    p_type, s_type = media_type(primary.content_type), media_type(shadow.content_type)
    if p_type != s_type:
        diffs.append(Diff(CONTENT_TYPE, p_type or ABSENT, s_type or ABSENT))
    if primary.body != shadow.body:
        p_doc, s_doc = _decode(primary.body, p_type), _decode(shadow.body, s_type)
        if p_doc is _NOT_JSON or s_doc is _NOT_JSON:
            diffs.append(Diff(BODY, _fingerprint(primary.body), _fingerprint(shadow.body)))
        else:
            _walk(p_doc, s_doc, "", diffs)
    if ignore is not None and ignore:
        diffs = [d for d in diffs if not ignore.matches(d.path)]
    return diffs


class IgnoreRules:
    """Compiled ``ignore`` patterns: ``generated_at``, ``items[*].generated_at``, ``a.*.b``.

    A pattern covers the path it names and everything beneath it; ``[*]`` matches any index,
    a ``*`` key matches any one key. Patterns are anchored at the document root.
    """

    __slots__ = ("_regex",)

    def __init__(self, patterns: Iterable[str]) -> None:
        parts = [_compile(p) for p in patterns if p]
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def __bool__(self) -> bool:
        return self._regex is not None

    def matches(self, path: str) -> bool:
        """Whether `path` (concrete or a pattern) is ignored."""
        return self._regex is not None and self._regex.match(path) is not None


_TOKEN = re.compile(r"\[\*\]|\[\d+\]|\[\"(?:[^\"\\]|\\.)*\"\]|\.|\*|[^.\[*]+")


def _compile(pat: str) -> str:
    out: list[str] = []
    for tok in _TOKEN.findall(pat):
        if tok == "[*]":
            out.append(r"\[(?:\d+|\*)\]")
        elif tok == "*":
            out.append(r"[^.\[]+")
        else:
            out.append(re.escape(tok))
    return "".join(out) + r"(?=$|[.\[])"


@lru_cache(maxsize=1024)
def ignore_rules(patterns: tuple[str, ...]) -> IgnoreRules:
    """Cached :class:`IgnoreRules` for a route's ``ignore`` list (compiled once per list)."""
    return IgnoreRules(patterns)


def covered_by(path_pattern: str, patterns: frozenset[str] | set[str]) -> bool:
    """Whether `path_pattern` or one of its ancestors is in `patterns` (learned noise)."""
    if not patterns:
        return False
    if path_pattern in patterns:
        return True
    cut = len(path_pattern)
    while True:
        cut = max(path_pattern.rfind(".", 0, cut), path_pattern.rfind("[", 0, cut))
        if cut <= 0:
            return False
        if path_pattern[:cut] in patterns:
            return True


def noise_patterns(first: Answer, second: Answer, ignore: IgnoreRules | None = None) -> set[str]:
    """The field patterns that differ between two answers of the PRIMARY (Diffy's noise).

    A status flap is not learned: it would hide every later status mismatch.
    """
    return {d.pattern for d in compare_answers(first, second, ignore) if d.path != STATUS}


def is_noise_only(diffs: Sequence[Diff], noise: frozenset[str] | set[str]) -> bool:
    """True when there are diffs and every one is covered by learned noise."""
    return bool(diffs) and all(covered_by(d.pattern, noise) for d in diffs)
