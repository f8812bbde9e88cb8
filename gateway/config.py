"""routes.yaml: pydantic models of the whole file, loading, and errors that name the line.

`load_config(path)` / `parse_config(text)` return a frozen `Config` or raise `ConfigError`
listing every problem as ``file:line: key: message`` (SPEC §4.1). Nothing here touches the
network; the route table (`gateway.table`) compiles a `Config` for matching.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
)

from gateway.durations import parse_duration, parse_size
from gateway.paths import BadPath, normalise

__all__ = [
    "AuthConfig",
    "Breaker",
    "Config",
    "ConfigError",
    "ConfigIssue",
    "Defaults",
    "Idempotency",
    "Retries",
    "Route",
    "Shadow",
    "Upstream",
    "load_config",
    "parse_config",
    "path_segments",
]

ROUTE_NAME = re.compile(r"[a-z0-9-]+")  # used with fullmatch: "$" would accept a trailing newline
UPSTREAM_NAME = re.compile(r"[a-z0-9_-]+")
PARAM = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
# RFC 9110 token: what an HTTP method or header name may be made of.
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
DEFAULT_SHADOW_STORE = "sqlite:///var/shadow.db"


def _duration(value: object) -> float:
    return parse_duration(value)


def _duration_or_zero(value: object) -> float:
    return parse_duration(value, allow_zero=True)


def _number(value: object) -> object:
    # YAML `sample: yes` or `sample: "0.5"` is a typo, not a number.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    return value


Duration = Annotated[float, BeforeValidator(_duration)]
LeewayDuration = Annotated[float, BeforeValidator(_duration_or_zero)]
Size = Annotated[int, BeforeValidator(parse_size)]


def _positive(weight: int) -> int:
    if weight <= 0:
        raise ValueError(f"weight must be a positive integer, got {weight}")
    return weight


Weight = Annotated[StrictInt, AfterValidator(_positive)]
Fraction = Annotated[float, BeforeValidator(_number), Field(ge=0.0, le=1.0)]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Upstream(_Model):
    """A backend the gateway forwards to."""

    url: str
    connect_timeout: Duration = 2.0
    max_connections: StrictInt = Field(default=256, ge=1)

    @field_validator("url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme == "https":
            # Fail at load time, not on the first request: the upstream pool speaks plain HTTP/1.1.
            raise ValueError(f"https upstreams are not supported yet; use http:// ({url!r})")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"url must be http://host[:port], got {url!r}")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError("url must not carry a path, query or fragment (use a route's rewrite)")
        try:
            parts.port  # noqa: B018 - raises ValueError on a bad port
        except ValueError as exc:
            raise ValueError(f"bad port in url {url!r}") from exc
        return url.rstrip("/")

    @property
    def scheme(self) -> str:
        """ "http" or "https"."""
        return urlsplit(self.url).scheme

    @property
    def host(self) -> str:
        """The host name or address, without brackets."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The explicit port, or 80/443 by scheme."""
        parts = urlsplit(self.url)
        return parts.port or (443 if parts.scheme == "https" else 80)


class Breaker(_Model):
    """Circuit-breaker settings: open after `failures` in a row, try again after `reset_after`."""

    failures: StrictInt = Field(default=5, ge=1)
    reset_after: Duration = 30.0


class Retries(_Model):
    """Extra attempts for idempotent methods on connect errors and timeouts (0 = none)."""

    attempts: StrictInt = Field(default=0, ge=0, le=10)


class Defaults(_Model):
    """What applies to the fall-through route `default` and to routes that do not say."""

    upstream: str
    timeout: Duration = 10.0
    breaker: Breaker = Breaker()


def _methods(value: object) -> object:
    if isinstance(value, list):
        return [m.upper() if isinstance(m, str) else m for m in value]
    return value


class Shadow(_Model):
    """Mirror a sample of a route's requests to another upstream and compare the answers."""

    upstream: str
    sample: Fraction = 1.0
    ignore: list[str] = []
    noise: Literal["auto", "off"] = "off"
    noise_sample: Fraction = 0.1
    # None = GET and HEAD only (SPEC §4.4); other methods only when listed.
    methods: Annotated[list[str] | None, BeforeValidator(_methods)] = None
    max_body: Size = 1024 * 1024
    # None = the route's timeout.
    timeout: Duration | None = None

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, methods: list[str] | None) -> list[str] | None:
        return _check_method_list(methods)

    @property
    def mirrored_methods(self) -> frozenset[str]:
        """The methods whose requests are mirrored."""
        return frozenset(self.methods) if self.methods is not None else frozenset({"GET", "HEAD"})


class Idempotency(_Model):
    """Answer repeats of a keyed request from the gateway's store instead of the upstream (SPEC §4.12)."""

    header: str = "Idempotency-Key"
    ttl: Duration = 24 * 3600.0
    methods: Annotated[list[str], BeforeValidator(_methods)] = ["POST"]

    @field_validator("header")
    @classmethod
    def _check_header(cls, header: str) -> str:
        if not TOKEN.match(header):
            raise ValueError(f"header must be a header name, got {header!r}")
        return header

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, methods: list[str]) -> list[str]:
        if not methods:
            raise ValueError("methods: [] guards no request (leave the idempotency block out)")
        _check_method_list(methods)
        if "CONNECT" in methods:
            raise ValueError("CONNECT opens a tunnel; its answer cannot be stored and replayed")
        return methods


class AuthConfig(_Model):
    """JWT verification at the edge: HS256 with a secret from the environment, or RS256."""

    algorithm: Literal["HS256", "RS256"] | None = None
    secret_env: str | None = None
    public_key_file: str | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway: LeewayDuration = 30.0

    @property
    def alg(self) -> str:
        """The algorithm, inferred from the key source when not given."""
        if self.algorithm:
            return self.algorithm
        return "HS256" if self.secret_env else "RS256"


class Route(_Model):
    """One routes.yaml route."""

    name: str
    path: str
    methods: Annotated[list[str] | None, BeforeValidator(_methods)] = None
    exact: bool = False
    rewrite: str | None = None
    upstream: str | None = None
    split: dict[str, Weight] | None = None
    sticky: str | None = None
    fallback: str | None = None
    timeout: Duration | None = None
    breaker: Breaker | None = None
    retries: Retries = Retries()
    shadow: Shadow | None = None
    idempotency: Idempotency | None = None
    auth: Literal["required", "optional", "none"] = "none"
    scopes: list[str] = []

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if not ROUTE_NAME.fullmatch(name):
            raise ValueError(f"route name {name!r} must match [a-z0-9-]+ (it is a metrics label)")
        if name == "default":
            raise ValueError("'default' is reserved for the fall-through route")
        return name

    @field_validator("path", "rewrite")
    @classmethod
    def _check_path(cls, path: str | None) -> str | None:
        if path is not None:
            path_segments(path)
        return path

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, methods: list[str] | None) -> list[str] | None:
        return _check_method_list(methods)

    @field_validator("split")
    @classmethod
    def _check_split(cls, split: dict[str, int] | None) -> dict[str, int] | None:
        if split is None:
            return None
        if not split:
            raise ValueError("split needs at least one upstream with a weight")
        return split

    @field_validator("sticky")
    @classmethod
    def _check_sticky(cls, sticky: str | None) -> str | None:
        if sticky is not None and not TOKEN.match(sticky):
            raise ValueError(f"sticky must be a header name, got {sticky!r}")
        return sticky


def _check_method_list(methods: list[str] | None) -> list[str] | None:
    if methods is None:
        return None
    if not methods:
        raise ValueError("methods: [] matches no request (leave methods out for all methods)")
    for method in methods:
        if not TOKEN.match(method):
            raise ValueError(f"bad HTTP method {method!r}")
    if len(set(methods)) != len(methods):
        raise ValueError("a method is listed twice")
    return methods


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


class _Document(_Model):
    """Exactly the keys a routes.yaml may hold."""

    version: Literal[1]
    upstreams: dict[str, Upstream] = Field(min_length=1)
    defaults: Defaults
    shadow_store: str = DEFAULT_SHADOW_STORE
    trusted_proxies: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    auth: AuthConfig | None = None
    routes: list[Route] = []

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _check_cidrs(cls, value: object) -> object:
        if not isinstance(value, list):
            return value
        nets = []
        for item in value:
            try:
                nets.append(ipaddress.ip_network(str(item), strict=False))
            except ValueError as exc:
                raise ValueError(f"bad CIDR {item!r} in trusted_proxies") from exc
        return nets


class Config(_Document):
    """A validated routes.yaml, with where it came from (`source`) and its sha256 (`hash`)."""

    source: str = "<string>"
    hash: str = ""

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the file are resolved against."""
        if self.source.startswith("<"):
            return Path.cwd()
        return Path(self.source).resolve().parent


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a routes.yaml: 1-based `line` (0 when unknown), dotted `key`, `message`."""

    line: int
    key: str
    message: str


class ConfigError(Exception):
    """An invalid routes.yaml; `errors` lists every issue found."""

    def __init__(self, errors: list[ConfigIssue], source: str = "<string>") -> None:
        self.errors = errors
        self.source = source
        super().__init__(self.__str__())

    def lines(self) -> list[str]:
        """Each issue as ``file:line: key: message``."""
        return [f"{self.source}:{e.line}: {e.key or '<file>'}: {e.message}" for e in self.errors]

    def __str__(self) -> str:
        return "\n".join(self.lines())


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, validate and return the routes file at `path`; raises ConfigError."""
    source = os.fspath(path)
    try:
        data = Path(source).read_bytes()
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(0, "", f"cannot read file: {exc.strerror}")], source
        ) from exc
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError([ConfigIssue(0, "", "file is not UTF-8")], source) from exc
    return _parse(text, data, source, env)


def parse_config(
    text: str, source: str = "<string>", env: Mapping[str, str] | None = None
) -> Config:
    """Validate routes.yaml content; `source` names it in errors and anchors relative paths."""
    return _parse(text, text.encode("utf-8"), source, env)


def _parse(text: str, data: bytes, source: str, env: Mapping[str, str] | None) -> Config:
    env = os.environ if env is None else env
    plain, tree = _load_yaml(text, source)
    # `routes:` with nothing under it is a file with no routes yet, not an error.
    raw_routes = plain.pop("routes", None) or []
    pydantic_errors: list[tuple[Loc, str]] = []
    # Routes are validated one by one so that one bad route doesn't hide the others' problems.
    routes: list[tuple[int, Route]] = []
    if isinstance(raw_routes, list):
        for i, raw in enumerate(raw_routes):
            try:
                routes.append((i, Route.model_validate(raw)))
            except ValidationError as exc:
                pydantic_errors.extend(
                    (("routes", i, *e["loc"]), _message(e)) for e in exc.errors()
                )
    else:
        pydantic_errors.append((("routes",), "routes must be a list"))
    doc: _Document | None = None
    try:
        doc = _Document.model_validate(plain)
    except ValidationError as exc:
        pydantic_errors.extend((tuple(e["loc"]), _message(e)) for e in exc.errors())
    base_dir = Path.cwd() if source.startswith("<") else Path(source).resolve().parent
    # Cross-field checks need the top level; they run on whichever routes did validate.
    problems = pydantic_errors + _cross_check(_Refs.of(doc, plain), routes, base_dir)
    if problems:
        issues = sorted(
            _dedupe([_issue(tree, loc, msg) for loc, msg in problems]), key=lambda e: e.line
        )
        raise ConfigError(issues, source)
    assert doc is not None
    doc = doc.model_copy(update={"routes": [route for _, route in routes]})
    resolved = _resolve_paths(doc, base_dir, env)
    fields = {name: getattr(resolved, name) for name in type(resolved).model_fields}
    # model_construct: everything was validated above; the extra fields are ours, not the file's.
    return Config.model_construct(**fields, source=source, hash=hashlib.sha256(data).hexdigest())


# Line information parallel to the loaded data: per mapping key / list item, its 1-based
# line and the children's line information (None for scalars).
Lines = dict[str, "tuple[int, Lines]"] | list["tuple[int, Lines]"] | None


class _YamlProblem(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _load_yaml(text: str, source: str) -> tuple[dict[str, Any], Lines]:
    """Parse YAML into plain Python data plus line numbers for every key and item.

    Built straight from libyaml's event stream: ruamel's round-trip loader and PyYAML's
    composer are pure Python and take seconds on a 10,000-route file; this takes a fraction.
    Scalars resolve per the YAML 1.2 core schema (``off``/``yes`` stay strings).
    """
    parser = _Parser(text)
    try:
        parser.get_event()  # StreamStart
        if isinstance(parser.peek_event(), yaml.StreamEndEvent):
            raise _YamlProblem(1, "file is empty")
        start = parser.get_event()  # DocumentStart
        data, lines = _build(parser, parser.get_event(), {})
        parser.get_event()  # DocumentEnd
        after = parser.get_event()
        if not isinstance(after, yaml.StreamEndEvent):
            raise _YamlProblem(_line(after), "more than one YAML document")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "syntax error"
        raise ConfigError([ConfigIssue(line, "", f"YAML error: {problem}")], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([ConfigIssue(0, "", f"YAML error: {exc}")], source) from None
    except _YamlProblem as exc:
        raise ConfigError([ConfigIssue(exc.line, "", exc.message)], source) from None
    finally:
        parser.dispose()
    if data is None:
        raise ConfigError([ConfigIssue(_line(start), "", "file is empty")], source)
    if not isinstance(data, dict):
        raise ConfigError([ConfigIssue(1, "", "top level must be a mapping")], source)
    return data, lines


# libyaml's parser when PyYAML was built with it (the usual wheel), else the pure-Python one.
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line(event: Any) -> int:
    mark = event.start_mark
    return int(mark.line) + 1 if mark is not None else 0


def _build(parser: Any, event: Any, anchors: dict[str, tuple[Any, Lines]]) -> tuple[Any, Lines]:
    """The value an event starts (reading on to its end event), and its line information."""
    if isinstance(event, yaml.ScalarEvent):
        built: tuple[Any, Lines] = (_scalar(event), None)
    elif isinstance(event, yaml.MappingStartEvent):
        mapping: dict[str, Any] = {}
        mapping_lines: dict[str, tuple[int, Lines]] = {}
        while not isinstance(key_event := parser.get_event(), yaml.MappingEndEvent):
            line = _line(key_event)
            if not isinstance(key_event, yaml.ScalarEvent):
                raise _YamlProblem(line, "mapping keys must be plain strings")
            key = str(_scalar(key_event))
            if key in mapping:
                raise _YamlProblem(line, f"duplicate key {key!r}")
            mapping[key], child = _build(parser, parser.get_event(), anchors)
            mapping_lines[key] = (line, child)
        built = (mapping, mapping_lines)
    elif isinstance(event, yaml.SequenceStartEvent):
        items: list[Any] = []
        item_lines: list[tuple[int, Lines]] = []
        while not isinstance(item_event := parser.get_event(), yaml.SequenceEndEvent):
            value, child = _build(parser, item_event, anchors)
            items.append(value)
            item_lines.append((_line(item_event), child))
        built = (items, item_lines)
    elif isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise _YamlProblem(_line(event), f"unknown alias *{event.anchor}")
        return anchors[event.anchor]
    else:
        raise _YamlProblem(_line(event), f"unexpected YAML {type(event).__name__}")
    if getattr(event, "anchor", None):
        anchors[event.anchor] = built
    return built


_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {
    ".inf": float("inf"), ".Inf": float("inf"), ".INF": float("inf"),
    "+.inf": float("inf"), "+.Inf": float("inf"), "+.INF": float("inf"),
    "-.inf": float("-inf"), "-.Inf": float("-inf"), "-.INF": float("-inf"),
    ".nan": float("nan"), ".NaN": float("nan"), ".NAN": float("nan"),
}  # fmt: skip
_STR_TAG = "tag:yaml.org,2002:str"


def _scalar(event: Any) -> Any:
    """A scalar per the YAML 1.2 core schema; quoted or block scalars are strings."""
    value: str = event.value
    tag = event.tag
    if tag is not None and tag not in ("!", _STR_TAG):
        raise _YamlProblem(_line(event), f"unsupported YAML tag {tag}")
    if tag is not None or not event.implicit[0]:
        return value
    if value in _NULLS:
        return None
    if value in _BOOLS:
        return _BOOLS[value]
    first = value[0]
    if first.isdigit() or first in "-+.":
        if _INT.match(value):
            return int(value)
        if _FLOAT.match(value):
            return float(value)
        if value in _SPECIAL_FLOATS:
            return _SPECIAL_FLOATS[value]
        if value.startswith(("0x", "0o")):
            try:
                return int(value, 0)
            except ValueError:
                return value
    return value


def _message(err: Mapping[str, Any]) -> str:
    msg = str(err["msg"])
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    if err["type"] == "extra_forbidden":
        return "unknown key"
    if err["type"] == "missing":
        return "required key is missing"
    if err["type"] == "literal_error" and err["loc"] == ("version",):
        return "version must be 1"
    return msg


def _issue(tree: Lines, loc: Sequence[Any], message: str) -> ConfigIssue:
    """Map a pydantic-style location to the dotted key and the line of the deepest present key."""
    key = ""
    line = 1
    node = tree
    for part in loc:
        if isinstance(node, dict) and isinstance(part, str) and part in node:
            line, node = node[part]
            key = f"{key}.{part}" if key else part
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node[part]
            key = f"{key}[{part}]"
        elif isinstance(part, str) and not _is_pydantic_tag(part):
            # A missing or unknown key: name it, keep the parent's line.
            key = f"{key}.{part}" if key else part
            node = None
        elif isinstance(part, int):
            key = f"{key}[{part}]"
            node = None
    return ConfigIssue(line, key, message)


def _is_pydantic_tag(part: str) -> bool:
    # Union members and validators show up in locations as e.g. "function-after[...]" or "int".
    return "[" in part or part in {"int", "str", "float", "bool", "list", "dict", "none"}


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    seen: set[tuple[int, str, str]] = set()
    out = []
    for issue in issues:
        ident = (issue.line, issue.key, issue.message)
        if ident not in seen:
            seen.add(ident)
            out.append(issue)
    return out


Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class _Refs:
    """What route cross-checks need from the top level, even when the top level is invalid."""

    upstreams: frozenset[str] | None  # None: unknown, so upstream references aren't checked
    defaults_upstream: str | None
    auth: AuthConfig | None
    has_auth: bool

    @classmethod
    def of(cls, doc: _Document | None, raw: dict[str, Any]) -> _Refs:
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


def _cross_check(
    refs: _Refs, routes: Sequence[tuple[int, Route]], base_dir: Path
) -> list[tuple[Loc, str]]:
    """Checks that need more than one field: names, references, reachability."""
    problems: list[tuple[Loc, str]] = []
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


def _check_auth(auth: AuthConfig, base_dir: Path) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
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


def pattern_shape(path: str) -> tuple[str | None, ...]:
    """A path pattern with parameter names erased (None per parameter segment)."""
    return tuple(None if s[:1] == "{" else s for s in path_segments(path))


def _check_reachable(routes: Sequence[tuple[int, Route]]) -> list[tuple[Loc, str]]:
    """A route is dead when an earlier route with the same pattern always wins over it."""
    problems: list[tuple[Loc, str]] = []
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


def _resolve_paths(doc: _Document, base_dir: Path, env: Mapping[str, str]) -> _Document:
    """Anchor relative file paths at the routes.yaml directory; SHADOW_STORE overrides."""
    store = env.get("SHADOW_STORE") or doc.shadow_store
    store = resolve_sqlite_url(store, base_dir)
    update: dict[str, Any] = {"shadow_store": store}
    if doc.auth is not None and doc.auth.public_key_file is not None:
        key = Path(doc.auth.public_key_file)
        if not key.is_absolute():
            key = base_dir / key
        update["auth"] = doc.auth.model_copy(update={"public_key_file": str(key)})
    return doc.model_copy(update=update)


def resolve_sqlite_url(url: str, base_dir: Path) -> str:
    """``sqlite:///relative.db`` made absolute against `base_dir`; other URLs unchanged."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith("sqlite:////"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str(base_dir / rest)
    return url
