"""Account operations shared by the REST API and the CLI: users, passwords, API tokens.

Each is one short transaction. Errors a user can cause raise ``AccountError`` naming the field.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, func, select
from sqlmodel.ext.asyncio.session import AsyncSession

from station.db import ApiToken, Role, User

from ._roles import permissions_of
from ._secrets import (
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

    def __init__(self, field: str, message: str, status: int = 422) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


def _now() -> datetime:
    return datetime.now(UTC)


def normalise_username(name: str) -> str:
    username = name.strip().lower()
    if not _USERNAME.match(username):
        raise AccountError("username", "2-64 characters: lower-case letters, digits, '_', '.', '-'")
    return username


def _policy(password: str, field: str = "password") -> None:
    try:
        check_password_policy(password)
    except PasswordPolicyError as exc:
        raise AccountError(field, str(exc)) from None


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
            raise AccountError("username", f"{name!r} is taken", status=409) from None
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
            raise AccountError("user", "no such user", status=404)
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
        raise AccountError("role", f"a {user.role} cannot create a {scope} token")
    if not name.strip() or len(name) > 64:
        raise AccountError("name", "1-64 characters")
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
