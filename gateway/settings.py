"""Every option of `serve` in one frozen `Settings`, built once from the command line and the
environment, then handed to whatever needs it (SPEC §4.9).

`Settings.argv()` and `Settings.environ()` are the exact inverse of `Settings.parse`, so the
`--workers N` processes are started with the very options of their parent.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

__all__ = ["ENV_VARS", "Settings", "add_arguments"]

# Settings read from the environment, by field name.
ENV_VARS = {
    "admin_token": "GATEWAY_ADMIN_TOKEN",
    "redis_url": "REDIS_URL",
    "idempotency_store": "IDEMPOTENCY_STORE",
    "watch_interval": "GATEWAY_WATCH_INTERVAL",
}


@dataclass(frozen=True)
class Settings:
    """What a serving gateway process runs with. Fields up to `grace_period` are command-line
    options (`--header-timeout` for `header_timeout`), the next ones come from ENV_VARS, the rest
    are fixed limits."""

    routes: Path = Path("routes.yaml")
    host: str = "0.0.0.0"
    port: int = 8080
    admin_host: str = "127.0.0.1"
    admin_port: int = 9901
    workers: int = 1
    log_format: Literal["json", "text"] = "json"
    header_timeout: float = 10.0
    # At SIGTERM, how long in-flight requests may still run; after a reload, how long a replaced
    # upstream's pool stays open for the requests that still hold the previous table.
    grace_period: float = 30.0
    # Secrets and URLs that may carry passwords stay out of repr().
    admin_token: str | None = field(default=None, repr=False)
    redis_url: str | None = field(default=None, repr=False)
    # Where idempotency records live; None: chosen by gateway.idempotency.store_url.
    idempotency_store: str | None = field(default=None, repr=False)
    watch_interval: float = 0.5  # seconds between two looks at routes.yaml
    access_log: bool = True
    max_line_size: int = 8192  # request line (414 past it); must differ from max_field_size
    max_field_size: int = 8190  # one header field (431 past it)
    keepalive_timeout: float = 75.0  # idle keep-alive client connections (nginx's default)

    @classmethod
    def parse(cls, argv: Sequence[str], env: Mapping[str, str]) -> Settings:
        """Settings from `serve`'s arguments (without the word `serve`) and an environment."""
        parser = argparse.ArgumentParser(prog="python -m gateway serve")
        add_arguments(parser)
        return cls.from_args(parser.parse_args(list(argv)), env)

    @classmethod
    def from_args(cls, args: argparse.Namespace, env: Mapping[str, str]) -> Settings:
        """Settings from parsed `serve` arguments and an environment; raises ValueError on a bad
        environment variable."""
        values: dict[str, Any] = {name: getattr(args, name) for name in _FLAGS}
        for name, var in ENV_VARS.items():
            text = env.get(var) or None
            if name == "watch_interval":
                if text is not None:
                    values[name] = _env_seconds(var, text)
            else:
                values[name] = text
        return cls(**values)

    def argv(self) -> list[str]:
        """The `serve` arguments that parse back to these settings' command-line options."""
        out: list[str] = []
        for name in _FLAGS:
            out += [_flag(name), str(getattr(self, name))]
        return out

    def environ(self) -> dict[str, str]:
        """The environment variables that parse back to these settings' environment fields."""
        out = {}
        for name, var in ENV_VARS.items():
            value = getattr(self, name)
            out[var] = "" if value is None else str(value)
        return out


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text}")
    return value


def _env_seconds(var: str, text: str) -> float:
    try:
        return _positive_float(text)
    except (ValueError, argparse.ArgumentTypeError) as exc:
        raise ValueError(f"{var}: expected seconds greater than 0, got {text!r}") from exc


# The command-line options: field name -> (argument type, help). `--log-format` has choices.
_FLAGS: dict[str, tuple[Callable[[str], Any], str]] = {
    "routes": (Path, "the routes file"),
    "host": (str, "proxy listen address"),
    "port": (_port, "proxy port"),
    "admin_host": (str, "admin listen address (beyond loopback needs GATEWAY_ADMIN_TOKEN)"),
    "admin_port": (_port, "admin port"),
    "workers": (_positive_int, "processes sharing the ports (SO_REUSEPORT)"),
    "log_format": (str, "json: every stdout/stderr line is one JSON object"),
    "header_timeout": (_positive_float, "seconds a client has to send a request head"),
    "grace_period": (
        _non_negative_float,
        "seconds in-flight requests may run on at SIGTERM, and on a replaced upstream after a reload",
    ),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add `serve`'s options, with Settings' defaults, to `parser`."""
    defaults = Settings()
    for name, (kind, help_text) in _FLAGS.items():
        default = getattr(defaults, name)
        choices = ["json", "text"] if name == "log_format" else None
        parser.add_argument(
            _flag(name),
            dest=name,
            type=kind,
            default=default,
            choices=choices,
            help=f"{help_text} (default {default})",
        )
