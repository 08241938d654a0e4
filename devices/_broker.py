"""The embedded MQTT broker (amqtt, in-process) for one-command installs and tests.

It is fine for a commune and for tests; Mosquitto is the production broker (see docs/deploy.md).
amqtt speaks MQTT 3.1.1 only and, on connect, replays retained messages without checking its
ACL: nothing secret is ever published retained (see docs/protocol.md).
"""

from __future__ import annotations

import logging
from typing import Any

from amqtt.broker import Broker

log = logging.getLogger(__name__)


class EmbeddedBroker:
    """amqtt bound to ``host:port``; port 0 picks a free port, read back from ``port``."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._broker: Broker | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        config: dict[str, Any] = {
            "listeners": {
                "default": {"type": "tcp", "bind": f"{self.host}:{self._requested_port}"}
            },
            # Only the auth plugin: amqtt's packet/event loggers cost CPU on every message.
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True},
            },
        }
        self._broker = Broker(config)
        await self._broker.start()
        server = self._broker._servers["default"].instance  # amqtt exposes no public accessor
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
