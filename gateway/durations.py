"""Human-friendly durations ("500ms", "2s", "1m") and sizes ("1MiB", "512KiB") for routes.yaml."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "parse_size"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {
    None: 1,
    "B": 1,
    "KB": 1000,
    "KiB": 1024,
    "MB": 1000**2,
    "MiB": 1024**2,
    "GB": 1000**3,
    "GiB": 1024**3,
}


def parse_duration(value: object, *, allow_zero: bool = False) -> float:
    """Seconds from a number of seconds or a string like "500ms", "2s", "1.5m", "1h".

    Raises ValueError with a message fit for a config error.
    """
    # bool is an int subclass: `timeout: yes` is a mistake, not one second.
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 500ms, 2s, 1m or seconds, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        found = _DURATION.match(value)
        if found is None:
            raise ValueError(
                f"bad duration {value!r}: use e.g. 500ms, 2s, 1m or a number of seconds"
            )
        seconds = float(found.group(1)) * _DURATION_UNITS[found.group(2)]
    else:
        raise ValueError(f"expected a duration like 500ms, 2s, 1m or seconds, got {value!r}")
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be a finite, non-negative time, got {value!r}")
    if seconds == 0 and not allow_zero:
        raise ValueError(f"duration must be greater than zero, got {value!r}")
    return seconds


def parse_size(value: object) -> int:
    """Bytes from an int or a string like "1MiB", "512KiB", "10MB", "2048"."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 1MiB, 512KiB or bytes, got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        found = _SIZE.match(value)
        if found is None:
            raise ValueError(
                f"bad size {value!r}: use e.g. 1MiB, 512KiB, 10MB or a number of bytes"
            )
        size = int(float(found.group(1)) * _SIZE_UNITS[found.group(2)])
    else:
        raise ValueError(f"expected a size like 1MiB, 512KiB or bytes, got {value!r}")
    if size < 0:
        raise ValueError(f"size must not be negative, got {value!r}")
    return size
