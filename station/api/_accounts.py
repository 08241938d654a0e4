"""Account operations shared by the REST API and the CLI: users, passwords, API tokens.

Each is one short transaction. Errors a user can cause raise ``AccountError`` naming the field.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, delete, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import ApiToken, Role, User
from station.db.models_accounts import LoginFailure

from ._roles import permissions_of
from ._secrets import (
    PASSWORD_MAX,
    PASSWORD_MIN,
    PasswordPolicyError,
    check_password_policy,
    generate_password,
    hash_password,
    new_token,
    token_hash,
)

log = logging.getLogger(__name__)

Sessions = async_sessionmaker[AsyncSession]
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{1,63}$"
_USERNAME = re.compile(USERNAME_PATTERN)
FIRST_ADMIN = "admin"


class AccountError(Exception):
    """Refused with a message for the user; ``field`` names the offending input."""

    def __init__(
        self, field: str, message: str, status: int = 422, *, code: str, **params: object
    ) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status
        self.code = code  # the problem's code (``_problems.CODES``) and its parameters
        self.params = params


def _now() -> datetime:
    return datetime.now(UTC)


def normalise_username(name: str) -> str:
    username = name.strip().lower()
    if not _USERNAME.match(username):
        raise AccountError(
            "username",
            "2-64 characters: lower-case letters, digits, '_', '.', '-'",
            code="username_invalid",
        )
    return username


def _policy(password: str, field: str = "password") -> None:
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise AccountError(
            field, str(exc), code="password_policy", min=PASSWORD_MIN, max=PASSWORD_MAX
        ) from None


async def create_user(
    sessions: Sessions,
    username: str,
    role: Role,
    password: str | None = None,
    *,
    display_name: str = "",
    must_change_password: bool = False,
) -> tuple[User, str | None]:
    """Create a user; returns (user, generated password or None when one was given)."""
    name = normalise_username(username)
    generated = None
    if password is None:
        password = generated = generate_password()
    _policy(password)
    user = User(
        username=name,
        display_name=display_name,
        role=Role(role),
        password_hash=await hash_password(password),
        must_change_password=must_change_password,
    )
    async with sessions() as db:
        db.add(user)
        try:
            await db.commit()
        except IntegrityError:
            raise AccountError(
                "username", f"{name!r} is taken", status=409, code="username_taken", username=name
            ) from None
        await db.refresh(user)
    return user, generated


async def set_password(
    sessions: Sessions, user_id: int, password: str, *, must_change: bool = False
) -> User:
    _policy(password)
    hashed = await hash_password(password)
    async with sessions() as db:
        user = await db.get(User, user_id)
        if user is None:
            raise AccountError("user", "no such user", status=404, code="user_not_found")
        user.password_hash = hashed
        user.must_change_password = must_change
        user.password_changed_at = _now()
        user.version += 1
        db.add(user)
        await db.commit()
        await db.refresh(user)
        return user


async def find_user(sessions: Sessions, username: str) -> User | None:
    async with sessions() as db:
        query = select(User).where(User.username == username.strip().lower())
        return (await db.exec(query)).first()


async def create_token(
    sessions: Sessions, user: User, name: str, role: Role | None = None
) -> tuple[ApiToken, str]:
    """A bearer token for ``user``, scoped to ``role`` (default: the user's). Shown once."""
    scope = Role(role or user.role)
    if not permissions_of(scope) <= permissions_of(user.role):
        raise AccountError(
            "role",
            f"a {user.role} cannot create a {scope} token",
            code="token_role_scope",
            role=str(user.role),
            scope=str(scope),
        )
    if not name.strip() or len(name) > 64:
        raise AccountError("name", "1-64 characters", code="token_name_invalid")

    assert user.id is not None
    secret = new_token()
    token = ApiToken(user_id=user.id, name=name.strip(), role=scope, token_hash=token_hash(secret))
    async with sessions() as db:
        db.add(token)
        await db.commit()
        await db.refresh(token)
    return token, secret


async def revoke_token(sessions: Sessions, token_id: int) -> ApiToken | None:
    async with sessions() as db:
        token = await db.get(ApiToken, token_id)
        if token is None:
            return None
        if token.revoked_at is None:
            token.revoked_at = _now()
            db.add(token)
            await db.commit()
            await db.refresh(token)
        return token


async def ensure_first_admin(sessions: Sessions) -> str | None:
    """With no user at all, create ``admin`` with a one-time password and return it."""
    async with sessions() as db:
        if (await db.exec(select(func.count()).select_from(User))).one():
            return None
    try:
        _, password = await create_user(
            sessions, FIRST_ADMIN, Role.ADMIN, must_change_password=True
        )
    except AccountError:  # another process created it first
        return None
    return password


async def count_admins(db: AsyncSession) -> int:
    query = select(func.count()).where(User.role == Role.ADMIN, col(User.disabled).is_(False))
    return int((await db.exec(query)).one())


# --------------------------------------------------------------------------- login throttle


@dataclass
class DbLoginThrottle:
    """Failed logins per key (``user:NAME``, ``ip:ADDR``), kept in the database.

    A key with ``max_failures`` or more failures within the last ``window_s`` seconds (a
    sliding window) is locked out: the next try must wait ``lockout_s`` after its latest
    failure, doubling with each further failure, at most ``backoff_max_s``. Tries refused
    during a lock-out are not counted. Because the failures are rows, the lock-out holds for
    every station process on the database and across restarts; a success clears the key.
    """

    sessions: Sessions
    max_failures: int
    window_s: float
    lockout_s: float
    backoff_max_s: float
    clock: Callable[[], datetime] = field(default=_now)
    keep_per_key: int = 64  # rows beyond these add nothing (the wait is capped long before)

    def _lock(self, failures: int) -> float:
        if failures < self.max_failures:
            return 0.0
        doublings = min(failures - self.max_failures, 40)
        return float(min(self.lockout_s * 2.0**doublings, self.backoff_max_s))

    async def retry_after(self, keys_: Sequence[str]) -> int:
        """Seconds to wait before the next try may be checked; 0 = go ahead."""
        now = self.clock()
        since = now - timedelta(seconds=self.window_s)
        query = (
            select(LoginFailure.key, func.count(), func.max(LoginFailure.at))
            .where(col(LoginFailure.key).in_(list(keys_)), col(LoginFailure.at) > since)
            .group_by(col(LoginFailure.key))
        )
        async with self.sessions() as db:
            rows = (await db.exec(query)).all()
        wait = 0.0
        for _key, count, latest in rows:
            if latest is None:
                continue
            if latest.tzinfo is None:  # SQLite hands aggregates back without the zone
                latest = latest.replace(tzinfo=UTC)
            until = latest + timedelta(seconds=self._lock(int(count)))
            wait = max(wait, (until - now).total_seconds())
        return math.ceil(wait) if wait > 0 else 0

    async def failed(self, keys_: Sequence[str]) -> None:
        now = self.clock()
        async with self.sessions() as db:
            await db.exec(
                delete(LoginFailure).where(
                    col(LoginFailure.at) <= now - timedelta(seconds=self.window_s)
                )
            )
            db.add_all(LoginFailure(key=k, at=now) for k in dict.fromkeys(keys_))
            await db.flush()
            for key in dict.fromkeys(keys_):
                keep = (
                    select(LoginFailure.id)
                    .where(LoginFailure.key == key)
                    .order_by(col(LoginFailure.at).desc(), col(LoginFailure.id).desc())
                    .limit(self.keep_per_key)
                )
                await db.exec(
                    delete(LoginFailure).where(
                        col(LoginFailure.key) == key,
                        col(LoginFailure.id).not_in(keep.scalar_subquery()),
                    )
                )
            await db.commit()

    async def succeeded(self, keys_: Sequence[str]) -> None:
        async with self.sessions() as db:
            await db.exec(delete(LoginFailure).where(col(LoginFailure.key).in_(list(keys_))))
            await db.commit()
