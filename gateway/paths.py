"""Paths: request path normalisation, and the grammar of route path patterns.

`normalise` is the one place that decides what path a request really asks for. The route
table and the upstream both see its output, so a client cannot reach a path the table did
not route (``/api/orders/../admin``, ``%2e%2e``, ``%2f``, NUL).

`path_segments` reads a routes.yaml pattern (``/api/orders/{id}``): the config validates
`path` and `rewrite` with it, and the route table compiles its segments.
"""

from __future__ import annotations

import re

__all__ = ["PARAM", "BadPath", "normalise", "path_segments", "pattern_shape"]

# A whole-segment parameter of a route pattern: ``{id}``; group 1 is its name.
PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")

_HEX = frozenset("0123456789abcdefABCDEF")
# Segments that are dot-segments once their percent-encoded dots are read as dots.
_DOT = frozenset({".", "%2e", "%2E"})
_DOTDOT = frozenset(a + b for a in (".", "%2e", "%2E") for b in (".", "%2e", "%2E"))


class BadPath(ValueError):
    """The request path is malformed or hostile (answered with 400)."""


def normalise(raw: str) -> str:
    """The canonical form of a raw (percent-encoded, query-less) request path.

    Resolves dot-segments (RFC 3986 §5.2.4, ``%2e`` counts as a dot), collapses ``//``,
    keeps other percent-encodings as sent, and always returns a path starting with ``/``.
    Raises BadPath on NUL, invalid percent-encoding, an encoded slash, or a path that
    climbs above the root.
    """
    # Hot path: a plain path needs none of the work below; four C-level scans decide that.
    if (
        raw[:1] == "/"
        and "." not in raw
        and "%" not in raw
        and "//" not in raw
        and "\x00" not in raw
    ):
        return raw
    return _normalise_slow(raw)


def _normalise_slow(raw: str) -> str:
    if "\x00" in raw:
        raise BadPath("NUL byte in path")
    if "%" in raw:
        _check_percent(raw)
    segments = raw.split("/")
    out: list[str] = []
    # A path ending in "/", "/." or "/.." names a directory: keep the trailing slash.
    trailing = False
    for seg in segments:
        if seg == "":
            trailing = True
            continue
        if seg in _DOT:
            trailing = True
        elif seg in _DOTDOT:
            if not out:
                raise BadPath("path escapes the root")
            out.pop()
            trailing = True
        else:
            out.append(seg)
            trailing = False
    if not out:
        return "/"
    path = "/" + "/".join(out)
    return path + "/" if trailing else path


def _check_percent(raw: str) -> None:
    """Reject bad percent-encoding, %00 and %2F (an encoded slash would smuggle a segment)."""
    i = raw.find("%")
    end = len(raw)
    while i != -1:
        if i + 2 >= end:
            raise BadPath(f"bad percent-encoding at offset {i}")
        hi, lo = raw[i + 1], raw[i + 2]
        if hi not in _HEX or lo not in _HEX:
            raise BadPath(f"bad percent-encoding at offset {i}")
        if hi == "0" and lo == "0":
            raise BadPath("encoded NUL (%00) in path")
        if hi == "2" and lo in "fF":
            raise BadPath("encoded slash (%2F) in path")
        i = raw.find("%", i + 3)


def path_segments(path: str) -> list[str]:
    """The segments of a route path pattern; raises ValueError on bad syntax.

    A pattern starts with ``/``, is already normalised, and a ``{param}`` is a whole segment.
    """
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/', got {path!r}")
    segments = [seg for seg in path.split("/")[1:] if seg]
    names: set[str] = set()
    for seg in segments:
        if "{" in seg or "}" in seg:
            found = PARAM.match(seg)
            if found is None:
                raise ValueError(
                    f"bad parameter segment {seg!r}: a parameter is a whole segment like {{id}}"
                )
            if found.group(1) in names:
                raise ValueError(f"parameter {{{found.group(1)}}} appears twice")
            names.add(found.group(1))
    literal = "/" + "/".join("x" if s[:1] == "{" else s for s in segments)
    try:
        canonical = normalise(literal)
    except BadPath as exc:
        raise ValueError(f"bad path {path!r}: {exc}") from exc
    if canonical.rstrip("/") != literal.rstrip("/") or "//" in path:
        raise ValueError(f"path {path!r} is not normalised (no '//', '.' or '..' segments)")
    if len(path) > 1 and path.endswith("/"):
        raise ValueError(f"path {path!r} must not end with '/' (prefix matching covers it)")
    return segments


def pattern_shape(path: str) -> tuple[str | None, ...]:
    """A path pattern with parameter names erased (None per parameter segment)."""
    return tuple(None if s[:1] == "{" else s for s in path_segments(path))
