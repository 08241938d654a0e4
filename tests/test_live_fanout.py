"""Fan-out without I/O: a slow listener is skipped forward, then dropped; others never wait."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from pathlib import Path

import pytest
from pydantic import ValidationError

from station.config import LiveSection
from station.live import Fanout, Listener, mount_config
from station.live._fanout import Batching
from station.live._ogg import OggPages
from station.media import MediaStore


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


def test_batches_grow_with_listeners_up_to_the_cap() -> None:
    batching = Batching(min_ms=200, max_ms=600, writes_per_s=2000)
    assert [batching.batch_ms(n) for n in (0, 100, 400, 1000, 1100, 5000)] == [
        200.0,
        200.0,
        200.0,
        500.0,
        550.0,
        600.0,
    ]
    fanout = Fanout(limit=1000, max_skips=1, batching=batching)
    for i in range(1000):
        fanout.join(f"c{i}")
    assert fanout.batch_ms == 500.0  # 1,000 listeners x 2 writes/s


async def _direct(
    fanout: Fanout, name: str, chunked: bool, sndbuf: int | None = None
) -> tuple[Listener, socket.socket, asyncio.StreamWriter]:
    """A listener on one end of a socket pair (a real asyncio transport), the other end raw."""
    ours, theirs = socket.socketpair()
    if sndbuf is not None:
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        theirs.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
    _, writer = await asyncio.open_connection(sock=ours)
    listener = fanout.join(name)
    listener.go_direct(writer.transport, chunked=chunked)
    theirs.setblocking(False)
    return listener, theirs, writer


def _drain(sock: socket.socket) -> bytes:
    data = b""
    with contextlib.suppress(BlockingIOError):
        while part := sock.recv(65536):
            data += part
    return data


async def test_direct_listeners_get_each_chunk_in_their_framing_and_bytes_are_counted() -> None:
    fanout = Fanout(limit=64 * 1024, max_skips=1)
    fanout.header = b"HEAD"
    chunked, chunked_peer, w1 = await _direct(fanout, "c-1", chunked=True)
    raw, raw_peer, w2 = await _direct(fanout, "c-2", chunked=False)
    chunks = [bytes([i]) * (100 + i) for i in range(20)]
    for chunk in chunks:
        fanout.publish(chunk)
    await asyncio.sleep(0.05)
    framed = b"".join(b"%x\r\n%b\r\n" % (len(c), c) for c in [b"HEAD", *chunks])
    assert _drain(chunked_peer) == framed
    assert _drain(raw_peer) == b"HEAD" + b"".join(chunks)
    assert fanout.publishes == 20 and fanout.listeners == 2
    fanout.close()
    assert chunked.closed and raw.closed and fanout.listeners == 0
    sent = 4 + sum(map(len, chunks))  # counted when they leave (chunk bytes, no framing)
    assert fanout.counters.bytes_sent == {"c-1": sent, "c-2": sent}
    for sock, writer in ((chunked_peer, w1), (raw_peer, w2)):
        writer.close()
        sock.close()


async def test_a_stalled_direct_listener_is_skipped_then_dropped_and_others_get_all() -> None:
    fanout = Fanout(limit=20_000, max_skips=1, stall_drop_s=0.05)
    fast, fast_peer, w1 = await _direct(fanout, "fast", chunked=False)
    slow, slow_peer, w2 = await _direct(fanout, "slow", chunked=False, sndbuf=4096)
    received = b""
    chunks = [bytes([i]) * 8000 for i in range(30)]
    for chunk in chunks:
        fanout.publish(chunk)
        await asyncio.sleep(0.01)
        received += _drain(fast_peer)  # fast reads; slow never does
    assert received == b"".join(chunks)
    assert slow.closed and not fast.closed and fanout.listeners == 1
    assert slow.buffered_direct <= 20_000  # its write buffer never passed the bound
    assert fanout.counters.skipped >= 2 and fanout.counters.dropped == 1
    got = len(_drain(slow_peer))
    assert fanout.counters.bytes_sent["slow"] == got + slow.buffered_direct
    fanout.close()
    for sock, writer in ((fast_peer, w1), (slow_peer, w2)):
        writer.close()
        sock.close()


async def test_a_listener_that_hung_up_is_removed_on_the_next_publish() -> None:
    fanout = Fanout(limit=64 * 1024, max_skips=1)
    gone, peer, writer = await _direct(fanout, "gone", chunked=True)
    peer.close()
    for _ in range(5):
        fanout.publish(b"x" * 100)
        await asyncio.sleep(0.01)
    assert gone.closed and fanout.listeners == 0 and fanout.counters.dropped == 0
    writer.close()


def test_batch_settings_reach_the_mounts_and_a_max_below_the_min_is_refused(
    tmp_path: Path,
) -> None:
    live = LiveSection(http_batch_ms=100, http_batch_max_ms=900, http_batch_writes_per_s=500)
    config = mount_config(live, MediaStore(tmp_path))
    assert (config.batch_ms, config.batch_max_ms, config.batch_writes_per_s) == (100, 900, 500)
    with pytest.raises(ValidationError, match="http_batch_max_ms must be >= http_batch_ms"):
        LiveSection(http_batch_ms=500, http_batch_max_ms=200)
