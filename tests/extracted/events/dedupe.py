"""A consumer's own dedupe table (SQLite): process each event once, however often it is delivered."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from extracted.events import Event


class DedupeStore:
    """Records applied event ids and every delivery attempt, in one transaction per event."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(path, timeout=10, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("CREATE TABLE IF NOT EXISTS processed (event_id TEXT PRIMARY KEY)")
        self.conn.execute("CREATE TABLE IF NOT EXISTS attempts (event_id TEXT NOT NULL)")

    def process(self, event: Event) -> bool:
        """Apply `event` unless already applied; True when this call applied it."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            self.conn.execute("INSERT INTO attempts VALUES (?)", (event.event_id,))
            cur = self.conn.execute("INSERT OR IGNORE INTO processed VALUES (?)", (event.event_id,))
            self.conn.execute("COMMIT")
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        return cur.rowcount == 1

    def processed(self) -> list[str]:
        """Every applied event id."""
        return [r[0] for r in self.conn.execute("SELECT event_id FROM processed")]

    def attempts(self) -> int:
        """How many deliveries were seen in total (duplicates included)."""
        return int(self.conn.execute("SELECT count(*) FROM attempts").fetchone()[0])

    def close(self) -> None:
        """Close the file."""
        self.conn.close()
