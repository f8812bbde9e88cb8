"""YAML text to plain Python data, with the line of every mapping key and list item.

Built straight from libyaml's event stream: ruamel's round-trip loader and PyYAML's composer
are pure Python and take seconds on a 10,000-route file; this takes a fraction. Scalars
resolve per the YAML 1.2 core schema (``off``/``yes`` stay strings). Nothing here knows
about routes.yaml: `gateway.config.load` maps a `YamlProblem` to a `ConfigError`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

__all__ = ["Lines", "YamlProblem", "load_yaml"]

# Line information parallel to the loaded data: per mapping key / list item, its 1-based
# line and the children's line information (None for scalars).
Lines = dict[str, "tuple[int, Lines]"] | list["tuple[int, Lines]"] | None


class YamlProblem(Exception):
    """The text is not YAML this loader accepts; `line` is 1-based (0 when unknown)."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def load_yaml(text: str) -> tuple[Any, Lines]:
    """Parse one YAML document into plain data plus line numbers for every key and item.

    Raises YamlProblem on a syntax error, an empty file, more than one document, a
    non-string or duplicate mapping key, an unknown alias or an unsupported tag.
    """
    parser = _Parser(text)
    try:
        parser.get_event()  # StreamStart
        if isinstance(parser.peek_event(), yaml.StreamEndEvent):
            raise YamlProblem(1, "file is empty")
        start = parser.get_event()  # DocumentStart
        data, lines = _build(parser, parser.get_event(), {})
        parser.get_event()  # DocumentEnd
        after = parser.get_event()
        if not isinstance(after, yaml.StreamEndEvent):
            raise YamlProblem(_line(after), "more than one YAML document")
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else 0
        problem = exc.problem or exc.context or "syntax error"
        raise YamlProblem(line, f"YAML error: {problem}") from None
    except yaml.reader.ReaderError as exc:
        # A character YAML refuses: libyaml gives only its offset, so count the lines to it.
        line = len(_LINE_BREAK.findall(text, 0, exc.position)) + 1
        raise YamlProblem(line, f"YAML error: {str(exc).splitlines()[0]}") from None
    except yaml.YAMLError as exc:
        raise YamlProblem(0, f"YAML error: {exc}") from None
    finally:
        parser.dispose()
    if data is None:
        raise YamlProblem(_line(start), "file is empty")
    return data, lines


# libyaml's parser when PyYAML was built with it (the usual wheel), else the pure-Python one.
_Parser: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# Far beyond any routes.yaml, and well inside Python's recursion limit (_build recurses).
MAX_DEPTH = 100
# What YAML 1.2 counts as a line break (§5.4).
_LINE_BREAK = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def _line(event: Any) -> int:
    mark = event.start_mark
    return int(mark.line) + 1 if mark is not None else 0


def _build(
    parser: Any, event: Any, anchors: dict[str, tuple[Any, Lines]], depth: int = 0
) -> tuple[Any, Lines]:
    """The value an event starts (reading on to its end event), and its line information."""
    if depth > MAX_DEPTH:
        raise YamlProblem(_line(event), f"YAML nested deeper than {MAX_DEPTH} levels")
    if isinstance(event, yaml.ScalarEvent):
        built: tuple[Any, Lines] = (_scalar(event), None)
    elif isinstance(event, yaml.MappingStartEvent):
        mapping: dict[str, Any] = {}
        mapping_lines: dict[str, tuple[int, Lines]] = {}
        while not isinstance(key_event := parser.get_event(), yaml.MappingEndEvent):
            line = _line(key_event)
            if not isinstance(key_event, yaml.ScalarEvent):
                raise YamlProblem(line, "mapping keys must be plain strings")
            key = str(_scalar(key_event))
            if key in mapping:
                raise YamlProblem(line, f"duplicate key {key!r}")
            mapping[key], child = _build(parser, parser.get_event(), anchors, depth + 1)
            mapping_lines[key] = (line, child)
        built = (mapping, mapping_lines)
    elif isinstance(event, yaml.SequenceStartEvent):
        items: list[Any] = []
        item_lines: list[tuple[int, Lines]] = []
        while not isinstance(item_event := parser.get_event(), yaml.SequenceEndEvent):
            value, child = _build(parser, item_event, anchors, depth + 1)
            items.append(value)
            item_lines.append((_line(item_event), child))
        built = (items, item_lines)
    elif isinstance(event, yaml.AliasEvent):
        if event.anchor not in anchors:
            raise YamlProblem(_line(event), f"unknown alias *{event.anchor}")
        return anchors[event.anchor]
    else:
        raise YamlProblem(_line(event), f"unexpected YAML {type(event).__name__}")
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
        raise YamlProblem(_line(event), f"unsupported YAML tag {tag}")
    if tag is not None or not event.implicit[0]:
        return value
    if value in _NULLS:
        return None
    if value in _BOOLS:
        return _BOOLS[value]
    first = value[0]
    if first.isdigit() or first in "-+.":
        if _INT.match(value):
            try:
                return int(value)
            except ValueError:  # more digits than Python converts (sys.get_int_max_str_digits)
                raise YamlProblem(_line(event), f"integer too long ({len(value)} digits)") from None
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
