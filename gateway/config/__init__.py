"""routes.yaml: the schema, and loading it into a frozen `Config` or a `ConfigError`.

    config = load_config("routes.yaml")   # or parse_config(text, source)
    except ConfigError as err: err.lines() -> ["routes.yaml:12: routes[1].upstream: unknown upstream 'x' ..."]

The package, one job per module:

- `schema`: the pydantic models, each field checked on its own;
- `yaml_lines`: YAML text to plain data plus the line of every key and item (libyaml events);
- `lint`: the checks that need more than one field (references, names, reachability);
- `load`: `load_config` / `parse_config`, and every problem mapped to ``file:line: key: message``.

The grammar of route path patterns lives in `gateway.paths`; the route table
(`gateway.table`) compiles a `Config` for matching.
"""

from gateway.config.load import ConfigError, ConfigIssue, load_config, parse_config
from gateway.config.schema import (
    AuthConfig,
    Breaker,
    Config,
    Defaults,
    Idempotency,
    Retries,
    Route,
    Shadow,
    Upstream,
)

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
]
