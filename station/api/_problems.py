"""RFC 9457 problem details: the one error format of the HTTP API.

Handlers raise ``ApiError`` (or let a domain error map to one); the middleware turns it, any
``web.HTTPException`` and any unexpected exception into ``application/problem+json``.
Validation problems carry ``errors: [{field, message}]`` naming each offending field.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class FieldProblem(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[FieldProblem] | None = None


class ApiError(Exception):
    """An error for the client: ``status``, a short ``title`` and a ``detail`` sentence."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str = "",
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title or _reason(status)
        self.detail = detail
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.extra = extra

    def response(self) -> web.Response:
        errors = [e.model_dump() for e in self.errors] if self.errors else None
        return problem(
            self.status, self.title, self.detail, headers=self.headers, errors=errors, **self.extra
        )


def field_error(field: str, message: str, status: int = 422) -> ApiError:
    """A validation problem about one named field."""
    return ApiError(
        status,
        f"{field}: {message}",
        title="Invalid request",
        errors=[FieldProblem(field=field, message=message)],
    )


def validation_problem(exc: ValidationError, prefix: str = "") -> ApiError:
    errors = [
        FieldProblem(
            field=prefix + (".".join(str(p) for p in err["loc"]) or "(body)"),
            message=str(err["msg"]).removeprefix("Value error, "),
        )
        for err in exc.errors(include_url=False)
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return ApiError(422, detail, title="Invalid request", errors=errors)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return web.json_response(body, status=status, content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == PROBLEM_JSON:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return problem(exc.status, exc.reason, exc.text or "", headers=headers)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the error was logged")
