"""Authentication and authorisation of the REST API, against a running station.

Sessions (cookie, CSRF, idle expiry, logout), login throttling, bearer tokens (scope,
revocation), roles (403), the one-time first admin password.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest
from api_support import PASSWORD, assert_problem, client, running, settings_for, user_with_token
from sqlmodel import select

from station import _keys as keys
from station.api import create_user
from station.config import Settings
from station.db import AuditEntry, Role, WebSession


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id, login_max_failures=3)


async def test_unauthenticated_is_401_and_openapi_is_public(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        for method, path in [
            ("GET", "/clusters"),
            ("POST", "/clusters"),
            ("GET", "/users"),
            ("GET", "/audit"),
            ("GET", "/stats"),
            ("POST", "/media"),
        ]:
            status, body, response = await api.call(method, path)
            assert_problem(status, body, 401)
            assert response.content_type == "application/problem+json"
            assert response.headers["WWW-Authenticate"] == "Bearer"
        status, body, _ = await api.call("GET", "/clusters", headers={"Authorization": "Bearer x"})
        assert_problem(status, body, 401)
        status, body, _ = await api.call("GET", "/clusters", headers={"Authorization": "Basic x"})
        assert_problem(status, body, 401)
        status, doc, _ = await api.call("GET", "/api/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.1")


async def test_session_cookie_csrf_and_logout(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        await create_user(station.app[keys.SESSIONS], "tech1", Role.TECHNICIAN, PASSWORD)
        status, body, response = await api.call(
            "POST", "/auth/login", {"username": "Tech1", "password": PASSWORD}
        )  # usernames are case-insensitive
        assert status == 200, body
        assert body["username"] == "tech1" and body["via"] == "session"
        assert "clusters:write" in body["permissions"] and body["csrf_token"]
        api.csrf = body["csrf_token"]
        # the cookie is HttpOnly and SameSite=Strict (Secure only over https)
        cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("loaxa_session=") and "HttpOnly" in cookie, cookie
        assert "SameSite=Strict" in cookie and "Secure" not in cookie, cookie

        status, me, _ = await api.call("GET", "/auth/me")
        assert status == 200 and me["csrf_token"] == body["csrf_token"]

        new = {"id": "C01", "name": "Thôn 1"}
        status, body, _ = await api.call("POST", "/clusters", new, headers={"X-CSRF-Token": ""})
        assert_problem(status, body, 403)
        assert "CSRF" in body["title"]
        status, body, _ = await api.call("POST", "/clusters", new, headers={"X-CSRF-Token": "no"})
        assert_problem(status, body, 403)
        status, body, _ = await api.call("POST", "/clusters", new)  # with the right token
        assert status == 201, body

        status, _, _ = await api.call("POST", "/auth/logout")
        assert status == 204
        status, body, _ = await api.call("GET", "/clusters")
        assert_problem(status, body, 401)

        async with station.app[keys.SESSIONS]() as db:
            actions = [e.action for e in (await db.exec(select(AuditEntry))).all()]
        assert {"login", "cluster.register", "logout"} <= set(actions)


async def test_idle_session_expires(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        sessions = station.app[keys.SESSIONS]
        await create_user(sessions, "viewer1", Role.VIEWER, PASSWORD)
        assert (await api.login("viewer1"))[0] == 200
        assert (await api.call("GET", "/clusters"))[0] == 200
        async with sessions() as db:
            row = (await db.exec(select(WebSession))).one()
            row.last_seen_at -= timedelta(minutes=settings.auth.session_idle_minutes + 1)
            db.add(row)
            await db.commit()
        status, body, _ = await api.call("GET", "/clusters")
        assert_problem(status, body, 401)
        async with sessions() as db:
            assert (await db.exec(select(WebSession))).all() == []


async def test_failed_logins_are_throttled_and_audited(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        await create_user(station.app[keys.SESSIONS], "bt1", Role.BROADCASTER, PASSWORD)
        for _ in range(settings.auth.login_max_failures):
            status, body = await api.login("bt1", "wrong password!")
            assert_problem(status, body, 401)
        status, body = await api.login("bt1", PASSWORD)  # even the right password waits
        assert_problem(status, body, 429)
        _, _, response = await api.call(
            "POST", "/auth/login", {"username": "bt1", "password": PASSWORD}
        )
        assert int(response.headers["Retry-After"]) >= 1
        # unknown users are throttled the same way (no user enumeration)
        status, body = await api.login("nobody", "whatever it is")
        assert_problem(status, body, 429)  # same client address

        async with station.app[keys.SESSIONS]() as db:
            entries = (await db.exec(select(AuditEntry))).all()
        failed = [e for e in entries if e.action == "login.failed"]
        assert len(failed) == settings.auth.login_max_failures
        assert failed[0].target == "user:bt1" and failed[0].ip == "127.0.0.1"
        assert any(e.action == "login.throttled" for e in entries)


async def test_roles_are_enforced(settings: Settings) -> None:
    async with running(settings) as station:
        viewer = await user_with_token(station, "viewer1", Role.VIEWER)
        tech = await user_with_token(station, "tech1", Role.TECHNICIAN)
        bcast = await user_with_token(station, "bcast1", Role.BROADCASTER)
        approver = await user_with_token(station, "lead1", Role.APPROVER)
        forbidden = [
            (viewer, "POST", "/clusters", {"id": "C9"}),
            (viewer, "POST", "/schedules", {}),
            (tech, "POST", "/programmes", {"title": "x", "media_ids": [1]}),
            (bcast, "GET", "/users", None),
            (bcast, "GET", "/audit", None),
            (bcast, "POST", "/programmes/1/approvals", {"version": 1}),
            (approver, "POST", "/programmes", {"title": "x", "media_ids": [1]}),
            (approver, "POST", "/users", {"username": "x1", "role": "admin"}),
        ]
        for token, method, path, body in forbidden:
            async with client(station, token) as api:
                status, problem, _ = await api.call(method, path, body)
                assert_problem(status, problem, 403)
        async with client(station, viewer) as api:
            assert (await api.call("GET", "/clusters"))[0] == 200
        async with client(station, approver) as api:
            assert (await api.call("GET", "/audit"))[0] == 200
        async with client(station, tech) as api:  # bearer: no CSRF token needed
            assert (await api.call("POST", "/clusters", {"id": "C9"}))[0] == 201


async def test_api_tokens_scope_and_revocation(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        await create_user(station.app[keys.SESSIONS], "root1", Role.ADMIN, PASSWORD)
        await create_user(station.app[keys.SESSIONS], "tech1", Role.TECHNICIAN, PASSWORD)
        assert (await api.login("root1"))[0] == 200
        status, created, _ = await api.call("POST", "/tokens", {"name": "up", "role": "viewer"})
        assert status == 201 and created["token"].startswith("lxa_"), created
        status, listed, _ = await api.call("GET", "/tokens")
        assert [t["name"] for t in listed["items"]] == ["up"] and "token" not in listed["items"][0]

        async with client(station, created["token"]) as script:
            assert (await script.call("GET", "/clusters"))[0] == 200
            status, body, _ = await script.call("POST", "/clusters", {"id": "C1"})
            assert_problem(status, body, 403)  # a viewer-scoped token of an admin
            status, body, _ = await script.call("POST", "/tokens", {"name": "more"})
            assert_problem(status, body, 403)  # tokens cannot mint tokens
            change = {"current_password": PASSWORD, "new_password": "x" * 12}
            status, body, _ = await script.call("POST", "/auth/password", change)
            assert_problem(status, body, 403)  # nor change their user's password

        assert (await api.call("DELETE", f"/tokens/{created['id']}"))[0] == 204
        async with client(station, created["token"]) as script:
            status, body, _ = await script.call("GET", "/clusters")
            assert_problem(status, body, 401)

        async with client(station) as tech:
            assert (await tech.login("tech1"))[0] == 200
            status, body, _ = await tech.call("POST", "/tokens", {"name": "x", "role": "admin"})
            assert_problem(status, body, 422, field="role")
            status, body, _ = await tech.call("DELETE", f"/tokens/{created['id']}")
            assert_problem(status, body, 404)  # not theirs


async def test_first_admin_gets_a_one_time_password(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="station.api._setup")
    async with running(settings) as station, client(station) as api:
        record = next(r for r in caplog.records if "one-time password" in r.getMessage())
        username, password = record.args[0], record.args[1]  # type: ignore[index]
        assert username == "admin" and len(password) >= 12
        status, body = await api.login("admin", password)
        assert status == 200 and body["must_change_password"], body
        status, body, _ = await api.call("GET", "/clusters")
        assert_problem(status, body, 403)
        assert body["title"] == "Password change required"
        change = {"current_password": password, "new_password": "short"}
        status, body, _ = await api.call("POST", "/auth/password", change)
        assert_problem(status, body, 422, field="new_password")
        change["new_password"] = "a much longer passphrase"
        assert (await api.call("POST", "/auth/password", change))[0] == 204
        assert (await api.login("admin", "a much longer passphrase"))[0] == 200
        assert (await api.call("GET", "/users"))[0] == 200
    async with running(settings):  # users exist now: no new password is printed
        assert sum("one-time password" in r.getMessage() for r in caplog.records) == 1


async def test_cookie_is_secure_behind_https(settings: Settings) -> None:
    https = settings.model_copy(
        update={"http": settings.http.model_copy(update={"public_base_url": "https://dai.example"})}
    )
    async with running(https) as station, client(station) as api:
        host, port = station.runner.addresses[0][:2]
        api.base = f"http://{host}:{port}"  # the proxy in front would terminate TLS
        await create_user(station.app[keys.SESSIONS], "viewer1", Role.VIEWER, PASSWORD)
        status, _, response = await api.call(
            "POST", "/auth/login", {"username": "viewer1", "password": PASSWORD}
        )
        assert status == 200
        cookie = response.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Strict" in cookie
