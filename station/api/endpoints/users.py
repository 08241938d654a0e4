"""Accounts (admins only): list, create, read, change, reset password."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station.db import Role, User

from .._accounts import USERNAME_PATTERN, AccountError, count_admins, create_user, set_password
from .._audit import audit, audit_in
from .._auth import end_sessions_of
from .._framework import ApiRouter, Call, ListQuery, Page, Reply, etag_of
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission
from ._common import not_found, sessions_of

router = ApiRouter("users", "Local accounts and roles")


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    disabled: bool
    must_change_password: bool
    version: int
    created_at: datetime
    last_login_at: datetime | None


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(pattern=USERNAME_PATTERN)
    role: Role
    display_name: str = Field(default="", max_length=200)
    password: str | None = Field(
        default=None, min_length=10, max_length=256, description="omit to generate one"
    )


class UserCreated(UserOut):
    password: str | None = Field(description="the generated password, shown only here")


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: str | None = Field(default=None, max_length=200)
    role: Role | None = None
    disabled: bool | None = None


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: str | None = Field(
        default=None, min_length=10, max_length=256, description="omit to generate one"
    )


class PasswordIssued(BaseModel):
    password: str | None = Field(description="the generated one-time password, shown only here")


class UserQuery(ListQuery):
    role: Role | None = None
    disabled: bool | None = None


def _out(user: User) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


async def _load(call: Call) -> User:
    async with sessions_of(call)() as db:
        user = await db.get(User, call.path_int("user_id"))
    if user is None:
        raise not_found("user")
    return user


@router.get(
    "/users",
    summary="List users",
    permission=Permission.USERS_MANAGE,
    query=UserQuery,
    response=Page[UserOut],
)
async def list_users(call: Call, query: UserQuery) -> Page[UserOut]:
    stmt = select(User).order_by(col(User.username))
    if query.role is not None:
        stmt = stmt.where(User.role == query.role)
    if query.disabled is not None:
        stmt = stmt.where(User.disabled == query.disabled)
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _out)


@router.post(
    "/users",
    summary="Create a user",
    permission=Permission.USERS_MANAGE,
    body=UserCreate,
    response=UserCreated,
    status=201,
    errors=(409,),
)
async def create_user_endpoint(call: Call, body: UserCreate) -> UserCreated:
    """Without a password, one is generated and returned once; the user must change it."""
    try:
        user, generated = await create_user(
            sessions_of(call),
            body.username,
            body.role,
            body.password,
            display_name=body.display_name,
            must_change_password=body.password is None,
        )
    except AccountError as exc:
        raise field_error(
            exc.field, exc.message, status=exc.status, code=exc.code, params=exc.params
        ) from None
    await audit(call, "user.create", f"user:{user.username}", {"role": user.role})
    return UserCreated(**_out(user).model_dump(), password=generated)


@router.get(
    "/users/{user_id:int}",
    summary="Read a user",
    permission=Permission.USERS_MANAGE,
    response=UserOut,
)
async def get_user(call: Call) -> Reply:
    out = _out(await _load(call))
    return Reply(out, etag=etag_of(out))


@router.patch(
    "/users/{user_id:int}",
    summary="Change a user's name, role or disabled flag",
    permission=Permission.USERS_MANAGE,
    body=UserPatch,
    response=UserOut,
    if_match=True,
    errors=(409,),
)
async def patch_user(call: Call, body: UserPatch) -> Reply:
    """Send the ETag of your read as If-Match: a concurrent change gives 412, not a lost
    update. Disabling a user ends their sessions; the last active admin cannot be demoted."""
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    async with sessions_of(call)() as db:
        user = await db.get(User, call.path_int("user_id"))
        if user is None:
            raise not_found("user")
        call.check_if_match(etag_of(_out(user)))
        was_admin = user.role == Role.ADMIN and not user.disabled
        for key, value in changes.items():
            setattr(user, key, value)
        if was_admin and (user.role != Role.ADMIN or user.disabled) and await count_admins(db) < 1:
            raise ApiError(
                409, "the last active admin cannot be demoted or disabled", code="last_admin"
            )

        user.version += 1
        db.add(user)
        audit_in(db, call, "user.update", f"user:{user.username}", changes)
        await db.commit()
        await db.refresh(user)
    if user.disabled or "role" in changes:
        assert user.id is not None
        await end_sessions_of(call.request, user.id)
    out = _out(user)
    return Reply(out, etag=etag_of(out))


@router.post(
    "/users/{user_id:int}/password",
    summary="Reset a user's password (one-time: they must change it)",
    permission=Permission.USERS_MANAGE,
    body=PasswordReset,
    response=PasswordIssued,
)
async def reset_password(call: Call, body: PasswordReset) -> PasswordIssued:
    from .._secrets import generate_password

    user = await _load(call)
    assert user.id is not None
    password = body.password or generate_password()
    await set_password(sessions_of(call), user.id, password, must_change=True)
    await end_sessions_of(call.request, user.id)
    await audit(call, "user.password_reset", f"user:{user.username}")
    return PasswordIssued(password=None if body.password else password)
