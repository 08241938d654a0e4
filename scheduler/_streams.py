"""Where clusters hear relay/live slots: the station may route them (e.g. via its live hub)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from ._session import SessionPlan, segments


def _http_only(_cluster_id: str) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class StreamRoute:
    """Where clusters hear one stream, in ``codec``: a URL per cluster (``transport: http``), or
    for a cluster that ``topic_for`` gives a topic, Opus packets on that MQTT topic
    (``transport: mqtt``; receivers that announce only ``capabilities.live: ["mqtt"]``)."""

    url_for: Callable[[str], str]
    codec: str
    topic_for: Callable[[str], str | None] = _http_only


class StreamRouter(Protocol):
    async def __call__(self, url: str, start_at: datetime, until: datetime) -> StreamRoute | None:
        """Route a relay/live ``url`` playing ``start_at``..``until`` (e.g. through the
        station's live hub); None: clusters get ``url`` itself."""
        ...


async def stream_routes(
    router: StreamRouter | None, session: SessionPlan
) -> dict[str, StreamRoute]:
    """Each relay/live URL of the session routed by ``router`` (none: no routes)."""
    routes: dict[str, StreamRoute] = {}
    if router is None:
        return routes
    for segment in segments(session):
        if segment.stream is None:
            continue
        start = session.start_at + timedelta(milliseconds=segment.offset_ms)
        until = start + timedelta(milliseconds=segment.stream.duration_ms)
        route = await router(segment.stream.url, start, until)
        if route is not None:
            routes[segment.stream.url] = route
    return routes
