"""The cluster registry: register, provision, replace, retire, move, import, coverage.

The fixtures tests/fixtures/commune_{villages,clusters}.csv are the example commune
(../shared/example-commune) mapped into loaxa's import format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from devices import verify_password
from station._registry import (
    Endpoints,
    add_village,
    add_zone,
    assign_zone,
    credential_hashes,
    move_cluster,
    parse_spec,
    provision_cluster,
    register_cluster,
    replace_cluster,
    retire_cluster,
    zones_of,
)
from station._registry_import import coverage, import_clusters, import_villages
from station._services import (
    Sessions,
    StationError,
    create_programme,
    register_clusters,
    schedule_once,
)
from station.db import (
    Cluster,
    ClusterKind,
    ClusterStatus,
    InstalledAs,
    MediaItem,
    Schedule,
    create_engine_for,
    session_factory,
    upgrade_async,
)
from station.db.models_fleet import ClusterStatusChange

FIXTURES = Path(__file__).parent / "fixtures"
ENDPOINTS = Endpoints("xa-test", "mqtt://broker.example:1883", "http://10.0.0.2:8080")


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[Sessions]:
    await upgrade_async(database_url)
    engine = create_engine_for(database_url)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()


async def _commune(sessions: Sessions) -> None:
    villages = await import_villages(sessions, (FIXTURES / "commune_villages.csv").read_text())
    assert villages.errors == [] and len(villages.imported) == 10
    report = await import_clusters(sessions, (FIXTURES / "commune_clusters.csv").read_text())
    assert report.errors == [] and len(report.imported) == 20


async def test_register_returns_a_bundle_and_stores_only_a_hash(sessions: Sessions) -> None:
    await add_village(sessions, "T01", "Thôn Đông", 412)
    await add_zone(sessions, "river", "Ven sông")
    spec = parse_spec(
        {"id": "C01", "village_id": "T01", "zones": ["river"], "imei": "356938035643809"}
    )
    bundle = await register_cluster(sessions, spec, ENDPOINTS)
    assert bundle.username == "C01" and bundle.password and len(bundle.password) >= 20
    assert bundle.broker_url == ENDPOINTS.broker_url
    assert bundle.http_base_url == ENDPOINTS.http_base_url
    async with sessions() as db:
        row = await db.get(Cluster, "C01")
        assert row is not None and await zones_of(db, "C01") == ["river"]
    assert row.status == ClusterStatus.PROVISIONED
    assert row.credential_hash is not None and bundle.password not in row.credential_hash
    assert verify_password(bundle.password, row.credential_hash)
    assert await credential_hashes(sessions) == {"C01": row.credential_hash}
    with pytest.raises(StationError, match="already registered"):
        await register_cluster(sessions, spec, ENDPOINTS)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"id": "bad id"}, "invalid cluster id"),
        ({"id": "C1", "kind": "laser"}, "kind"),
        ({"id": "C1", "village_id": "nowhere"}, "unknown village"),
        ({"id": "C1", "zones": ["z9"]}, "unknown zone"),
        ({"id": "C1", "kind": "fm"}, "needs a bridge"),
        ({"id": "C1", "kind": "fm", "bridge_id": "C0"}, "not a registered bridge"),
        ({"id": "C1", "zone_code": "11"}, "only fm/wired"),
        ({"id": "C1", "imei": "12ab"}, "imei"),
        ({"id": "C1", "lat": 123}, "lat"),
    ],
)
async def test_bad_registrations_are_refused(
    sessions: Sessions, fields: dict[str, object], message: str
) -> None:
    with pytest.raises(StationError, match=message):
        await register_cluster(sessions, parse_spec(fields), ENDPOINTS)
    async with sessions() as db:
        assert (await db.exec(select(Cluster))).all() == []


async def test_register_clusters_refuses_an_id_given_twice(sessions: Sessions) -> None:
    """A raw IntegrityError before; now a StationError naming the id (the CLI's ``main`` prints
    it as "loaxa: ...", the API answers problem+json) and nothing of the call is written."""
    pairs = [("C1", "one"), ("C2", "two"), ("C1", "one again")]
    with pytest.raises(StationError, match="cluster id 'C1' is given more than once"):
        await register_clusters(sessions, pairs)
    async with sessions() as db:
        assert (await db.exec(select(Cluster))).all() == []
        assert (await db.exec(select(ClusterStatusChange))).all() == []
    assert await register_clusters(sessions, pairs[:2]) == ["C1", "C2"]
    assert await register_clusters(sessions, [("C2", "two"), ("C3", "three")]) == ["C3"]


async def test_import_of_the_example_commune_and_coverage(sessions: Sessions) -> None:
    await _commune(sessions)
    async with sessions() as db:
        l01 = await db.get(Cluster, "L01")
        l03 = await db.get(Cluster, "L03")
        c11 = await db.get(Cluster, "C11")
    assert l01 is not None and l01.kind == ClusterKind.FM and l01.bridge_id == "B01"
    assert l01.zone_code == "11"
    assert l03 is not None and l03.status == ClusterStatus.RETIRED and l03.replaced_by == "C11"
    assert c11 is not None and c11.installed_as == InstalledAs.REPLACEMENT
    assert await credential_hashes(sessions) == {}  # imported clusters are not provisioned yet
    report = {v.village_id: v for v in await coverage(sessions)}
    # T05's only cluster (C06) is faulty; every other village has a working one.
    assert [v for v, c in report.items() if not c.covered] == ["T05"]
    assert report["T05"].not_working == ["C06"]
    assert set(report["T01"].working) == {"C02", "C03", "L01"}
    assert report["T04"].not_working == ["L04"]


async def test_legacy_clusters_count_only_while_their_bridge_works(sessions: Sessions) -> None:
    await _commune(sessions)
    async with sessions() as db:
        b02 = await db.get(Cluster, "B02")
        assert b02 is not None
        b02.status = ClusterStatus.FAULTY
        db.add(b02)
        await db.commit()
    uncovered = [v.village_id for v in await coverage(sessions) if not v.covered]
    assert uncovered == ["T05", "T07"]  # An Lợi hangs on the wired bridge only


async def test_import_reports_bad_rows_and_keeps_good_ones(sessions: Sessions) -> None:
    await import_villages(sessions, "id,name\nT01,Thôn Đông\n")
    text = (
        "id,kind,village,bridge,installed_on,status\n"
        "A1,ict,T01,,2024-01-02,working\n"
        "A2,ict,T99,,,\n"  # unknown village
        "A3,fm,T01,A1,,\n"  # A1 is not a bridge
        "A4,ict,T01,,2024-13-01,\n"  # bad date
        "A5,ict,T01,,,broken\n"  # bad status
        "A1,ict,T01,,,\n"  # duplicate
        "A6,bridge,T01,,,\n"
        "A7,wired,T01,A6,,\n"
    )
    report = await import_clusters(sessions, text)
    assert report.imported == ["A1", "A6", "A7"]
    errors = {(r.line, r.id): r.error or "" for r in report.errors}
    assert list(errors) == [(3, "A2"), (4, "A3"), (5, "A4"), (6, "A5"), (7, "A1")]
    assert "unknown village" in errors[(3, "A2")]
    assert "not a registered bridge" in errors[(4, "A3")]
    assert "installed_on" in errors[(5, "A4")]
    assert "status" in errors[(6, "A5")]
    assert "already registered" in errors[(7, "A1")]
    async with sessions() as db:
        ids = (await db.exec(select(Cluster.id).order_by(Cluster.id))).all()
    assert ids == ["A1", "A6", "A7"]
    with pytest.raises(StationError, match="unknown column"):
        await import_clusters(sessions, "id,colour\nX,red\n")


async def test_replace_a_broken_fm_set_takes_over_village_zones_and_schedules(
    sessions: Sessions,
) -> None:
    await _commune(sessions)
    await add_zone(sessions, "north", "Phía bắc")
    await assign_zone(sessions, "north", ["L04", "C05"])
    async with sessions() as db:
        media = MediaItem(
            sha256="a" * 64, source_sha256="b" * 64, title="t", duration_ms=1, size_bytes=1
        )
        db.add(media)
        await db.commit()
        await db.refresh(media)
    assert media.id is not None
    programme = await create_programme(sessions, "p", [media.id])
    assert programme.id is not None
    start = datetime.now(UTC) + timedelta(hours=1)
    pending = await schedule_once(sessions, programme.id, start, {"clusters": ["L04", "C05"]})
    everyone = await schedule_once(sessions, programme.id, start, {"all": True})

    bundle = await replace_cluster(sessions, "L04", parse_spec({"id": "C13"}), ENDPOINTS)
    assert bundle.username == "C13" and bundle.password
    async with sessions() as db:
        old = await db.get(Cluster, "L04")
        new = await db.get(Cluster, "C13")
        assert await zones_of(db, "C13") == ["north"]
        moved = await db.get(Schedule, pending.id)
        untouched = await db.get(Schedule, everyone.id)
    assert old is not None and new is not None and moved is not None and untouched is not None
    assert old.status == ClusterStatus.RETIRED and old.retired_at is not None
    assert old.replaced_by == "C13" and new.replaces == "L04"
    assert new.village_id == "T04" and new.kind == ClusterKind.ICT
    assert new.installed_as == InstalledAs.REPLACEMENT
    assert moved.targets == {"clusters": ["C13", "C05"]}
    assert untouched.targets == {"all": True}
    with pytest.raises(StationError, match="retired"):
        await replace_cluster(sessions, "L04", parse_spec({"id": "C14"}), ENDPOINTS)


async def test_replacing_a_bridge_hands_over_its_legacy_clusters(sessions: Sessions) -> None:
    await _commune(sessions)
    with pytest.raises(StationError, match="kind bridge"):
        await replace_cluster(sessions, "B02", parse_spec({"id": "B03"}), ENDPOINTS)
    await replace_cluster(sessions, "B02", parse_spec({"id": "B03", "kind": "bridge"}), ENDPOINTS)
    async with sessions() as db:
        wired = (await db.exec(select(Cluster).where(Cluster.village_id == "T07"))).all()
    assert {c.id: c.bridge_id for c in wired if c.kind == ClusterKind.WIRED} == {
        "W01": "B03",
        "W02": "B03",
    }
    assert "T07" not in [v.village_id for v in await coverage(sessions) if not v.covered]


async def test_retire_move_and_provision(sessions: Sessions) -> None:
    await _commune(sessions)
    with pytest.raises(StationError, match="still drives"):
        await retire_cluster(sessions, "B01")
    first = await provision_cluster(sessions, "C02", ENDPOINTS)
    second = await provision_cluster(sessions, "C02", ENDPOINTS)
    hashes = await credential_hashes(sessions)
    assert first.password and second.password
    assert not verify_password(first.password, hashes["C02"])  # re-provisioning revokes
    assert verify_password(second.password, hashes["C02"])
    with pytest.raises(StationError, match="never connects"):
        await provision_cluster(sessions, "L01", ENDPOINTS)
    retired = await retire_cluster(sessions, "C02")
    assert retired.status == ClusterStatus.RETIRED and retired.credential_hash is None
    assert "C02" not in await credential_hashes(sessions)
    with pytest.raises(StationError, match="retired"):
        await move_cluster(sessions, "C02", village_id="T02")
    await add_zone(sessions, "market", "Chợ")
    moved = await move_cluster(
        sessions, "C03", village_id="T10", zones=["market"], lat=15.9, lon=108.3
    )
    assert moved.village_id == "T10" and (moved.lat, moved.lon) == (15.9, 108.3)
    with pytest.raises(StationError, match="both"):
        await move_cluster(sessions, "C03", lat=1.0)
    with pytest.raises(StationError, match="unknown village"):
        await move_cluster(sessions, "C03", village_id="T77")


async def test_commands_go_to_ict_clusters_and_bridges_only(sessions: Sessions) -> None:
    from station._playout_store import target_cluster_ids

    await _commune(sessions)
    async with sessions() as db:
        everyone = await target_cluster_ids(db, {"all": True})
        chosen = await target_cluster_ids(db, {"clusters": ["B02", "W01", "L03", "C01"]})
    assert "B01" in everyone and "B02" in everyone
    assert not any(cid.startswith(("L", "W")) for cid in everyone)  # legacy: via their bridge
    assert chosen == ["B02", "C01"]


async def test_an_imported_commune_has_a_history_row_per_cluster(sessions: Sessions) -> None:
    at = datetime(2025, 1, 2, 3, 4, tzinfo=UTC)
    await import_villages(sessions, (FIXTURES / "commune_villages.csv").read_text())
    report = await import_clusters(sessions, (FIXTURES / "commune_clusters.csv").read_text(), at=at)
    assert len(report.imported) == 20
    async with sessions() as db:
        clusters = {c.id: c for c in (await db.exec(select(Cluster))).all()}
        history = (await db.exec(select(ClusterStatusChange))).all()
    assert sorted(h.cluster_id for h in history) == sorted(clusters)  # one each
    for row in history:
        cluster = clusters[row.cluster_id]
        assert (row.from_status, row.to_status, row.online, row.at) == (
            None, cluster.status, False, at
        )  # fmt: skip
    assert clusters["L03"].status == ClusterStatus.RETIRED and clusters["L03"].retired_at == at
    assert {h.to_status for h in history} == {
        ClusterStatus.REGISTERED, ClusterStatus.FAULTY, ClusterStatus.RETIRED
    }  # fmt: skip
