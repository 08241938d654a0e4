"""A declined bulletin has its own status, ``declined``, apart from ``dismissed``: in the
database (migration ``upstream_3`` moves the declines it can prove, on SQLite and PostgreSQL),
the API, the CLI and the message for the upstream system."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from station import _keys as keys
from station.cli import main
from station.config import sync_driver_url
from station.db import (
    AuditEntry,
    BulletinClass,
    BulletinStatus,
    OutboxMessage,
    Role,
    UpstreamBulletin,
    alembic_config,
    upgrade,
)

AT = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)


def _bulletin(ident: str, status: BulletinStatus, note: str = "") -> UpstreamBulletin:
    return UpstreamBulletin(
        upstream_id=ident,
        bulletin_class=BulletinClass.PRIORITY,
        status=status,
        title=f"Bản tin {ident}",
        received_via="pull",
        note=note,
    )


def _statuses(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT upstream_id, status FROM upstream_bulletins"))
        return {ident: status for ident, status in rows}


def _set_status(engine: sa.Engine, ident: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE upstream_bulletins SET status = :s WHERE upstream_id = :i"),
            {"s": status, "i": ident},
        )


def test_migration_moves_proven_declines_only(database_url: str) -> None:
    """At fleet_2 a decline was stored ``dismissed``; upstream_3 makes the ones with an audit
    entry or an outbox message ``declined``, leaves the rest, and adds the CHECK value."""
    upgrade(database_url, "fleet_2")
    engine = sa.create_engine(sync_driver_url(database_url), poolclass=sa.pool.NullPool)
    try:
        long_id = "Q" * 200  # its audit target was cut at 200 characters
        with Session(engine) as db:
            db.add_all(
                [
                    _bulletin("AUD", BulletinStatus.DISMISSED, "declined: trùng lịch"),
                    _bulletin("OUT", BulletinStatus.DISMISSED, "declined"),
                    _bulletin(long_id, BulletinStatus.DISMISSED, "declined"),
                    _bulletin("HAND", BulletinStatus.DISMISSED),  # set by hand: no record
                    _bulletin("OTHER", BulletinStatus.DISMISSED),  # a decline of another one
                    _bulletin("SCH", BulletinStatus.SCHEDULED),
                    _bulletin("PRO", BulletinStatus.PROPOSED),
                ]
            )
            db.add_all(
                [
                    AuditEntry(actor="hoa", action="bulletin.declined", target="bulletin:AUD"),
                    AuditEntry(
                        actor="hoa", action="bulletin.declined", target=f"bulletin:{long_id}"[:200]
                    ),
                    AuditEntry(actor="hoa", action="bulletin.scheduled", target="bulletin:HAND"),
                    OutboxMessage(
                        kind="bulletin_status",
                        key="bulletin:OUT:declined",
                        payload={"status": "declined"},
                    ),
                    OutboxMessage(
                        kind="bulletin_status",
                        key="bulletin:OTHERX:declined",  # not OTHER's
                        payload={"status": "declined"},
                    ),
                ]
            )
            db.commit()
        with pytest.raises(IntegrityError):  # the old CHECK refuses the new value
            _set_status(engine, "PRO", "declined")

        upgrade(database_url, "upstream_3")
        assert _statuses(engine) == {
            "AUD": "declined",
            "OUT": "declined",
            long_id: "declined",
            "HAND": "dismissed",
            "OTHER": "dismissed",
            "SCH": "scheduled",
            "PRO": "proposed",
        }
        _set_status(engine, "PRO", "declined")  # the new CHECK takes it ...
        with pytest.raises(IntegrityError):  # ... and still refuses what is no status
            _set_status(engine, "PRO", "rejected")
        _set_status(engine, "PRO", "proposed")

        # down: the older schema knows declines only as dismissed; up again restores them
        command.downgrade(alembic_config(database_url), "fleet_2")
        assert set(_statuses(engine).values()) == {"dismissed", "scheduled", "proposed"}
        with pytest.raises(IntegrityError):
            _set_status(engine, "PRO", "declined")
        upgrade(database_url)
        assert _statuses(engine)["AUD"] == "declined" and _statuses(engine)["HAND"] == "dismissed"
    finally:
        engine.dispose()


async def cli(argv: list[str]) -> int:
    return await asyncio.to_thread(main, argv)  # the CLI runs its own event loop


async def test_decline_is_declined_in_api_cli_and_upstream_message(
    tmp_path: Path, mqtt_url: str, database_url: str, station_id: str,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    settings = settings_for(tmp_path, mqtt_url, database_url, station_id)
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        async with sessions() as db:
            rows = [
                _bulletin("P1", BulletinStatus.PROPOSED),
                _bulletin("D1", BulletinStatus.DISMISSED),
            ]
            db.add_all(rows)
            await db.commit()
            p1, d1 = (r.id for r in rows)
        operator = await user_with_token(station, "phat", Role.BROADCASTER)
        async with client(station, operator) as api:
            status, body, _ = await api.call(
                "POST", f"/bulletins/{p1}/decline", {"reason": "trùng"}
            )
            assert status == 200 and body["status"] == "declined", body
            assert body["note"] == "declined: trùng" and body["decided_by"] == "phat (token 1)"
            status, body, _ = await api.call("GET", "/bulletins?status=declined")
            assert status == 200 and [b["id"] for b in body["items"]] == [p1]
            status, body, _ = await api.call("GET", "/bulletins?status=dismissed")
            assert status == 200 and [b["id"] for b in body["items"]] == [d1]
            status, body, _ = await api.call("GET", "/bulletins?include_done=true")
            assert {b["id"]: b["status"] for b in body["items"]} == {
                p1: "declined",
                d1: "dismissed",
            }
            status, body, _ = await api.call("GET", "/bulletins?status=refused")
            assert_problem(status, body, 422)
            status, body, _ = await api.call("POST", f"/bulletins/{d1}/decline", {})
            assert_problem(status, body, 409)  # dismissed is not open: nothing to decline
            status, doc, _ = await api.call("GET", "/api/openapi.json")
            assert status == 200 and "declined" in json.dumps(
                doc["components"]["schemas"]["BulletinOut"]
            ) + json.dumps(doc["components"]["schemas"].get("BulletinStatus", {}))
        async with sessions() as db:
            message = (
                await db.exec(select(OutboxMessage).where(OutboxMessage.kind == "bulletin_status"))
            ).one()
            audit = (
                await db.exec(select(AuditEntry).where(AuditEntry.action == "bulletin.declined"))
            ).one()
        assert message.key == "bulletin:P1:declined"
        assert message.payload["status"] == "declined"
        assert message.payload["details"] == {"reason": "trùng"}
        assert audit.target == "bulletin:P1" and audit.actor == "phat (token 1)"

    config = tmp_path / "loaxa.yaml"
    config.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    assert await cli(["upstream", "inbox", "--status", "declined", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "[P1]" in out and "declined" in out and "[D1]" not in out
    assert await cli(["upstream", "inbox", "--all", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert " declined " in out and " dismissed " in out
    assert await cli(["upstream", "inbox", "--status", "nope", "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "--status 'nope'" in err and "declined" in err
