"""SqliteLogBus specifics: several processes publishing and reading the same file at once."""

from __future__ import annotations

import asyncio
import sqlite3
import textwrap
from pathlib import Path

from extracted.events import SqliteLogBus
from tests.extracted.events.test_bus import _drain
from tests.support import procs

_PUBLISHER = textwrap.dedent(
    """
    import asyncio, sys
    from extracted.events import SqliteLogBus
    from tests.extracted.events.factories import numbered_events

    async def main():
        bus = SqliteLogBus(sys.argv[1])
        for event in numbered_events(int(sys.argv[2])):
            await bus.publish(event)
        await bus.close()

    asyncio.run(main())
    """
)


async def test_concurrent_publisher_processes_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "events.db"  # the parent directory is created
    publishers = [
        await asyncio.create_subprocess_exec(
            procs.PYTHON, "-c", _PUBLISHER, str(path), "60", cwd=procs.ROOT
        )
        for _ in range(3)
    ]
    reader = SqliteLogBus(path)
    try:
        got = await _drain(reader, "g", "c1", 180, within=60)
        assert len(set(got)) == 180
    finally:
        for p in publishers:
            assert await asyncio.wait_for(p.wait(), 60) == 0
        await reader.close()


async def test_file_uses_wal_and_the_documented_tables(tmp_path: Path) -> None:
    bus = SqliteLogBus(tmp_path / "events.db")
    await bus.read("g", "c", block_ms=0)
    await bus.close()
    with sqlite3.connect(tmp_path / "events.db") as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"log", "groups", "pending"} <= tables
