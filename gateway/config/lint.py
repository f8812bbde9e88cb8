"""Cross-field lint of routes.yaml: the checks that need more than one field.

Names, upstream references, auth's key source, rewrite parameters, and routes that can
never match. Each problem is a (location, message) pair; `gateway.config.load` gives it
the line of that location. Runs on whichever routes validated, so one bad route does not
hide the others' problems.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.config.schema import AuthConfig, Document, Route
from gateway.paths import PARAM, path_segments, pattern_shape

__all__ = ["Loc", "Problem", "Refs", "cross_check"]

UPSTREAM_NAME = re.compile(r"[a-z0-9_-]+")

# Where a problem is, as pydantic spells locations: ("routes", 3, "shadow", "upstream").
Loc = tuple[str | int, ...]
Problem = tuple[Loc, str]


@dataclass(frozen=True)
class Refs:
    """What route cross-checks need from the top level, even when the top level is invalid."""

    upstreams: frozenset[str] | None  # None: unknown, so upstream references aren't checked
    defaults_upstream: str | None
    auth: AuthConfig | None
    has_auth: bool

    @classmethod
    def of(cls, doc: Document | None, raw: dict[str, Any]) -> Refs:
        """From the validated top level, or else from whatever the raw mapping holds."""
        if doc is not None:
            return cls(
                frozenset(doc.upstreams), doc.defaults.upstream, doc.auth, doc.auth is not None
            )
        upstreams = raw.get("upstreams")
        defaults = raw.get("defaults")
        default = defaults.get("upstream") if isinstance(defaults, dict) else None
        return cls(
            frozenset(upstreams) if isinstance(upstreams, dict) else None,
            default if isinstance(default, str) else None,
            None,
            isinstance(raw.get("auth"), dict),
        )


def cross_check(refs: Refs, routes: Sequence[tuple[int, Route]], base_dir: Path) -> list[Problem]:
    """Checks that need more than one field: names, references, reachability."""
    problems: list[Problem] = []
    known = refs.upstreams
    for name in sorted(known or ()):
        if not UPSTREAM_NAME.fullmatch(name):
            problems.append((("upstreams", name), f"upstream name {name!r} must match [a-z0-9_-]+"))

    def need(loc: Loc, name: str) -> None:
        if known is not None and name not in known:
            problems.append((loc, f"unknown upstream {name!r} (known: {', '.join(sorted(known))})"))

    if refs.defaults_upstream is not None:
        need(("defaults", "upstream"), refs.defaults_upstream)
    if refs.auth is not None:
        problems.extend(_check_auth(refs.auth, base_dir))
    seen: dict[str, int] = {}
    for i, route in routes:
        at: Loc = ("routes", i)
        if route.name in seen:
            problems.append(
                (
                    (*at, "name"),
                    f"duplicate route name {route.name!r} (also routes[{seen[route.name]}])",
                )
            )
        else:
            seen[route.name] = i
        if route.upstream is None and route.split is None:
            problems.append((at, "a route needs exactly one of 'upstream' or 'split'"))
        elif route.upstream is not None and route.split is not None:
            problems.append(((*at, "split"), "a route needs exactly one of 'upstream' or 'split'"))
        if route.upstream is not None:
            need((*at, "upstream"), route.upstream)
        for target in route.split or {}:
            need((*at, "split", target), target)
        if route.sticky is not None and route.split is None:
            problems.append(((*at, "sticky"), "sticky only applies to a route with 'split'"))
        if route.fallback is not None:
            need((*at, "fallback"), route.fallback)
            if route.fallback == route.upstream:
                problems.append(((*at, "fallback"), "fallback is the route's own upstream"))
        if route.shadow is not None:
            need((*at, "shadow", "upstream"), route.shadow.upstream)
            if route.shadow.upstream == route.upstream:
                problems.append(((*at, "shadow", "upstream"), "shadow is the route's own upstream"))
        if route.idempotency is not None and route.methods is not None:
            unserved = [m for m in route.idempotency.methods if m not in route.methods]
            if unserved:
                problems.append(
                    (
                        (*at, "idempotency", "methods"),
                        f"the route does not serve {', '.join(unserved)} "
                        f"(its methods: {', '.join(route.methods)})",
                    )
                )
        if route.auth != "none" and not refs.has_auth:
            problems.append(((*at, "auth"), f"auth: {route.auth} needs a top-level 'auth:' block"))
        if route.scopes and route.auth == "none":
            problems.append(((*at, "scopes"), "scopes need auth: required or optional"))
        if route.rewrite is not None:
            params = {s for s in path_segments(route.path) if PARAM.match(s)}
            for seg in path_segments(route.rewrite):
                if PARAM.match(seg) and seg not in params:
                    problems.append(((*at, "rewrite"), f"{seg} is not a parameter of the path"))
    problems.extend(_check_reachable(routes))
    return problems


def _check_auth(auth: AuthConfig, base_dir: Path) -> list[Problem]:
    problems: list[Problem] = []
    if (auth.secret_env is None) == (auth.public_key_file is None):
        problems.append(
            (
                ("auth",),
                "auth needs exactly one of 'secret_env' (HS256) or 'public_key_file' (RS256)",
            )
        )
        return problems
    if auth.algorithm == "HS256" and auth.secret_env is None:
        problems.append((("auth", "algorithm"), "HS256 needs 'secret_env'"))
    if auth.algorithm == "RS256" and auth.public_key_file is None:
        problems.append((("auth", "algorithm"), "RS256 needs 'public_key_file'"))
    if auth.public_key_file is not None:
        key_path = base_dir / auth.public_key_file
        if not key_path.is_file():
            problems.append((("auth", "public_key_file"), f"no such file: {key_path}"))
    return problems


def _check_reachable(routes: Sequence[tuple[int, Route]]) -> list[Problem]:
    """A route is dead when an earlier route with the same pattern always wins over it."""
    problems: list[Problem] = []
    # Only routes with the same pattern shape can cover each other: group, then compare pairs.
    by_shape: dict[tuple[str | None, ...], list[tuple[int, Route]]] = {}
    for i, later in routes:
        group = by_shape.setdefault(pattern_shape(later.path), [])
        for j, earlier in group:
            if _covers(earlier, later):
                problems.append(
                    (
                        ("routes", i, "path"),
                        f"route {later.name!r} can never match: routes[{j}] ({earlier.name!r}) "
                        "has the same path and takes all its methods first",
                    )
                )
                break
        group.append((i, later))
    return problems


def _covers(earlier: Route, later: Route) -> bool:
    """Whether `earlier` (same pattern, earlier in the file) wins every request `later` could."""
    # An exact route can't take a prefix route's deeper paths.
    if earlier.exact and not later.exact:
        return False
    if earlier.methods is None:
        # At the same pattern, a route listing methods beats one that lists none.
        return later.methods is None
    if later.methods is None:
        return False
    return set(later.methods) <= set(earlier.methods)
