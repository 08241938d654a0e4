"""The station's side of the device protocol: commands out, validated device messages in.

Every inbound message is parsed from its topic, schema-validated, checked against the cluster
its topic names and against the set of known clusters; anything else is logged once, counted by
reason and dropped. Nothing raises inside the message path: a failing handler is contained here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from devices.protocol import (
    DEVICE_TO_STATION,
    Ack,
    Command,
    DeviceMessage,
    Event,
    Heartbeat,
    ProtocolError,
    Status,
    Topics,
    decode_device_message,
    encode,
)

from ._link import InboundMessage, LastWill, MqttLink

log = logging.getLogger(__name__)

_PROOF_SUFFIXES = ("/ack", "/event")


def _log_ids(message: DeviceMessage) -> dict[str, str]:
    """``extra=`` for log records: the JSON log formatter prints these as fields."""
    ids = {"cluster_id": message.cluster_id}
    session_id = getattr(message, "session_id", None)
    if session_id:
        ids["session_id"] = session_id
    return ids


class DeviceHandler(Protocol):
    """What the station does with validated device messages."""

    async def on_status(self, message: Status) -> None: ...
    async def on_heartbeat(self, message: Heartbeat) -> None: ...
    async def on_ack(self, message: Ack) -> None: ...
    async def on_event(self, message: Event) -> None: ...
    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        """Return True to accept (and remember) a cluster not yet known."""
        ...


@runtime_checkable
class BatchingHandler(DeviceHandler, Protocol):
    """A handler that buffers what it writes: the gateway calls ``flush()`` every
    ``flush_interval_s`` (None: it writes at once; flushed every second anyway) and once
    more when it stops serving. ``flush`` returns how many messages could not be written
    since the last call (the handler logged them); they count as ``handler_error``."""

    @property
    def flush_interval_s(self) -> float | None: ...

    async def flush(self) -> int: ...


def station_status_payload(station_id: str, state: str) -> bytes:
    # The station's own availability uses the cluster Status shape with its id.
    return encode(Status(cluster_id=station_id, state=state))  # type: ignore[arg-type]


class ClusterGateway:
    """Speaks protocol v1 to the clusters of one station over one ``MqttLink``."""

    def __init__(self, link: MqttLink, topics: Topics, handler: DeviceHandler) -> None:
        self.link = link
        self.topics = topics
        self.handler = handler
        self.known: set[str] = set()
        self.dropped: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.commands_sent = 0
        self._last_log = 0.0
        link.on_connected(self._announce)

    @staticmethod
    def will_for(topics: Topics) -> LastWill:
        return LastWill(topics.station_status, station_status_payload(topics.station_id, "offline"))

    async def start(self) -> None:
        for channel in DEVICE_TO_STATION:
            await self.link.subscribe(self.topics.cluster_filter(channel), qos=1)

    def remember(self, cluster_ids: Iterable[str]) -> None:
        self.known.update(cluster_ids)

    async def send(self, cluster_id: str, command: Command, timeout: float | None = None) -> None:
        """Publish a command (QoS 1, never retained) and wait for the broker's PUBACK."""
        await self.link.publish(
            self.topics.cluster(cluster_id, "cmd"),
            encode(command),
            qos=1,
            retain=False,
            timeout=timeout,
        )
        self.commands_sent += 1

    async def announce_offline(self) -> None:
        """Before a deliberate clean disconnect (which suppresses the will)."""
        if self.link.is_connected:
            payload = station_status_payload(self.topics.station_id, "offline")
            await self.link.publish(self.topics.station_status, payload, qos=1, retain=True)

    async def serve(self) -> None:
        """Consume the link's inbound queue until cancelled.

        Acks and events (proof of play) get their own queue and worker, so a flood of births
        and heartbeats (a connect storm after a broker restart) never delays them.
        """
        proof: asyncio.Queue[InboundMessage] = asyncio.Queue(self.link.messages.maxsize)
        worker = asyncio.create_task(self._drain(proof), name="mqtt-inbound-proof")
        flusher = asyncio.create_task(self._flush_every(), name="mqtt-inbound-flush")
        try:
            while True:
                message = await self.link.messages.get()
                if message.topic.endswith(_PROOF_SUFFIXES):
                    try:
                        proof.put_nowait(message)
                    except asyncio.QueueFull:
                        self._drop("queue_full", message.topic, "proof-of-play queue full")
                else:
                    await self.handle(message)
        finally:
            for task in (worker, flusher):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            # Stopping: what was received (the broker has our PUBACK for it) is handled and
            # written, not left in a queue or a buffer.
            for queue in (proof, self.link.messages):
                while not queue.empty():
                    await self.handle(queue.get_nowait())
            await self.flush()

    async def flush(self) -> None:
        """Have a batching handler write what it buffered (failures logged there, counted)."""
        handler = self.handler
        if isinstance(handler, BatchingHandler):
            try:
                self.dropped["handler_error"] += await handler.flush()
            except Exception:
                self.dropped["handler_error"] += 1
                log.exception("flushing the handler's buffered messages failed")

    async def _flush_every(self) -> None:
        while True:
            handler = self.handler
            interval = handler.flush_interval_s if isinstance(handler, BatchingHandler) else None
            await asyncio.sleep(interval or 1.0)
            await self.flush()

    async def _drain(self, queue: asyncio.Queue[InboundMessage]) -> None:
        while True:
            await self.handle(await queue.get())

    async def handle(self, message: InboundMessage) -> None:
        parsed = self.topics.parse_cluster(message.topic)
        if parsed is None:
            return self._drop("topic", message.topic, "not a cluster topic of this station")
        cluster_id, channel = parsed
        if channel == "cmd":
            return  # our own commands echo back only if someone subscribed to them; ignore
        if not message.payload:
            return  # an empty retained payload clears a topic: nothing to handle
        try:
            decoded = decode_device_message(channel, message.payload)
        except ProtocolError as exc:
            return self._drop(exc.reason, message.topic, exc.detail)
        if decoded.cluster_id != cluster_id:
            return self._drop("mismatch", message.topic, f"payload claims {decoded.cluster_id!r}")
        if cluster_id not in self.known:
            if not await self._accept_unknown(cluster_id, decoded):
                return self._drop("unknown_cluster", message.topic, "cluster not registered")
            self.known.add(cluster_id)
        self.received[channel] += 1
        await self._dispatch(decoded, message.topic)

    async def _accept_unknown(self, cluster_id: str, decoded: DeviceMessage) -> bool:
        try:
            return await self.handler.on_unknown_cluster(cluster_id, decoded)
        except Exception:
            log.exception(
                "handler failed deciding on unknown cluster %s",
                cluster_id,
                extra={"cluster_id": cluster_id},
            )
            return False

    async def _dispatch(self, decoded: DeviceMessage, topic: str) -> None:
        try:
            if isinstance(decoded, Status):
                await self.handler.on_status(decoded)
            elif isinstance(decoded, Heartbeat):
                await self.handler.on_heartbeat(decoded)
            elif isinstance(decoded, Ack):
                await self.handler.on_ack(decoded)
            else:
                await self.handler.on_event(decoded)
        except Exception:  # one failure boundary per inbound message: log, count, carry on
            self.dropped["handler_error"] += 1
            log.exception("handling message on %s failed", topic, extra=_log_ids(decoded))

    def _drop(self, reason: str, topic: str, detail: str) -> None:
        self.dropped[reason] += 1
        now = time.monotonic()
        if now - self._last_log > 1.0:  # at most one log line a second under a flood
            self._last_log = now
            parsed = self.topics.parse_cluster(topic)
            extra = {"cluster_id": parsed[0]} if parsed else {}
            log.warning(
                "dropped MQTT message on %s (%s): %s",
                topic[:200],
                reason,
                detail[:200],
                extra=extra,
            )

    async def _announce(self) -> None:
        payload = station_status_payload(self.topics.station_id, "online")
        await self.link.publish(self.topics.station_status, payload, qos=1, retain=True)


async def gather_sends(
    gateway: ClusterGateway, commands: dict[str, Command], timeout: float | None = None
) -> dict[str, BaseException | None]:
    """Send one command per cluster concurrently; return each cluster's failure or None."""
    cluster_ids = list(commands)
    results = await asyncio.gather(
        *(gateway.send(cid, commands[cid], timeout) for cid in cluster_ids), return_exceptions=True
    )
    return {
        cid: (r if isinstance(r, BaseException) else None)
        for cid, r in zip(cluster_ids, results, strict=True)
    }
