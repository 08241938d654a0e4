"""Talking to loudspeaker clusters: the MQTT link, the embedded broker, the protocol gateway.

Imports only ``devices.protocol`` from this project; the scheduler and the station sit above.
"""

from ._auth import (
    CredentialLookup,
    TopicPolicy,
    credentials_from,
    generate_password,
    hash_password,
    station_username,
    verify_password,
)
from ._broker import EmbeddedBroker
from ._gateway import ClusterGateway, DeviceHandler, gather_sends
from ._link import BrokerAddress, InboundMessage, LastWill, MqttError, MqttLink, redact_url
from ._mosquitto import (
    acl_text,
    make_persistence_dir,
    mosquitto_conf,
    password_file_text,
    reload_mosquitto,
    write_atomic,
)

__all__ = [
    "BrokerAddress",
    "ClusterGateway",
    "CredentialLookup",
    "DeviceHandler",
    "EmbeddedBroker",
    "InboundMessage",
    "LastWill",
    "MqttError",
    "MqttLink",
    "TopicPolicy",
    "acl_text",
    "credentials_from",
    "gather_sends",
    "generate_password",
    "hash_password",
    "make_persistence_dir",
    "mosquitto_conf",
    "password_file_text",
    "redact_url",
    "reload_mosquitto",
    "station_username",
    "verify_password",
    "write_atomic",
]
