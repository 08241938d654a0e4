"""Editing the topic catalogue (Phụ lục 01): ``loaxa topics`` and ``/api/v1/topics``.

Codes are never reused (409), unknown codes are 404, bad input is 422; a retired topic stays
for history (listed on request, still named by old programmes) but new media and programmes
cannot pick it; every change is in the audit log.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlmodel import col, select

from station import _keys as keys
from station._programmes import ItemInput, add_programme
from station._services import StationError
from station.cli import main
from station.config import Settings
from station.db import AuditEntry, Programme, Role, Topic


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def test_topics_api_roles_errors_and_history(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        old = await add_programme(
            sessions, "Giao thông", [ItemInput("silence", duration_s=10)], topics=["II.7"]
        )
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        approver = await user_with_token(station, "duyet", Role.APPROVER)
        broadcaster = await user_with_token(station, "phat", Role.BROADCASTER)
        new = {
            "code": "II.10",
            "title_vi": "Bầu cử đại biểu Quốc hội",
            "title_en": "National Assembly elections",
            "kind": "thematic",
            "year": 2026,
        }
        async with client(station, viewer) as api:
            status, body, _ = await api.call("GET", "/topics")
            assert status == 200 and len(body["items"]) == 21
            assert body["items"][8]["code"] == "I.9" and body["items"][8]["kind"] == "period"
            status, body, _ = await api.call("POST", "/topics", new)
            assert_problem(status, body, 403)
        async with client(station, broadcaster) as api:
            status, body, _ = await api.call("POST", "/topics", new)
            assert_problem(status, body, 403)
        async with client(station, approver) as api:
            status, body, _ = await api.call("POST", "/topics", new)
            assert status == 201, body
            assert body == {
                **{k: new[k] for k in ("code", "title_vi", "title_en", "kind")},
                "active": True,
                "valid_from": "2026-01-01",
                "valid_to": "2026-12-31",
            }
            status, body, _ = await api.call("POST", "/topics", new)
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/topics", {**new, "code": "ten"})
            assert_problem(status, body, 422, "code")
            status, body, _ = await api.call(
                "POST", "/topics", {**new, "code": "II.11", "valid_from": "2026-05-01",
                                    "valid_to": "2026-01-01", "year": None},
            )  # fmt: skip
            assert_problem(status, body, 422)
            status, body, _ = await api.call("PATCH", "/topics/II.7", {"title_en": "Road safety"})
            assert status == 200 and body["title_en"] == "Road safety"
            assert body["title_vi"] == "Đảm bảo an toàn giao thông quốc gia"
            status, body, _ = await api.call("PATCH", "/topics/X.1", {"title_en": "x"})
            assert_problem(status, body, 404)
            status, body, _ = await api.call("PATCH", "/topics/II.7", {})
            assert_problem(status, body, 422)
            status, body, _ = await api.call(
                "POST", "/topics/II.7/retire", {"valid_to": "2026-11-30"}
            )
            assert status == 200 and body["active"] is False and body["valid_to"] == "2026-11-30"
            status, body, _ = await api.call("POST", "/topics/II.7/retire", {})
            assert_problem(status, body, 409)
            status, body, _ = await api.call("POST", "/topics/Z.9/retire", {})
            assert_problem(status, body, 404)
        async with client(station, viewer) as api:
            status, body, _ = await api.call("GET", "/topics")
            codes = [t["code"] for t in body["items"]]
            assert "II.7" not in codes and codes[-1] == "II.10"
            status, body, _ = await api.call("GET", "/topics?include_retired=true")
            assert "II.7" in [t["code"] for t in body["items"]] and len(body["items"]) == 22
            status, body, _ = await api.call("GET", "/topics?on=2025-06-01")
            assert "II.10" not in [t["code"] for t in body["items"]]
            status, body, _ = await api.call("GET", "/topics/II.7")
            assert status == 200 and body["active"] is False
        # history kept: the old programme still names it; new programmes cannot pick it
        async with sessions() as db:
            assert (await db.get(Programme, old.id)).topics == ["II.7"]  # type: ignore[union-attr]
            assert (await db.get(Topic, "II.7")) is not None
        with pytest.raises(StationError, match=r"no longer in use: II\.7"):
            await add_programme(
                sessions, "Mới", [ItemInput("silence", duration_s=10)], topics=["II.7"]
            )
        free_text = await add_programme(
            sessions, "Nhập tuần", [ItemInput("silence", duration_s=10)], topics=["II.7 an toàn"]
        )
        assert free_text.topics == ["II.7 an toàn"]  # imported free text is not a code
        async with sessions() as db:
            entries = (
                await db.exec(
                    select(AuditEntry)
                    .where(col(AuditEntry.action).startswith("topic."))
                    .order_by(col(AuditEntry.id))
                )
            ).all()
        assert [(e.action, e.target, e.actor) for e in entries] == [
            ("topic.add", "topic:II.10", "duyet (token 2)"),
            ("topic.rename", "topic:II.7", "duyet (token 2)"),
            ("topic.retire", "topic:II.7", "duyet (token 2)"),
        ]
        assert entries[1].details["before"]["title_en"] == "Road traffic safety"


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "loaxa.yaml"
    path.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    return str(path)


def test_topics_cli(config: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topics", "add", "I.13", "Chuyển đổi xanh", "--en", "Green transition",
                 "--kind", "period", "--year", "2026", "-c", config]) == 0  # fmt: skip
    assert "I.13" in capsys.readouterr().out
    assert main(["topics", "add", "I.13", "Lặp", "-c", config]) == 2
    assert "exists already" in capsys.readouterr().err
    assert main(["topics", "add", "13", "Sai mã", "-c", config]) == 2
    assert "is not like I.9" in capsys.readouterr().err
    assert main(["topics", "rename", "I.13", "--vi", "Chuyển đổi xanh 2026", "-c", config]) == 0
    assert main(["topics", "retire", "I.1", "--on", "2025-12-31", "-c", config]) == 0
    assert main(["topics", "retire", "Q.1", "-c", config]) == 2
    assert "unknown topic" in capsys.readouterr().err
    assert main(["topics", "list", "-c", config]) == 0
    listing = capsys.readouterr().out
    codes = [line.split()[0] for line in listing.splitlines() if not line.startswith(" ")]
    assert "I.1" not in codes and codes[:2] == ["I.2", "I.3"] and "I.13" in codes
    assert codes.index("I.13") == codes.index("I.12") + 1  # catalogue order, not text order
    assert "Chuyển đổi xanh 2026 [2026-01-01 – 2026-12-31]" in listing
    assert main(["topics", "list", "--all", "-c", config]) == 0
    assert "(retired)" in capsys.readouterr().out
    assert main(["topics", "list", "--on", date(2025, 6, 1).isoformat(), "-c", config]) == 0
    assert "I.13" not in capsys.readouterr().out
    assert main(["audit", "--since", "1h", "-c", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    actions = [line.split()[3] for line in lines if "topic:" in line]
    assert actions == ["topic.add", "topic.rename", "topic.retire"]
