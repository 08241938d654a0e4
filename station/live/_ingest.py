"""Icecast source clients (ffmpeg ``icecast://``, BUTT, Mixxx): ``PUT`` or legacy ``SOURCE``.

These clients send a request without Content-Length or chunked framing and then stream the body
until they hang up, which HTTP/1.1 servers read as an empty body; so this is a small server of
its own on ``live.source_port``, speaking just enough of Icecast's source protocol. Auth is Basic
``source:<live.source_password>``; a wrong password gets 401 and nothing airs.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hmac
import logging

from ._hub import LiveError, LiveHub

log = logging.getLogger(__name__)

MAX_HEADER = 8192
HEADER_TIMEOUT_S = 10.0


class SourceServer:
    def __init__(self, hub: LiveHub, password: str) -> None:
        self.hub = hub
        self._password = password
        self._server: asyncio.Server | None = None
        self.port = 0
        self.refused = 0
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> None:
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            await self._server.wait_closed()

    def _authorised(self, headers: dict[str, str]) -> bool:
        scheme, _, value = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return user == "source" and hmac.compare_digest(password.encode(), self._password.encode())

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._serve(reader, writer)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError,
                ConnectionError, UnicodeDecodeError) as exc:  # fmt: skip
            log.info("live source client gone: %s", exc)
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with asyncio.timeout(HEADER_TIMEOUT_S):  # keeps a cancellation (see _tasks)
            head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > MAX_HEADER:
            return await _reply(writer, 431, "Request Header Fields Too Large")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = ([*lines[0].split(" "), "", ""])[:3]
        headers = {
            k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:] if x)
        }
        if method not in ("PUT", "SOURCE"):
            return await _reply(writer, 405, "Method Not Allowed")
        mount = path.strip("/").split("?")[0]
        if not self._authorised(headers):
            self.refused += 1
            self.hub.alert(mount, "auth", "source client with a wrong password", True)
            self.hub.alert(mount, "auth", "", False)  # an event, not a lasting state
            return await _reply(
                writer, 401, "Unauthorized", 'WWW-Authenticate: Basic realm="Icecast2 Server"\r\n'
            )
        if headers.get("transfer-encoding", "").lower() == "chunked":
            return await _reply(writer, 501, "Chunked uploads not supported")
        try:
            feed = await self.hub.open_push(mount, "icecast")
        except LiveError as exc:
            return await _reply(writer, 403 if exc.status == 409 else exc.status, str(exc))
        try:
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            writer.write(b"HTTP/1.0 200 OK\r\nServer: loaxa\r\n\r\n")
            await writer.drain()
            log.info("live source client on %s (%s)", mount, headers.get("user-agent", "?"))
            while data := await reader.read(16384):
                if not await feed.write(data):
                    break
        finally:
            await self.hub.close_push(mount, feed)


async def _reply(writer: asyncio.StreamWriter, status: int, reason: str, extra: str = "") -> None:
    writer.write(f"HTTP/1.0 {status} {reason}\r\n{extra}Content-Length: 0\r\n\r\n".encode())
    await writer.drain()
