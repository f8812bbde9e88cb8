"""Loading routes.yaml: text to a validated `Config`, or a `ConfigError` naming every problem.

`load_config(path)` / `parse_config(text)` run YAML with line numbers (`yaml_lines`), the
schema (`schema`), then the cross-field lint (`lint`), and map every problem to
``file:line: key: message`` (SPEC §4.1). Nothing here touches the network.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from gateway.config.lint import Problem, Refs, cross_check
from gateway.config.schema import Config, Document, Route, source_dir
from gateway.config.yaml_lines import Lines, YamlProblem, load_yaml

__all__ = ["ConfigError", "ConfigIssue", "load_config", "parse_config", "resolve_sqlite_url"]


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
    try:
        plain, tree = load_yaml(text)
    except YamlProblem as exc:
        raise ConfigError([ConfigIssue(exc.line, "", exc.message)], source) from None
    if not isinstance(plain, dict):
        raise ConfigError([ConfigIssue(1, "", "top level must be a mapping")], source)
    # `routes:` with nothing under it is a file with no routes yet, not an error.
    raw_routes = plain.pop("routes", None) or []
    pydantic_errors: list[Problem] = []
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
    doc: Document | None = None
    try:
        doc = Document.model_validate(plain)
    except ValidationError as exc:
        pydantic_errors.extend((tuple(e["loc"]), _message(e)) for e in exc.errors())
    base_dir = source_dir(source)
    # Cross-field checks need the top level; they run on whichever routes did validate.
    problems = pydantic_errors + cross_check(Refs.of(doc, plain), routes, base_dir)
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
            key = f"{key}.{_name(part)}" if key else _name(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            line, node = node[part]
            key = f"{key}[{part}]"
        elif isinstance(part, str) and not _is_pydantic_tag(part):
            # A missing or unknown key: name it, keep the parent's line.
            key = f"{key}.{_name(part)}" if key else _name(part)
            node = None
        elif isinstance(part, int):
            key = f"{key}[{part}]"
            node = None
    return ConfigIssue(line, key, message)


def _name(key: str) -> str:
    # A key with a line break or other control character would break the one-line format.
    return key if key.isprintable() else repr(key)


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


def _resolve_paths(doc: Document, base_dir: Path, env: Mapping[str, str]) -> Document:
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
