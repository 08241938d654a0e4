"""Device security on both brokers: per-cluster logins, topic isolation, reload, TLS.

The Mosquitto tests start their own ``mosquitto -c <generated conf>`` on a free port (the
station's generated password file and ACL); they skip only where no mosquitto is installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import shutil
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from broker_security import can_login, check_isolation, connected, free_port, next_message
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from devices import (
    BrokerAddress,
    EmbeddedBroker,
    MqttLink,
    TopicPolicy,
    acl_text,
    credentials_from,
    hash_password,
    make_persistence_dir,
    mosquitto_conf,
    password_file_text,
    reload_mosquitto,
    station_username,
    verify_password,
    write_atomic,
)
from devices.protocol import Topics

MOSQUITTO = shutil.which("mosquitto") or (
    "/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None
)
needs_mosquitto = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed")

PASSWORDS = {"A01": "pw-of-a", "B02": "pw-of-b"}


def _hashes() -> dict[str, str]:
    return {cid: hash_password(pw) for cid, pw in PASSWORDS.items()}


def test_hash_format_matches_mosquitto_passwd(tmp_path: Path) -> None:
    stored = hash_password("secret")
    assert stored.startswith("$7$1000$") and verify_password("secret", stored)
    assert not verify_password("Secret", stored)
    for bad in ("", "$6$x$y", "$7$abc$AAAA$BBBB", "$7$10$!!$AAAA", "plain"):
        assert not verify_password("secret", bad)
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.skip("mosquitto_passwd is not installed")
    import subprocess

    target = tmp_path / "pw"
    subprocess.run([passwd, "-b", "-c", str(target), "C01", "s3cret"], check=True)
    user, made_by_mosquitto = target.read_text().strip().split(":", 1)
    assert user == "C01" and verify_password("s3cret", made_by_mosquitto)


def test_policy_rules() -> None:
    policy = TopicPolicy("xa", "~xa", hash_password("st"), credentials_from(_hashes()))
    p = "loaxa/v1/xa/c"
    assert policy.authenticate("A01", "pw-of-a") and policy.authenticate("~xa", "st")
    assert not policy.authenticate("A01", "pw-of-b") and not policy.authenticate(None, None)
    assert not policy.authenticate("bad/id", "x")
    assert policy.may_publish("A01", f"{p}/A01/heartbeat")
    assert not policy.may_publish("A01", f"{p}/B02/heartbeat")
    assert not policy.may_publish("A01", f"{p}/A01/cmd")
    assert not policy.may_publish("A01", "loaxa/v1/other/c/A01/heartbeat")
    assert policy.may_subscribe("A01", f"{p}/A01/cmd")
    assert not policy.may_subscribe("A01", f"{p}/+/cmd")
    assert not policy.may_subscribe("A01", "loaxa/v1/xa/#")
    assert policy.may_subscribe("~xa", "loaxa/v1/xa/#") and policy.may_publish("~xa", f"{p}/A/cmd")
    assert not policy.may_subscribe("~xa", "loaxa/v1/other/#")
    open_policy = TopicPolicy("xa", "~xa", hash_password("st"), allow_anonymous=True)
    assert open_policy.authenticate(None, None)
    assert open_policy.may_publish(None, f"{p}/A01/status")
    assert not open_policy.may_subscribe(None, f"{p}/A01/status")


async def test_embedded_broker_isolates_clusters(station_id: str) -> None:
    station = (station_username(station_id), "station-pw")
    hashes = _hashes()
    policy = TopicPolicy(station_id, station[0], hash_password(station[1]), hashes.get)
    broker = EmbeddedBroker(policy=policy)
    await broker.start()
    try:
        address = BrokerAddress.from_url(broker.url)
        await check_isolation(
            address, station_id, station, ("A01", PASSWORDS["A01"]), ("B02", PASSWORDS["B02"])
        )
        # The lookup is live: a cluster registered now can log in, a retired one cannot.
        assert not await can_login(address, "C03", "pw-of-c")
        hashes["C03"] = hash_password("pw-of-c")
        del hashes["A01"]
        assert await can_login(address, "C03", "pw-of-c")
        assert not await can_login(address, "A01", PASSWORDS["A01"])
    finally:
        await broker.stop()


@dataclass
class Mosquitto:
    address: BrokerAddress
    directory: Path
    pid_file: Path


async def _start_mosquitto(directory: Path, conf: str) -> asyncio.subprocess.Process:
    assert MOSQUITTO is not None
    (directory / "mosquitto.conf").write_text(conf)
    process = await asyncio.create_subprocess_exec(
        MOSQUITTO, "-c", str(directory / "mosquitto.conf"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    return process


async def _wait_port(port: int, process: asyncio.subprocess.Process) -> None:
    for _ in range(300):
        if process.returncode is not None:
            raise RuntimeError(f"mosquitto exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return
    raise RuntimeError("mosquitto did not open its port")


@pytest.fixture
async def mosquitto(tmp_path: Path, station_id: str) -> AsyncIterator[Mosquitto]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed")
    port = free_port()
    write_atomic(tmp_path / "passwd", password_file_text(
        [(station_username(station_id), hash_password("station-pw")), *_hashes().items()]
    ))  # fmt: skip
    write_atomic(tmp_path / "acl", acl_text(station_id, station_username(station_id)))
    pid_file = tmp_path / "mosquitto.pid"
    make_persistence_dir(tmp_path / "data")
    # tmp_path is not readable by the unprivileged user mosquitto drops to: stay root here.
    conf = mosquitto_conf(
        tmp_path, port=port, bind="127.0.0.1", extra=["user root", f"pid_file {pid_file}"]
    )
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(port, process)
        yield Mosquitto(BrokerAddress("127.0.0.1", port), tmp_path, pid_file)
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()


def test_generated_config_persists_sessions_beside_the_files(tmp_path: Path) -> None:
    lines = mosquitto_conf(tmp_path, port=1883).splitlines()
    assert "persistence true" in lines and "persistence false" not in lines
    assert f"persistence_location {tmp_path / 'data'}/" in lines  # the trailing / is required
    assert "autosave_interval 60" in lines and "max_queued_messages 100000" in lines
    elsewhere = tmp_path / "var" / "lib" / "mosquitto"
    lines = mosquitto_conf(
        tmp_path, persistence_dir=elsewhere, autosave_interval_s=300
    ).splitlines()
    assert f"persistence_location {elsewhere}/" in lines and "autosave_interval 300" in lines
    with pytest.raises(ValueError, match="autosave_interval_s"):
        mosquitto_conf(tmp_path, autosave_interval_s=0)
    make_persistence_dir(elsewhere)
    assert elsewhere.is_dir() and elsewhere.stat().st_mode & 0o777 == 0o750


@contextlib.asynccontextmanager
async def _persistent(address: BrokerAddress, user: str, password: str) -> AsyncIterator[MqttLink]:
    """The station's link: a persistent session (``clean_session=False``), one client id."""
    link = MqttLink(replace(address, username=user, password=password), f"loaxa-{user}",
                    clean_session=False, reconnect_min_s=0.2, reconnect_max_s=0.5)  # fmt: skip
    task = asyncio.create_task(link.run())
    try:
        await link.wait_connected(timeout=10)
        yield link
    finally:
        await link.disconnect()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@needs_mosquitto
async def test_generated_config_keeps_queued_proof_of_play_across_a_broker_restart(
    tmp_path: Path, station_id: str
) -> None:
    """A cluster's QoS 1 event sent while the station is away, then a broker restart: the
    station's session and the event survive (``persistence true``), delivered on reconnect
    without re-subscribing."""
    station = station_username(station_id)
    write_atomic(tmp_path / "passwd", password_file_text(
        [(station, hash_password("station-pw")), *_hashes().items()]
    ))  # fmt: skip
    write_atomic(tmp_path / "acl", acl_text(station_id, station))
    make_persistence_dir(tmp_path / "data")
    port = free_port()
    conf = mosquitto_conf(tmp_path, port=port, bind="127.0.0.1", extra=["user root"])
    address = BrokerAddress("127.0.0.1", port)
    topics = Topics(station_id)
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(port, process)
        async with _persistent(address, station, "station-pw") as link:
            await link.subscribe(topics.cluster_filter("event"), qos=1)
        async with connected(address, "A01", "pw-of-a") as cluster:
            await cluster.publish(topics.cluster("A01", "event"), b"proof of play", qos=1)
        process.send_signal(signal.SIGTERM)  # a clean stop saves the database
        await process.wait()
        assert (tmp_path / "data" / "mosquitto.db").is_file()
        process = await _start_mosquitto(tmp_path, conf)
        await _wait_port(port, process)
        async with _persistent(address, station, "station-pw") as link:
            message = await next_message(link)
        assert message.topic == topics.cluster("A01", "event")
        assert message.payload == b"proof of play" and message.qos == 1
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            await process.wait()


@needs_mosquitto
async def test_mosquitto_with_generated_files_isolates_clusters(
    mosquitto: Mosquitto, station_id: str
) -> None:
    station = (station_username(station_id), "station-pw")
    await check_isolation(
        mosquitto.address, station_id, station, ("A01", "pw-of-a"), ("B02", "pw-of-b")
    )


@needs_mosquitto
async def test_mosquitto_reloads_credentials_on_sighup(
    mosquitto: Mosquitto, station_id: str
) -> None:
    assert not await can_login(mosquitto.address, "C03", "pw-of-c")
    entries = [(station_username(station_id), hash_password("station-pw"))]
    entries.append(("C03", hash_password("pw-of-c")))
    write_atomic(mosquitto.directory / "passwd", password_file_text(entries))
    assert reload_mosquitto(mosquitto.pid_file)
    for _ in range(150):
        if await can_login(mosquitto.address, "C03", "pw-of-c"):
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("C03 could not log in after the reload")
    assert not await can_login(mosquitto.address, "A01", "pw-of-a")  # removed from the file
    assert not reload_mosquitto(mosquitto.directory / "no.pid")


# --------------------------------------------------------------------------- TLS


def _self_signed_ca(directory: Path) -> tuple[Path, Path, Path]:
    """A CA and a server certificate for 127.0.0.1 signed by it: (ca, cert, key)."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "loaxa test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    import ipaddress

    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    paths = (directory / "ca.pem", directory / "server.pem", directory / "server.key")
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return paths


async def test_embedded_broker_over_tls_with_a_self_signed_ca(
    tmp_path: Path, station_id: str
) -> None:
    ca, cert, key = _self_signed_ca(tmp_path)
    station = (station_username(station_id), "station-pw")
    policy = TopicPolicy(station_id, station[0], hash_password(station[1]), _hashes().get)
    broker = EmbeddedBroker(policy=policy, certfile=str(cert), keyfile=str(key))
    await broker.start()
    try:
        assert broker.url.startswith("mqtts://")
        address = BrokerAddress.from_url(broker.url, str(ca))
        untrusted = BrokerAddress.from_url(broker.url, None)  # system store: must not trust it
        assert not await can_login(untrusted, "A01", "pw-of-a")
        async with connected(address, *station) as st, connected(address, "A01", "pw-of-a") as a:
            await st.subscribe(f"loaxa/v1/{station_id}/c/+/heartbeat")
            await a.publish(f"loaxa/v1/{station_id}/c/A01/heartbeat", b"over tls")
            assert (await next_message(st)).payload == b"over tls"
    finally:
        await broker.stop()


@needs_mosquitto
async def test_mosquitto_tls_listener_from_the_generated_config(
    tmp_path: Path, station_id: str
) -> None:
    ca, cert, key = _self_signed_ca(tmp_path)
    write_atomic(tmp_path / "passwd", password_file_text(list(_hashes().items())))
    write_atomic(tmp_path / "acl", acl_text(station_id, station_username(station_id)))
    port, tls_port = free_port(), free_port()
    make_persistence_dir(tmp_path / "data")
    conf = mosquitto_conf(
        tmp_path, port=port, bind="127.0.0.1", tls_port=tls_port,
        certfile=str(cert), keyfile=str(key), extra=["user root"],
    )  # fmt: skip
    process = await _start_mosquitto(tmp_path, conf)
    try:
        await _wait_port(tls_port, process)
        address = BrokerAddress("127.0.0.1", tls_port, tls=True, ca_file=str(ca))
        assert await can_login(address, "A01", "pw-of-a")
        assert not await can_login(address, "A01", "wrong")
    finally:
        process.send_signal(signal.SIGTERM)
        await process.wait()
