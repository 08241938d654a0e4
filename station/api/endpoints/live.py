"""Live and relay mounts [phát trực tiếp, tiếp âm] for the console and ``loaxa live``.

The browser microphone itself is a WebSocket outside the JSON API: ``/live/<mount>/mic``
(station/live/_routes.py), authenticated the same way (session cookie or bearer token).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from station.live import LIVE_HUB, LiveError, LiveHub

from .._audit import audit
from .._framework import ApiRouter, Call
from .._problems import ApiError
from .._roles import Permission

router = ApiRouter("live", "Live and relay mounts: start, stop, status, alerts")

MAX_MOUNTS = 8
MountName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,31}$")]
# lavfi graphs can read files (amovie=...): tones are for tests, never taken over the API.
SOURCE_PATTERN = (
    r"^(icecast|browser|relay:https?://[^\s]{1,2000}|(alsa|pulse):[A-Za-z0-9_:,.=-]{1,100})$"
)


class LiveStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mount: MountName
    source: str = Field(
        pattern=SOURCE_PATTERN,
        max_length=2010,
        description="alsa:DEV, pulse:DEV, relay:URL, icecast (a source client pushes) or "
        "browser (the console's microphone WebSocket /live/<mount>/mic)",
    )


class MountOut(BaseModel):
    mount: str
    source: str
    state: str = Field(description="starting, waiting (for its source), on_source or fallback")
    codec: str
    listeners: int
    source_connected: bool
    bytes_encoded: int
    skipped: int
    dropped: int
    topic: str = Field(description="MQTT topic of the live packets (docs/protocol.md)")


class MountList(BaseModel):
    items: list[MountOut]


class AlertOut(BaseModel):
    mount: str
    kind: str = Field(description="dead, silence, not_audio or auth")
    detail: str
    raised_at: datetime
    cleared_at: datetime | None


class AlertList(BaseModel):
    items: list[AlertOut]


def _hub(call: Call) -> LiveHub:
    return call.app[LIVE_HUB]


def _out(hub: LiveHub, name: str) -> MountOut:
    return next(MountOut(**s) for s in hub.status() if s["mount"] == name)


@router.get("/live", summary="List live mounts", permission=Permission.READ, response=MountList)
async def list_mounts(call: Call) -> MountList:
    return MountList(items=[MountOut(**s) for s in _hub(call).status()])


@router.get(
    "/live/alerts",
    summary="Recent live alerts (newest last)",
    permission=Permission.READ,
    response=AlertList,
)
async def list_alerts(call: Call) -> AlertList:
    alerts = _hub(call).alerts
    return AlertList(items=[AlertOut.model_validate(a, from_attributes=True) for a in alerts])


@router.post(
    "/live",
    summary="Start a live or relay mount",
    permission=Permission.LIVE,
    body=LiveStart,
    response=MountOut,
    status=201,
    errors=(409,),
)
async def start_mount(call: Call, body: LiveStart) -> MountOut:
    hub = _hub(call)
    if len(hub.mounts) >= MAX_MOUNTS and body.mount not in hub.mounts:
        raise ApiError(409, f"at most {MAX_MOUNTS} mounts at once", title="Conflict")
    try:
        await hub.start(body.mount, body.source)
    except LiveError as exc:
        raise ApiError(exc.status, str(exc), title="Refused") from None
    await audit(call, "live.start", f"mount:{body.mount}", {"source": body.source})
    return _out(hub, body.mount)


@router.delete(
    "/live/{mount}", summary="Stop a live mount", permission=Permission.LIVE, errors=(404,)
)
async def stop_mount(call: Call) -> None:
    name = call.path_str("mount")
    try:
        await _hub(call).stop(name)
    except LiveError as exc:
        raise ApiError(exc.status, str(exc), title="Refused") from None
    await audit(call, "live.stop", f"mount:{name[:40]}")
