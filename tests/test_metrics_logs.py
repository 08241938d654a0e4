"""Structured logs (``logging.json: true``) and the ``loaxa upstream`` commands."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from station._logging import JsonFormatter, log_context
from station.cli import main
from station.cli._common import setup_logging
from station.config import Settings
from station.db import (
    BulletinClass,
    BulletinStatus,
    UpstreamBulletin,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.upstream import enqueue, log_exchange


def _record(msg: str, *args: object, **extra: object) -> logging.LogRecord:
    logger = logging.getLogger("loaxa.test")
    return logger.makeRecord("loaxa.test", logging.INFO, __file__, 1, msg, args, None,
                             extra=extra or None)  # fmt: skip


def test_json_lines_carry_cluster_and_session_ids() -> None:
    formatter = JsonFormatter()
    line = json.loads(formatter.format(_record('said "%s"', "xin chào", cluster_id="C01")))
    assert line["msg"] == 'said "xin chào"' and line["level"] == "INFO"
    assert line["logger"] == "loaxa.test" and line["cluster_id"] == "C01"
    assert "session_id" not in line and line["ts"].endswith("+00:00")
    with log_context(session_id="s7-1700000000", cluster_id="C02"):
        line = json.loads(formatter.format(_record("play")))
        assert (line["cluster_id"], line["session_id"]) == ("C02", "s7-1700000000")
        explicit = json.loads(formatter.format(_record("x", cluster_id="C09")))
        assert explicit["cluster_id"] == "C09"  # extra= wins over the context
    assert "cluster_id" not in json.loads(formatter.format(_record("after")))
    with pytest.raises(ValueError, match="unknown log context"), log_context(user="x"):
        pass


def test_json_lines_keep_tracebacks() -> None:
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        record = logging.getLogger("t").makeRecord(
            "t", logging.ERROR, __file__, 1, "failed", (), __import__("sys").exc_info()
        )
    line = json.loads(JsonFormatter().format(record))
    assert "RuntimeError: boom" in line["exc"] and "\n" not in JsonFormatter().format(record)


def test_setup_logging_uses_the_json_formatter() -> None:
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers = []
    try:
        setup_logging(Settings.model_validate({"logging": {"json": True}}))
        assert isinstance(root.handlers[0].formatter, JsonFormatter)
    finally:
        root.handlers = saved


def test_upstream_cli(
    tmp_path: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "loaxa.yaml"
    config.write_text(f"database:\n  url: {json.dumps(database_url)}\n", encoding="utf-8")

    async def seed() -> None:
        await upgrade_async(database_url)
        engine = create_engine_for(database_url)
        try:
            async with session_factory(engine)() as db:
                await enqueue(db, "report", "report:a", {})
                await enqueue(db, "report", "report:b", {})
                log_exchange(db, "up", "report", "failed", key="report:a", http_status=422,
                             error="HTTP 422: unknown field")  # fmt: skip
                db.add(UpstreamBulletin(upstream_id="E5", bulletin_class=BulletinClass.EMERGENCY,
                                        status=BulletinStatus.CONFIRM_NEEDED, title="Bão số 5",
                                        received_via="pull"))  # fmt: skip
                await db.commit()
            async with session_factory(engine)() as db:
                from sqlmodel import select

                from station.db import OutboxMessage, OutboxStatus

                row = (
                    await db.exec(select(OutboxMessage).where(OutboxMessage.key == "report:a"))
                ).one()
                row.status, row.http_status = OutboxStatus.FAILED, 422
                db.add(row)
                await db.commit()
        finally:
            await engine.dispose()

    asyncio.run(seed())
    assert main(["upstream", "status", "-c", str(config)]) == 0
    out = capsys.readouterr().out
    assert "pending=1  sent=0  failed=1" in out and "failed: #1 report report:a HTTP 422" in out
    assert main(["upstream", "log", "-c", str(config)]) == 0
    assert "HTTP 422: unknown field" in capsys.readouterr().out
    assert main(["upstream", "inbox", "-c", str(config)]) == 0
    assert "confirm_needed" in capsys.readouterr().out
    assert main(["upstream", "retry", "-c", str(config)]) == 0
    assert "1 failed message(s) queued again" in capsys.readouterr().out
    assert main(["upstream", "confirm", "1", "-c", str(config)]) == 0
    assert "confirmed" in capsys.readouterr().out
    assert main(["upstream", "confirm", "1", "-c", str(config)]) == 2  # not confirm_needed now
    assert "is confirmed, not confirm_needed" in capsys.readouterr().err
