"""Talking to loudspeaker clusters: the MQTT link, the embedded broker, the protocol gateway.

Imports only ``devices.protocol`` from this project; the scheduler and the station sit above.
"""

from ._broker import EmbeddedBroker
from ._gateway import ClusterGateway, DeviceHandler, gather_sends
from ._link import BrokerAddress, InboundMessage, LastWill, MqttError, MqttLink, redact_url

__all__ = [
    "BrokerAddress",
    "ClusterGateway",
    "DeviceHandler",
    "EmbeddedBroker",
    "InboundMessage",
    "LastWill",
    "MqttError",
    "MqttLink",
    "gather_sends",
    "redact_url",
]
