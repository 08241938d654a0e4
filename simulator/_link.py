"""One paho-mqtt client whose socket the asyncio loop owns (see ``_driver`` for the scheme).

``MqttLink`` owns the client and its reconnect loop: connect on the driver's thread pool, wait for
CONNACK, run ``on_ready`` (subscribe, announce), wait for the link to drop, back off with jitter,
repeat. Publish and subscribe are awaitable with a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Future as ThreadFuture
from typing import TYPE_CHECKING, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

from ._driver import LinkError, LoopSockets, MqttDriver, Will
from ._url import BrokerUrl

if TYPE_CHECKING:
    from paho.mqtt.properties import Properties
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

OnMessage = Callable[[str, bytes], None]
OnReady = Callable[[], Awaitable[None]]


class MqttLink:
    """One MQTT 3.1.1 connection with will, reconnect loop and awaitable publish/subscribe."""

    def __init__(
        self,
        driver: MqttDriver,
        broker: BrokerUrl,
        client_id: str,
        *,
        will: Will,
        on_message: OnMessage,
        on_ready: OnReady,
        username: str | None = None,
        password: str | None = None,
        keepalive: int = 60,
        op_timeout: float = 10.0,
        backoff: tuple[float, float] = (0.5, 30.0),
    ) -> None:
        self._driver = driver
        self._broker = broker
        self._on_message_cb = on_message
        self._on_ready = on_ready
        self._keepalive = keepalive
        self._op_timeout = op_timeout
        self._backoff = backoff
        self.client_id = client_id
        self._client = self._make_client(client_id, will, username, password)
        self._sockets = LoopSockets(self._client)
        self._task: asyncio.Task[None] | None = None
        self._connect_future: ThreadFuture[MQTTErrorCode] | None = None
        self._deferred: deque[tuple[str, bytes, int, bool]] = deque(maxlen=1000)
        self._connack: asyncio.Future[None] | None = None
        self._lost = asyncio.Event()
        self._ready = asyncio.Event()
        self._resumed = asyncio.Event()
        self._resumed.set()
        self._hold_until = 0.0
        self._closing = False
        self._pending_pub: dict[int, asyncio.Future[None]] = {}
        self._pending_sub: dict[int, asyncio.Future[None]] = {}
        self.connected = False
        self.connects = 0

    def _make_client(
        self, client_id: str, will: Will, username: str | None, password: str | None
    ) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=True,
            protocol=mqtt.MQTTv311,
        )
        client.connect_timeout = 5.0
        client.max_queued_messages_set(1000)
        client.will_set(will.topic, will.payload, qos=will.qos, retain=will.retain)
        if username is not None:
            client.username_pw_set(username, password)
        if self._broker.tls:
            client.tls_set(ca_certs=self._broker.ca_file)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected and ``on_ready`` (subscribe + announce) completed since the last connect."""
        return self._ready.is_set()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._sockets.bind(loop)
        self._driver.add(self)
        self._task = loop.create_task(self._run(), name=f"mqtt-{self.client_id}")

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def close(self) -> None:
        """Stop reconnecting and leave with a clean DISCONNECT (which suppresses the will)."""
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._connack is not None and not self._connack.done():
            self._connack.cancel()
        if self._connecting() and self._connect_future is not None:
            await asyncio.wait([asyncio.wrap_future(self._connect_future)], timeout=6.0)
        if self._client.socket() is not None and self.connected:
            self._client.disconnect()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._op_timeout):
                    await self._lost.wait()
        self._abort()
        self._driver.discard(self)

    def drop(self, hold_s: float | None) -> None:
        """Cut the link abruptly (no DISCONNECT, so the broker sends the will).

        Reconnect after ``hold_s`` seconds, or not until ``resume()`` when ``hold_s`` is None.
        """
        if hold_s is None:
            self._resumed.clear()
        else:
            self._hold_until = asyncio.get_running_loop().time() + hold_s
        self._abort()

    def resume(self) -> None:
        self._hold_until = 0.0
        self._resumed.set()

    def tick(self) -> None:
        if not self._connecting() and self._client.socket() is not None:
            self._client.loop_misc()

    def _connecting(self) -> bool:
        """A blocking connect runs on the pool: paho's state belongs to that thread meanwhile."""
        return self._connect_future is not None and not self._connect_future.done()

    # -- operations ----------------------------------------------------------------------------

    def publish_nowait(
        self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False
    ) -> bool:
        """Publish without waiting; QoS 1 messages wait for the next connect while the link is down
        (sent after the birth message), QoS 0 messages are dropped (returns False)."""
        if not self.connected or self._connecting():
            if qos == 0:
                return False
            self._deferred.append((topic, payload, qos, retain))
            return True
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        return info.rc == MQTTErrorCode.MQTT_ERR_SUCCESS or (
            qos > 0 and info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN
        )

    async def publish(
        self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False
    ) -> None:
        """Publish and wait for PUBACK (QoS 1) or for the bytes to be written (QoS 0)."""
        if not self.connected:
            raise LinkError("not connected")
        info = self._client.publish(topic, payload, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkError(f"publish to {topic}: {mqtt.error_string(info.rc)}")
        await self._wait(self._pending_pub, info.mid)

    async def subscribe(self, topic: str, qos: int = 1) -> None:
        if not self.connected:
            raise LinkError("not connected")
        rc, mid = self._client.subscribe(topic, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise LinkError(f"subscribe to {topic}: {mqtt.error_string(rc)}")
        await self._wait(self._pending_sub, mid)

    def unsubscribe_nowait(self, topic: str) -> None:
        """Best effort: a lost link forgets its subscriptions anyway (clean session)."""
        if self.connected and not self._connecting():
            self._client.unsubscribe(topic)

    async def _wait(self, pending: dict[int, asyncio.Future[None]], mid: int) -> None:
        future = asyncio.get_running_loop().create_future()
        pending[mid] = future
        try:
            async with asyncio.timeout(self._op_timeout):
                await future
        finally:
            pending.pop(mid, None)

    # -- reconnect loop ------------------------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while not self._closing:
            await self._wait_allowed()
            async with self._driver.connect_slot:  # bounds the handshakes a broker sees at once
                up = await self._establish()
            if up:
                failures = 0
                await self._lost.wait()
                continue
            failures += 1
            delay = min(self._backoff[1], self._backoff[0] * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _establish(self) -> bool:
        """Connect and announce; False (link closed) when it failed and backoff is due."""
        try:
            await self._connect_once()
            if not self._allowed():  # dropped by a fault hook while connecting
                self._abort()
                return True
            await self._on_ready()
        except (OSError, TimeoutError) as exc:  # LinkError is an OSError
            log.info("%s: connect failed: %s", self.client_id, exc or type(exc).__name__)
            self._abort()
            return False
        self._ready.set()
        self._flush_deferred()
        return True

    def _allowed(self) -> bool:
        loop = asyncio.get_running_loop()
        return self._resumed.is_set() and loop.time() >= self._hold_until

    async def _wait_allowed(self) -> None:
        while not self._allowed():
            await self._resumed.wait()
            delay = self._hold_until - asyncio.get_running_loop().time()
            if delay > 0:
                await asyncio.sleep(delay)

    async def _connect_once(self) -> None:
        loop = asyncio.get_running_loop()
        self._lost.clear()
        self._ready.clear()
        self._connack = loop.create_future()
        host, port, keepalive = self._broker.host, self._broker.port, self._keepalive
        self._connect_future = self._driver.submit(
            lambda: self._client.connect(host, port, keepalive)
        )
        rc = await asyncio.wrap_future(self._connect_future)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise LinkError(mqtt.error_string(rc))
        try:
            async with asyncio.timeout(self._op_timeout):
                await self._connack
        except TimeoutError:
            self._abort()
            raise

    def _flush_deferred(self) -> None:
        while self._deferred and self.connected:
            topic, payload, qos, retain = self._deferred.popleft()
            self._client.publish(topic, payload, qos=qos, retain=retain)

    def _abort(self) -> None:
        """Close the socket without DISCONNECT; paho notices on the read and reports the loss."""
        sock = self._client.socket()
        if sock is None or self._connecting():
            return
        if isinstance(sock, socket.socket):  # ssl.SSLSocket included
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for _ in range(64):
            if self._client.socket() is None:
                break
            self._client.loop_read()

    # -- paho callbacks ------------------------------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self._connack is None or self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(LinkError(f"broker refused: {reason}"))
            return
        self.connected = True
        self.connects += 1
        self._connack.set_result(None)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if self.connected and not self._closing:
            log.info("%s: link lost (%s)", self.client_id, reason)
        self.connected = False
        self._ready.clear()
        self._lost.set()
        if self._connack is not None and not self._connack.done() and not self._closing:
            self._connack.set_exception(LinkError(f"closed before CONNACK: {reason}"))
        for pending in (self._pending_pub, self._pending_sub):
            for future in pending.values():
                if not future.done():
                    future.set_exception(LinkError("link lost"))
            pending.clear()

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties
    ) -> None:
        future = self._pending_pub.get(mid)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        properties: Properties | None,
    ) -> None:
        future = self._pending_sub.get(mid)
        if future is None or future.done():
            return
        if any(r.is_failure for r in reasons):
            future.set_exception(LinkError(f"subscription refused: {reasons}"))
        else:
            future.set_result(None)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._on_message_cb(message.topic, bytes(message.payload))
