"""Routes of the console: page shells, language choice, static assets."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from aiohttp import web

from station import _keys as keys
from station.api import API_PREFIX, Principal, Unauthenticated, authenticate

from ._i18n import LANG_COOKIE, LANGUAGES, Catalogue, language_of
from ._screens import SCREENS, Screen

__all__ = ["CONSOLE_PREFIX", "setup_console"]

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
_HERE = Path(__file__).parent
_LANG_COOKIE_DAYS = 365
_STATIC = "console_static"
# No inline script or style, nothing from another origin (the station may sit offline).
_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "media-src 'self' blob:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


@dataclass(frozen=True)
class Console:
    templates: jinja2.Environment
    catalogue: Catalogue


CONSOLE = web.AppKey("console", Console)


def setup_console(app: web.Application) -> None:
    """Mount the console under /console (and redirect / to it)."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app[CONSOLE] = Console(templates, Catalogue.load())
    app.router.add_get("/", _to_console)
    app.router.add_get(CONSOLE_PREFIX, _to_console)
    app.router.add_get(f"{CONSOLE_PREFIX}/login", login_page)
    app.router.add_get(f"{CONSOLE_PREFIX}/password", password_page)
    app.router.add_get(f"{CONSOLE_PREFIX}/lang/{{lang}}", choose_language)
    app.router.add_static(
        f"{CONSOLE_PREFIX}/static", _HERE / "static", name=_STATIC, append_version=True
    )
    for screen in SCREENS:
        app.router.add_get(screen.path, _screen_view(screen))


async def _to_console(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound(f"{CONSOLE_PREFIX}/")


def _safe_next(value: str | None) -> str:
    """Only paths of the console itself (no open redirect)."""
    if value and value.startswith(f"{CONSOLE_PREFIX}/") and "//" not in value and "\\" not in value:
        return value
    return f"{CONSOLE_PREFIX}/"


async def _principal(request: web.Request) -> Principal | None:
    try:
        principal = await authenticate(request)
    except Unauthenticated:
        return None
    return principal if principal is not None and principal.via == "session" else None


def _login_redirect(request: web.Request) -> web.HTTPFound:
    return web.HTTPFound(f"{CONSOLE_PREFIX}/login?next={quote(request.path_qs, safe='/')}")


def render(
    request: web.Request,
    template: str,
    principal: Principal | None,
    *,
    current: Screen | None = None,
    status: int = 200,
    **extra: Any,
) -> web.Response:
    console = request.app[CONSOLE]
    lang = language_of(request)
    settings = request.app[keys.SETTINGS]

    def t(key: str, **params: object) -> str:
        return console.catalogue.text(lang, key, **params)

    def asset(name: str) -> str:
        return str(request.app.router[_STATIC].url_for(filename=name))

    menu = [
        s
        for s in SCREENS
        if principal is not None
        and not principal.must_change_password  # nothing else works until it is changed
        and s.permission in principal.permissions
    ]
    context = {
        "t": t,
        "asset": asset,
        "lang": lang,
        "languages": LANGUAGES,
        "strings_json": console.catalogue.for_script(lang),
        "user": principal,
        "permissions": sorted(str(p) for p in principal.permissions) if principal else [],
        "csrf": principal.csrf_token if principal else "",
        "menu": menu,
        "current": current,
        "here": request.path_qs,
        "station_name": settings.station.name or settings.station.id,
        "timezone": settings.station.timezone,
        "api": API_PREFIX,
        "max_upload_mb": settings.media.max_upload_mb,
        "dispatch_lead_s": settings.scheduler.dispatch_lead_s,
        "emergency_two_person": settings.auth.emergency_two_person,
        **extra,
    }
    html = console.templates.get_template(template).render(context)
    response = web.Response(text=html, content_type="text/html", charset="utf-8", status=status)
    response.headers.update(
        {
            "Content-Security-Policy": _CSP,
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin",
        }
    )
    return response


async def login_page(request: web.Request) -> web.StreamResponse:
    principal = await _principal(request)
    target = _safe_next(request.query.get("next"))
    if principal is not None and not principal.must_change_password:
        raise web.HTTPFound(target)
    return render(request, "login.html", None, next=target)


async def password_page(request: web.Request) -> web.StreamResponse:
    principal = await _principal(request)
    if principal is None:
        raise _login_redirect(request)
    return render(request, "password.html", principal, forced=principal.must_change_password)


async def choose_language(request: web.Request) -> web.StreamResponse:
    lang = request.match_info["lang"]
    if lang not in LANGUAGES:
        raise web.HTTPNotFound()
    response = web.HTTPFound(_safe_next(request.query.get("next")))
    response.set_cookie(
        LANG_COOKIE,
        lang,
        max_age=_LANG_COOKIE_DAYS * 86400,
        path="/",
        samesite="Lax",
        httponly=True,
    )
    raise response


def _screen_view(screen: Screen) -> Any:
    async def view(request: web.Request) -> web.StreamResponse:
        principal = await _principal(request)
        if principal is None:
            raise _login_redirect(request)
        if principal.must_change_password:
            raise web.HTTPFound(f"{CONSOLE_PREFIX}/password")
        if screen.permission not in principal.permissions:
            return render(request, "forbidden.html", principal, current=screen, status=403)
        return render(request, screen.template, principal, current=screen, script=screen.script)

    view.__name__ = f"console_{screen.name or 'dashboard'}"
    return view
