"""Summarise a `py-spy record -f raw` profile: self and total time per function, and per file.

python bench/pyspy_summary.py profile.txt [top_n]
"""

from __future__ import annotations

import collections
import re
import sys

_FRAME = re.compile(r"(.*) \((.*?):(\d+)\)$")


def _short(frame: str) -> tuple[str, str]:
    m = _FRAME.match(frame)
    if not m:
        return frame, "?"
    func, path, _line = m.groups()
    path = path.split("site-packages/")[-1]
    path = re.sub(r"^.*?/(gateway|bench)/", r"\1/", path)
    return f"{func} ({path})", path


def main() -> None:
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    self_t: collections.Counter[str] = collections.Counter()
    total_t: collections.Counter[str] = collections.Counter()
    by_file: collections.Counter[str] = collections.Counter()
    n = 0
    with open(sys.argv[1]) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack:
                continue
            k = int(count)
            n += k
            frames = [_short(fr) for fr in stack.split(";")]
            leaf, path = frames[-1]
            self_t[leaf] += k
            by_file[path if path.startswith("gateway") else path.split("/")[0]] += k
            for name in {name for name, _ in frames}:
                total_t[name] += k
    print(f"{n} samples")
    for title, counter in (("self", self_t), ("total", total_t), ("self by file", by_file)):
        print(f"== {title}")
        for name, k in counter.most_common(top):
            print(f"{100 * k / n:5.1f}%  {name}")


if __name__ == "__main__":
    main()
