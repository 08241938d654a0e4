"""The MQTT link and the protocol gateway on a real broker: bad input, reconnects, the will."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest

from devices import (
    BrokerAddress,
    ClusterGateway,
    EmbeddedBroker,
    InboundMessage,
    LastWill,
    MqttLink,
)
from devices.protocol import Ack, DeviceMessage, Event, Heartbeat, Status, Topics, encode


class RecordingHandler:
    """A DeviceHandler fake that records calls and can be told to fail."""

    def __init__(self, accept_unknown: bool = False) -> None:
        self.calls: list[DeviceMessage] = []
        self.accept_unknown = accept_unknown
        self.fail_next = False

    async def _record(self, message: DeviceMessage) -> None:
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("injected handler failure")
        self.calls.append(message)

    async def on_status(self, message: Status) -> None:
        await self._record(message)

    async def on_heartbeat(self, message: Heartbeat) -> None:
        await self._record(message)

    async def on_ack(self, message: Ack) -> None:
        await self._record(message)

    async def on_event(self, message: Event) -> None:
        await self._record(message)

    async def on_unknown_cluster(self, cluster_id: str, message: DeviceMessage) -> bool:
        return self.accept_unknown


@contextlib.asynccontextmanager
async def running(link: MqttLink) -> AsyncIterator[MqttLink]:
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(timeout=10)
        yield link
    finally:
        await link.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll: the conditions live in objects that offer no event to wait on."""
    async with asyncio.timeout(timeout):
        while not predicate():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def _now() -> datetime:
    return datetime.now(UTC)


async def test_bad_payloads_are_counted_and_dropped(mqtt_url: str, station_id: str) -> None:
    topics = Topics(station_id)
    handler = RecordingHandler()
    station = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-station")
    gateway = ClusterGateway(station, topics, handler)
    gateway.remember(["C01"])
    device = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-C01")
    async with running(station), running(device):
        await gateway.start()
        serve = asyncio.create_task(gateway.serve())
        hb = topics.cluster("C01", "heartbeat")
        bad = [
            (hb, b"{not json"),
            (hb, b"\xff\xfe"),
            (hb, json.dumps({"cluster_id": "C01"}).encode()),  # schema: no ts/state
            (hb, encode(Heartbeat(cluster_id="C02", ts=_now(), state="idle"))),  # mismatch
            (
                topics.cluster("C09", "heartbeat"),
                encode(Heartbeat(cluster_id="C09", ts=_now(), state="idle")),
            ),
            (hb, b"x" * 70_000),
        ]
        for topic, payload in bad:
            await device.publish(topic, payload, qos=1)
        handler.fail_next = True
        await device.publish(hb, encode(Heartbeat(cluster_id="C01", ts=_now(), state="idle")))
        good = Heartbeat(cluster_id="C01", ts=_now(), state="playing", volume=80)
        await device.publish(hb, encode(good))
        await _until(lambda: len(handler.calls) == 1)
        serve.cancel()
    assert handler.calls == [good]
    assert gateway.dropped == {
        "json": 2,
        "schema": 1,
        "mismatch": 1,
        "unknown_cluster": 1,
        "too_large": 1,
        "handler_error": 1,
    }


async def test_unknown_cluster_accepted_when_handler_says_so(
    mqtt_url: str, station_id: str
) -> None:
    topics = Topics(station_id)
    handler = RecordingHandler(accept_unknown=True)
    station = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-station")
    gateway = ClusterGateway(station, topics, handler)
    device = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-N1")
    async with running(station), running(device):
        await gateway.start()
        serve = asyncio.create_task(gateway.serve())
        await device.publish(
            topics.cluster("N1", "status"), encode(Status(cluster_id="N1", state="online"))
        )
        await _until(lambda: len(handler.calls) == 1)
        serve.cancel()
    assert "N1" in gateway.known


async def test_will_is_published_when_the_link_dies(mqtt_url: str, station_id: str) -> None:
    topics = Topics(station_id)
    observer = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-obs")
    async with running(observer):
        await observer.subscribe(topics.station_status)
        doomed = MqttLink(
            BrokerAddress.from_url(mqtt_url),
            f"{station_id}-station",
            will=ClusterGateway.will_for(topics),
        )
        task = asyncio.create_task(doomed.run())
        await doomed.wait_connected(timeout=10)
        # Abrupt loss: close the socket without DISCONNECT, as a power cut would.
        doomed._client.socket().close()  # type: ignore[union-attr]
        task.cancel()
        message = await asyncio.wait_for(observer.messages.get(), 10)
    assert message.topic == topics.station_status
    assert json.loads(message.payload)["state"] == "offline"


async def test_link_reconnects_and_resubscribes_after_broker_restart() -> None:
    broker = EmbeddedBroker("127.0.0.1", 0)
    await broker.start()
    port = broker.port
    link = MqttLink(
        BrokerAddress.from_url(broker.url),
        "re",
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )
    announced: list[int] = []

    async def on_connected() -> None:
        announced.append(1)

    link.on_connected(on_connected)
    try:
        async with running(link):
            await link.subscribe("x/#")
            await broker.stop()
            await _until(lambda: not link.is_connected)
            with pytest.raises(Exception, match="not connected"):
                await link.publish("x/1", b"lost")
            broker = EmbeddedBroker("127.0.0.1", port)
            await broker.start()
            await link.wait_connected(timeout=10)
            await link.publish("x/1", b"hello")
            message = await asyncio.wait_for(link.messages.get(), 5)
            assert message.payload == b"hello"  # the subscription came back by itself
            assert len(announced) == 2 and link.reconnects >= 1
    finally:
        await broker.stop()


async def test_inbound_overflow_is_counted_not_hidden(mqtt_url: str, station_id: str) -> None:
    link = MqttLink(BrokerAddress.from_url(mqtt_url), f"{station_id}-q", queue_size=3)
    async with running(link):
        await link.subscribe(f"{station_id}/flood")
        for i in range(10):
            await link.publish(f"{station_id}/flood", b"%d" % i, qos=1)
        await _until(lambda: link.messages.qsize() == 3 and link.dropped["queue_full"] == 7)


async def test_publish_times_out_when_not_connected() -> None:
    link = MqttLink(BrokerAddress.from_url("mqtt://127.0.0.1:9"), "nobody")
    with pytest.raises(Exception, match="not connected"):
        await link.publish("a/b", b"x")
    assert LastWill("t", b"p").retain is True


def test_broker_urls_parse_and_redact() -> None:
    address = BrokerAddress.from_url("mqtts://st%40tion:s3cr%2Ft@broker.example:8883", "/ca.pem")
    assert (address.host, address.port, address.tls) == ("broker.example", 8883, True)
    assert (address.username, address.password) == ("st@tion", "s3cr/t")
    assert "s3cr" not in str(address)
    with pytest.raises(ValueError, match="scheme"):
        BrokerAddress.from_url("http://x")


async def test_drop_logs_carry_the_cluster_id_for_json_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from station._logging import JsonFormatter

    topics = Topics("xa")
    link = MqttLink(BrokerAddress.from_url("mqtt://127.0.0.1:9"), "unused")
    gateway = ClusterGateway(link, topics, RecordingHandler())
    with caplog.at_level("WARNING", logger="devices._gateway"):
        await gateway.handle(InboundMessage(topics.cluster("C07", "heartbeat"), b"{", 1, False))
    line = json.loads(JsonFormatter().format(caplog.records[-1]))
    assert line["cluster_id"] == "C07" and "dropped" in line["msg"]
