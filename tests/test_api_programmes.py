"""Programmes over the REST API: items of every kind (media, jingle, relay, live, silence), a
topic of the catalogue and a language; validation naming the field; edits with If-Match (412 on
a lost update) that bump the version, reset an approval (audited) and gate scheduling again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from sqlmodel import col, select

from devices.protocol import StreamCommand
from simulator import SimulatedFleet
from station import _keys as keys
from station._programmes import programme_specs
from station._services import register_clusters
from station.app import RunningStation
from station.config import Settings
from station.db import AuditEntry, PlayRecord, PlayRecordStatus, Role
from tests.db_support import library_rows
from tests.playout_support import spy_on_sends
from tests.test_relay import Upstream

RELAY = "http://vov1.example/stream"


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id, approval_required=True)


async def _media(station: RunningStation, n: int = 2) -> list[int]:
    """Library rows (30 s each) without running ffmpeg."""
    titles = [f"Bản tin {i}" for i in range(n)]
    return await library_rows(station.app[keys.SESSIONS], titles, 30_000, 90_000, 100)


def _every_kind(media: list[int]) -> list[dict[str, Any]]:
    return [
        {"kind": "jingle", "media_id": media[1], "title": "Nhạc hiệu"},
        {"kind": "media", "media_id": media[0]},
        {"kind": "relay", "url": RELAY, "duration_s": 900, "title": "Tiếp âm VOV1"},
        {"kind": "live", "duration_s": 300, "mount": "xa"},
        {"kind": "live", "duration_s": 60},
        {"kind": "silence", "duration_s": 2},
    ]


async def _audit(station: RunningStation, prefix: str) -> list[AuditEntry]:
    async with station.app[keys.SESSIONS]() as db:
        rows = await db.exec(
            select(AuditEntry)
            .where(col(AuditEntry.action).startswith(prefix))
            .order_by(col(AuditEntry.id))
        )
        return list(rows.all())


async def test_every_item_kind_topic_and_language(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        media = await _media(station)
        body = {
            "title": "Chương trình sáng",
            "items": _every_kind(media),
            "topics": ["II.7"],
            "language": "ctu",
        }
        async with client(station, token) as api:
            status, prog, response = await api.call("POST", "/programmes", body)
            assert status == 201, prog
            assert response.headers["ETag"]
            kinds = [i["kind"] for i in prog["items"]]
            assert kinds == ["jingle", "media", "relay", "live", "live", "silence"]
            assert prog["topics"] == ["II.7"] and prog["language"] == "ctu"
            assert prog["media_ids"] == [media[1], media[0]]
            assert prog["items"][2]["url"] == RELAY and prog["items"][2]["duration_s"] == 900
            assert prog["items"][3]["mount"] == "xa" and prog["items"][4]["mount"] is None
            assert prog["items"][0]["duration_s"] is None and prog["items"][0]["length_s"] == 30
            assert prog["duration_s"] == 30 + 30 + 900 + 300 + 60 + 2
            status, read, response = await api.call("GET", f"/programmes/{prog['id']}")
            assert status == 200 and read["items"] == prog["items"]
            status, page, _ = await api.call("GET", "/programmes")
            assert page["items"][0]["topics"] == ["II.7"]

            # the older body (media only) still works and defaults to Vietnamese, no topic
            status, old, _ = await api.call(
                "POST", "/programmes", {"title": "Cũ", "media_ids": media}
            )
            assert status == 201 and old["language"] == "vi" and old["topics"] == [], old

        # the scheduler sees the same items (a topic-tagged programme counts in reports)
        async with station.app[keys.SESSIONS]() as db:
            spec = (await programme_specs(db, [prog["id"]]))[prog["id"]]
        assert [i.kind for i in spec.items] == kinds
        assert spec.topics == ("II.7",) and spec.language == "ctu"
        assert spec.items[3].url == "live:xa"  # the hub mount the live slot airs
        assert spec.duration == timedelta(seconds=prog["duration_s"])
        created, older = await _audit(station, "programme.create")
        assert created.details["topics"] == ["II.7"] and created.details["items"] == 6
        assert older.details["items"] == 2 and older.details["topics"] == []


BAD: list[tuple[dict[str, Any], str]] = [
    ({"kind": "media", "media_id": 999}, "items.1.media_id"),
    ({"kind": "relay", "url": "ftp://x/y", "duration_s": 60}, "items.1.url"),
    ({"kind": "relay", "url": "http://", "duration_s": 60}, "items.1.url"),
    ({"kind": "relay", "duration_s": 60}, "items.1.url"),
    ({"kind": "relay", "url": RELAY}, "items.1.duration_s"),
    ({"kind": "live", "duration_s": 60, "mount": "Xã Một"}, "items.1.mount"),
    ({"kind": "silence"}, "items.1.duration_s"),
    ({"kind": "silence", "duration_s": 0}, "items.1.duration_s"),
    ({"kind": "silence", "duration_s": 100_000}, "items.1.duration_s"),
    ({"kind": "media", "media_id": 1, "duration_s": 5}, "items.1.duration_s"),
    ({"kind": "jingle"}, "items.1.media_id"),
    ({"kind": "song"}, "items.1.kind"),
    ({"kind": "silence", "duration_s": 1, "colour": "red"}, "items.1.colour"),
]


async def test_validation_names_the_field(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "bt1", Role.BROADCASTER)
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        lead = await user_with_token(station, "lead1", Role.APPROVER)
        media = await _media(station, 1)
        first = {"kind": "media", "media_id": media[0]}
        async with client(station, token) as api:
            for bad, field in BAD:
                body = {"title": "X", "items": [first, bad]}
                status, problem, response = await api.call("POST", "/programmes", body)
                assert_problem(status, problem, 422, field=field)
                assert response.content_type == "application/problem+json"
            status, problem, _ = await api.call(
                "POST", "/programmes", {"title": "X", "items": [first], "media_ids": media}
            )
            assert_problem(status, problem, 422, field="items")
            for topics, why in ((["II.999"], "unknown topic"), (["nonsense"], "unknown topic")):
                body = {"title": "X", "items": [first], "topics": topics}
                status, problem, _ = await api.call("POST", "/programmes", body)
                assert_problem(status, problem, 422, field="topics")
                assert why in problem["detail"]
            body = {"title": "X", "items": [first], "language": "Tiếng Việt"}
            status, problem, _ = await api.call("POST", "/programmes", body)
            assert_problem(status, problem, 422, field="language")
            async with client(station, lead) as leader:
                status, _, _ = await leader.call("POST", "/topics/II.9/retire", {})
                assert status == 200
            body = {"title": "X", "items": [first], "topics": ["II.9"]}
            status, problem, _ = await api.call("POST", "/programmes", body)
            assert_problem(status, problem, 422, field="topics")
            assert "no longer in use" in problem["detail"]
        async with client(station, viewer) as api:
            body = {"title": "X", "items": [first]}
            assert (await api.call("POST", "/programmes", body))[0] == 403
        assert await _audit(station, "programme.") == []


async def test_edit_if_match_approval_reset_and_audit(settings: Settings) -> None:
    async with running(settings) as station:
        bt = await user_with_token(station, "bt1", Role.BROADCASTER)
        lead = await user_with_token(station, "lead1", Role.APPROVER)
        viewer = await user_with_token(station, "xem", Role.VIEWER)
        media = await _media(station)
        async with client(station, bt) as api, client(station, lead) as leader:
            body = {"title": "Sáng", "items": [{"kind": "media", "media_id": media[0]}]}
            _, prog, _ = await api.call("POST", "/programmes", body)
            path = f"/programmes/{prog['id']}"
            status, _, _ = await leader.call("POST", f"{path}/approvals", {"version": 1})
            assert status == 201
            status, read, response = await api.call("GET", path)
            assert read["approved"] and read["version"] == 1
            etag = response.headers["ETag"]
            start = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            once = {"programme_id": prog["id"], "start_at": start, "targets": {"all": True}}
            assert (await api.call("POST", "/schedules", once))[0] == 201

            # the broadcaster adds a relay and a topic: version 2, approval needed again
            change = {
                "title": "Sáng và tiếp âm",
                "items": [
                    {"kind": "media", "media_id": media[0]},
                    {"kind": "relay", "url": RELAY, "duration_s": 600},
                ],
                "topics": ["II.7"],
                "language": "vi",
            }
            status, edited, response = await api.call(
                "PUT", path, change, headers={"If-Match": etag}
            )
            assert status == 200, edited
            assert edited["version"] == 2 and not edited["approved"]
            assert [i["kind"] for i in edited["items"]] == ["media", "relay"]
            assert edited["topics"] == ["II.7"] and edited["title"] == "Sáng và tiếp âm"
            new_etag = response.headers["ETag"]
            assert new_etag != etag

            # a second editor still holding the old ETag loses: 412 with the current one
            status, problem, _ = await api.call(
                "PATCH", path, {"title": "Chiều"}, headers={"If-Match": etag}
            )
            assert_problem(status, problem, 412)
            assert problem["current_etag"] == new_etag
            assert (await api.call("GET", path))[1]["title"] == "Sáng và tiếp âm"

            # an unapproved version cannot be scheduled (approval workflow)
            status, problem, _ = await api.call("POST", "/schedules", once)
            assert_problem(status, problem, 409)
            assert problem["title"] == "Approval required"
            status, problem, _ = await leader.call("POST", f"{path}/approvals", {"version": 1})
            assert_problem(status, problem, 409)  # the reviewed version is not current
            assert (await leader.call("POST", f"{path}/approvals", {"version": 2}))[0] == 201
            assert (await api.call("POST", "/schedules", once))[0] == 201

            # PATCH changes only what is sent; a bad item is named; approvers do not edit
            status, patched, _ = await api.call(
                "PATCH", path, {"language": "ctu"}, headers={"If-Match": new_etag}
            )
            assert status == 200 and patched["version"] == 3 and not patched["approved"]
            assert patched["items"] == edited["items"] and patched["topics"] == ["II.7"]
            bad = {"items": [{"kind": "live", "duration_s": -1}]}
            status, problem, _ = await api.call("PATCH", path, bad)
            assert_problem(status, problem, 422, field="items.0.duration_s")
            bad = {"items": [{"kind": "media", "media_id": 777}]}
            status, problem, _ = await api.call("PATCH", path, bad)
            assert_problem(status, problem, 422, field="items.0.media_id")
            status, problem, _ = await api.call("PATCH", path, {})
            assert_problem(status, problem, 422)
            assert "nothing to change" in problem["detail"]
            status, problem, _ = await api.call("PUT", path, {"title": "X"})
            assert_problem(status, problem, 422, field="items")
            assert (await leader.call("PATCH", path, {"title": "Y"}))[0] == 403
            async with client(station, viewer) as watcher:
                assert (await watcher.call("PATCH", path, {"title": "Y"}))[0] == 403
            assert (await api.call("PATCH", "/programmes/9999", {"title": "Y"}))[0] == 404
            assert (await api.call("GET", path))[1]["version"] == 3

        updates = await _audit(station, "programme.update")
        assert [(u.details["from_version"], u.details["version"]) for u in updates] == [
            (1, 2),
            (2, 3),
        ]
        assert [u.details["approval_reset"] for u in updates] == [True, True]
        assert updates[0].actor.startswith("bt1") and updates[0].target == f"programme:{prog['id']}"
        resets = await _audit(station, "programme.approval_reset")
        assert [r.details for r in resets] == [
            {"approved_version": 1, "version": 2},
            {"approved_version": 2, "version": 3},
        ]


async def test_a_retired_topic_stays_on_an_edited_programme(settings: Settings) -> None:
    async with running(settings) as station:
        bt = await user_with_token(station, "bt1", Role.BROADCASTER)
        lead = await user_with_token(station, "lead1", Role.APPROVER)
        media = await _media(station, 1)
        item = {"kind": "media", "media_id": media[0]}
        async with client(station, bt) as api, client(station, lead) as leader:
            body = {"title": "T", "items": [item], "topics": ["II.9"]}
            _, prog, _ = await api.call("POST", "/programmes", body)
            assert (await leader.call("POST", "/topics/II.9/retire", {}))[0] == 200
            path = f"/programmes/{prog['id']}"
            status, edited, _ = await api.call("PATCH", path, {"title": "T2"})
            assert status == 200 and edited["topics"] == ["II.9"], edited
            status, problem, _ = await api.call("PATCH", path, {"topics": ["II.9", "I.9"]})
            assert status == 200, problem  # kept, not newly picked
            status, problem, _ = await api.call("PATCH", path, {"topics": []})
            assert status == 200 and problem["topics"] == []
            status, problem, _ = await api.call("PATCH", path, {"topics": ["II.9"]})
            assert_problem(status, problem, 422, field="topics")  # picked again: refused


async def test_an_api_made_relay_programme_airs_on_simulated_clusters(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the console sends (items with a relay, a topic), approved, scheduled "now" through
    the API: every simulated cluster gets the relay as a stream from the station and plays it
    to its end (the same path as tests/test_dispatch_relay.py)."""
    radio = Upstream()
    await radio.start()
    ids = ["R1", "R2"]
    try:
        async with running(settings) as station:
            sent = spy_on_sends(station.app[keys.GATEWAY], monkeypatch)
            sessions = station.app[keys.SESSIONS]
            await register_clusters(sessions, [(cid, cid) for cid in ids])
            bt = await user_with_token(station, "bt1", Role.BROADCASTER)
            lead = await user_with_token(station, "lead1", Role.APPROVER)
            async with client(station, bt) as api, client(station, lead) as leader:
                body = {
                    "title": "Tiếp âm VOV",
                    "items": [{"kind": "relay", "url": radio.url, "duration_s": 3}],
                    "topics": ["II.7"],
                }
                status, prog, _ = await api.call("POST", "/programmes", body)
                assert status == 201, prog
                approval = {"version": 1}
                status, _, _ = await leader.call(
                    "POST", f"/programmes/{prog['id']}/approvals", approval
                )
                assert status == 201
                # Room for the schedule, the fleet's connect and the reconcile on a loaded CI
                # machine: with 3 s the 3-s relay could be over before the clusters heard it.
                lead_s = settings.scheduler.dispatch_lead_s + 10
                start = (datetime.now(UTC) + timedelta(seconds=lead_s)).replace(microsecond=0)
                once = {
                    "programme_id": prog["id"],
                    "start_at": start.isoformat(),
                    "targets": {"all": True},
                }
                status, body, _ = await api.call("POST", "/schedules", once)
                assert status == 201, body
            async with SimulatedFleet(station.runtime.mqtt_url, settings.station.id, ids):
                await station.app[keys.DISPATCHER].reconcile()
                async with asyncio.timeout(45):
                    while True:
                        async with sessions() as db:
                            records = (await db.exec(select(PlayRecord))).all()
                        done = [r for r in records if r.status == PlayRecordStatus.FINISHED]
                        if len(done) == len(ids):
                            break
                        await asyncio.sleep(0.2)
            streams = {cid for cid, c in sent if isinstance(c, StreamCommand)}
            assert streams == set(ids)
            assert radio.requests >= 1  # the station fetched the upstream for the clusters
    finally:
        await radio.stop()
