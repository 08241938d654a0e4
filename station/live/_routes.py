"""HTTP side of live: clusters' ``GET /live/<mount>`` (signed per cluster like media) and the
browser microphone's WebSocket ``/live/<mount>/mic`` (a logged-in user with the live permission)."""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from aiohttp import HttpVersion11, WSMsgType, web

from station import _keys as keys
from station.api import Permission, problem
from station.api._auth import authenticate

from ._hub import LiveError, LiveHub

log = logging.getLogger(__name__)

LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("live_hub")
MIC_MAX_MESSAGE = 256 * 1024


def signed_name(mount: str) -> str:
    return f"live/{mount}"


async def listen(request: web.Request) -> web.StreamResponse:
    name = request.match_info["mount"]
    hub = request.app[LIVE_HUB]
    signer = request.app[keys.DELIVERY].signer
    cluster_id = request.query.get("c", "")
    why = signer.check(
        cluster_id, signed_name(name), request.query.get("e", ""), request.query.get("s", "")
    )
    if why is not None:
        request.app[keys.DELIVERY].rejected[why] += 1
        return problem(403, "Forbidden", f"{why}: live links are signed per cluster")
    mount = hub.mounts.get(name)
    if mount is None:
        return problem(404, "Not Found", f"mount {name} is not live")
    response = web.StreamResponse(
        headers={"Content-Type": mount.content_type, "Cache-Control": "no-store"}
    )
    listener = mount.fanout.join(cluster_id)
    try:
        await response.prepare(request)
        async for chunk in listener.chunks():
            await response.write(chunk)  # the first chunk also sends the response headers
            mount.fanout.counters.bytes_sent[cluster_id] += len(chunk)
            transport = request.transport
            if transport is None:
                break
            listener.go_direct(transport, chunked=request.version >= HttpVersion11)
            await listener.done.wait()  # publish() writes to the socket from now on
            break
    except ConnectionError:
        pass  # the cluster hung up
    finally:
        listener.close()
    return response


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


async def microphone(request: web.Request) -> web.StreamResponse:
    """MediaRecorder chunks (webm/opus or ogg/opus) as binary messages; text ``stop`` ends."""
    principal = await authenticate(request)
    if principal is None:
        return problem(401, "Unauthorized", "log in first")
    if principal.must_change_password or Permission.LIVE not in principal.permissions:
        return problem(403, "Forbidden", f"your role ({principal.role}) may not go live")
    if not _same_origin(request):
        return problem(403, "Forbidden", "cross-origin WebSocket refused")
    name = request.match_info["mount"]
    hub = request.app[LIVE_HUB]
    try:
        feed = await hub.open_push(name, "browser")
    except LiveError as exc:
        return problem(exc.status, "Refused", str(exc))
    ws = web.WebSocketResponse(max_msg_size=MIC_MAX_MESSAGE, heartbeat=20)
    try:
        await ws.prepare(request)
        log.info("browser microphone on %s by %s", name, principal.username)
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                if not await feed.write(message.data):
                    await ws.close(code=1011, message=b"decoder ended")
            elif message.type == WSMsgType.TEXT and message.data == "stop":
                await ws.close()
    finally:
        await hub.close_push(name, feed)
    return ws


def setup_live_routes(app: web.Application) -> None:
    app.router.add_get("/live/{mount}", listen)
    app.router.add_get("/live/{mount}/mic", microphone)
