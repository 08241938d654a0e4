"""Tables of accounts, browser sessions, API tokens, programme approvals and the audit log.

Same conventions as ``models``: aware UTC datetimes, StrEnum columns with CHECK constraints, no
ORM relationships. Schema owned by migration ``accounts_1``.

Secrets are never stored: passwords as argon2id hashes, session and API tokens as SHA-256 of the
random token (they carry 256 bits, so a fast hash is enough to make a stolen table useless).
The audit log is append-only: no code path updates or deletes it, and the migration installs
triggers that refuse UPDATE and DELETE on both SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from ._types import UTCDateTime, enum_column, json_dict, utcnow
from .models import TableBase

__all__ = [
    "ApiToken",
    "AuditEntry",
    "LoginFailure",
    "ProgrammeApproval",
    "Role",
    "User",
    "WebSession",
]

NAME_MAX = 64


class Role(StrEnum):
    ADMIN = "admin"
    BROADCASTER = "broadcaster"  # biên tập / phát thanh viên
    APPROVER = "approver"  # lãnh đạo
    TECHNICIAN = "technician"  # kỹ thuật viên
    VIEWER = "viewer"


def _created() -> Any:
    return Field(default_factory=utcnow, sa_type=UTCDateTime)


class User(TableBase, table=True):
    """A local account. ``version`` grows on every change (ETag / If-Match)."""

    __tablename__ = "users"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=NAME_MAX, unique=True)
    display_name: str = Field(default="", max_length=200)
    role: Role = Field(sa_type=enum_column(Role, "user_role"))
    password_hash: str = Field(max_length=255)
    disabled: bool = False
    must_change_password: bool = False
    version: int = 1
    created_at: datetime = _created()
    password_changed_at: datetime = _created()
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class WebSession(TableBase, table=True):
    """A browser session; the cookie holds the token, the row its SHA-256."""

    __tablename__ = "web_sessions"

    token_hash: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    csrf_token: str = Field(max_length=64)
    created_at: datetime = _created()
    last_seen_at: datetime = _created()
    expires_at: datetime = Field(sa_type=UTCDateTime)
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)


class ApiToken(TableBase, table=True):
    """A bearer token for scripts and the upstream system, scoped to a role."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", ondelete="CASCADE", index=True)
    name: str = Field(max_length=NAME_MAX)
    role: Role = Field(sa_type=enum_column(Role, "token_role"))
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = _created()
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ProgrammeApproval(TableBase, table=True):
    """An approver's consent that one version of a programme may go on air [phê duyệt]."""

    __tablename__ = "programme_approvals"
    __table_args__ = (sa.UniqueConstraint("programme_id", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    programme_id: int = Field(foreign_key="programmes.id", ondelete="CASCADE")
    version: int
    approved_by: int = Field(foreign_key="users.id", ondelete="RESTRICT", index=True)
    approved_at: datetime = _created()


class AuditEntry(TableBase, table=True):
    """Who did what, when, from where. Append-only."""

    __tablename__ = "audit_log"

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    user_id: int | None = Field(default=None, index=True)  # no FK: survives the user
    actor: str = Field(default="", max_length=NAME_MAX)
    action: str = Field(max_length=64, index=True)
    target: str = Field(default="", max_length=200)
    details: dict[str, Any] = Field(default_factory=dict, sa_type=json_dict())
    ip: str = Field(default="", max_length=64)
    user_agent: str = Field(default="", max_length=300)


class LoginFailure(TableBase, table=True):
    """One failed login for one key (``user:NAME`` or ``ip:ADDR``); schema of ``accounts_2``.

    The login throttle counts a key's rows within ``auth.login_window_s`` (a sliding window), so
    it holds across processes and restarts. Rows leave when they fall out of the window or when
    the key logs in successfully.
    """

    __tablename__ = "login_failures"

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=200, index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
