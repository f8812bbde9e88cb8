"""gateway.accesslog: buffered lines, written by a thread, in order, whole, never blocking the loop."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import threading
import time

import pytest

from gateway.accesslog import AccessLog, write_lines


def _read_all(fd: int) -> bytes:
    out = bytearray()
    while chunk := os.read(fd, 1 << 16):
        out += chunk
    return bytes(out)


def _records(n: int, start: int = 0, pad: int = 0) -> list[dict[str, object]]:
    return [{"request_id": f"r{i}", "status": 200, "pad": "x" * pad} for i in range(start, n)]


async def test_lines_are_written_in_request_order_and_all_at_close() -> None:
    r, w = os.pipe()
    reader = asyncio.create_task(asyncio.to_thread(_read_all, r))
    log = AccessLog("json", fd=w, flush_interval=0.01, max_buffer=2048)
    for i, record in enumerate(_records(2000)):
        log.log(record)
        if i % 300 == 0:
            await asyncio.sleep(0.02)  # some batches by timer, others by size
    await log.aclose()
    os.close(w)
    lines = (await reader).splitlines()
    os.close(r)
    assert [json.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(2000)]


async def test_a_stalled_sink_does_not_block_the_loop() -> None:
    r, w = os.pipe()
    fcntl.fcntl(w, fcntl.F_SETPIPE_SZ, 4096)  # nobody reads yet: the pipe fills at once
    log = AccessLog("json", fd=w, flush_interval=0.001, max_buffer=1024)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    tick_task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    for record in _records(3000, pad=100):  # ~400 KB: far more than the pipe holds
        log.log(record)
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - t0
    await asyncio.sleep(0.05)
    assert ticks > 10, "the loop stalled while the sink was full"
    assert elapsed < 5
    reader = asyncio.create_task(asyncio.to_thread(_read_all, r))
    await log.aclose()
    os.close(w)
    tick_task.cancel()
    lines = (await reader).splitlines()
    os.close(r)
    assert [json.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(3000)]


def test_past_max_pending_flush_waits_for_the_sink_and_loses_nothing() -> None:
    r, w = os.pipe()
    got: list[bytes] = []

    def slow_reader() -> None:
        while chunk := os.read(r, 512):
            got.append(chunk)
            time.sleep(0.001)

    reader = threading.Thread(target=slow_reader, daemon=True)
    reader.start()
    log = AccessLog("json", fd=w, max_buffer=256, max_pending=1024)
    for record in _records(2000):
        log.log(record)  # no loop: every record is flushed at once
    log.close()
    os.close(w)
    reader.join(10)
    os.close(r)
    lines = b"".join(got).splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"r{i}" for i in range(2000)]


def test_without_a_loop_close_writes_everything(tmp_path) -> None:
    path = tmp_path / "access.log"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    log = AccessLog("text", fd=fd)
    log.log({"request_id": "a", "method": "GET", "status": 200})
    log.log({"request_id": "b", "method": "PUT", "status": 503})
    log.close()
    os.close(fd)
    lines = path.read_text().splitlines()
    assert lines[0].startswith("request_id=a method=GET path=None")
    assert lines[1].startswith("request_id=b method=PUT")


def test_a_closed_sink_drops_lines_without_raising() -> None:
    r, w = os.pipe()
    os.close(r)  # EPIPE on write (Python ignores SIGPIPE)
    log = AccessLog("json", fd=w)
    for record in _records(100):
        log.log(record)
    log.close()
    os.close(w)


def test_pipe_writes_are_whole_lines_of_at_most_pipe_buf() -> None:
    lines = [b"%d:" % i + b"y" * (i * 37 % 900) + b"\n" for i in range(400)]
    lines.insert(100, b"L" * 10000 + b"\n")  # longer than one chunk: written alone
    data = b"".join(lines)
    writes: list[bytes] = []
    r, w = os.pipe()
    done = threading.Event()

    def drain() -> None:
        while chunk := os.read(r, 1 << 20):
            writes.append(chunk)
        done.set()

    threading.Thread(target=drain, daemon=True).start()
    real_write = os.write
    sizes: list[bytes] = []

    def spy(fd: int, buf: bytes | memoryview) -> int:
        sizes.append(bytes(buf))
        return real_write(fd, buf)

    mp = pytest.MonkeyPatch()
    mp.setattr(os, "write", spy)
    try:
        assert write_lines(w, data, 4096)
    finally:
        mp.undo()
    os.close(w)
    done.wait(5)
    os.close(r)
    assert b"".join(writes) == data
    for chunk in sizes:
        assert chunk.endswith(b"\n")
        assert len(chunk) <= 4096 or chunk.count(b"\n") == 1
