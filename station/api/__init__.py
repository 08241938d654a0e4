"""The REST API under ``/api/v1``: framework, accounts, sessions, tokens, audit.

Adding an endpoint (see docs/api.md)::

    router = ApiRouter("zones", "Zones of villages")

    @router.post("/zones", summary="Create a zone", permission=Permission.CLUSTERS_WRITE,
                 body=ZoneCreate, response=ZoneOut, status=201)
    async def create_zone(call: Call, body: ZoneCreate) -> ZoneOut:
        ...
        await audit(call, "zone.create", f"zone:{zone.id}")
        return ZoneOut(...)

then list ``router`` in ``station/api/endpoints/__init__.py`` ROUTERS. Routing, auth, CSRF,
validation (422 naming the field), size limits (413), problem+json and the OpenAPI document
follow from the declaration.
"""

from ._accounts import (
    AccountError,
    DbLoginThrottle,
    create_token,
    create_user,
    ensure_first_admin,
    find_user,
    normalise_username,
    revoke_token,
    set_password,
)
from ._approval import confirm_second_person, is_approved, programme_version, require_approved
from ._audit import Actor, audit, audit_csv, audit_in
from ._auth import (
    CSRF_HEADER,
    SESSION_COOKIE,
    Principal,
    Unauthenticated,
    authenticate,
)
from ._framework import (
    API_PREFIX,
    ApiRouter,
    Call,
    Endpoint,
    ListQuery,
    Page,
    Reply,
    etag_of,
    read_limited,
    respond,
)
from ._openapi import build_openapi
from ._paging import paginate
from ._problems import ApiError, FieldProblem, Problem, field_error, problem, problem_middleware
from ._roles import ROLE_PERMISSIONS, Permission, Role, permissions_of
from ._setup import OPENAPI_PATH, setup_api

__all__ = [
    "API_PREFIX",
    "CSRF_HEADER",
    "OPENAPI_PATH",
    "ROLE_PERMISSIONS",
    "SESSION_COOKIE",
    "AccountError",
    "Actor",
    "ApiError",
    "ApiRouter",
    "Call",
    "DbLoginThrottle",
    "Endpoint",
    "FieldProblem",
    "ListQuery",
    "Page",
    "Permission",
    "Principal",
    "Problem",
    "Reply",
    "Role",
    "Unauthenticated",
    "audit",
    "audit_csv",
    "audit_in",
    "authenticate",
    "build_openapi",
    "confirm_second_person",
    "create_token",
    "create_user",
    "ensure_first_admin",
    "etag_of",
    "field_error",
    "find_user",
    "is_approved",
    "normalise_username",
    "paginate",
    "permissions_of",
    "problem",
    "problem_middleware",
    "programme_version",
    "read_limited",
    "require_approved",
    "respond",
    "revoke_token",
    "set_password",
    "setup_api",
]
