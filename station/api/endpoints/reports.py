"""Activity and inventory reports [báo cáo] as downloads (station/reports, docs/compliance.md)."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from station import _keys as keys
from station.reports import CONTENT_TYPES, build_report, choose_period, render_async

from .._framework import ApiRouter, Call
from .._problems import field_error
from .._roles import Permission
from ._common import sessions_of

router = ApiRouter("reports", "Half-yearly and yearly activity and inventory reports")


class ReportQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period: str | None = Field(
        default=None,
        pattern=r"^[0-9]{4}([Hh]1|[Yy])$",
        description="2024H1 = 2023-12-01..2024-05-30; 2024Y = 2023-12-01..2024-11-30",
    )
    from_: dt.date | None = Field(default=None, alias="from", description="first day (local)")
    to: dt.date | None = Field(default=None, description="last day, included (local)")
    format: Literal["json", "csv", "xlsx", "html"] = "json"
    lang: Literal["vi", "en"] = "vi"


async def _download(call: Call, kind: str, query: ReportQuery) -> web.StreamResponse:
    try:
        period = choose_period(query.period, query.from_, query.to)
    except ValueError as exc:
        raise field_error("period", str(exc), code="report_period_invalid") from None

    settings = call.app[keys.SETTINGS]
    report = await build_report(
        sessions_of(call),
        kind,
        period,
        settings.station.tzinfo,
        on_time_ms=settings.metrics.on_time_ms,
    )
    body = await render_async(report, query.format, query.lang)
    name = f"loaxa-{kind}-{period.label.replace('..', '_')}.{query.format}"
    return web.Response(
        body=body,
        headers={
            "Content-Type": CONTENT_TYPES[query.format],
            "Content-Disposition": f'attachment; filename="{name}"',
        },
    )


@router.get(
    "/reports/activity",
    summary="Activity report: broadcasts, hours, plays, by topic/source/cluster/village/language",
    permission=Permission.READ,
    query=ReportQuery,
    media_type="application/octet-stream",
)
async def activity(call: Call, query: ReportQuery) -> web.StreamResponse:
    return await _download(call, "activity", query)


@router.get(
    "/reports/inventory",
    summary="Inventory report: clusters by kind and status, installations, village coverage",
    permission=Permission.READ,
    query=ReportQuery,
    media_type="application/octet-stream",
)
async def inventory(call: Call, query: ReportQuery) -> web.StreamResponse:
    return await _download(call, "inventory", query)
