"""Every changing CLI command writes the audit log, as the API does: who (the OS login, or the
account named with ``--as``, checked against its role), what and on which target."""

from __future__ import annotations

import asyncio
import getpass
import io
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlmodel import col, select

from station._services import Sessions
from station.cli import main
from station.db import (
    AuditEntry,
    BulletinClass,
    BulletinStatus,
    UpstreamBulletin,
    create_engine_for,
    session_factory,
)

T = TypeVar("T")
PASSWORD = "a long enough secret"


@pytest.fixture
def config(tmp_path: Path, database_url: str, station_id: str) -> str:
    path = tmp_path / "loaxa.yaml"
    path.write_text(
        f"station: {{id: {station_id}}}\n"
        f"database: {{url: '{database_url}'}}\n"
        f"media: {{dir: '{tmp_path / 'media'}'}}\n",
        encoding="utf-8",
    )
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def in_db(database_url: str, work: Callable[[Sessions], Awaitable[T]]) -> T:
    async def go() -> T:
        engine = create_engine_for(database_url)
        try:
            return await work(session_factory(engine))
        finally:
            await engine.dispose()

    return asyncio.run(go())


def entries(database_url: str) -> list[AuditEntry]:
    async def read(sessions: Sessions) -> list[AuditEntry]:
        async with sessions() as db:
            return list((await db.exec(select(AuditEntry).order_by(col(AuditEntry.id)))).all())

    return in_db(database_url, read)


def one(found: list[AuditEntry], action: str, target: str) -> AuditEntry:
    hits = [e for e in found if e.action == action and e.target == target]
    assert len(hits) == 1, [(e.action, e.target) for e in found]
    return hits[0]


def add_user(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, config: str, *who: str
) -> None:
    for spec in who:
        name, role = spec.split(":")
        monkeypatch.setattr("sys.stdin", io.StringIO(PASSWORD + "\n"))
        code, _, err = run(
            capsys, "user", "add", name, "--role", role, "--password-stdin", "-c", config
        )
        assert code == 0, err


def test_fleet_media_programme_and_schedule_commands_are_audited(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    database_url: str,
    tmp_path: Path,
) -> None:
    from station.media import synthesize_programme

    c = ("-c", config)
    login = f"cli:{getpass.getuser()}"
    add_user(capsys, monkeypatch, config, "minh:technician", "hoa:broadcaster", "vy:viewer")

    # The reviewer's case: register then retire, without --as: the OS login is the actor.
    assert run(capsys, "cluster", "register", "C1", *c)[0] == 0
    assert run(capsys, "cluster", "retire", "C1", *c)[0] == 0
    code, out, _ = run(capsys, "audit", *c)
    assert code == 0
    assert "cluster.register" in out and "cluster.retire" in out and "cluster:C1" in out
    found = entries(database_url)
    retire = one(found, "cluster.retire", "cluster:C1")
    assert retire.actor == login and retire.user_id is None and retire.user_agent == "loaxa-cli"

    # --as names an account: checked against the users and the API's permission.
    code, _, err = run(capsys, "cluster", "register", "C2", "--as", "nobody", *c)
    assert code == 2 and "--as nobody: no such user" in err
    code, _, err = run(capsys, "cluster", "register", "C2", "--as", "vy", *c)
    assert code == 2 and "a viewer may not do this (needs clusters:write)" in err
    assert run(capsys, "clusters", *c)[1].count("C2") == 0  # refused before acting
    assert run(capsys, "cluster", "register", "C2", "--as", "minh", *c)[0] == 0
    assert run(capsys, "village", "add", "V1", "Thôn 1", "--as", "minh", *c)[0] == 0
    assert run(capsys, "cluster", "move", "C2", "--village", "V1", "--as", "minh", *c)[0] == 0
    assert run(capsys, "zone", "add", "Z1", "Đồi", "--as", "minh", *c)[0] == 0
    assert run(capsys, "zone", "assign", "Z1", "C2", "--as", "minh", *c)[0] == 0
    csv = tmp_path / "clusters.csv"
    csv.write_text("id,name,kind\nC3,Ba,ict\nC3,again,ict\n", encoding="utf-8")
    assert run(capsys, "cluster", "import", str(csv), "--as", "minh", *c)[0] == 1  # a bad row

    # Media, programmes and schedules: the broadcaster.
    wav = tmp_path / "tin.wav"
    asyncio.run(synthesize_programme(wav, 2.0, seed=3))
    code, out, err = run(capsys, "media", "add", str(wav), "--title", "Tin", "--as", "hoa", *c)
    assert code == 0, err
    code, out, _ = run(capsys, "programme", "add", "media:1", "--title", "Sáng", "--as", "hoa", *c)
    assert code == 0 and out.startswith("programme 1:")
    code, out, err = run(
        capsys, "schedule", "add", "--programme", "1", "--daily", "--time", "06:00",
        "--clusters", "C2", "--as", "hoa", *c,
    )  # fmt: skip
    assert code == 0 and out.startswith("schedule 1:"), err
    assert run(capsys, "schedule", "cancel", "1", "--as", "hoa", *c)[0] == 0
    code, out, err = run(capsys, "media", "delete", "1", *c)
    assert code == 2 and "programme" in err  # refused while used: nothing recorded
    assert run(capsys, "media", "add", str(wav), "--as", "minh", *c)[0] == 2  # no media:write

    text = tmp_path / "notes.mp3"
    text.write_text("không phải âm thanh", encoding="utf-8")
    code, _, err = run(capsys, "media", "add", str(text), "--as", "hoa", *c)
    assert code == 2 and "not audio" in err

    found = entries(database_url)
    rejected = one(found, "media.rejected", "notes.mp3")
    assert rejected.actor == "hoa" and rejected.details["reason"] == "not_audio"
    minh = one(found, "cluster.register", "cluster:C2")
    assert minh.actor == "minh" and minh.user_id is not None
    assert minh.user_agent == f"loaxa-cli (os user {getpass.getuser()})"
    assert one(found, "cluster.move", "cluster:C2").details == {"village_id": "V1"}
    assert one(found, "village.create", "village:V1").details == {"name": "Thôn 1"}
    assert one(found, "zone.create", "zone:Z1").actor == "minh"
    assert one(found, "zone.assign", "zone:Z1").details == {"added": ["C2"]}
    imported = one(found, "cluster.import", "import:clusters")
    assert imported.details["imported"] == ["C3"] and imported.details["errors"] == 1
    upload = one(found, "media.upload", "media:1")
    assert upload.actor == "hoa" and upload.details["title"] == "Tin"
    assert one(found, "programme.create", "programme:1").details["title"] == "Sáng"
    created = one(found, "schedule.create", "schedule:1")
    assert created.actor == "hoa" and created.details["programme_id"] == 1
    assert one(found, "schedule.cancel", "schedule:1").actor == "hoa"
    assert not [e for e in found if e.action == "media.delete"]

    # A media item no programme uses can go; its deletion is recorded.
    other = tmp_path / "other.wav"
    asyncio.run(synthesize_programme(other, 2.0, seed=4))
    assert run(capsys, "media", "add", str(other), "--as", "hoa", *c)[0] == 0
    assert run(capsys, "media", "delete", "2", "--as", "hoa", *c)[0] == 0
    assert one(entries(database_url), "media.delete", "media:2").actor == "hoa"

    # `loaxa audit` lists them, filtered by actor or target.
    code, out, _ = run(capsys, "audit", "--actor", "hoa", *c)
    assert code == 0 and "schedule.cancel" in out and "cluster.register" not in out
    code, out, _ = run(capsys, "audit", "--target", "cluster:C1", "--csv", *c)
    assert code == 0 and out.count("\r\n") == 3  # header, register, retire


def test_emergency_bulletin_user_and_topic_commands_are_audited(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    config: str,
    database_url: str,
) -> None:
    c = ("-c", config)
    add_user(capsys, monkeypatch, config, "lan:admin", "tuan:approver", "hoa:broadcaster")
    assert run(capsys, "cluster", "register", "E1", *c)[0] == 0

    code, out, err = run(
        capsys, "emergency", "start", "--clusters", "E1", "--relay", "http://vov.example/1",
        "--as", "tuan", *c,
    )  # fmt: skip
    assert code == 0, err
    emergency_id = out.split()[1].rstrip(":")
    code, out, _ = run(capsys, "emergency", "stop", "--as", "hoa", *c)
    assert code == 0 and emergency_id in out

    async def bulletins(sessions: Sessions) -> None:
        async with sessions() as db:
            for n, status in ((1, BulletinStatus.PROPOSED), (2, BulletinStatus.CONFIRM_NEEDED)):
                db.add(
                    UpstreamBulletin(
                        upstream_id=f"UP-{n}", bulletin_class=BulletinClass.PRIORITY, status=status,
                        title=f"Bản tin {n}", villages=[], issuer="huyện", received_via="pull",
                    )
                )  # fmt: skip
            await db.commit()

    in_db(database_url, bulletins)
    code, out, err = run(
        capsys, "bulletins", "decline", "1", "--reason", "trùng", "--as", "hoa", *c
    )
    assert code == 0, err
    assert run(capsys, "upstream", "confirm", "2", "--as", "hoa", *c)[0] == 0
    assert run(capsys, "topics", "add", "II.10", "Chuyển đổi số", "--as", "tuan", *c)[0] == 0
    code, _, err = run(capsys, "topics", "retire", "II.10", "--as", "hoa", *c)
    assert code == 2 and "needs approve" in err
    assert run(capsys, "token", "create", "--user", "hoa", "--name", "n", "--as", "lan", *c)[0] == 0
    capsys.readouterr()

    found = entries(database_url)
    start = one(found, "emergency.start", f"emergency:{emergency_id}")
    assert start.actor == "tuan" and start.details["targets"] == {"clusters": ["E1"]}
    assert one(found, "emergency.stop", f"emergency:{emergency_id}").actor == "hoa"
    declined = one(found, "bulletin.declined", "bulletin:UP-1")
    assert declined.actor == "hoa" and declined.user_id is not None
    assert one(found, "bulletin.confirmed", "bulletin:UP-2").actor == "hoa"
    assert one(found, "topic.add", "topic:II.10").actor == "tuan"
    assert one(found, "token.create", "token:1").actor == "lan"
    created = [e for e in found if e.action == "user.create"]
    assert len(created) == 3 and all(e.actor.startswith("cli:") for e in created)

    async def triggered(sessions: Sessions) -> Any:
        from station.db import PlaySession

        async with sessions() as db:
            return (await db.get(PlaySession, emergency_id)).triggered_by  # type: ignore[union-attr]

    assert in_db(database_url, triggered) == "tuan"


def test_emergency_from_the_cli_follows_the_two_person_rule(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    database_url: str,
) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(
        f"database: {{url: '{database_url}'}}\nauth: {{emergency_two_person: true}}\n",
        encoding="utf-8",
    )
    c = ("-c", str(path))
    add_user(capsys, monkeypatch, str(path), "tuan:approver", "hoa:broadcaster", "minh:technician")
    assert run(capsys, "cluster", "register", "E1", *c)[0] == 0
    start = ("emergency", "start", "--clusters", "E1", "--relay", "http://vov.example/1", *c)

    def attempt(*extra: str, stdin: str = "") -> tuple[int, str]:
        monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code, _, err = run(capsys, *start, *extra)
        return code, err

    both = f"{PASSWORD}\n{PASSWORD}\n"
    code, err = attempt()  # the OS login alone cannot start one
    assert code == 2 and "a second user must confirm" in err
    code, err = attempt("--as", "tuan", "--password-stdin", stdin=both)
    assert code == 2 and "--confirmed-by USERNAME" in err
    code, err = attempt("--as", "minh", "--confirmed-by", "hoa", "--password-stdin", stdin=both)
    assert code == 2 and "a technician may not do this (needs emergency)" in err
    confirmed = ("--as", "tuan", "--password-stdin", "--confirmed-by")
    code, err = attempt(*confirmed, "tuan", stdin=both)  # the same person twice
    assert code == 2 and "Second person required" in err
    code, err = attempt(*confirmed, "minh", stdin=both)  # no emergency permission
    assert code == 2 and "Second person required" in err
    code, err = attempt(*confirmed, "hoa", stdin=f"wrong password\n{PASSWORD}\n")
    assert code == 2 and "--as tuan: wrong password" in err
    code, err = attempt(*confirmed, "hoa", stdin=f"{PASSWORD}\nwrong password\n")
    assert code == 2 and "Second person required" in err
    code, err = attempt("--as", "tuan", "--confirmed-by", "hoa")  # no terminal to ask on
    assert code == 2 and "--password-stdin" in err
    code, err = attempt(*confirmed, "hoa", stdin=f"{PASSWORD}\n")
    assert code == 2 and "both passwords are needed" in err
    assert not [e for e in entries(database_url) if e.action.startswith("emergency.")]

    code, err = attempt(*confirmed, "hoa", stdin=both)
    assert code == 0, err
    start_entry = one(
        entries(database_url),
        "emergency.start",
        next(e.target for e in entries(database_url) if e.action == "emergency.start"),
    )
    assert start_entry.actor == "tuan" and start_entry.details["second_username"] == "hoa"

    async def triggered(sessions: Sessions) -> list[str | None]:
        from station.db import PlaySession

        async with sessions() as db:
            return [s.triggered_by for s in (await db.exec(select(PlaySession))).all()]

    assert in_db(database_url, triggered) == ["tuan + hoa"]
