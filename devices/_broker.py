"""The embedded MQTT broker (amqtt, in-process) for one-command installs and tests.

It is fine for a commune and for tests; Mosquitto is the production broker (see docs/deploy.md).
amqtt speaks MQTT 3.1.1 only and, on connect, replays retained messages without checking its
ACL: nothing secret is ever published retained (see docs/protocol.md).

With a ``TopicPolicy`` the broker checks every CONNECT, PUBLISH, SUBSCRIBE and delivery against
it (the two plugin classes below); without one it accepts anyone (tests of other layers only).
A forbidden publish still gets its PUBACK from amqtt and is dropped silently.

Revocation: each session remembers the credential it logged in with. Once that is no longer the
cluster's current one (credentials reissued, cluster retired or replaced), every publish,
subscribe and delivery of the session is refused, and ``end_stale_sessions`` (the station calls
it whenever it reloads credentials) closes its connection and discards its session.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from amqtt.adapters import StreamWriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action, BaseContext
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from ._auth import TopicPolicy

log = logging.getLogger(__name__)

# The credential a session logged in with, kept on amqtt's Session (which has no slot for it).
_LOGIN = "_loaxa_login"
CLOSE_TIMEOUT_S = 5.0  # closing a non-TCP writer (websocket) politely; TCP is aborted at once


def _login_of(session: Session) -> str | None:
    credential = getattr(session, _LOGIN, None)
    return credential if isinstance(credential, str) else None


class PolicyAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
    """amqtt authentication against ``TopicPolicy.authenticate``."""

    @dataclass
    class Config:
        policy: Any = None  # a TopicPolicy; ``Any`` so amqtt's dacite passes the object through

    def __init__(self, context: BaseContext) -> None:
        super().__init__(context)
        self._policy: TopicPolicy = self.config.policy

    async def authenticate(self, *, session: Session) -> bool | None:
        credential = self._policy.login(session.username, session.password)
        setattr(session, _LOGIN, credential)
        if credential is None:
            log.warning("MQTT login refused for user %r", session.username)
        return credential is not None


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
        if not self._policy.login_holds(user, _login_of(session)):
            return False  # revoked since login: end_stale_sessions closes it
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

    def stale_sessions(self) -> list[str]:
        """Client ids of sessions whose login credential is no longer current."""
        if self._broker is None or self.policy is None:
            return []
        policy = self.policy
        return [
            client_id
            for client_id, (session, _handler) in list(self._broker.sessions.items())
            if not policy.login_holds(session.username, _login_of(session))
        ]

    async def end_stale_sessions(self) -> list[str]:
        """Disconnect every client whose credentials were revoked since it logged in (reissued,
        cluster retired or replaced) and discard its session; returns their client ids.

        The station calls it after each credentials reload. Until then such a session can
        already neither publish nor receive (``PolicyTopicPlugin``)."""
        ended = [cid for cid in self.stale_sessions() if await self.disconnect(cid)]
        if ended:
            log.warning("ended %d MQTT session(s) of revoked credentials: %s", len(ended), ended)
        return ended

    async def disconnect(self, client_id: str) -> bool:
        """Close ``client_id``'s connection without its will and discard its session
        (subscriptions, queued messages); False if the broker has no such session.

        amqtt has no public call for this: the TCP transport is aborted (no drain, so a client
        that stopped reading cannot stall the station), amqtt's reader then sees the end of the
        stream and runs its usual disconnect; the session is deleted from its table."""
        broker = self._broker
        if broker is None:
            return False
        session, handler = broker.sessions.get(client_id, (None, None))
        if session is None:
            return False
        session.will_flag = False  # a revoked login publishes nothing more, not even its will
        writer = handler.writer if handler is not None else None
        if isinstance(writer, StreamWriterAdapter):
            writer.is_closed = True  # amqtt's own close() later becomes a no-op
            transport = writer._writer.transport  # amqtt exposes no public accessor
            transport.abort()
        elif writer is not None:
            try:
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await writer.close()
            except (TimeoutError, OSError):
                log.info("closing MQTT client %s did not finish cleanly", client_id)
        await broker._delete_session(client_id)  # private too; pops it and its subscriptions
        log.info(
            "MQTT client %s (user %r) disconnected by the station", client_id, session.username
        )
        return True
