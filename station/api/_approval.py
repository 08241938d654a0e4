"""Approval workflow [phê duyệt] and the two-person rule, as functions other parts call.

- ``auth.approval_required``: a programme version goes on air only once an approver approved
  that version (``is_approved``); the schedule path calls ``require_approved``. A programme's
  version grows when it is edited, so an edit leaves the new version unapproved. The rule
  itself lives in ``station._schedules`` (``require_approval``, ``unapproved_programmes``): the
  CLI refuses with the same message, and the dispatcher's feed leaves unapproved programmes
  off the air (``station._playout_store``).
- ``auth.emergency_two_person``: ``confirm_second_person`` checks that a different user with the
  emergency permission confirmed with their own password.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from station._schedules import ApprovalRequired, programme_version, require_approval
from station.config import Settings
from station.db import ProgrammeApproval

from ._accounts import find_user
from ._auth import Principal
from ._problems import ApiError
from ._roles import Permission, permissions_of
from ._secrets import verify_password

__all__ = ["confirm_second_person", "is_approved", "programme_version", "require_approved"]

Sessions = async_sessionmaker[AsyncSession]


async def is_approved(sessions: Sessions, programme_id: int, version: int) -> bool:
    async with sessions() as db:
        query = select(ProgrammeApproval.id).where(
            ProgrammeApproval.programme_id == programme_id, ProgrammeApproval.version == version
        )
        return (await db.exec(query)).first() is not None


async def require_approved(sessions: Sessions, settings: Settings, programme_id: int) -> None:
    """409 when approval is required and the programme's current version is not approved
    (the rule is ``station._schedules.require_approval``, which the CLI calls too)."""
    try:
        await require_approval(sessions, settings, programme_id)
    except ApprovalRequired as exc:
        raise ApiError(
            409, str(exc), title="Approval required", code=exc.code, params=exc.params
        ) from None


async def confirm_second_person(
    sessions: Sessions,
    settings: Settings,
    actor: Principal,
    username: str | None,
    password: str | None,
) -> int | None:
    """The confirming user's id, None when the rule is off; 403 when the confirmation fails."""
    if not settings.auth.emergency_two_person:
        return None
    if not username or not password:
        raise ApiError(
            403,
            "a second user must confirm",
            title="Second person required",
            code="second_person_required",
        )
    user = await find_user(sessions, username)
    ok = await verify_password(user.password_hash if user else None, password)
    if (
        not ok
        or user is None
        or user.disabled
        or user.id == actor.user_id
        or Permission.EMERGENCY not in permissions_of(user.role)
    ):
        raise ApiError(
            403,
            "the second user is not valid for this action",
            title="Second person required",
            code="second_person_invalid",
        )

    return user.id
