"""``loaxa programme edit``: replace items, title, topics, language; a new version, so an
approved programme needs approval again (audited); ``--version`` refuses a stale edit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlmodel import col, select

from station.cli import main
from station.db import (
    AuditEntry,
    MediaItem,
    Programme,
    ProgrammeApproval,
    ProgrammeItem,
    Role,
    User,
    create_engine_for,
    session_factory,
    upgrade_async,
)


async def _seed(url: str) -> None:
    await upgrade_async(url)
    engine = create_engine_for(url)
    try:
        async with session_factory(engine)() as db:
            media = MediaItem(
                sha256="e" * 64,
                source_sha256="f" * 64,
                title="Tin",
                duration_ms=60_000,
                size_bytes=1,
            )
            lead = User(username="lead", password_hash="x", role=Role.APPROVER)
            db.add_all([media, lead])
            await db.commit()
    finally:
        await engine.dispose()


async def _read(url: str) -> tuple[Programme, list[ProgrammeItem], list[AuditEntry]]:
    engine = create_engine_for(url)
    try:
        async with session_factory(engine)() as db:
            programme = (await db.exec(select(Programme))).one()
            items = await db.exec(select(ProgrammeItem).order_by(col(ProgrammeItem.position)))
            audit = await db.exec(
                select(AuditEntry)
                .where(col(AuditEntry.action).startswith("programme."))
                .order_by(col(AuditEntry.id))
            )
            return programme, list(items.all()), list(audit.all())
    finally:
        await engine.dispose()


async def _approve(url: str, version: int) -> None:
    engine = create_engine_for(url)
    try:
        async with session_factory(engine)() as db:
            lead = (await db.exec(select(User))).one()
            assert lead.id is not None
            db.add(ProgrammeApproval(programme_id=1, version=version, approved_by=lead.id))
            await db.commit()
    finally:
        await engine.dispose()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> Path:
    asyncio.run(_seed(database_url))
    path = tmp_path / "loaxa.yaml"
    path.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    return path


def _cli(config: Path, *argv: str) -> int:
    return main([*argv[:2], "-c", str(config), *argv[2:]])


def test_cli_programme_edit(
    config: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(config, "programme", "add", "media:1", "--title", "Sáng") == 0
    capsys.readouterr()
    asyncio.run(_approve(database_url, 1))
    edit = ["programme", "edit", "1", "media:1", "relay:15m:http://vov1.example/live"]
    assert _cli(config, *edit, "--topic", "II.7", "--language", "ctu", "--version", "1") == 0
    out = capsys.readouterr().out
    assert "programme 1: Sáng, version 2" in out
    assert "version 1 was approved: this one needs approval again" in out
    programme, items, audit = asyncio.run(_read(database_url))
    assert programme.version == 2 and programme.topics == ["II.7"] and programme.language == "ctu"
    assert [(i.kind, i.url) for i in items] == [
        ("media", None),
        ("relay", "http://vov1.example/live"),
    ]
    audit = [a for a in audit if a.action != "programme.create"]  # `add` may audit too
    assert [a.action for a in audit] == ["programme.update", "programme.approval_reset"]
    assert audit[0].actor.startswith("cli:") and audit[0].details["from_version"] == 1

    # only the title; someone who looked at version 1 is refused; bad input exits 2
    assert _cli(config, "programme", "edit", "1", "--title", "Sáng mới") == 0
    assert "version 3" in capsys.readouterr().out
    programme, items, _ = asyncio.run(_read(database_url))
    assert programme.title == "Sáng mới" and len(items) == 2 and programme.topics == ["II.7"]
    assert _cli(config, "programme", "edit", "1", "--title", "X", "--version", "1") == 2
    assert "is at version 3, not 1" in capsys.readouterr().err
    assert _cli(config, "programme", "edit", "1", "relay:5m:ftp://x") == 2
    assert "stream URL" in capsys.readouterr().err
    assert _cli(config, "programme", "edit", "1", "--topic", "II.999") == 2
    assert "unknown topic(s): II.999" in capsys.readouterr().err
    assert _cli(config, "programme", "edit", "9", "--title", "X") == 2
    assert "unknown programme 9" in capsys.readouterr().err
    assert _cli(config, "programme", "edit", "1", "--no-topics") == 0
    programme, _, audit = asyncio.run(_read(database_url))
    assert programme.topics == [] and programme.version == 4
    assert [a.action for a in audit].count("programme.approval_reset") == 1
