"""A consumer process that reads a batch, processes part of it, then hangs until SIGKILLed.

Usage: python -m tests.extracted.events.crash_worker <bus-url> <group> <consumer> <count>
<process> <dedupe-db>, where <bus-url> is redis://...#<stream> or sqlite:///<path>.
Prints "READY <read> <processed>" once it has processed its share and never acks anything.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.extracted.events.dedupe import DedupeStore
from tests.extracted.events.support import bus_from_url


async def main(argv: list[str]) -> None:
    url, group, consumer, count, process, dedupe_path = argv
    bus = bus_from_url(url)
    store = DedupeStore(Path(dedupe_path))
    deliveries = await bus.read(group, consumer, count=int(count), block_ms=5000)
    for delivery in deliveries[: int(process)]:
        store.process(delivery.event)
    print(f"READY {len(deliveries)} {min(int(process), len(deliveries))}", flush=True)
    await asyncio.sleep(3600)  # dies here, by SIGKILL, without acking


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
