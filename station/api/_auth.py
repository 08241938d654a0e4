"""Who is calling: bearer API tokens and browser sessions; CSRF; login throttling.

- ``Authorization: Bearer lxa_...``: scripts and the upstream system. No CSRF check (a browser
  never adds this header by itself). The token's permissions are those of its role that its
  user's role also grants.
- Cookie ``loaxa_session``: the console. HttpOnly, SameSite=Strict, Secure when served over
  https. Unsafe methods must echo the session's CSRF token in ``X-CSRF-Token``. Sessions end
  after ``auth.session_idle_minutes`` idle or ``auth.session_absolute_hours``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from aiohttp import web
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station import _keys as keys
from station.db import ApiToken, Role, User, WebSession

from ._roles import Permission, permissions_of
from ._secrets import new_token, same_secret, token_hash

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Principal",
    "authenticate",
    "client_ip",
    "end_session",
    "start_session",
]

SESSION_COOKIE = "loaxa_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_TOUCH_EVERY = timedelta(seconds=60)  # write last_seen / last_used at most this often


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    user_id: int
    username: str
    role: Role
    permissions: frozenset[Permission]
    via: Literal["session", "token"]
    must_change_password: bool = False
    csrf_token: str = ""
    token_id: int | None = None
    session_hash: str = ""

    def can(self, permission: Permission) -> bool:
        return permission in self.permissions


def client_ip(request: web.Request) -> str:
    """The peer address (a reverse proxy in front is not trusted for X-Forwarded-For)."""
    return (request.remote or "")[:64]


def user_agent(request: web.Request) -> str:
    return request.headers.get("User-Agent", "")[:300]


def _now() -> datetime:
    return datetime.now(UTC)


class Unauthenticated(Exception):
    """Credentials were sent but are not valid (expired, revoked, unknown)."""


async def authenticate(request: web.Request) -> Principal | None:
    """The caller, None when no credentials were sent; raises ``Unauthenticated`` on bad ones."""
    header = request.headers.get("Authorization", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthenticated("use Authorization: Bearer <token>")
        return await _by_token(request, value.strip())
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _by_session(request, cookie)
    return None


async def _by_token(request: web.Request, token: str) -> Principal:
    now = _now()
    async with request.app[keys.SESSIONS]() as db:
        row = (
            await db.exec(
                select(ApiToken, User)
                .join(User, col(User.id) == col(ApiToken.user_id))
                .where(ApiToken.token_hash == token_hash(token))
            )
        ).first()
        if row is None:
            raise Unauthenticated("unknown API token")
        api_token, user = row
        if api_token.revoked_at is not None or user.disabled:
            raise Unauthenticated("API token revoked or its user disabled")
        if api_token.last_used_at is None or now - api_token.last_used_at > _TOUCH_EVERY:
            api_token.last_used_at = now
            db.add(api_token)
            await db.commit()
    assert user.id is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        permissions=permissions_of(api_token.role, limited_to=user.role),
        via="token",
        token_id=api_token.id,
    )


async def _by_session(request: web.Request, cookie: str) -> Principal:
    settings = request.app[keys.SETTINGS].auth
    now = _now()
    hashed = token_hash(cookie)
    async with request.app[keys.SESSIONS]() as db:
        row = (
            await db.exec(
                select(WebSession, User)
                .join(User, col(User.id) == col(WebSession.user_id))
                .where(WebSession.token_hash == hashed)
            )
        ).first()
        if row is None:
            raise Unauthenticated("session ended: log in again")
        session, user = row
        idle = timedelta(minutes=settings.session_idle_minutes)
        if session.expires_at <= now or session.last_seen_at + idle <= now or user.disabled:
            await db.delete(session)
            await db.commit()
            raise Unauthenticated("session ended: log in again")
        if now - session.last_seen_at > _TOUCH_EVERY:
            session.last_seen_at = now
            db.add(session)
            await db.commit()
    assert user.id is not None
    return Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        permissions=permissions_of(user.role),
        via="session",
        must_change_password=user.must_change_password,
        csrf_token=session.csrf_token,
        session_hash=hashed,
    )


def csrf_ok(request: web.Request, principal: Principal) -> bool:
    if principal.via != "session" or request.method in SAFE_METHODS:
        return True
    sent = request.headers.get(CSRF_HEADER, "")
    return bool(sent) and same_secret(sent, principal.csrf_token)


async def start_session(request: web.Request, user: User) -> tuple[str, str, datetime]:
    """Create a session row; returns (cookie token, CSRF token, absolute expiry)."""
    settings = request.app[keys.SETTINGS].auth
    assert user.id is not None
    token, csrf = new_token("s_"), secrets.token_urlsafe(32)
    now = _now()
    expires = now + timedelta(hours=settings.session_absolute_hours)
    async with request.app[keys.SESSIONS]() as db:
        # Forget this user's expired sessions while we are here.
        await db.exec(
            delete(WebSession).where(
                col(WebSession.user_id) == user.id, col(WebSession.expires_at) <= now
            )
        )
        db.add(
            WebSession(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf,
                expires_at=expires,
                ip=client_ip(request),
                user_agent=user_agent(request),
            )
        )
        user.last_login_at = now
        db.add(user)
        await db.commit()
    return token, csrf, expires


def set_session_cookie(
    request: web.Request, response: web.StreamResponse, token: str, expires: datetime
) -> None:
    base = request.app[keys.RUNTIME].public_base_url or ""
    secure = request.secure or base.startswith("https://")
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(int((expires - _now()).total_seconds()), 0),
        path="/",
        httponly=True,
        secure=secure,
        samesite="Strict",
    )


async def end_session(request: web.Request, principal: Principal) -> None:
    if principal.via != "session":
        return
    async with request.app[keys.SESSIONS]() as db:
        await db.exec(
            delete(WebSession).where(col(WebSession.token_hash) == principal.session_hash)
        )
        await db.commit()


async def end_sessions_of(request: web.Request, user_id: int) -> None:
    async with request.app[keys.SESSIONS]() as db:
        await db.exec(delete(WebSession).where(col(WebSession.user_id) == user_id))
        await db.commit()


async def forget_expired_sessions(sessions: async_sessionmaker[AsyncSession]) -> None:
    """Delete sessions past their absolute expiry (idle ones go when next presented)."""
    async with sessions() as db:
        await db.exec(delete(WebSession).where(col(WebSession.expires_at) <= _now()))
        await db.commit()
