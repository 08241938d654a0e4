"""The technician's CLI: a commune set up, provisioned, repaired and reported on from the shell."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices import verify_password
from station.cli import main

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def config(tmp_path: Path, database_url: str, station_id: str) -> str:
    path = tmp_path / "loaxa.yaml"
    path.write_text(
        f"station: {{id: {station_id}}}\n"
        f"database: {{url: '{database_url}'}}\n"
        "mqtt: {url: 'mqtts://broker.example:8883'}\n"
        "http: {public_base_url: 'http://10.0.0.2:8080'}\n",
        encoding="utf-8",
    )
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_commune_from_the_command_line(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    c = ("-c", config)
    villages = str(FIXTURES / "commune_villages.csv")
    assert run(capsys, "village", "import", villages, *c)[1].startswith("villages: 10 imported")
    code, out, err = run(capsys, "cluster", "import", str(FIXTURES / "commune_clusters.csv"), *c)
    assert code == 0 and "20 imported, 0 rejected" in out

    code, out, _ = run(capsys, "coverage", *c)
    assert "1 of 10 villages have no working cluster" in out and "T05" in out

    code, out, err = run(capsys, "cluster", "replace", "C06", "C20", "--json", *c)
    assert code == 0 and "C06 retired" in err
    bundle = json.loads(out)
    assert bundle["username"] == "C20" and bundle["broker_url"] == "mqtts://broker.example:8883"
    assert bundle["http_base_url"] == "http://10.0.0.2:8080"
    assert "0 of 10 villages" in run(capsys, "coverage", *c)[1]

    code, out, err = run(capsys, "cluster", "register", "C21", "--village", "T02", *c)
    assert code == 0 and "password:" in out and "shown only now" in err
    code, out, err = run(capsys, "cluster", "register", "C21", *c)
    assert code == 2 and "already registered" in err
    code, out, err = run(capsys, "cluster", "register", "C22", "--village", "T99", *c)
    assert code == 2 and "unknown village T99" in err
    code, out, err = run(capsys, "cluster", "register", "L09", "--kind", "fm", *c)
    assert code == 2 and "needs a bridge" in err

    assert run(capsys, "zone", "add", "north", "Phía bắc", *c)[0] == 0
    assert run(capsys, "zone", "assign", "north", "C05", "L04", *c)[0] == 0
    assert "C05, L04" in run(capsys, "zone", "list", *c)[1]
    code, out, err = run(
        capsys, "cluster", "move", "C21", "--village", "T03", "--zones", "north", *c
    )
    assert code == 0 and "village T03" in out
    assert run(capsys, "cluster", "retire", "C21", *c)[0] == 0
    code, out, _ = run(capsys, "clusters", *c)
    assert "C20" in out and "C21" not in out and "C06" not in out
    assert "C21" in run(capsys, "clusters", "--all", *c)[1]
    assert run(capsys, "alerts", *c)[1].strip() == "no open alerts"
    assert "total 0.00 MB" in run(capsys, "data-use", *c)[1]
    assert "T01" in run(capsys, "village", "list", *c)[1]

    out_dir = tmp_path / "mosq"
    code, out, _ = run(capsys, "broker", "mosquitto-config", "-o", str(out_dir), *c)
    assert code == 0 and "station login (shown once)" in out
    users = dict(line.split(":", 1) for line in (out_dir / "passwd").read_text().splitlines())
    assert set(users) >= {"C20"} and "pattern read loaxa/v1/" in (out_dir / "acl").read_text()
    assert "acl_file" in (out_dir / "mosquitto.conf").read_text()
    assert f"persistence_location {out_dir / 'data'}/" in (out_dir / "mosquitto.conf").read_text()
    assert (out_dir / "data").is_dir()  # Mosquitto writes its sessions there
    assert verify_password(bundle["password"], users["C20"])


def test_import_reports_bad_rows_on_stderr(
    capsys: pytest.CaptureFixture[str], config: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("id,kind,village\nX1,ict,\nX 2,ict,\nX3,tower,\n", encoding="utf-8")
    code, out, err = run(capsys, "cluster", "import", str(bad), "-c", config)
    assert code == 1 and "1 imported, 2 rejected" in out
    assert "line 3: X 2: " in err and "line 4: X3: kind" in err
    code, _, err = run(capsys, "cluster", "import", str(tmp_path / "missing.csv"), "-c", config)
    assert code == 2 and "missing.csv" in err


def test_stats_says_when_the_station_is_not_running(
    capsys: pytest.CaptureFixture[str], config: str
) -> None:
    code, out, _ = run(capsys, "stats", "--url", "http://127.0.0.1:9", "-c", config)
    assert code == 1 and "not reachable" in out


async def test_stats_of_a_running_station(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    mqtt_url: str,
    database_url: str,
    station_id: str,
) -> None:
    import asyncio

    from api_support import user_with_token

    from station.api import Role
    from station.app import start_station
    from station.demo import demo_settings

    settings = demo_settings(
        tmp_path, mqtt_url=mqtt_url, database_url=database_url, station_id=station_id
    )
    station = await start_station(settings)
    try:
        refused = await asyncio.to_thread(main, ["stats", "--url", station.base_url])
        assert refused == 1 and "--token" in capsys.readouterr().out
        token = await user_with_token(station, "viewer", Role.VIEWER)
        argv = ["stats", "--url", station.base_url, "--token", token]
        code = await asyncio.to_thread(main, argv)
    finally:
        await station.stop()
    out = capsys.readouterr().out
    assert code == 0 and "commands_sent: 0" in out and "messages_dropped:" in out
