"""Shared checks of device security, run against the embedded broker and against Mosquitto.

``check_isolation`` proves, with real MQTT clients, that cluster A can neither publish as B nor
read B's commands, nor log in with a wrong password; the station user sees everything.
Negative checks are ordered before a positive control on the same connection, so no sleeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from devices import BrokerAddress, InboundMessage, MqttLink
from devices.protocol import Topics


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.asynccontextmanager
async def connected(
    address: BrokerAddress, user: str | None, password: str | None
) -> AsyncIterator[MqttLink]:
    link = MqttLink(
        replace(address, username=user, password=password),
        f"t-{user}-{uuid.uuid4().hex[:6]}",
        reconnect_min_s=0.2,
        reconnect_max_s=0.5,
    )
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(timeout=10)
        yield link
    finally:
        await link.disconnect()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _login_sync(address: BrokerAddress, user: str | None, password: str | None) -> bool:
    done = threading.Event()
    result: list[bool] = []
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
    if user is not None:
        client.username_pw_set(user, password)
    if address.tls:
        client.tls_set(ca_certs=address.ca_file)

    def on_connect(_c: object, _u: object, _f: object, reason: object, _p: object) -> None:
        result.append(not getattr(reason, "is_failure", True))
        done.set()

    def on_disconnect(*_args: object) -> None:
        done.set()

    client.on_connect = on_connect
    client.on_disconnect = on_disconnect
    try:
        client.connect(address.host, address.port, keepalive=10)
    except OSError:
        return False
    for _ in range(300):  # up to 15 s: CI machines are shared and slow under load
        client.loop(timeout=0.05)
        if done.is_set():
            break
    client.disconnect()
    return bool(result and result[0])


async def can_login(address: BrokerAddress, user: str | None, password: str | None) -> bool:
    return await asyncio.to_thread(_login_sync, address, user, password)


async def next_message(link: MqttLink, timeout: float = 10) -> InboundMessage:
    return await asyncio.wait_for(link.messages.get(), timeout)


async def check_isolation(
    address: BrokerAddress,
    station_id: str,
    station: tuple[str, str],
    a: tuple[str, str],
    b: tuple[str, str],
) -> None:
    topics = Topics(station_id)
    (a_id, a_pw), (b_id, b_pw) = a, b
    assert not await can_login(address, a_id, b_pw), "A logged in with B's password"
    assert not await can_login(address, "nobody", "x"), "an unknown user logged in"
    assert not await can_login(address, None, None), "an anonymous client logged in"
    assert await can_login(address, a_id, a_pw)

    async with (
        connected(address, *station) as st,
        connected(address, a_id, a_pw) as la,
        connected(address, b_id, b_pw) as lb,
    ):
        await st.subscribe(topics.cluster_filter("heartbeat"))
        await st.subscribe(topics.cluster_filter("status"))
        # A subscribes to B's commands, to every command, and to its own.
        for topic_filter in (topics.cluster(b_id, "cmd"), f"{topics.prefix}/c/+/cmd", "#"):
            with contextlib.suppress(Exception):  # refused (SUBACK failure) is fine too
                await la.subscribe(topic_filter)
        await la.subscribe(topics.cluster(a_id, "cmd"))
        await lb.subscribe(topics.cluster(b_id, "cmd"))

        # A publishes as B (forbidden), then as itself (allowed): only the second arrives.
        await la.publish(topics.cluster(b_id, "heartbeat"), b"forged", qos=1)
        await la.publish(topics.cluster(b_id, "status"), b"forged", qos=1)
        await la.publish(topics.cluster(a_id, "cmd"), b"self-command", qos=1)  # not A's to write
        await la.publish(topics.cluster(a_id, "heartbeat"), b"genuine", qos=1)
        got = await next_message(st)
        assert (got.topic, got.payload) == (topics.cluster(a_id, "heartbeat"), b"genuine")

        # The station commands B, then A: A must see only its own.
        await st.publish(topics.cluster(b_id, "cmd"), b"for-b", qos=1)
        await st.publish(topics.cluster(a_id, "cmd"), b"for-a", qos=1)
        got_b = await next_message(lb)
        assert got_b.payload == b"for-b"
        got_a = await next_message(la)
        assert (got_a.topic, got_a.payload) == (topics.cluster(a_id, "cmd"), b"for-a")
        await asyncio.sleep(0.3)  # anything forbidden would have been queued right behind
        assert la.messages.empty(), [m.topic for m in _drain(la)]
        assert st.messages.empty(), [m.topic for m in _drain(st)]


def _drain(link: MqttLink) -> list[InboundMessage]:
    out = []
    while not link.messages.empty():
        out.append(link.messages.get_nowait())
    return out
