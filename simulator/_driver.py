"""Many paho-mqtt clients on one asyncio loop.

The loop owns every paho socket through paho's external-loop callbacks: ``on_socket_open`` adds a
reader, ``on_socket_register_write`` a writer, the unregister/close callbacks remove them. One
shared task (``MqttDriver``) calls ``loop_misc()`` on every client once a second (keepalive). The
blocking part of connecting (DNS, TCP, TLS handshake) runs on a small thread pool; socket callbacks
fired there hop back to the loop with ``call_soon_threadsafe``, so every other paho callback runs on
the loop thread. ``loop_start()``/``loop_forever()`` are never used.

Each ``MqttLink`` (``_link``) owns one client and its reconnect loop.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from concurrent.futures import Future as ThreadFuture
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from paho.mqtt.enums import MQTTErrorCode

if TYPE_CHECKING:
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

    def __init__(self, *, connect_workers: int = 8, tick_s: float = 1.0) -> None:
        self._links: set[MqttLink] = set()
        self._tick_s = tick_s
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
