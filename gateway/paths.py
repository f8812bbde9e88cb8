"""Request path normalisation: the one place that decides what path a request really asks for.

The route table and the upstream both see the output of `normalise`, so a client cannot
reach a path the table did not route (``/api/orders/../admin``, ``%2e%2e``, ``%2f``, NUL).
"""

from __future__ import annotations

__all__ = ["BadPath", "normalise"]

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
