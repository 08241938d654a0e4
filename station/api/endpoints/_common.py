"""Helpers shared by endpoint modules."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station import _keys as keys
from station._services import StationError

from .._framework import ID_MAX, Call
from .._problems import ApiError

Sessions = async_sessionmaker[AsyncSession]
Id = Annotated[int, Field(ge=1, le=ID_MAX)]
ClusterId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]


def sessions_of(call: Call) -> Sessions:
    return call.app[keys.SESSIONS]


def not_found(what: str, **params: object) -> ApiError:
    """404 ``{what}_not_found`` (e.g. ``media_item_not_found``) with the ids in ``params``."""
    code = what.replace(" ", "_") + "_not_found"
    return ApiError(404, f"no such {what}", code=code, params=params)


def refused(exc: StationError, status: int = 422) -> ApiError:
    """A domain refusal with its ``code`` and parameters (ids, names) for the console."""
    params = getattr(exc, "params", None)
    return ApiError(
        status, str(exc), title="Refused", code=getattr(exc, "code", None), params=params
    )
