"""Fan-out without I/O: a slow listener is skipped forward, then dropped; others never wait."""

from __future__ import annotations

import asyncio

from station.live import Fanout
from station.live._ogg import OggPages


async def drain(listener_chunks: list[bytes], fanout: Fanout, name: str) -> None:
    listener = fanout.join(name)
    async for chunk in listener.chunks():
        listener_chunks.append(chunk)


async def test_fast_listener_gets_everything_while_slow_one_is_skipped_and_dropped() -> None:
    fanout = Fanout(limit=1000, max_skips=2)
    fanout.header = b"H" * 10
    fast: list[bytes] = []
    task = asyncio.create_task(drain(fast, fanout, "fast"))
    await asyncio.sleep(0)
    slow = fanout.join("slow")  # never reads
    for i in range(40):
        fanout.publish(bytes([i]) * 300)
        await asyncio.sleep(0)
    assert b"".join(fast) == b"H" * 10 + b"".join(bytes([i]) * 300 for i in range(40))
    assert slow.buffered <= 1000  # bounded, whatever the backlog
    assert slow.closed and fanout.listeners == 1
    assert fanout.counters.skipped == 3 and fanout.counters.dropped == 1
    fanout.close()
    await task


async def test_a_listener_that_catches_up_is_skipped_not_dropped() -> None:
    fanout = Fanout(limit=1000, max_skips=1)
    lagging = fanout.join("lagging")
    got: list[bytes] = []
    for round_ in range(5):
        for i in range(5):  # 1,500 bytes: one skip forward per round
            fanout.publish(bytes([round_ * 5 + i]) * 300)
        async for chunk in lagging.chunks():
            got.append(chunk)
            if not lagging.buffered:
                break
    assert not lagging.closed
    assert got[-1] == bytes([24]) * 300  # always the newest audio after a skip
    assert fanout.counters.skipped == 5 and fanout.counters.dropped == 0


def test_ogg_pages_are_split_whole_across_arbitrary_reads() -> None:
    def page(granule: int, body: bytes) -> bytes:
        header = b"OggS" + bytes(2) + granule.to_bytes(8, "little") + bytes(12)
        return header + bytes([1, len(body)]) + body

    stream = b"junk" + page(0, b"head") + page(960, b"a" * 200) + page(1920, b"b" * 7)
    splitter = OggPages()
    pages = []
    for i in range(0, len(stream), 5):
        pages += splitter.feed(stream[i : i + 5])
    assert [(g, len(p)) for p, g in pages] == [(0, 32), (960, 228), (1920, 35)]
