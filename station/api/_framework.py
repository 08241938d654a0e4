"""The endpoint registry: each handler declares method, path, models, permission and docs.

One declaration drives routing, authentication, authorisation, CSRF, body and query parsing,
validation errors (422 naming the field), body size limits (413), response serialisation and the
OpenAPI document. See docs/api.md, "Adding an endpoint".

Path templates use ``{name}`` for a string and ``{name:int}`` for an id (digits, < 2**31).
A handler is called as ``handler(call)``, ``handler(call, body)``, ``handler(call, query)`` or
``handler(call, body, query)`` depending on what it declares, and returns the response model,
a ``Reply`` (status, ETag, headers), ``None`` (204) or any ``web.StreamResponse`` (raw).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ._auth import Principal, Unauthenticated, authenticate, csrf_ok
from ._problems import ApiError, field_error, validation_problem
from ._roles import Permission

__all__ = [
    "ID_MAX",
    "ApiRouter",
    "Call",
    "Endpoint",
    "ListQuery",
    "Page",
    "Reply",
    "etag_of",
    "respond",
]

API_PREFIX = "/api/v1"
ID_MAX = 2**31 - 1
Handler = Callable[..., Awaitable[Any]]
T = TypeVar("T")

_PARAM = re.compile(r"\{(?P<name>[a-z_][a-z0-9_]*)(?::(?P<kind>int))?\}")
_INT_RE = r"[0-9]{1,9}"  # stays below 2**31: no integer overflow in the database


@dataclass
class Reply:
    """A response with a chosen status, an ETag and/or extra headers."""

    body: BaseModel | None
    status: int | None = None  # None: the endpoint's declared status
    etag: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


class Page(BaseModel, Generic[T]):
    """One page of a list: ``items`` from ``offset``, ``total`` matching the filters."""

    items: list[T]
    total: int
    limit: int
    offset: int


class ListQuery(BaseModel):
    """Pagination shared by every list; subclass it to add filters."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=500, description="page size")
    offset: int = Field(default=0, ge=0, le=1_000_000, description="items to skip")


def etag_of(model: BaseModel) -> str:
    """A strong ETag of a representation (changes whenever any serialised field changes)."""
    digest = hashlib.sha256(model.model_dump_json().encode("utf-8")).hexdigest()[:32]
    return f'"{digest}"'


@dataclass(frozen=True)
class Upload:
    """An upload body other than the media upload's (``upload=True``), for the OpenAPI
    document: a multipart/form-data ``file`` part of ``file_type``, and the media types also
    accepted as the whole raw body."""

    file_type: str = "application/octet-stream"
    raw_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str  # OpenAPI path under API_PREFIX, e.g. /programmes/{programme_id}
    route_path: str  # aiohttp path
    handler: Handler
    summary: str
    tags: tuple[str, ...]
    permission: Permission | None  # None: public
    body: type[BaseModel] | None
    query: type[BaseModel] | None
    response: type[BaseModel] | None
    status: int
    path_params: dict[str, type]
    upload: bool | Upload
    media_type: str | None  # raw response media type (handler returns a StreamResponse)
    if_match: bool
    errors: tuple[int, ...]
    description: str
    allow_password_change_pending: bool

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


@dataclass
class Call:
    """What a handler gets besides its body and query: the request and who made it."""

    request: web.Request
    principal: Principal | None
    endpoint: Endpoint

    @property
    def app(self) -> web.Application:
        return self.request.app

    @property
    def user(self) -> Principal:
        if self.principal is None:
            raise ApiError(
                401, "log in first", code="login_required", headers={"WWW-Authenticate": "Bearer"}
            )
        return self.principal

    def path_str(self, name: str) -> str:
        return self.request.match_info[name]

    def path_int(self, name: str) -> int:
        return int(self.request.match_info[name])

    def check_if_match(self, current: str) -> None:
        """412 when the client sent ``If-Match`` and the resource changed since it read it."""
        sent = self.request.headers.get("If-Match")
        if sent is None or sent.strip() == "*":
            return
        tags = [t.strip().removeprefix("W/") for t in sent.split(",")]
        if current not in tags:
            raise ApiError(
                412,
                "the resource changed since you read it: reload and try again",
                title="Precondition Failed",
                code="resource_changed",
                current_etag=current,
            )


class ApiRouter:
    """A group of endpoints of one area (one OpenAPI tag)."""

    def __init__(self, tag: str, description: str = "") -> None:
        self.tag = tag
        self.description = description
        self.endpoints: list[Endpoint] = []

    def route(
        self,
        method: str,
        path: str,
        *,
        summary: str,
        permission: Permission | None,
        body: type[BaseModel] | None = None,
        query: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        upload: bool | Upload = False,
        media_type: str | None = None,
        if_match: bool = False,
        errors: Sequence[int] = (),
        description: str = "",
        allow_password_change_pending: bool = False,
    ) -> Callable[[Handler], Handler]:
        params: dict[str, type] = {}

        def to_route(match: re.Match[str]) -> str:
            kind = int if match["kind"] else str
            params[match["name"]] = kind
            return f"{{{match['name']}:{_INT_RE}}}" if kind is int else f"{{{match['name']}}}"

        route_path = _PARAM.sub(to_route, path)
        doc_path = _PARAM.sub(lambda m: f"{{{m['name']}}}", path)

        def register(handler: Handler) -> Handler:
            self.endpoints.append(
                Endpoint(
                    method=method.upper(),
                    path=doc_path,
                    route_path=route_path,
                    handler=handler,
                    summary=summary,
                    tags=(self.tag,),
                    permission=permission,
                    body=body,
                    query=query,
                    response=response,
                    status=status if response is not None or media_type else 204,
                    path_params=params,
                    upload=upload,
                    media_type=media_type,
                    if_match=if_match,
                    errors=tuple(errors),
                    description=description or (handler.__doc__ or "").strip(),
                    allow_password_change_pending=allow_password_change_pending,
                )
            )
            return handler

        return register

    def get(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PATCH", path, **kw)

    def put(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **kw)


# --------------------------------------------------------------------------- dispatch


async def _principal_for(endpoint: Endpoint, request: web.Request) -> Principal | None:
    if endpoint.permission is None:
        return None
    try:
        principal = await authenticate(request)
    except Unauthenticated as exc:
        raise ApiError(
            401, str(exc), code="login_required", headers={"WWW-Authenticate": "Bearer"}
        ) from None
    if principal is None:
        raise ApiError(
            401,
            "log in or send a bearer token",
            code="login_required",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not csrf_ok(request, principal):
        raise ApiError(
            403,
            "missing or wrong X-CSRF-Token header",
            title="CSRF check failed",
            code="csrf_failed",
        )
    if principal.must_change_password and not endpoint.allow_password_change_pending:
        raise ApiError(
            403,
            "change your one-time password first",
            title="Password change required",
            code="password_change_required",
        )
    if endpoint.permission not in principal.permissions:
        raise ApiError(
            403,
            f"your role ({principal.role}) may not do this",
            code="role_forbidden",
            role=str(principal.role),
        )
    return principal


def _no_nul(request: web.Request) -> None:
    """NUL characters are refused everywhere (PostgreSQL cannot store them in text)."""
    for where, values in (("path", request.match_info), ("query", request.query)):
        for name, value in values.items():
            if "\x00" in value:
                raise field_error(name, f"NUL character in {where} parameter", code="nul_character")


def _parse_query(endpoint: Endpoint, request: web.Request) -> BaseModel | None:
    _no_nul(request)
    if endpoint.query is None:
        return None
    try:
        return endpoint.query.model_validate(dict(request.query))
    except ValidationError as exc:
        raise validation_problem(exc) from None


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The whole body, refusing more than ``limit`` bytes with 413 without reading it all."""
    too_large = ApiError(
        413,
        f"request body over {limit} bytes",
        title="Content Too Large",
        code="body_too_large",
        limit_bytes=limit,
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(1 << 16):
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _parse_body(endpoint: Endpoint, request: web.Request, limit: int) -> BaseModel | None:
    if endpoint.body is None:
        return None
    raw = await read_limited(request, limit)
    if request.content_type != "application/json":
        raise ApiError(
            415,
            "send the body as application/json",
            title="Unsupported Media Type",
            code="json_required",
        )
    if b"\\u0000" in raw or b"\x00" in raw:
        raise ApiError(
            422, "NUL characters are not allowed", title="Invalid request", code="nul_character"
        )

    try:
        return endpoint.body.model_validate_json(raw or b"null")
    except ValidationError as exc:
        raise validation_problem(exc) from None


def respond(body: BaseModel, status: int = 200, etag: str | None = None) -> web.Response:
    """A JSON response a handler can still change (e.g. set a cookie) before returning it."""
    response = web.Response(
        text=body.model_dump_json(), status=status, content_type="application/json"
    )
    if etag:
        response.headers["ETag"] = etag
    return response


def _render(endpoint: Endpoint, result: Any) -> web.StreamResponse:
    if isinstance(result, web.StreamResponse):
        return result
    reply = result if isinstance(result, Reply) else Reply(result)
    status = reply.status or endpoint.status
    headers = dict(reply.headers)
    if reply.etag:
        headers["ETag"] = reply.etag
    if reply.body is None:
        return web.Response(status=204 if status == 200 else status, headers=headers)
    response = respond(reply.body, status)
    response.headers.update(headers)
    return response


def view_for(endpoint: Endpoint, json_limit: Callable[[web.Application], int]) -> Handler:
    async def view(request: web.Request) -> web.StreamResponse:
        principal = await _principal_for(endpoint, request)
        args: list[Any] = [Call(request, principal, endpoint)]
        query = _parse_query(endpoint, request)
        body = await _parse_body(endpoint, request, json_limit(request.app))
        if body is not None:
            args.append(body)
        if query is not None:
            args.append(query)
        return _render(endpoint, await endpoint.handler(*args))

    view.__name__ = endpoint.operation_id
    return view
