"""gateway.config: the routes.yaml schema, defaults, cross-field checks and error lines."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pydantic
import pytest

from gateway.config import ConfigError, load_config, parse_config
from gateway.durations import parse_duration, parse_size

SPEC_EXAMPLE = """\
version: 1
upstreams:
  legacy:    {url: "http://127.0.0.1:8000"}
  orders:    {url: "http://127.0.0.1:8101"}
  inventory: {url: "http://127.0.0.1:8102"}
defaults:
  upstream: legacy            # fall-through for every request no route matches
  timeout: 10s
  breaker: {failures: 5, reset_after: 30s}
shadow_store: "sqlite:///var/shadow.db"
routes:
  - name: inventory-reads
    path: /api/inventory
    methods: [GET, HEAD]
    upstream: legacy
    shadow:
      upstream: inventory
      sample: 1.0
      ignore: ["generated_at", "items[*].generated_at"]
      noise: auto
  - name: orders
    path: /api/orders
    upstream: orders
    fallback: legacy
    timeout: 3s
    breaker: {failures: 5, reset_after: 10s}
  - name: orders-canary-example
    path: /api/orders/{id}
    methods: [GET]
    split: {orders: 10, legacy: 90}
    sticky: X-Customer-Id
"""

# Line numbers in BASE are relied on by the error-line tests below.
BASE = """\
version: 1
upstreams:
  legacy: {url: "http://127.0.0.1:8000"}
  orders:
    url: http://127.0.0.1:8101
    connect_timeout: 500ms
defaults:
  upstream: legacy
routes:
  - name: first
    path: /api/orders
    upstream: orders
  - name: second
    path: /api/customers/{id}
    methods: [get]
    upstream: legacy
    breaker:
      failures: 3
"""


def errors_of(text: str, source: str = "routes.yaml") -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source)
    return info.value


def test_spec_example_loads_with_all_values() -> None:
    config = parse_config(SPEC_EXAMPLE, "<spec>")
    assert config.version == 1
    assert set(config.upstreams) == {"legacy", "orders", "inventory"}
    assert config.upstreams["orders"].url == "http://127.0.0.1:8101"
    assert config.defaults.timeout == 10.0
    assert (config.defaults.breaker.failures, config.defaults.breaker.reset_after) == (5, 30.0)
    reads, orders, canary = config.routes
    assert reads.methods == ["GET", "HEAD"]
    assert reads.shadow is not None
    assert reads.shadow.upstream == "inventory"
    assert reads.shadow.sample == 1.0
    assert reads.shadow.ignore == ["generated_at", "items[*].generated_at"]
    assert reads.shadow.noise == "auto"
    assert orders.fallback == "legacy" and orders.timeout == 3.0
    assert orders.breaker is not None and orders.breaker.reset_after == 10.0
    assert canary.split == {"orders": 10, "legacy": 90}
    assert canary.sticky == "X-Customer-Id"


def test_documented_defaults() -> None:
    config = parse_config(BASE)
    assert config.defaults.timeout == 10.0
    assert config.defaults.breaker.failures == 5
    assert config.defaults.breaker.reset_after == 30.0
    legacy = config.upstreams["legacy"]
    assert legacy.connect_timeout == 2.0 and legacy.max_connections == 256
    assert config.upstreams["orders"].connect_timeout == 0.5
    assert config.trusted_proxies == [] and config.auth is None
    first = config.routes[0]
    assert first.methods is None and first.exact is False and first.rewrite is None
    assert first.retries.attempts == 0 and first.auth == "none" and first.scopes == []
    assert config.routes[1].methods == ["GET"]  # upper-cased


def test_shadow_defaults_and_sizes() -> None:
    text = BASE + "    shadow: {upstream: orders}\n"
    shadow = parse_config(text).routes[1].shadow
    assert shadow is not None
    assert shadow.sample == 1.0 and shadow.noise == "off" and shadow.noise_sample == 0.1
    assert shadow.max_body == 1024 * 1024 and shadow.timeout is None and shadow.methods is None
    text = BASE + (
        "    shadow: {upstream: orders, max_body: 512KiB, methods: [post, GET],"
        " noise: off, noise_sample: 0.5, timeout: 1.5, sample: 0}\n"
    )
    shadow = parse_config(text).routes[1].shadow
    assert shadow is not None
    assert shadow.max_body == 512 * 1024 and shadow.methods == ["POST", "GET"]
    # YAML 1.2: `off` stays the string "off", not a boolean.
    assert shadow.noise == "off" and shadow.timeout == 1.5 and shadow.sample == 0


def test_source_and_hash(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BASE)
    config = load_config(path)
    assert config.source == str(path)
    import hashlib

    assert config.hash == hashlib.sha256(BASE.encode()).hexdigest()
    assert parse_config(BASE).hash == config.hash
    assert parse_config(BASE + "# comment\n").hash != config.hash


def test_config_is_frozen() -> None:
    config = parse_config(BASE)
    with pytest.raises(pydantic.ValidationError):
        config.version = 2  # type: ignore[misc]
    with pytest.raises(pydantic.ValidationError):
        config.routes[0].path = "/x"  # type: ignore[misc]


def test_relative_shadow_store_resolves_against_file_dir(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    path = tmp_path / "conf" / "routes.yaml"
    path.write_text(BASE + 'shadow_store: "sqlite:///var/shadow.db"\n')
    config = load_config(path, env={})
    assert config.shadow_store == f"sqlite:///{tmp_path}/conf/var/shadow.db"
    path.write_text(BASE)  # default store is relative too
    assert load_config(path, env={}).shadow_store == f"sqlite:///{tmp_path}/conf/var/shadow.db"
    path.write_text(BASE + 'shadow_store: "sqlite:////abs/shadow.db"\n')
    assert load_config(path, env={}).shadow_store == "sqlite:////abs/shadow.db"
    path.write_text(BASE + 'shadow_store: "redis://127.0.0.1:6379/0"\n')
    assert load_config(path, env={}).shadow_store == "redis://127.0.0.1:6379/0"


def test_shadow_store_env_overrides(tmp_path: Path) -> None:
    path = tmp_path / "routes.yaml"
    path.write_text(BASE)
    config = load_config(path, env={"SHADOW_STORE": "redis://127.0.0.1:6379/3"})
    assert config.shadow_store == "redis://127.0.0.1:6379/3"
    config = load_config(path, env={"SHADOW_STORE": "sqlite:///other.db"})
    assert config.shadow_store == f"sqlite:///{tmp_path}/other.db"


def test_auth_hs256_and_route_auth() -> None:
    text = (
        BASE.replace(
            "routes:\n",
            "auth: {secret_env: JWT_SECRET, issuer: shop, audience: api, leeway: 5s}\nroutes:\n",
        )
        + "    auth: required\n    scopes: [orders:read]\n"
    )
    config = parse_config(text)
    assert config.auth is not None
    assert config.auth.alg == "HS256" and config.auth.secret_env == "JWT_SECRET"
    assert (config.auth.issuer, config.auth.audience, config.auth.leeway) == ("shop", "api", 5.0)
    assert config.routes[1].auth == "required" and config.routes[1].scopes == ["orders:read"]


def test_auth_rs256_key_file_resolves_relative(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "pub.pem").write_text("-----BEGIN PUBLIC KEY-----\n")
    path = tmp_path / "routes.yaml"
    path.write_text(BASE.replace("routes:\n", "auth: {public_key_file: keys/pub.pem}\nroutes:\n"))
    config = load_config(path)
    assert config.auth is not None and config.auth.alg == "RS256"
    assert config.auth.public_key_file == str(tmp_path / "keys" / "pub.pem")
    (tmp_path / "keys" / "pub.pem").unlink()
    with pytest.raises(ConfigError, match="auth.public_key_file: no such file"):
        load_config(path)


def test_trusted_proxies() -> None:
    config = parse_config(BASE + "trusted_proxies: [10.0.0.0/8, '::1/128', 192.168.1.7]\n")
    assert config.trusted_proxies == [
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("::1/128"),
        ipaddress.ip_network("192.168.1.7/32"),
    ]
    err = errors_of(BASE + "trusted_proxies: [10.0.0.0/8, nonsense]\n")
    assert err.errors[0].line == 19 and "bad CIDR 'nonsense'" in err.errors[0].message


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), ("1.5m", 90.0), ("1h", 3600.0), (3, 3.0),
     (0.25, 0.25), ("10", 10.0), (" 2s ", 2.0)],
)  # fmt: skip
def test_parse_duration(value: object, seconds: float) -> None:
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["2x", "fast", "", "-1s", -1, True, None, [1], "1 2s", 0, "0s"])
def test_parse_duration_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(value)


def test_parse_duration_zero_when_allowed() -> None:
    assert parse_duration("0s", allow_zero=True) == 0.0


@pytest.mark.parametrize(
    ("value", "size"),
    [(1024, 1024), ("1MiB", 1048576), ("512KiB", 524288), ("1MB", 1_000_000), ("2048", 2048),
     ("1.5KiB", 1536), ("3B", 3)],
)  # fmt: skip
def test_parse_size(value: object, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", ["1XB", "big", -1, True, 1.5, None])
def test_parse_size_rejects(value: object) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


# --- errors: key, line, message ------------------------------------------------------------


def replace_line(text: str, line: int, new: str) -> str:
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("line", "new", "key", "message"),
    [
        (1, "version: 2", "version", "version must be 1"),
        (3, '  legacy: {url: "ftp://x"}', "upstreams.legacy.url", "url must be http"),
        (3, '  legacy: {url: "https://x"}', "upstreams.legacy.url", "https upstreams are not supported"),
        (3, '  legacy: {url: "http://h:1/base"}', "upstreams.legacy.url", "must not carry a path"),
        (6, "    connect_timeout: soon", "upstreams.orders.connect_timeout", "bad duration"),
        (6, "    max_connections: 0", "upstreams.orders.max_connections", "greater than or equal"),
        (6, "    bogus: 1", "upstreams.orders.bogus", "unknown key"),
        (8, "  upstream: nowhere", "defaults.upstream", "unknown upstream 'nowhere'"),
        (10, "  - name: Bad_Name", "routes[0].name", "must match [a-z0-9-]+"),
        (10, '  - name: "orders\\n"', "routes[0].name", "must match [a-z0-9-]+"),
        (10, "  - name: default", "routes[0].name", "reserved"),
        (11, "    path: api/orders", "routes[0].path", "must start with '/'"),
        (11, "    path: /api/{id", "routes[0].path", "bad parameter segment"),
        (11, "    path: /api/x{id}", "routes[0].path", "bad parameter segment"),
        (11, "    path: /api/{a}/{a}", "routes[0].path", "appears twice"),
        (11, "    path: /api/../x", "routes[0].path", "not normalised"),
        (11, "    path: /api//x", "routes[0].path", "not normalised"),
        (11, "    path: /api/%2f", "routes[0].path", "encoded slash"),
        (11, "    path: /api/orders/", "routes[0].path", "must not end with '/'"),
        (12, "    upstream: nowhere", "routes[0].upstream", "unknown upstream 'nowhere'"),
        (12, "    upstream: orders\n    split: {orders: 1}", "routes[0].split", "exactly one of"),
        (12, "    split: {orders: 0, legacy: 1}", "routes[0].split.orders", "positive integer"),
        (12, "    split: {orders: -3}", "routes[0].split.orders", "positive integer"),
        (12, "    split: {orders: true}", "routes[0].split.orders", "valid integer"),
        (12, "    split: {}", "routes[0].split", "at least one upstream"),
        (12, "    split: {orders: 1, nowhere: 1}", "routes[0].split.nowhere", "unknown upstream"),
        (12, "    upstream: orders\n    sticky: X-Id", "routes[0].sticky", "only applies"),
        (12, "    upstream: orders\n    fallback: nope", "routes[0].fallback", "unknown upstream"),
        (12, "    upstream: orders\n    fallback: orders", "routes[0].fallback", "own upstream"),
        (12, "    upstream: orders\n    timeout: 0", "routes[0].timeout", "greater than zero"),
        (12, "    upstream: orders\n    retries: {attempts: -1}", "routes[0].retries.attempts",
         "greater than or equal"),
        (12, "    upstream: orders\n    auth: required", "routes[0].auth", "top-level 'auth:'"),
        (12, "    upstream: orders\n    auth: maybe", "routes[0].auth", "'required'"),
        (12, "    upstream: orders\n    scopes: [a]", "routes[0].scopes", "scopes need auth"),
        (12, "    upstream: orders\n    rewrite: /v2/{id}", "routes[0].rewrite", "not a parameter"),
        (12, "    upstream: orders\n    methods: []", "routes[0].methods", "matches no request"),
        (12, "    upstream: orders\n    methods: [GET, get]", "routes[0].methods", "twice"),
        (12, "    upstream: orders\n    methods: ['G T']", "routes[0].methods", "bad HTTP method"),
        (12, "    upstream: orders\n    shadow: {upstream: zz}", "routes[0].shadow.upstream",
         "unknown upstream"),
        (12, "    upstream: orders\n    shadow: {upstream: orders}", "routes[0].shadow.upstream",
         "own upstream"),
        (12, "    upstream: orders\n    shadow: {upstream: legacy, sample: 1.5}",
         "routes[0].shadow.sample", "less than or equal to 1"),
        (12, "    upstream: orders\n    shadow: {upstream: legacy, noise: sometimes}",
         "routes[0].shadow.noise", "'auto'"),
        (12, "    upstream: orders\n    shadow: {upstream: legacy, max_body: lots}",
         "routes[0].shadow.max_body", "bad size"),
        (13, "  - name: first", "routes[1].name", "duplicate route name 'first'"),
        (14, "    path: /api/orders", None, None),  # different methods: fine
        (18, "      failures: 0", "routes[1].breaker.failures", "greater than or equal to 1"),
        (18, "      failurs: 3", "routes[1].breaker.failurs", "unknown key"),
        (18, "      reset_after: 2 minutes", "routes[1].breaker.reset_after", "bad duration"),
    ],
)  # fmt: skip
def test_error_reports_line_key_and_message(
    line: int, new: str, key: str | None, message: str | None
) -> None:
    text = replace_line(BASE, line, new)
    if key is None:
        parse_config(text)
        return
    # A two-line replacement puts the broken key on its second line.
    line += new.count("\n")
    err = errors_of(text)
    found = [e for e in err.errors if e.key == key]
    assert found, str(err)
    assert found[0].line == line, str(err)
    assert message in found[0].message, str(err)
    assert f"routes.yaml:{line}: {key}: " in str(err)


def test_missing_required_keys_point_at_their_parent() -> None:
    err = errors_of(replace_line(BASE, 11, "    exact: false"))  # no path
    assert any(e.key == "routes[0].path" and e.line == 10 for e in err.errors), str(err)
    err = errors_of(replace_line(BASE, 12, "    exact: true"))  # neither upstream nor split
    assert [(e.line, e.key) for e in err.errors] == [(10, "routes[0]")], str(err)
    assert "exactly one of 'upstream' or 'split'" in err.errors[0].message
    err = errors_of("version: 1\nupstreams: {a: {url: 'http://a'}}\n")
    assert [(e.line, e.key, e.message) for e in err.errors] == [
        (1, "defaults", "required key is missing")
    ]


def test_unknown_top_level_key() -> None:
    err = errors_of(BASE + "extra_thing: 1\n")
    assert [(e.line, e.key, e.message) for e in err.errors] == [(19, "extra_thing", "unknown key")]


def test_every_problem_is_reported_at_once() -> None:
    text = replace_line(BASE, 8, "  upstream: nowhere")
    text = replace_line(text, 10, "  - name: BAD")
    text = replace_line(text, 18, "      failures: zero")
    err = errors_of(text)
    assert [(e.line, e.key) for e in err.errors] == [
        (8, "defaults.upstream"),
        (10, "routes[0].name"),
        (18, "routes[1].breaker.failures"),
    ]


@pytest.mark.parametrize(
    ("extra", "unreachable"),
    [
        # Same pattern (param names don't matter), earlier takes every method: dead.
        ("  - {name: dup, path: /api/orders, upstream: legacy}\n", True),
        ("  - {name: dup, path: /api/orders, methods: [GET], upstream: legacy}\n", False),
        ("  - {name: dup, path: '/api/customers/{cid}', methods: [GET], upstream: orders}\n", True),
        (
            "  - {name: dup, path: '/api/customers/{cid}', methods: [POST], upstream: orders}\n",
            False,
        ),
        ("  - {name: dup, path: '/api/customers/{cid}', upstream: orders}\n", False),
        ("  - {name: dup, path: /api/orders, exact: true, upstream: legacy}\n", True),
        ("  - {name: dup, path: /api/orders/x, upstream: legacy}\n", False),
    ],
)
def test_routes_that_can_never_match(extra: str, unreachable: bool) -> None:
    text = BASE + extra
    if not unreachable:
        parse_config(text)
        return
    err = errors_of(text)
    assert [(e.line, e.key) for e in err.errors] == [(19, "routes[2].path")], str(err)
    assert "can never match" in err.errors[0].message


def test_prefix_route_after_exact_route_is_reachable() -> None:
    text = BASE.replace("    path: /api/orders\n", "    path: /api/orders\n    exact: true\n")
    parse_config(text + "  - {name: more, path: /api/orders, upstream: legacy}\n")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("", 1, "file is empty"),
        ("# only a comment\n", 1, "file is empty"),
        ("---\n", 1, "file is empty"),
        ("- a\n- b\n", 1, "top level must be a mapping"),
        ("just text\n", 1, "top level must be a mapping"),
        ("version: 1\nupstreams:\n  a: [\n", 4, "YAML error"),
        ("version: 1\nupstreams: {a: 1\nroutes: []\n", 3, "YAML error"),
        ("version: 1\n  bad indent: 2\n", 2, "YAML error"),
        ("version: 1\nversion: 1\n", 2, "duplicate key 'version'"),
        ("version: 1\n---\nversion: 1\n", 2, "more than one YAML document"),
        ("version: !!python/object:os.system 1\n", 1, "unsupported YAML tag"),
    ],
)
def test_unparseable_files(text: str, line: int, message: str) -> None:
    err = errors_of(text)
    assert len(err.errors) == 1
    assert err.errors[0].line == line, str(err)
    assert message in err.errors[0].message


def test_yaml_anchors_and_aliases_work() -> None:
    text = BASE.replace("breaker:\n      failures: 3", "breaker: &b {failures: 3}") + (
        "  - {name: third, path: /x, upstream: legacy, breaker: *b}\n"
    )
    config = parse_config(text)
    assert config.routes[2].breaker == config.routes[1].breaker


def test_load_config_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "nope.yaml")
    assert "cannot read file" in str(info.value)
    assert str(info.value).startswith(f"{tmp_path / 'nope.yaml'}:0: <file>: ")


def test_empty_routes_key_means_no_routes() -> None:
    assert parse_config(BASE.split("routes:")[0] + "routes:\n").routes == []
    assert parse_config(BASE.split("routes:")[0]).routes == []


def test_routes_must_be_a_list() -> None:
    err = errors_of(BASE.split("routes:")[0] + "routes: {a: 1}\n")
    assert err.errors[0].key == "routes" and err.errors[0].line == 9


def test_auth_block_errors() -> None:
    err = errors_of(BASE.replace("routes:\n", "auth: {issuer: x}\nroutes:\n"))
    assert err.errors[0].key == "auth" and err.errors[0].line == 9
    assert "exactly one of 'secret_env'" in err.errors[0].message
    err = errors_of(BASE.replace("routes:\n", "auth: {secret_env: S, algorithm: RS256}\nroutes:\n"))
    assert err.errors[0].key == "auth.algorithm"


def test_error_str_format() -> None:
    err = errors_of(replace_line(BASE, 8, "  upstream: nowhere"), source="conf/routes.yaml")
    assert str(err) == (
        "conf/routes.yaml:8: defaults.upstream: unknown upstream 'nowhere' (known: legacy, orders)"
    )


def test_examples_in_docs_are_valid() -> None:
    docs = (Path(__file__).resolve().parents[2] / "docs" / "routes.md").read_text()
    blocks = [b.split("```", 1)[0] for b in docs.split("```yaml\n")[1:]]
    header = (
        "version: 1\nupstreams:\n  legacy: {url: 'http://l'}\n  orders: {url: 'http://o'}\n"
        "  inventory: {url: 'http://i'}\ndefaults: {upstream: legacy}\n"
    )
    checked = 0
    for block in blocks:
        if block.startswith("  - name:"):
            parse_config(header + "routes:\n" + block)
            checked += 1
        elif block.startswith("auth:"):
            parse_config(header + block)
            checked += 1
    assert checked >= 8
