"""One MQTT connection driven by the asyncio loop (the aiomqtt 2.5.1 pattern).

The loop owns paho's socket through paho's external-loop callbacks, so every paho callback runs
on the loop thread; ``loop_start()`` is never used. Every publish and subscribe is awaitable with
a timeout; inbound messages land in a bounded queue and overflow is counted, not hidden.
``run()`` is the single owner of the connection: it connects, re-subscribes and re-announces
after every reconnect, and backs off between attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import threading
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)


class MqttError(Exception):
    """The broker link failed: not connected, refused, or a timeout."""


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: str | None = None

    @classmethod
    def from_url(cls, url: str, ca_file: str | None = None) -> BrokerAddress:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ValueError(f"unsupported MQTT URL scheme {parts.scheme!r} in {redact_url(url)}")
        tls = parts.scheme in ("mqtts", "ssl")
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or (8883 if tls else 1883),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            tls=tls,
            ca_file=ca_file,
        )

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        user = f"{self.username}:***@" if self.username else ""
        return f"{scheme}://{user}{self.host}:{self.port}"


def redact_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@dataclass(frozen=True, slots=True)
class InboundMessage:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class LastWill:
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = True


OnConnected = Callable[[], Awaitable[None]]


class MqttLink:
    """A paho client whose socket is served by the running asyncio loop."""

    def __init__(
        self,
        address: BrokerAddress,
        client_id: str,
        *,
        will: LastWill | None = None,
        keepalive_s: int = 30,
        timeout_s: float = 5.0,
        queue_size: int = 10_000,
        reconnect_min_s: float = 1.0,
        reconnect_max_s: float = 60.0,
        clean_session: bool = True,
    ) -> None:
        self.address = address
        self._clean_session = clean_session
        self.timeout_s = timeout_s
        self.keepalive_s = keepalive_s
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.messages: asyncio.Queue[InboundMessage] = asyncio.Queue(maxsize=queue_size)
        self.dropped: Counter[str] = Counter()
        self.reconnects = 0
        self._subscriptions: dict[str, int] = {}
        self._on_connected: list[OnConnected] = []
        self._pending_publish: dict[int, asyncio.Future[None]] = {}
        self._pending_subscribe: dict[int, asyncio.Future[None]] = {}
        self._connected = asyncio.Event()
        self._connect_result: asyncio.Future[ReasonCode] | None = None
        self._disconnected: asyncio.Future[None] | None = None
        self._misc_task: asyncio.Task[None] | None = None
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()
        self._client = self._make_client(client_id, will)

    # -- public API -------------------------------------------------------------------------

    @property
    def is_connected(self) -> bool:
        return self._connected.is_set()

    def on_connected(self, callback: OnConnected) -> None:
        """Run ``callback`` after every (re)connect, after subscriptions are restored."""
        self._on_connected.append(callback)

    async def wait_connected(self, timeout: float | None = None) -> None:
        try:
            async with asyncio.timeout(timeout or self.timeout_s):
                await self._connected.wait()
        except TimeoutError:
            raise MqttError(f"not connected to {self.address} after {timeout}s") from None

    async def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        timeout: float | None = None,
    ) -> None:
        """Publish and wait until the broker took it (PUBACK for QoS 1, written for QoS 0)."""
        if not self.is_connected:
            raise MqttError(f"cannot publish to {topic}: not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish to {topic} failed: {paho.error_string(info.rc)}")
        if info.is_published():
            return
        await self._wait_for(self._pending_publish, info.mid, timeout, f"publish to {topic}")

    async def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Subscribe now (if connected) and again after every reconnect."""
        self._subscriptions[topic_filter] = qos
        if self.is_connected:
            await self._subscribe_one(topic_filter, qos)

    async def run(self) -> None:
        """Own the connection until cancelled: connect, serve, reconnect with backoff."""
        delay = self.reconnect_min_s
        self._misc_task = asyncio.create_task(self._misc_loop(), name="mqtt-misc")
        try:
            while True:
                try:
                    await self._connect_once()
                    delay = self.reconnect_min_s
                    assert self._disconnected is not None
                    await self._disconnected
                except (OSError, MqttError) as exc:
                    log.warning("MQTT %s: %s; retrying in %.0fs", self.address, exc, delay)
                self._connected.clear()
                self._fail_pending(MqttError("connection lost"))
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.reconnect_max_s)
                self.reconnects += 1
        finally:
            self._misc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._misc_task

    async def disconnect(self) -> None:
        """Clean DISCONNECT. It suppresses the will: publish your own offline message first."""
        if self.is_connected:
            self._disconnected = self._loop.create_future()
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.timeout_s):
                    await asyncio.shield(self._disconnected)
        self._connected.clear()

    # -- connection -------------------------------------------------------------------------

    def _make_client(self, client_id: str, will: LastWill | None) -> paho.Client:
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv311,
            clean_session=self._clean_session,
        )
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        if self.address.tls:
            context = ssl.create_default_context(cafile=self.address.ca_file)
            client.tls_set_context(context)
        # Fan-out of one command to a whole fleet: do not serialise it behind 20 in-flight PUBACKs.
        client.max_inflight_messages_set(1000)
        if will is not None:
            client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_socket_register_write
        client.on_socket_unregister_write = self._on_socket_unregister_write
        return client

    async def _connect_once(self) -> None:
        self._connect_result = self._loop.create_future()
        self._disconnected = self._loop.create_future()
        # paho's connect() resolves DNS and opens TCP synchronously: keep it off the loop.
        rc = await self._loop.run_in_executor(
            None, self._client.connect, self.address.host, self.address.port, self.keepalive_s
        )
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"connect failed: {paho.error_string(rc)}")
        try:
            async with asyncio.timeout(self.timeout_s):
                reason = await self._connect_result
        except TimeoutError:
            self._client.disconnect()
            raise MqttError("no CONNACK from broker") from None
        if reason.is_failure:
            raise MqttError(f"broker refused connection: {reason}")
        for topic_filter, qos in self._subscriptions.items():
            await self._subscribe_one(topic_filter, qos)
        self._connected.set()
        log.info("MQTT connected to %s", self.address)
        for callback in self._on_connected:
            await callback()

    async def _subscribe_one(self, topic_filter: str, qos: int) -> None:
        rc, mid = self._client.subscribe(topic_filter, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe {topic_filter} failed: {paho.error_string(rc)}")
        await self._wait_for(self._pending_subscribe, mid, None, f"subscribe {topic_filter}")

    async def _wait_for(
        self, pending: dict[int, asyncio.Future[None]], mid: int, timeout: float | None, what: str
    ) -> None:
        future = pending.setdefault(mid, self._loop.create_future())
        try:
            async with asyncio.timeout(timeout or self.timeout_s):
                await asyncio.shield(future)
        except TimeoutError:
            raise MqttError(
                f"{what}: no acknowledgement within {timeout or self.timeout_s}s"
            ) from None
        finally:
            pending.pop(mid, None)

    def _fail_pending(self, exc: Exception) -> None:
        for pending in (self._pending_publish, self._pending_subscribe):
            for future in pending.values():
                if not future.done():
                    future.set_exception(exc)
                    future.exception()  # mark retrieved: the waiter may already be gone
            pending.clear()

    async def _misc_loop(self) -> None:
        while True:
            await asyncio.sleep(1)
            self._client.loop_misc()

    # -- paho callbacks (all on the loop thread, except the socket ones during connect) -----

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        if self._connect_result is not None and not self._connect_result.done():
            self._connect_result.set_result(reason)

    def _on_disconnect(self, _c: Any, _u: Any, _f: Any, reason: ReasonCode, _p: Any) -> None:
        self._connected.clear()
        if self._connect_result is not None and not self._connect_result.done():
            self._connect_result.set_exception(MqttError(f"disconnected during connect: {reason}"))
        if self._disconnected is not None and not self._disconnected.done():
            self._disconnected.set_result(None)

    def _on_message(self, _c: Any, _u: Any, msg: paho.MQTTMessage) -> None:
        message = InboundMessage(msg.topic, bytes(msg.payload), msg.qos, bool(msg.retain))
        try:
            self.messages.put_nowait(message)
        except asyncio.QueueFull:
            self.dropped["queue_full"] += 1
            if self.dropped["queue_full"] in (1, 100) or self.dropped["queue_full"] % 10_000 == 0:
                log.warning("MQTT inbound queue full: %d dropped", self.dropped["queue_full"])

    def _on_publish(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._resolve(self._pending_publish, mid)

    def _on_subscribe(self, _c: Any, _u: Any, mid: int, _rc: Any, _p: Any) -> None:
        self._resolve(self._pending_subscribe, mid)

    def _resolve(self, pending: dict[int, asyncio.Future[None]], mid: int) -> None:
        future = pending.setdefault(mid, self._loop.create_future())
        if not future.done():
            future.set_result(None)

    def _on_loop_thread(self, fn: Callable[..., Any], *args: Any) -> None:
        # During connect() paho calls the socket callbacks from the executor thread.
        if threading.get_ident() == self._loop_thread:
            fn(*args)
        else:
            self._loop.call_soon_threadsafe(fn, *args)

    def _on_socket_open(self, client: paho.Client, _u: Any, sock: Any) -> None:
        self._on_loop_thread(self._loop.add_reader, sock, client.loop_read)

    def _on_socket_close(self, _client: paho.Client, _u: Any, sock: Any) -> None:
        # Called before paho closes the socket: unregister while the fd is still valid.
        self._on_loop_thread(self._remove_fd, sock)

    def _remove_fd(self, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_reader(sock)
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)

    def _on_socket_register_write(self, client: paho.Client, _u: Any, sock: Any) -> None:
        self._on_loop_thread(self._loop.add_writer, sock, client.loop_write)

    def _on_socket_unregister_write(self, _client: paho.Client, _u: Any, sock: Any) -> None:
        self._on_loop_thread(self._remove_writer, sock)

    def _remove_writer(self, sock: Any) -> None:
        with contextlib.suppress(ValueError, OSError):
            self._loop.remove_writer(sock)
