"""The audit log through the API (filters, CSV), its append-only guard in the database, and
the reusable checks other parts call: login throttle, two-person rule, CSV injection."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from api_support import PASSWORD, assert_problem, client, running, settings_for, user_with_token
from sqlalchemy.exc import DBAPIError

from station import _keys as keys
from station.api import (
    Actor,
    ApiError,
    DbLoginThrottle,
    Principal,
    audit,
    audit_csv,
    confirm_second_person,
    create_user,
    permissions_of,
)
from station.config import Settings
from station.db import AuditEntry, Role, create_engine_for, session_factory, upgrade_async


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id, emergency_two_person=True)


async def test_audit_query_and_csv_export(settings: Settings) -> None:
    async with running(settings) as station:
        admin = await user_with_token(station, "root1", Role.ADMIN)
        async with client(station, admin) as api:
            await api.call("POST", "/clusters", {"id": "C1", "name": "=HYPERLINK(1)"})
            await api.call("POST", "/clusters", {"id": "C2"})
        async with client(station) as anon:
            await anon.login("root1", "wrong password")
        await audit(Actor("system"), "system.start", sessions=station.app[keys.SESSIONS])

        async with client(station, admin) as api:
            status, page, _ = await api.call("GET", "/audit?action=cluster.register")
            assert status == 200 and page["total"] == 2
            newest = page["items"][0]
            assert newest["target"] == "cluster:C2" and newest["ip"] == "127.0.0.1"
            assert newest["actor"].startswith("root1 (token ") and newest["user_agent"]
            status, page, _ = await api.call("GET", "/audit?action=login.")
            assert [e["action"] for e in page["items"]] == ["login.failed"]
            assert page["items"][0]["user_id"] is None
            status, page, _ = await api.call("GET", "/audit?actor=system")
            assert [e["action"] for e in page["items"]] == ["system.start"]
            later = (datetime.now(UTC) + timedelta(minutes=1)).isoformat()
            status, page, _ = await api.call("GET", "/audit", params={"since": later})
            assert page["total"] == 0
            status, page, _ = await api.call("GET", "/audit?target=cluster:C1&limit=1")
            assert page["total"] == 1
            status, body, _ = await api.call("GET", "/audit?since=monday")
            assert_problem(status, body, 422, field="since")

            status, text, response = await api.call("GET", "/audit.csv?action=cluster.")
            assert status == 200 and response.content_type == "text/csv"
            assert "attachment" in response.headers["Content-Disposition"]
            rows = list(csv.DictReader(io.StringIO(text)))
            assert [r["target"] for r in rows] == ["cluster:C2", "cluster:C1"]
            assert rows[1]["details"] == '{"name": "=HYPERLINK(1)"}'  # JSON: not a formula

            # there is no way to change or delete entries through the API
            status, _, _ = await api.call("DELETE", "/audit")
            assert status == 405


async def test_audit_log_refuses_update_and_delete(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await audit(Actor("system"), "system.start", sessions=sessions)
        for statement in ("UPDATE audit_log SET action = 'x'", "DELETE FROM audit_log"):
            async with sessions() as db:
                with pytest.raises(DBAPIError, match="append-only"):
                    await db.exec(sa.text(statement))  # type: ignore[call-overload]
                await db.rollback()
        async with sessions() as db:
            rows = (await db.exec(sa.select(AuditEntry.action))).all()  # type: ignore[call-overload]
        assert [r[0] for r in rows] == ["system.start"]


async def test_two_person_rule(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        first, _ = await create_user(sessions, "bt1", Role.BROADCASTER, PASSWORD)
        second, _ = await create_user(sessions, "lead1", Role.APPROVER, PASSWORD)
        await create_user(sessions, "tech1", Role.TECHNICIAN, PASSWORD)
        assert first.id and second.id
        actor = Principal(
            first.id, "bt1", Role.BROADCASTER, permissions_of(Role.BROADCASTER), "session"
        )
        check = confirm_second_person
        assert await check(sessions, settings, actor, "lead1", PASSWORD) == second.id
        for name, password in [
            (None, None),  # nobody confirmed
            ("bt1", PASSWORD),  # the same person
            ("lead1", "wrong password"),
            ("tech1", PASSWORD),  # a technician may not start an emergency
            ("ghost", PASSWORD),
        ]:
            with pytest.raises(ApiError) as err:
                await check(sessions, settings, actor, name, password)
            assert err.value.status == 403
        off = settings.model_copy(
            update={"auth": settings.auth.model_copy(update={"emergency_two_person": False})}
        )
        assert await check(sessions, off, actor, None, None) is None


async def test_login_throttle_backs_off_exponentially(database_url: str) -> None:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    now = [datetime(2026, 11, 26, 8, 0, tzinfo=UTC)]
    throttle = DbLoginThrottle(
        session_factory(engine),
        max_failures=3,
        window_s=900,
        lockout_s=1,
        backoff_max_s=10,
        clock=lambda: now[0],
    )
    keys_ = ("user:a", "ip:1")
    try:
        for _ in range(2):
            await throttle.failed(keys_)
            assert await throttle.retry_after(keys_) == 0
        waits = []
        for _ in range(5):
            await throttle.failed(keys_)
            waits.append(await throttle.retry_after(keys_))
            now[0] += timedelta(seconds=waits[-1])
        assert waits == [1, 2, 4, 8, 10]  # capped at backoff_max_s
        assert await throttle.retry_after(("user:b",)) == 0
        await throttle.succeeded(keys_)
        assert await throttle.retry_after(keys_) == 0
        now[0] += timedelta(seconds=901)  # failures older than the window no longer count
        for _ in range(3):
            await throttle.failed(("ip:2",))
        now[0] += timedelta(seconds=901)
        assert await throttle.retry_after(("ip:2",)) == 0
    finally:
        await engine.dispose()


def test_csv_export_neutralises_formulas() -> None:
    entry = AuditEntry(
        id=1,
        at=datetime(2026, 1, 1, tzinfo=UTC),
        actor="=cmd|' /C calc'!A0",
        action="login.failed",
        target="+1",
        ip="",
        user_agent="@SUM(A1)",
    )
    row = next(iter(csv.DictReader(io.StringIO(audit_csv([entry])))))
    assert row["actor"].startswith("'=") and row["target"] == "'+1"
    assert row["user_agent"] == "'@SUM(A1)"
