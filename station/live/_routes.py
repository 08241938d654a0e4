"""HTTP side of live: clusters' ``GET /live/<mount>`` (signed per cluster like media) and the
browser microphone's WebSocket ``/live/<mount>/mic`` (a logged-in user with the live permission).

A browser cannot read the answer to a refused WebSocket handshake, so a client that offers the
``loaxa.mic`` subprotocol (the console) is told in the WebSocket itself: its first message is a
JSON text, ``{"ready": true, "mount": ...}`` or the refusal's problem+json body (with its
``code`` and parameters), after which the station closes with 4000 + the HTTP status and the
code as the reason. Other clients get the refusal as an HTTP problem+json answer.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

from aiohttp import HttpVersion11, WSMsgType, web

from station import _keys as keys
from station.api import ApiError, Permission, problem
from station.api._auth import authenticate

from ._hub import LiveError, LiveHub

log = logging.getLogger(__name__)

LIVE_HUB: web.AppKey[LiveHub] = web.AppKey("live_hub")
MIC_MAX_MESSAGE = 256 * 1024
MIC_PROTOCOL = "loaxa.mic"


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
        return problem(401, "Unauthorized", "log in first", code="login_required")
    if principal.must_change_password:
        return problem(
            403, "Forbidden", "change your one-time password first", code="password_change_required"
        )
    if Permission.LIVE not in principal.permissions:
        role = str(principal.role)
        return problem(
            403,
            "Forbidden",
            f"your role ({role}) may not go live",
            code="role_forbidden",
            role=role,
        )
    if not _same_origin(request):
        return problem(403, "Forbidden", "cross-origin WebSocket refused")
    name = request.match_info["mount"]
    hub = request.app[LIVE_HUB]
    try:
        feed = await hub.open_push(name, "browser")
    except LiveError as exc:
        return await _refuse_microphone(request, exc)
    ws = web.WebSocketResponse(
        max_msg_size=MIC_MAX_MESSAGE, heartbeat=20, protocols=(MIC_PROTOCOL,)
    )

    async def hang_up() -> None:  # the mount stopped (station shutting down): end the request
        await feed.ended.wait()
        await ws.close(code=1001, message=b"mount stopped")

    watcher: asyncio.Task[None] | None = None
    try:
        await ws.prepare(request)
        if ws.ws_protocol == MIC_PROTOCOL:
            await ws.send_json({"ready": True, "mount": name})
        watcher = asyncio.create_task(hang_up(), name=f"live-mic-{name}-end")
        log.info("browser microphone on %s by %s", name, principal.username)
        async for message in ws:
            if message.type == WSMsgType.BINARY:
                if not await feed.write(message.data):
                    await ws.close(code=1011, message=b"decoder ended")
            elif message.type == WSMsgType.TEXT and message.data == "stop":
                await ws.close()
    finally:
        if watcher is not None:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
        await hub.close_push(name, feed)
    return ws


async def _refuse_microphone(request: web.Request, exc: LiveError) -> web.StreamResponse:
    """The hub's refusal (no such mount, another kind of source, someone already talking...)
    as a problem with its code: in the WebSocket for a ``loaxa.mic`` client, else over HTTP."""
    refusal = ApiError(exc.status, str(exc), title="Refused", code=exc.code, params=exc.params)
    answer = refusal.response()
    ws = web.WebSocketResponse(protocols=(MIC_PROTOCOL,))
    if ws.can_prepare(request).protocol != MIC_PROTOCOL:
        return answer
    await ws.prepare(request)
    await ws.send_str(answer.text or "{}")
    await ws.close(code=4000 + exc.status, message=(refusal.code or "refused").encode())
    return ws


async def icecast_auth(request: web.Request) -> web.Response:
    """Icecast URL listener authentication (``listener_add``) for an edge that serves the
    mounts: Icecast posts the URL a cluster asked for (``mount``, its query included) and lets
    the listener in when the answer carries ``icecast-auth-user: 1``: here, when the URL is
    signed for that cluster and mount, as the station's own ``/live/<mount>`` is."""
    form = await request.post()
    if form.get("action") != "listener_add":
        return web.Response(text="ok")  # listener_remove, mount_add...: nothing to decide
    asked = urlsplit(str(form.get("mount", "")))
    query = parse_qs(asked.query)

    def arg(key: str) -> str:
        return query.get(key, [""])[0]

    delivery = request.app[keys.DELIVERY]
    name = signed_name(asked.path.removeprefix("/"))
    why = delivery.signer.check(arg("c"), name, arg("e"), arg("s"))
    if why is not None:
        delivery.rejected[why] += 1
        return web.Response(text="refused", headers={"icecast-auth-message": why})
    return web.Response(text="ok", headers={"icecast-auth-user": "1"})


def setup_live_routes(app: web.Application) -> None:
    app.router.add_get("/live/{mount}", listen)
    app.router.add_get("/live/{mount}/mic", microphone)
    app.router.add_post("/live/icecast-auth", icecast_auth)
