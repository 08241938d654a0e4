"""The embedded MQTT broker (amqtt, in-process) for one-command installs and tests.

It is fine for a commune and for tests; Mosquitto is the production broker (see docs/deploy.md).
amqtt speaks MQTT 3.1.1 only and, on connect, replays retained messages without checking its
ACL: nothing secret is ever published retained (see docs/protocol.md).

With a ``TopicPolicy`` the broker checks every CONNECT, PUBLISH, SUBSCRIBE and delivery against
it (the two plugin classes below); without one it accepts anyone (tests of other layers only).
A forbidden publish still gets its PUBACK from amqtt and is dropped silently.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from ._auth import TopicPolicy

log = logging.getLogger(__name__)


class PolicyAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt authentication against ``TopicPolicy.authenticate``."""

    @dataclass
    class Config:
        policy: Any = None  # a TopicPolicy; ``Any`` so amqtt's dacite passes the object through

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._policy: TopicPolicy = self.config.policy

    async def authenticate(self, *, session: Session) -> bool | None:
        ok = self._policy.authenticate(session.username, session.password)
        if not ok:
            log.warning("MQTT login refused for user %r", session.username)
        return ok


class PolicyTopicPlugin(BaseTopicPlugin):  # type: ignore[misc]
    """amqtt topic checks against ``TopicPolicy.may_publish`` / ``may_subscribe``."""

    @dataclass
    class Config:
        policy: Any = None

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._policy: TopicPolicy = self.config.policy

    async def topic_filtering(
        self,
        *,
        session: Session | None = None,
        topic: str | None = None,
        action: Action | None = None,
    ) -> bool | None:
        if session is None or topic is None:
            return False
        user = session.username
        if action == Action.PUBLISH:
            allowed = self._policy.may_publish(user, topic)
        else:  # SUBSCRIBE and RECEIVE: the same rights
            allowed = self._policy.may_subscribe(user, topic)
        if not allowed and action != Action.RECEIVE:
            log.info("MQTT %s on %s refused for user %r", action, topic[:200], user)
        return allowed


class EmbeddedBroker:
    """amqtt bound to ``host:port``; port 0 picks a free port, read back from ``port``.

    ``policy``: enforce per-cluster credentials and topic rights (None = open broker).
    ``certfile``/``keyfile``: serve MQTT over TLS (``mqtts://``) with this certificate chain.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        policy: TopicPolicy | None = None,
        certfile: str | None = None,
        keyfile: str | None = None,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._broker: Broker | None = None
        self.port = 0
        self.policy = policy
        self._certfile = certfile
        self._keyfile = keyfile

    @property
    def url(self) -> str:
        scheme = "mqtts" if self._certfile else "mqtt"
        return f"{scheme}://{self.host}:{self.port}"

    def _plugins(self) -> dict[str, Any]:
        if self.policy is None:
            # Only the auth plugin: amqtt's packet/event loggers cost CPU on every message.
            return {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}
        return {
            f"{__name__}.PolicyAuthPlugin": {"policy": self.policy},
            f"{__name__}.PolicyTopicPlugin": {"policy": self.policy},
        }

    async def start(self) -> None:
        listener: dict[str, Any] = {"type": "tcp", "bind": f"{self.host}:{self._requested_port}"}
        if self._certfile:
            listener.update(ssl=True, certfile=self._certfile, keyfile=self._keyfile)
        config: dict[str, Any] = {"listeners": {"default": listener}, "plugins": self._plugins()}
        self._broker = Broker(config)
        await self._broker.start()
        server = self._broker._servers["default"].instance  # amqtt exposes no public accessor
        self.port = int(server.sockets[0].getsockname()[1])
        log.info("embedded MQTT broker listening on %s", self.url)

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
