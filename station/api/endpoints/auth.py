"""Log in and out, who am I, own password; API tokens."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from station import _keys as keys
from station.db import ApiToken, Role, User

from .._accounts import (
    AccountError,
    DbLoginThrottle,
    create_token,
    find_user,
    revoke_token,
    set_password,
)
from .._audit import audit
from .._auth import (
    Principal,
    client_ip,
    end_session,
    end_sessions_of,
    set_session_cookie,
    start_session,
)
from .._framework import ApiRouter, Call, ListQuery, Page, respond
from .._paging import paginate
from .._problems import ApiError, field_error
from .._roles import Permission, permissions_of
from .._secrets import verify_password
from ._common import Id, sessions_of

router = ApiRouter("auth", "Sessions for the console, API tokens for scripts")


class Login(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class Me(BaseModel):
    user_id: int
    username: str
    role: Role
    permissions: list[str]
    via: str
    must_change_password: bool
    csrf_token: str | None = Field(
        default=None, description="send it as X-CSRF-Token on unsafe requests (sessions only)"
    )
    expires_at: datetime | None = None


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=256)
    new_password: str = Field(min_length=1, max_length=256)


def _throttle(call: Call) -> DbLoginThrottle:
    """The login throttle: failures live in the database (every process, across restarts)."""
    auth = call.app[keys.SETTINGS].auth
    return DbLoginThrottle(
        sessions_of(call),
        max_failures=auth.login_max_failures,
        window_s=auth.login_window_s,
        lockout_s=auth.login_lockout_s,
        backoff_max_s=auth.login_backoff_max_s,
    )


def _me(p: Principal, expires_at: datetime | None = None) -> Me:
    return Me(
        user_id=p.user_id,
        username=p.username,
        role=p.role,
        permissions=sorted(str(x) for x in p.permissions),
        via=p.via,
        must_change_password=p.must_change_password,
        csrf_token=p.csrf_token or None,
        expires_at=expires_at,
    )


@router.post(
    "/auth/login",
    summary="Log in (starts a console session)",
    permission=None,
    body=Login,
    response=Me,
    errors=(401, 429),
)
async def login(call: Call, body: Login) -> web.StreamResponse:
    """Sets the session cookie and returns the CSRF token. Failed tries are throttled per
    username and per client address (429 with Retry-After)."""
    throttle = _throttle(call)
    name = body.username.strip().lower()
    keys_ = (f"user:{name}", f"ip:{client_ip(call.request)}")
    wait = await throttle.retry_after(keys_)
    if wait:
        await audit(call, "login.throttled", f"user:{name}", {"retry_after_s": wait})
        raise ApiError(
            429,
            f"too many failed logins: wait {wait} s",
            title="Too Many Requests",
            code="login_throttled",
            headers={"Retry-After": str(wait)},
            retry_after_s=wait,
        )
    user = await find_user(sessions_of(call), name)
    ok = await verify_password(user.password_hash if user else None, body.password)
    if not ok or user is None or user.disabled or user.id is None:
        await throttle.failed(keys_)
        reason = "disabled" if ok else "bad credentials"
        await audit(call, "login.failed", f"user:{name}", {"reason": reason})
        raise ApiError(401, "wrong username or password", title="Unauthorized", code="login_wrong")
    await throttle.succeeded(keys_)
    token, csrf, expires = await start_session(call.request, user)
    call.principal = Principal(
        user_id=user.id,
        username=user.username,
        role=user.role,
        permissions=permissions_of(user.role),
        via="session",
        must_change_password=user.must_change_password,
        csrf_token=csrf,
    )
    await audit(call, "login", f"user:{user.username}")
    response = respond(_me(call.principal, expires))
    set_session_cookie(call.request, response, token, expires)
    return response


@router.post(
    "/auth/logout",
    summary="Log out (ends this console session)",
    permission=Permission.READ,
    allow_password_change_pending=True,
)
async def logout(call: Call) -> web.StreamResponse:
    await end_session(call.request, call.user)
    await audit(call, "logout", f"user:{call.user.username}")
    response = web.Response(status=204)
    response.del_cookie("loaxa_session", path="/")
    return response


@router.get(
    "/auth/me",
    summary="Who is calling, with what permissions",
    permission=Permission.READ,
    response=Me,
    allow_password_change_pending=True,
)
async def me(call: Call) -> Me:
    return _me(call.user)


@router.post(
    "/auth/password",
    summary="Change my password",
    permission=Permission.READ,
    body=PasswordChange,
    allow_password_change_pending=True,
    errors=(429,),
)
async def change_password(call: Call, body: PasswordChange) -> None:
    """Needs the current password; ends every session of the user (log in again)."""
    if call.user.via == "token":
        raise ApiError(
            403,
            "log in to change your password (not with an API token)",
            code="password_change_needs_session",
        )
    sessions = sessions_of(call)
    throttle = _throttle(call)
    keys_ = (f"password:{call.user.username}",)
    wait = await throttle.retry_after(keys_)
    if wait:
        raise ApiError(
            429,
            f"wait {wait} s",
            code="login_throttled",
            headers={"Retry-After": str(wait)},
            retry_after_s=wait,
        )
    async with sessions() as db:
        user = await db.get(User, call.user.user_id)
    if user is None or not await verify_password(user.password_hash, body.current_password):
        await throttle.failed(keys_)
        await audit(call, "password.change_failed", f"user:{call.user.username}")
        raise field_error("current_password", "wrong password", status=403, code="password_wrong")
    try:
        await set_password(sessions, call.user.user_id, body.new_password)
    except AccountError as exc:
        raise field_error("new_password", exc.message, code=exc.code, params=exc.params) from None
    await end_sessions_of(call.request, call.user.user_id)
    await audit(call, "password.change", f"user:{call.user.username}")


# --------------------------------------------------------------------------- tokens


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=64, description="what uses it, e.g. 'upstream'")
    role: Role | None = Field(default=None, description="scope; default: your role")


class TokenOut(BaseModel):
    id: int
    user_id: int
    name: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="the secret: shown only in this response")


class TokenQuery(ListQuery):
    user_id: Id | None = Field(default=None, description="admins: another user's tokens")
    include_revoked: bool = False


def _token_out(t: ApiToken) -> TokenOut:
    return TokenOut.model_validate(t, from_attributes=True)


@router.get(
    "/tokens",
    summary="List API tokens (mine; admins any user's)",
    permission=Permission.READ,
    query=TokenQuery,
    response=Page[TokenOut],
)
async def list_tokens(call: Call, query: TokenQuery) -> Page[TokenOut]:
    owner = query.user_id or call.user.user_id
    if owner != call.user.user_id and not call.user.can(Permission.USERS_MANAGE):
        raise ApiError(403, "only admins see other users' tokens", code="tokens_admin_only")
    stmt = select(ApiToken).where(ApiToken.user_id == owner).order_by(col(ApiToken.id))
    if not query.include_revoked:
        stmt = stmt.where(col(ApiToken.revoked_at).is_(None))
    async with sessions_of(call)() as db:
        return await paginate(db, stmt, query, _token_out)


@router.post(
    "/tokens",
    summary="Create an API token for myself (the secret is shown once)",
    permission=Permission.READ,
    body=TokenCreate,
    response=TokenCreated,
    status=201,
)
async def create_api_token(call: Call, body: TokenCreate) -> TokenCreated:
    if call.user.via == "token":
        raise ApiError(
            403, "log in to create tokens (a token cannot mint tokens)", code="token_needs_session"
        )
    async with sessions_of(call)() as db:
        user = await db.get(User, call.user.user_id)
    assert user is not None
    try:
        token, secret = await create_token(sessions_of(call), user, body.name, body.role)
    except AccountError as exc:
        raise field_error(exc.field, exc.message, code=exc.code, params=exc.params) from None
    await audit(call, "token.create", f"token:{token.id}", {"name": token.name, "role": token.role})
    return TokenCreated(**_token_out(token).model_dump(), token=secret)


@router.delete(
    "/tokens/{token_id:int}",
    summary="Revoke an API token",
    permission=Permission.READ,
)
async def revoke_api_token(call: Call) -> None:
    token_id = call.path_int("token_id")
    async with sessions_of(call)() as db:
        token = await db.get(ApiToken, token_id)
    if token is None or (
        token.user_id != call.user.user_id and not call.user.can(Permission.USERS_MANAGE)
    ):
        raise ApiError(404, "no such token", code="token_not_found")

    await revoke_token(sessions_of(call), token_id)
    await audit(call, "token.revoke", f"token:{token_id}")
