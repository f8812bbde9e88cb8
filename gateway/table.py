"""The compiled, immutable route table: `RouteTable.compile(config).match(method, path)`.

Routes live in a segment trie (one dict of literal children plus one parameter child per
node), so a match costs a few dict look-ups per path segment whatever the number of routes.
Precedence (SPEC §4.1), folded into one integer per route at compile time: the longest
path in segments, then more literal segments, then a route listing `methods`, then file order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

from gateway.config import Config, Idempotency, Route, Shadow
from gateway.paths import PARAM, path_segments

__all__ = ["BreakerSettings", "CompiledRoute", "Match", "RouteTable"]


class BreakerSettings(NamedTuple):
    """Effective breaker settings of a route (route values over `defaults.breaker`).

    The one definition; `gateway.breakers` re-exports it. It lives with the compiled route
    because `gateway.breakers` loads `gateway.metrics`, which `gateway.cli` must not import
    (under ``--workers`` it waits for PROMETHEUS_MULTIPROC_DIR).
    """

    failures: int
    reset_after: float


@dataclass(frozen=True, slots=True, eq=False)
class CompiledRoute:
    """A route ready for matching and proxying; `config` is its routes.yaml model."""

    name: str
    path: str
    methods: frozenset[str] | None
    exact: bool
    rewrite: str | None
    upstream: str | None
    split: tuple[tuple[str, int], ...] | None
    sticky: str | None
    fallback: str | None
    timeout: float
    breaker: BreakerSettings
    retries: int
    shadow: Shadow | None
    auth: str
    scopes: tuple[str, ...]
    index: int
    config: Route | None
    # Matching internals: segment count, literal count, where each parameter sits.
    depth: int = 0
    literals: int = 0
    params: tuple[tuple[int, str], ...] = ()
    # Rewrite template: literal segments, or an int for "the request's segment at that index".
    rewrite_parts: tuple[str | int, ...] | None = None
    rank: int = field(default=0, repr=False)
    idempotency: Idempotency | None = None

    @property
    def upstreams(self) -> tuple[str, ...]:
        """Every upstream this route may call: primary/split, fallback, shadow (no repeats)."""
        names: list[str] = []
        if self.upstream is not None:
            names.append(self.upstream)
        for name, _ in self.split or ():
            names.append(name)
        if self.fallback is not None:
            names.append(self.fallback)
        if self.shadow is not None:
            names.append(self.shadow.upstream)
        return tuple(dict.fromkeys(names))

    @property
    def mode(self) -> str:
        """How the route serves: plain, fallback, split or shadow (combinations joined by +)."""
        modes = ["split" if self.split else "plain"]
        if self.fallback:
            modes.append("fallback")
        if self.shadow:
            modes.append("shadow")
        if len(modes) > 1 and modes[0] == "plain":
            modes.pop(0)
        return "+".join(modes)


class Match:
    """The result of a lookup: the route, its path parameters and the path to send upstream."""

    __slots__ = ("params", "reason", "route", "upstream_path")

    def __init__(
        self, route: CompiledRoute, params: dict[str, str], upstream_path: str, reason: str = ""
    ) -> None:
        self.route = route
        self.params = params
        self.upstream_path = upstream_path
        self.reason = reason

    def __repr__(self) -> str:
        return f"Match(route={self.route.name!r}, params={self.params!r}, upstream_path={self.upstream_path!r})"


class _Node:
    """One trie node: children, and the best route ending here per method."""

    __slots__ = ("end_any", "end_by_method", "literal", "mid_any", "mid_by_method", "param")

    def __init__(self) -> None:
        self.literal: dict[str, _Node] = {}
        self.param: _Node | None = None
        # "end": the request path ends at this node (exact and prefix routes qualify);
        # "mid": the request path goes deeper (prefix routes only).
        self.end_by_method: dict[str, CompiledRoute] = {}
        self.end_any: CompiledRoute | None = None
        self.mid_by_method: dict[str, CompiledRoute] = {}
        self.mid_any: CompiledRoute | None = None


def _better(current: CompiledRoute | None, new: CompiledRoute) -> CompiledRoute:
    return new if current is None or new.rank > current.rank else current


class RouteTable:
    """An immutable compiled route table. Build it with `RouteTable.compile(config)`."""

    __slots__ = ("_root", "by_name", "config", "default", "routes")

    def __init__(
        self,
        config: Config,
        routes: Sequence[CompiledRoute],
        default: CompiledRoute,
        root: _Node,
    ) -> None:
        self.config = config
        self.routes: tuple[CompiledRoute, ...] = tuple(routes)
        self.default = default
        self.by_name: Mapping[str, CompiledRoute] = MappingProxyType(
            {r.name: r for r in (*routes, default)}
        )
        self._root = root

    @classmethod
    def compile(cls, config: Config) -> RouteTable:
        """Compile a validated config into a table."""
        n = len(config.routes)
        segments = [path_segments(r.path) for r in config.routes]
        # Ranks need a radix above any route's segment count to stay in precedence order.
        radix = max(map(len, segments), default=0) + 1
        compiled = [
            _compile_route(config, route, segs, i, n, radix)
            for i, (route, segs) in enumerate(zip(config.routes, segments, strict=True))
        ]
        root = _Node()
        for route, segs in zip(compiled, segments, strict=True):
            node = root
            for seg in segs:
                # Validated patterns: a segment starting with "{" is a whole {param}.
                if seg[:1] == "{":
                    if node.param is None:
                        node.param = _Node()
                    node = node.param
                else:
                    child = node.literal.get(seg)
                    if child is None:
                        child = node.literal[seg] = _Node()
                    node = child
            _attach(node, route)
        d = config.defaults
        default = CompiledRoute(
            name="default",
            path="/",
            methods=None,
            exact=False,
            rewrite=None,
            upstream=d.upstream,
            split=None,
            sticky=None,
            fallback=None,
            timeout=d.timeout,
            breaker=BreakerSettings(d.breaker.failures, d.breaker.reset_after),
            retries=0,
            shadow=None,
            auth="none",
            scopes=(),
            index=-1,
            config=None,
            rank=-1,
        )
        return cls(config, compiled, default, root)

    def match(self, method: str, path: str) -> Match:
        """The route serving `method` `path` (a normalised path), or the `default` route."""
        segs = path.split("/")
        # "/a/b/" splits to ['', 'a', 'b', '']: segments are [1:end], the trailing "" is not one.
        end = len(segs) - 1 if segs[-1] == "" else len(segs)
        best: CompiledRoute | None = None
        best_rank = -1
        stack = [(self._root, 1)]
        pop = stack.pop
        push = stack.append
        while stack:
            node, i = pop()
            if i == end:
                r = node.end_by_method.get(method) or node.end_any
                if r is not None and r.rank > best_rank:
                    best, best_rank = r, r.rank
                continue
            r = node.mid_by_method.get(method) or node.mid_any
            if r is not None and r.rank > best_rank:
                best, best_rank = r, r.rank
            seg = segs[i]
            child = node.literal.get(seg)
            if child is not None:
                push((child, i + 1))
            # A parameter matches exactly one non-empty segment.
            if node.param is not None and seg:
                push((node.param, i + 1))
        if best is None:
            return Match(self.default, {}, path)
        return _finish(best, segs, end, path)

    def explain(self, method: str, path: str) -> Match:
        """Like `match`, with `reason` saying which candidates matched and which rule won."""
        found = self.match(method, path)
        segs = path.split("/")
        end = len(segs) - 1 if segs[-1] == "" else len(segs)
        request = segs[1:end]
        matched = [r for r in self.routes if _pattern_matches(r, request)]
        eligible = [r for r in matched if r.methods is None or method in r.methods]
        skipped = [r for r in matched if r not in eligible]
        lines: list[str] = []
        if not eligible:
            lines.append(f"no route matches {method} {path}; served by defaults.upstream")
        else:
            lines.append("candidates: " + "; ".join(_describe(r) for r in eligible))
            if len(eligible) == 1:
                lines.append(f"{found.route.name!r} is the only matching route")
            else:
                runner_up = max((r for r in eligible if r is not found.route), key=lambda r: r.rank)
                lines.append(
                    f"{found.route.name!r} wins over {runner_up.name!r}: {_rule(found.route, runner_up)}"
                )
        for r in skipped:
            lines.append(
                f"{r.name!r} matches the path but not the method ({','.join(sorted(r.methods or ()))})"
            )
        found.reason = "\n".join(lines)
        return found


def _compile_route(
    config: Config, route: Route, segments: list[str], index: int, total: int, radix: int
) -> CompiledRoute:
    d = config.defaults
    breaker = d.breaker
    if route.breaker is not None:
        # Only the keys the route sets override the defaults.
        breaker = breaker.model_copy(
            update={k: getattr(route.breaker, k) for k in route.breaker.model_fields_set}
        )
    params = tuple((i, s[1:-1]) for i, s in enumerate(segments) if s[:1] == "{")
    literals = len(segments) - len(params)
    has_methods = route.methods is not None
    # One integer carries the whole precedence order: depth, literals, methods, file order.
    width = total + 1
    rank = ((len(segments) * radix + literals) * 2 + int(has_methods)) * width + (total - index)
    rewrite_parts: tuple[str | int, ...] | None = None
    if route.rewrite is not None:
        where = {f"{{{name}}}": i for i, name in params}
        rewrite_parts = tuple(where.get(s, s) for s in path_segments(route.rewrite))
    return CompiledRoute(
        name=route.name,
        path=route.path,
        methods=frozenset(route.methods) if route.methods is not None else None,
        exact=route.exact,
        rewrite=route.rewrite,
        upstream=route.upstream,
        split=tuple(route.split.items()) if route.split is not None else None,
        sticky=route.sticky,
        fallback=route.fallback,
        timeout=route.timeout if route.timeout is not None else d.timeout,
        breaker=BreakerSettings(breaker.failures, breaker.reset_after),
        retries=route.retries.attempts,
        shadow=route.shadow,
        auth=route.auth,
        scopes=tuple(route.scopes),
        index=index,
        config=route,
        depth=len(segments),
        literals=literals,
        params=params,
        rewrite_parts=rewrite_parts,
        rank=rank,
        idempotency=route.idempotency,
    )


def _attach(node: _Node, route: CompiledRoute) -> None:
    if route.methods is None:
        node.end_any = _better(node.end_any, route)
        if not route.exact:
            node.mid_any = _better(node.mid_any, route)
        return
    for method in route.methods:
        node.end_by_method[method] = _better(node.end_by_method.get(method), route)
        if not route.exact:
            node.mid_by_method[method] = _better(node.mid_by_method.get(method), route)


def _finish(route: CompiledRoute, segs: list[str], end: int, path: str) -> Match:
    params = {name: segs[i + 1] for i, name in route.params} if route.params else {}
    if route.rewrite_parts is None:
        return Match(route, params, path)
    # The matched prefix is the first `depth` segments; the rest (with any trailing slash) stays.
    rest = "/".join(segs[route.depth + 1 :])
    head = "/".join(p if isinstance(p, str) else segs[p + 1] for p in route.rewrite_parts)
    if rest or (route.depth + 1 < len(segs)):
        upstream_path = f"/{head}/{rest}" if head else f"/{rest}"
    else:
        upstream_path = f"/{head}"
    return Match(route, params, upstream_path)


def _pattern_matches(route: CompiledRoute, request: Sequence[str]) -> bool:
    """The brute-force test the trie encodes: used only by `explain`."""
    pattern = path_segments(route.path)
    if len(request) < len(pattern) or (route.exact and len(request) != len(pattern)):
        return False
    return all(
        (PARAM.match(p) is not None and s != "") or p == s
        for p, s in zip(pattern, request, strict=False)
    )


def _describe(route: CompiledRoute) -> str:
    methods = ",".join(sorted(route.methods)) if route.methods is not None else "any method"
    kind = "exact" if route.exact else "prefix"
    return (
        f"{route.name} ({kind} {route.path}: {route.depth} segments, "
        f"{route.literals} literal, {methods}, routes[{route.index}])"
    )


def _rule(winner: CompiledRoute, other: CompiledRoute) -> str:
    if winner.depth != other.depth:
        return f"longer path ({winner.depth} segments vs {other.depth})"
    if winner.literals != other.literals:
        return f"more literal segments ({winner.literals} vs {other.literals})"
    if (winner.methods is None) != (other.methods is None):
        return "it lists methods and the other does not"
    return f"earlier in the file (routes[{winner.index}] vs routes[{other.index}])"
