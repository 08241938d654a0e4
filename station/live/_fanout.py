"""Encode once, serve many: one writer, many listeners, each with a bounded buffer.

``publish`` never waits for a listener. A listener whose buffer would pass its byte limit is
skipped forward (its backlog dropped, it resumes at the newest chunk); after ``max_skips``
skips without draining its buffer once in between it is dropped. Memory per listener is
bounded by ``limit`` bytes (chunks are shared between listeners, not copied).

An HTTP listener goes *direct* once its response headers are out: ``publish`` then writes each
chunk straight to its socket transport (no task switch per chunk and listener, which is what
makes 1,000 listeners cheap); the transport's write buffer is the bounded buffer: while it holds
more than ``limit`` bytes new chunks are skipped, and a listener stalled for ``stall_drop_s`` is
dropped. Chunks are whole Ogg pages, so a skip always resumes on a page boundary.

The fan-out's CPU is one socket write per chunk and direct listener, so the publisher batches
audio into chunks of ``batch_ms`` (``Batching``): the batch grows with the number of listeners
so the fan-out stays under a budget of socket writes per second, up to a cap on the added delay.
The per-write loop keeps the transports' bound methods (no attribute chains, no per-write byte
counting: bytes sent are derived from the bytes published when a listener leaves).
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Batching:
    """How much audio goes into one write to each HTTP listener.

    ``min_ms`` with few listeners; beyond ``writes_per_s * min_ms / 1000`` listeners the batch
    grows so that all listeners together cost at most ``writes_per_s`` socket writes per second,
    up to ``max_ms`` (the most delay batching may add; receivers buffer 1-2 s anyway).
    """

    min_ms: int = 200
    max_ms: int = 600
    writes_per_s: int = 2000

    def batch_ms(self, listeners: int) -> float:
        wanted = 1000 * listeners / self.writes_per_s if self.writes_per_s > 0 else 0.0
        return float(max(self.min_ms, min(self.max_ms, wanted)))


@dataclass
class FanoutCounters:
    listeners_total: int = 0
    skipped: int = 0
    dropped: int = 0
    # Chunk bytes (without HTTP framing) per listener name; a direct listener's bytes are added
    # when it leaves (counting them per write would cost a dict update per write).
    bytes_sent: dict[str, int] = field(default_factory=lambda: collections.defaultdict(int))


# A direct listener as the publishing loop sees it: (listener, transport.is_closing,
# transport.get_write_buffer_size, transport.write).
_Direct = tuple["Listener", Callable[[], bool], Callable[[], int], Callable[[bytes], object]]


class Listener:
    def __init__(self, fanout: Fanout, name: str, limit: int, max_skips: int) -> None:
        self.name = name
        self._fanout = fanout
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._limit = limit
        self._max_skips = max_skips
        self._skips = 0
        self._wake = asyncio.Event()
        self.closed = False
        self.done = asyncio.Event()
        self._transport: asyncio.WriteTransport | None = None
        self._chunked = False
        self._stalled_since: float | None = None
        self._stall_seq = -1  # the publish in which this listener was last skipped
        self._published_base = 0  # fanout.published when it went direct
        self._skipped_bytes = 0  # chunk bytes skipped since it went direct

    @property
    def buffered(self) -> int:
        return self._buffered

    @property
    def buffered_direct(self) -> int:
        transport = self._transport
        return 0 if transport is None else transport.get_write_buffer_size()

    def go_direct(self, transport: asyncio.WriteTransport, chunked: bool) -> None:
        """From now on chunks go straight to ``transport`` (HTTP chunked framing if asked)."""
        if self.closed:
            return
        self._transport, self._chunked = transport, chunked
        self._published_base = self._fanout.published
        sent = 0
        while self._chunks:
            chunk = self._chunks.popleft()
            transport.write(_frame(chunk) if chunked else chunk)
            sent += len(chunk)
        self._buffered = 0
        self._fanout.counters.bytes_sent[self.name] += sent
        self._fanout._go_direct(self, transport, chunked)

    def _backlogged(self, size: int, seq: int) -> None:
        """Slow path of a direct listener: its socket buffer is full (or it hung up)."""
        transport = self._transport
        assert transport is not None
        self._skipped_bytes += size  # not sent
        if transport.is_closing():
            self.close()
            return
        fanout = self._fanout
        fanout.counters.skipped += 1
        now = time.monotonic()
        if self._stall_seq != seq - 1 or self._stalled_since is None:
            self._stalled_since = now  # a new stall (it wrote in between)
        elif now - self._stalled_since > fanout.stall_drop_s:
            fanout.counters.dropped += 1
            self.close()
            return
        self._stall_seq = seq

    def _offer(self, chunk: bytes) -> None:
        if self._buffered + len(chunk) > self._limit and self._chunks:
            self._skips += 1
            self._fanout.counters.skipped += 1
            if self._skips > self._max_skips:
                self._fanout.counters.dropped += 1
                self.close()
                return
            self._chunks.clear()
            self._buffered = 0
        self._chunks.append(chunk)
        self._buffered += len(chunk)
        self._wake.set()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._wake.set()
        self.done.set()
        if self._transport is not None:
            sent = self._fanout.published - self._published_base - self._skipped_bytes
            self._fanout.counters.bytes_sent[self.name] += sent
        self._fanout.discard(self)

    async def chunks(self) -> AsyncIterator[bytes]:
        """Everything published since joining (minus skips), until closed."""
        while True:
            while self._chunks:
                chunk = self._chunks.popleft()
                self._buffered -= len(chunk)
                if not self._chunks:
                    self._skips = 0  # caught up
                yield chunk
            if self.closed:
                return
            self._wake.clear()
            await self._wake.wait()


class Fanout:
    def __init__(
        self,
        limit: int,
        max_skips: int,
        stall_drop_s: float = 10.0,
        batching: Batching | None = None,
    ) -> None:
        self.limit = limit
        self.max_skips = max_skips
        self.stall_drop_s = stall_drop_s
        self.batching = batching or Batching()
        self.header = b""  # sent first to every new listener (Ogg header pages)
        self.counters = FanoutCounters()
        self.published = 0  # chunk bytes published so far
        self.publishes = 0  # chunks published so far (the writes per direct listener)
        self._queued: set[Listener] = set()  # waiting for their response headers
        self._direct: dict[Listener, _Direct] = {}
        # What publish() iterates: direct listeners by framing, rebuilt after joins and leaves.
        self._chunked: list[_Direct] = []
        self._raw: list[_Direct] = []
        self._dirty = False

    @property
    def listeners(self) -> int:
        return len(self._queued) + len(self._direct)

    @property
    def batch_ms(self) -> float:
        """Audio per chunk the publisher should batch for the listeners there are now."""
        return self.batching.batch_ms(self.listeners)

    def join(self, name: str) -> Listener:
        listener = Listener(self, name, self.limit, self.max_skips)
        if self.header:
            listener._offer(self.header)
        self._queued.add(listener)
        self.counters.listeners_total += 1
        return listener

    def _go_direct(
        self, listener: Listener, transport: asyncio.WriteTransport, chunked: bool
    ) -> None:
        self._queued.discard(listener)
        entry: _Direct = (
            listener,
            transport.is_closing,
            transport.get_write_buffer_size,
            transport.write,
        )
        self._direct[listener] = entry
        (self._chunked if chunked else self._raw).append(entry)

    def discard(self, listener: Listener) -> None:
        self._queued.discard(listener)
        if self._direct.pop(listener, None) is not None:
            self._dirty = True

    def publish(self, chunk: bytes) -> None:
        self.published += len(chunk)
        self.publishes += 1
        if self._queued:
            for listener in list(self._queued):
                listener._offer(chunk)
        if self._dirty:
            self._dirty = False
            self._chunked = [e for e in self._direct.values() if e[0]._chunked]
            self._raw = [e for e in self._direct.values() if not e[0]._chunked]
        if self._chunked:
            self._write_all(self._chunked, chunk, _frame(chunk))
        if self._raw:
            self._write_all(self._raw, chunk, chunk)

    def _write_all(self, direct: list[_Direct], chunk: bytes, wire: bytes) -> None:
        """The hot loop: one ``transport.write`` per listener, checks kept to two calls."""
        room = self.limit - len(wire)  # a listener with more buffered than this is skipped
        size, seq = len(chunk), self.publishes
        for listener, closing, buffered, write in direct:
            if buffered() > room or closing():
                listener._backlogged(size, seq)
            else:
                write(wire)

    def close(self) -> None:
        for listener in [*self._queued, *self._direct]:
            listener.close()


def _frame(chunk: bytes) -> bytes:
    """HTTP/1.1 chunked transfer coding of one chunk."""
    return b"%x\r\n%b\r\n" % (len(chunk), chunk)
