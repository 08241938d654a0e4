"""Live and relay mounts [phát trực tiếp, tiếp âm] for the console and ``loaxa live``.

The browser microphone itself is a WebSocket outside the JSON API: ``/live/<mount>/mic``
(station/live/_routes.py), authenticated the same way (session cookie or bearer token).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from station._alerts import mount_alerts
from station.live import LIVE_HUB, OPERATOR_SOURCE, OPERATOR_SOURCES_HELP, LiveError, LiveHub

from .._audit import audit
from .._framework import ApiRouter, Call
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import sessions_of

router = ApiRouter("live", "Live and relay mounts: start, stop, status, alerts")

MAX_MOUNTS = 8
MOUNT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"
# lavfi graphs can read files (amovie=...): tones are for tests, never taken over the API.
SOURCE_PATTERN = OPERATOR_SOURCE.pattern


# The patterns are checked by the handler (``_check_start``): a refused name or source gets
# its own problem code.
class LiveStart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    mount: str = Field(max_length=200, json_schema_extra={"pattern": MOUNT_PATTERN})
    source: str = Field(
        max_length=2010,
        description=OPERATOR_SOURCES_HELP,
        json_schema_extra={"pattern": SOURCE_PATTERN},
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
    mqtt: bool = Field(
        description="publishing on the topic now (live.mqtt, or a scheduled slot with "
        "MQTT-only receivers airs it)"
    )


class MountList(BaseModel):
    items: list[MountOut]


class AlertOut(BaseModel):
    id: int
    mount: str
    kind: str = Field(
        description="dead, silence, not_audio, auth or no_source (a scheduled slot airs a "
        "mount that never got audio from its source)"
    )
    detail: str
    raised_at: datetime
    cleared_at: datetime | None


class AlertList(BaseModel):
    items: list[AlertOut]


class AlertQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Literal["open", "all"] = Field(
        default="all", description="open: only alerts not cleared yet"
    )
    limit: int = Field(default=200, ge=1, le=1000, description="the newest this many")


def _hub(call: Call) -> LiveHub:
    return call.app[LIVE_HUB]


def _out(hub: LiveHub, name: str) -> MountOut:
    return next(MountOut(**s) for s in hub.status() if s["mount"] == name)


@router.get("/live", summary="List live mounts", permission=Permission.READ, response=MountList)
async def list_mounts(call: Call) -> MountList:
    return MountList(items=[MountOut(**s) for s in _hub(call).status()])


@router.get(
    "/live/alerts",
    summary="Live alerts from the alerts table, kept across restarts (newest last)",
    permission=Permission.READ,
    query=AlertQuery,
    response=AlertList,
)
async def list_alerts(call: Call, query: AlertQuery) -> AlertList:
    hub = _hub(call)
    await hub.flush_alerts()  # what the hub raised a moment ago is in the table too
    async with sessions_of(call)() as db:
        rows = await mount_alerts(db, open_only=query.state == "open", limit=query.limit)
    return AlertList(items=[AlertOut.model_validate(a, from_attributes=True) for a in rows])


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
    _check_start(body)
    hub = _hub(call)
    if len(hub.mounts) >= MAX_MOUNTS and body.mount not in hub.mounts:
        raise ApiError(
            409,
            f"at most {MAX_MOUNTS} mounts at once",
            title="Conflict",
            code="live_too_many_mounts",
            max=MAX_MOUNTS,
        )
    try:
        await hub.start(body.mount, body.source)
    except LiveError as exc:
        raise _live_refusal(exc, body.mount) from None
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
        raise _live_refusal(exc, name[:40]) from None

    await audit(call, "live.stop", f"mount:{name[:40]}")


def _check_start(body: LiveStart) -> None:
    """The mount name and the source an operator may give, each refusal with its code."""
    if not re.fullmatch(MOUNT_PATTERN, body.mount):
        raise field_error(
            "mount",
            "mount names are 1-32 of a-z 0-9 _ - (starting with a letter/digit)",
            code="live_mount_invalid",
            params={"mount": body.mount[:40]},
        )
    if OPERATOR_SOURCE.fullmatch(body.source):
        return
    kind = body.source.partition(":")[0]
    if kind == "relay":
        raise field_error(
            "source", "relay sources are relay:http(s)://URL", code="live_relay_url_invalid"
        )
    if kind in ("alsa", "pulse"):
        raise field_error(
            "source",
            f"{kind}: device names are 1-100 of A-Z a-z 0-9 _ : , . = -",
            code="live_device_invalid",
        )
    raise field_error("source", f"sources: {OPERATOR_SOURCES_HELP}", code="live_source_unsupported")


# The hub's refusals that bring no code of their own, by status: what the console says.
_LIVE_CODES = {404: "live_not_live", 409: "live_already_live", 422: "live_bad_source",
               503: "live_unavailable"}  # fmt: skip


def _live_refusal(exc: LiveError, mount: str) -> ApiError:
    """The hub's refusal as a problem: its own code and parameters (the mount...), else the
    code of its status."""
    code = exc.code or _LIVE_CODES.get(exc.status)
    params = {"mount": mount, **exc.params}
    return ApiError(exc.status, str(exc), title="Refused", code=code, params=params)
