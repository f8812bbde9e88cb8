"""The routes.yaml schema: frozen pydantic models of the whole file, field by field.

Each model checks what one field (or one block) can check alone; checks that need more
than one field (references, names, reachability) are in `gateway.config.lint`, and
`gateway.config.load` turns both into ``file:line: key: message`` errors (SPEC §4.1).
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    field_validator,
)

from gateway.durations import parse_duration, parse_size
from gateway.paths import path_segments
from gateway.upstream.origin import parse_origin

__all__ = [
    "AuthConfig",
    "Breaker",
    "Config",
    "Defaults",
    "Document",
    "Idempotency",
    "Retries",
    "Route",
    "Shadow",
    "Upstream",
    "source_dir",
]

ROUTE_NAME = re.compile(r"[a-z0-9-]+")  # used with fullmatch: "$" would accept a trailing newline
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
        # Fail at load time, not on the first request, with the pool's own rule.
        parse_origin(url)
        return url.rstrip("/")


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
    # None = GET and HEAD only (SPEC §4.4, gateway.shadow.mirror.should_mirror).
    methods: Annotated[list[str] | None, BeforeValidator(_methods)] = None
    max_body: Size = 1024 * 1024
    # None = the route's timeout.
    timeout: Duration | None = None

    @field_validator("methods")
    @classmethod
    def _check_methods(cls, methods: list[str] | None) -> list[str] | None:
        return _check_method_list(methods)


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


class Document(_Model):
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


class Config(Document):
    """A validated routes.yaml, with where it came from (`source`) and its sha256 (`hash`)."""

    source: str = "<string>"
    hash: str = ""

    @property
    def base_dir(self) -> Path:
        """The directory relative paths in the file are resolved against."""
        return source_dir(self.source)


def source_dir(source: str) -> Path:
    """The directory of a routes file; the working directory for text without a file."""
    if source.startswith("<"):
        return Path.cwd()
    return Path(source).resolve().parent
