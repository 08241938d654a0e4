"""Technician commands: register, provision, replace, retire, move and import clusters; villages,
zones; Mosquitto files for the production broker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from station.config import Settings

from ._clusters import cmd_village_list, cmd_zone_list
from ._common import Sessions, Subparsers, add_command, add_group, settings_from, with_station_db

IMPORT_HELP = """CSV formats (UTF-8, header row, any column order):
  villages: id,name,households,lat,lon,note
  clusters: id,name,kind,village,zones,lat,lon,bridge,zone_code,model,serial,imei,iccid,
            firmware,installed_on,installed_as,status,replaces,note
  kind ict|bridge|fm|wired; zones separated by ';'; installed_on YYYY-MM-DD; installed_as
  new_station|replacement|extension; status working|faulty|retired; fm/wired need a bridge.
Each row is imported on its own: bad rows are listed with their line and reason, good rows are
kept. Imported ict/bridge clusters get credentials later with `loaxa cluster provision ID`."""


def endpoints_for(settings: Settings) -> Any:
    """Where clusters reach this station, from the configuration (no credentials in URLs)."""
    from station._registry import Endpoints

    mqtt = settings.mqtt
    if mqtt.embedded:
        host = (
            "<station address>" if mqtt.embedded_host in ("0.0.0.0", "::") else mqtt.embedded_host
        )
        broker_url = f"mqtt://{host}:{mqtt.embedded_port}"
    else:
        parts = urlsplit(mqtt.url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        broker_url = urlunsplit((parts.scheme, netloc, "", "", ""))
    http = settings.http
    base = http.public_base_url or f"http://{http.host}:{http.port}"
    ca_pem = None
    if mqtt.ca_file is not None and broker_url.startswith("mqtts"):
        ca_pem = mqtt.ca_file.read_text(encoding="utf-8")
    return Endpoints(settings.station.id, broker_url, base, ca_pem)


def _spec_fields(args: argparse.Namespace, cluster_id: str) -> dict[str, Any]:
    fields = {
        "id": cluster_id,
        "name": args.name,
        "kind": args.kind,
        "village_id": args.village,
        "zones": args.zone or [],
        "lat": args.lat,
        "lon": args.lon,
        "bridge_id": args.bridge,
        "zone_code": args.zone_code,
        "model": args.model,
        "serial": args.serial,
        "imei": args.imei,
        "iccid": args.iccid,
        "firmware": args.firmware,
        "installed_on": args.installed_on,
        "installed_as": args.installed_as,
        "note": args.note,
    }
    return {k: v for k, v in fields.items() if v is not None}


def print_bundle(bundle: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(bundle.as_dict(), ensure_ascii=False, indent=2))
        return
    print(f"cluster:      {bundle.cluster_id}  (station {bundle.station_id})")
    print(f"broker:       {bundle.broker_url}")
    print(f"audio server: {bundle.http_base_url}")
    if bundle.password:
        print(f"username:     {bundle.username}")
        print(f"password:     {bundle.password}")
        print("The password is shown only now and stored hashed: enter it on the device.",
              file=sys.stderr)  # fmt: skip
    else:
        print("no credentials: this legacy cluster is driven through its bridge")
    if bundle.ca_pem:
        print("CA certificate (PEM):")
        print(bundle.ca_pem.rstrip())


def cmd_register(args: argparse.Namespace) -> int:
    from station._registry import parse_spec, register_cluster

    async def body(sessions: Sessions, settings: Settings) -> int:
        spec = parse_spec(_spec_fields(args, args.id))
        print_bundle(await register_cluster(sessions, spec, endpoints_for(settings)), args.json)
        return 0

    return with_station_db(args, body)


def cmd_provision(args: argparse.Namespace) -> int:
    from station._registry import provision_cluster

    async def body(sessions: Sessions, settings: Settings) -> int:
        bundle = await provision_cluster(sessions, args.id, endpoints_for(settings))
        print_bundle(bundle, args.json)
        return 0

    return with_station_db(args, body)


def cmd_replace(args: argparse.Namespace) -> int:
    from station._registry import parse_spec, replace_cluster

    async def body(sessions: Sessions, settings: Settings) -> int:
        spec = parse_spec(_spec_fields(args, args.new_id))
        bundle = await replace_cluster(sessions, args.old_id, spec, endpoints_for(settings))
        print(f"{args.old_id} retired, replaced by {args.new_id}", file=sys.stderr)
        print_bundle(bundle, args.json)
        return 0

    return with_station_db(args, body)


def cmd_retire(args: argparse.Namespace) -> int:
    from station._registry import retire_cluster

    async def body(sessions: Sessions, _settings: Settings) -> int:
        cluster = await retire_cluster(sessions, args.id)
        print(f"{cluster.id} retired; its credentials no longer work")
        return 0

    return with_station_db(args, body)


def cmd_move(args: argparse.Namespace) -> int:
    from station._registry import move_cluster

    async def body(sessions: Sessions, _settings: Settings) -> int:
        zones = None if args.zones is None else [z for z in args.zones.split(",") if z]
        cluster = await move_cluster(
            sessions, args.id, village_id=args.village, zones=zones, lat=args.lat, lon=args.lon
        )
        print(f"{cluster.id}: village {cluster.village_id or '-'}, "
              f"location {cluster.lat},{cluster.lon}")  # fmt: skip
        return 0

    return with_station_db(args, body)


def _print_report(report: Any, what: str) -> int:
    for row in report.errors:
        print(f"line {row.line}: {row.id or '(no id)'}: {row.error}", file=sys.stderr)
    print(f"{what}: {len(report.imported)} imported, {len(report.errors)} rejected")
    return 0 if not report.errors else 1


def cmd_import(args: argparse.Namespace) -> int:
    from station._registry_import import import_clusters

    text = Path(args.file).read_text(encoding="utf-8")

    async def body(sessions: Sessions, _settings: Settings) -> int:
        return _print_report(await import_clusters(sessions, text), "clusters")

    return with_station_db(args, body)


def cmd_village_add(args: argparse.Namespace) -> int:
    from station._registry import add_village

    async def body(sessions: Sessions, _settings: Settings) -> int:
        village = await add_village(
            sessions, args.id, args.name, args.households, args.lat, args.lon, args.note
        )
        print(f"village {village.id} added: {village.name}")
        return 0

    return with_station_db(args, body)


def cmd_village_import(args: argparse.Namespace) -> int:
    from station._registry_import import import_villages

    text = Path(args.file).read_text(encoding="utf-8")

    async def body(sessions: Sessions, _settings: Settings) -> int:
        return _print_report(await import_villages(sessions, text), "villages")

    return with_station_db(args, body)


def cmd_zone_add(args: argparse.Namespace) -> int:
    from station._registry import add_zone

    async def body(sessions: Sessions, _settings: Settings) -> int:
        zone = await add_zone(sessions, args.id, args.name)
        print(f"zone {zone.id} added: {zone.name}")
        return 0

    return with_station_db(args, body)


def cmd_zone_assign(args: argparse.Namespace) -> int:
    from station._registry import assign_zone

    async def body(sessions: Sessions, _settings: Settings) -> int:
        added = await assign_zone(sessions, args.zone, args.clusters)
        print(f"zone {args.zone}: added {', '.join(added) or 'none (already members)'}")
        return 0

    return with_station_db(args, body)


def cmd_mosquitto_config(args: argparse.Namespace) -> int:
    from devices import (
        acl_text,
        generate_password,
        hash_password,
        mosquitto_conf,
        password_file_text,
        station_username,
        write_atomic,
    )
    from station._registry import credential_hashes

    settings = settings_from(args)
    out = Path(args.output).resolve()
    user, password, new_password = station_username(settings.station.id), "", False
    if not settings.mqtt.embedded:
        broker = settings.mqtt.broker()
        user, password = broker.username or user, broker.password or ""
    if not password:
        password, new_password = generate_password(), True

    async def body(sessions: Sessions, _settings: Settings) -> int:
        hashes = await credential_hashes(sessions)
        entries = [(user, hash_password(password)), *hashes.items()]
        write_atomic(out / "passwd", password_file_text(entries))
        write_atomic(out / "acl", acl_text(settings.station.id, user))
        conf = mosquitto_conf(
            out, port=args.port, bind=args.bind, tls_port=args.tls_port,
            certfile=args.certfile, keyfile=args.keyfile,
            extra=[f"pid_file {args.pid_file}"] if args.pid_file else [],
        )  # fmt: skip
        write_atomic(out / "mosquitto.conf", conf, mode=0o644)
        print(f"wrote {out / 'mosquitto.conf'}, passwd ({len(hashes)} clusters) and acl")
        if new_password:
            print(f"station login (shown once): set mqtt.url to mqtt://{user}:{password}@HOST:"
                  f"{args.port}")  # fmt: skip
        return 0

    return with_station_db(args, body)


def _cluster_options(parser: argparse.ArgumentParser, kind_default: str | None = None) -> None:
    parser.add_argument("--name")
    parser.add_argument("--kind", choices=["ict", "bridge", "fm", "wired"], default=kind_default)
    parser.add_argument("--village", help="village id")
    parser.add_argument("--zone", action="append", help="zone id (repeat for several)")
    parser.add_argument("--lat", type=float)
    parser.add_argument("--lon", type=float)
    parser.add_argument("--bridge", help="bridge cluster id (fm/wired clusters)")
    parser.add_argument("--zone-code", help="DTMF/RDS code that switches a legacy set on")
    for name in ("model", "serial", "imei", "iccid", "firmware", "note"):
        parser.add_argument(f"--{name}")
    parser.add_argument("--installed-on", help="YYYY-MM-DD")
    parser.add_argument("--installed-as", choices=["new_station", "replacement", "extension"])
    parser.add_argument("--json", action="store_true", help="print the bundle as JSON")


def register(sub: Subparsers) -> None:
    cluster = add_group(sub, "cluster", "register and manage clusters [cụm loa]")
    p = add_command(cluster, "register", cmd_register, "register a cluster; prints its bundle")
    p.add_argument("id")
    _cluster_options(p)
    p = add_command(cluster, "provision", cmd_provision, "issue new credentials to a cluster")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p = add_command(cluster, "replace", cmd_replace, "replace a broken cluster by a new ICT one")
    p.add_argument("old_id")
    p.add_argument("new_id")
    _cluster_options(p, kind_default="ict")
    p = add_command(cluster, "retire", cmd_retire, "retire a cluster (revokes its credentials)")
    p.add_argument("id")
    p = add_command(cluster, "move", cmd_move, "change a cluster's village, zones or location")
    p.add_argument("id")
    p.add_argument("--village")
    p.add_argument("--zones", help="comma-separated zone ids (replaces the set; '' = none)")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p = add_command(cluster, "import", cmd_import, "import clusters from CSV")
    p.epilog = IMPORT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file")

    village = add_group(sub, "village", "villages [thôn/bản] of the commune")
    p = add_command(village, "add", cmd_village_add, "add a village")
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("--households", type=int)
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--note", default="")
    add_command(village, "list", cmd_village_list, "list villages")
    p = add_command(village, "import", cmd_village_import, "import villages from CSV")
    p.epilog = IMPORT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file")

    zone = add_group(sub, "zone", "zones: named groups of clusters")
    p = add_command(zone, "add", cmd_zone_add, "add a zone")
    p.add_argument("id")
    p.add_argument("name", nargs="?", default="")
    p = add_command(zone, "assign", cmd_zone_assign, "put clusters into a zone")
    p.add_argument("zone")
    p.add_argument("clusters", nargs="+")

    add_command(zone, "list", cmd_zone_list, "list zones and their clusters")

    broker = add_group(sub, "broker", "the MQTT broker")
    p = add_command(
        broker, "mosquitto-config", cmd_mosquitto_config,
        "write mosquitto.conf, passwd and acl for the production broker",
    )  # fmt: skip
    p.add_argument("-o", "--output", required=True, help="folder for the three files")
    p.add_argument("--port", type=int, default=1883)
    p.add_argument("--bind", default="", help="listen address (default: all)")
    p.add_argument("--pid-file", help="where Mosquitto writes its pid (for the station's SIGHUP)")
    p.add_argument("--tls-port", type=int, help="also listen with TLS on this port (8883)")
    p.add_argument("--certfile", help="server certificate chain (PEM) for TLS")
    p.add_argument("--keyfile", help="server private key (PEM) for TLS")
