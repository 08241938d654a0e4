"""Many paho-mqtt clients on one asyncio loop.

The loop owns every paho socket through paho's external-loop callbacks (``LoopSockets``):
``on_socket_open`` adds a reader, ``on_socket_register_write`` a writer, the unregister/close
callbacks remove them. The blocking part of connecting (DNS, TCP, TLS handshake) runs on a small
thread pool; socket callbacks fired there hop back to the loop with ``call_soon_threadsafe``, so
every other paho callback runs on the loop thread. ``loop_start()``/``loop_forever()`` are never
used: paho's own loop is ``select()``-based and fails for descriptors >= 1024, which a process
holding thousands of sockets hands out.

``MqttDriver`` is what the links share: one task calling ``loop_misc()`` on every client once a
second (keepalive), the connect pool, and a semaphore bounding how many links handshake at once.
Each ``MqttLink`` (``_link``) owns one client and its reconnect loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

if TYPE_CHECKING:
    from paho.mqtt.client import SocketLike

    from ._link import MqttLink


class LinkError(ConnectionError):
    """The broker link is down, refused us, or did not answer in time."""


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


class MqttDriver:
    """What all links share: the ``loop_misc`` ticker and the thread pool for blocking connects."""

    def __init__(
        self, *, connect_workers: int = 8, max_connecting: int = 100, tick_s: float = 1.0
    ) -> None:
        self._links: set[MqttLink] = set()
        self._tick_s = tick_s
        # Links between TCP connect and birth PUBACK at once. Unbounded, 2,000 clusters swamp
        # amqtt: CONNACKs come later than the timeout, everyone retries, nobody gets through.
        self.connect_slot = asyncio.Semaphore(max_connecting)
        self._ticker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(connect_workers, thread_name_prefix="sim-connect")

    def start(self) -> None:
        if self._ticker is None:
            self._ticker = asyncio.get_running_loop().create_task(self._tick(), name="mqtt-misc")

    async def aclose(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
            self._ticker = None
        self._executor.shutdown(wait=False, cancel_futures=True)

    def submit(self, fn: Callable[[], MQTTErrorCode]) -> ThreadFuture[MQTTErrorCode]:
        return self._executor.submit(fn)

    def add(self, link: MqttLink) -> None:
        self._links.add(link)

    def discard(self, link: MqttLink) -> None:
        self._links.discard(link)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            for link in list(self._links):
                link.tick()


class LoopSockets:
    """Puts one paho client's socket on the asyncio loop.

    paho calls these from whichever thread runs it: the loop thread, or a pool thread during a
    blocking connect. From a pool thread they hop to the loop with ``call_soon_threadsafe``, in
    order, so a socket is always added before it is removed. Removal of a socket already closed
    works: the selector finds it by identity.
    """

    def __init__(self, client: mqtt.Client) -> None:
        self._client = client
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = 0
        client.on_socket_open = self._opened
        client.on_socket_close = self._closed
        client.on_socket_register_write = self._want_write
        client.on_socket_unregister_write = self._wrote

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.get_ident()

    def _on_loop(self, fn: Callable[[asyncio.AbstractEventLoop], object]) -> None:
        loop = self._loop
        if loop is None:
            return
        if threading.get_ident() == self._thread:
            fn(loop)
        elif not loop.is_closed():
            loop.call_soon_threadsafe(fn, loop)

    def _opened(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        def add(loop: asyncio.AbstractEventLoop) -> None:
            if sock.fileno() >= 0:
                loop.add_reader(sock, self._readable)

        self._on_loop(add)

    def _closed(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        def remove(loop: asyncio.AbstractEventLoop) -> None:
            loop.remove_reader(sock)
            loop.remove_writer(sock)

        self._on_loop(remove)

    def _want_write(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        def add(loop: asyncio.AbstractEventLoop) -> None:
            if sock.fileno() >= 0:
                loop.add_writer(sock, self._client.loop_write)

        self._on_loop(add)

    def _wrote(self, client: mqtt.Client, userdata: Any, sock: SocketLike) -> None:
        self._on_loop(lambda loop: loop.remove_writer(sock))

    def _readable(self) -> None:
        self._client.loop_read()
        sock = self._client.socket()
        for _ in range(64):  # TLS may hold decrypted bytes the selector cannot see
            if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                break
            self._client.loop_read()
            sock = self._client.socket()
