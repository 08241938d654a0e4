"""Technician commands: register, provision, replace, retire, move and import clusters; villages,
zones; Mosquitto files for the production broker."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from station.config import Settings

from ._clusters import cmd_village_list, cmd_zone_list
from ._common import Sessions, Subparsers, add_command, add_group, settings_from, with_station_db
from ._operator import add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor

WRITE = "clusters:write"  # what the API asks of the same actions

IMPORT_HELP = """CSV formats (UTF-8, header row, any column order):
  villages: id,name,households,lat,lon,note
  clusters: id,name,kind,village,zones,lat,lon,bridge,zone_code,model,serial,imei,iccid,
            sim_msisdn,firmware,installed_on,installed_as,status,replaces,note
  kind ict|bridge|fm|wired; zones separated by ';'; installed_on YYYY-MM-DD; installed_as
  new_station|replacement|extension; status working|faulty|retired; fm/wired need a bridge.
Each row is imported on its own: bad rows are listed with their line and reason, good rows are
kept. Imported ict/bridge clusters get credentials later with `loaxa cluster provision ID`."""


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
        "sim_msisdn": args.sim_msisdn,
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
    from station._provisioning import endpoints_for
    from station._registry import parse_spec, register_cluster

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        fields = _spec_fields(args, args.id)
        spec = parse_spec(fields)
        bundle = await register_cluster(sessions, spec, endpoints_for(settings))
        await _audit(sessions, who, "cluster.register", args.id, _shown(fields))
        print_bundle(bundle, args.json)
        return 0

    return with_operator(args, WRITE, body)


def cmd_provision(args: argparse.Namespace) -> int:
    from station._provisioning import endpoints_for
    from station._registry import provision_cluster

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        bundle = await provision_cluster(sessions, args.id, endpoints_for(settings))
        await _audit(sessions, who, "cluster.provision", args.id)
        print_bundle(bundle, args.json)
        return 0

    return with_operator(args, WRITE, body)


def cmd_replace(args: argparse.Namespace) -> int:
    from station._provisioning import endpoints_for
    from station._registry import parse_spec, replace_cluster

    async def body(sessions: Sessions, settings: Settings, who: Actor) -> int:
        fields = _spec_fields(args, args.new_id)
        spec = parse_spec(fields)
        bundle = await replace_cluster(sessions, args.old_id, spec, endpoints_for(settings))
        details = {"by": args.new_id} | _shown(fields)
        await _audit(sessions, who, "cluster.replace", args.old_id, details)
        print(f"{args.old_id} retired, replaced by {args.new_id}", file=sys.stderr)
        print_bundle(bundle, args.json)
        return 0

    return with_operator(args, WRITE, body)


EDITABLE = ("name", "lat", "lon", "model", "serial", "imei", "iccid", "sim_msisdn", "firmware",
            "installed_on", "installed_as", "note")  # fmt: skip


def cmd_edit(args: argparse.Namespace) -> int:
    from station._registry import edit_cluster, parse_edit

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        fields = {k: getattr(args, k) for k in EDITABLE if getattr(args, k) is not None}
        # "" clears an optional field (a SIM taken out, a serial recorded by mistake)
        changes = {k: (None if v == "" and k != "name" else v) for k, v in fields.items()}
        edit = parse_edit(changes)
        cluster = await edit_cluster(sessions, args.id, edit)
        await _audit(sessions, who, "cluster.update", args.id, edit.model_dump(
            mode="json", include=edit.model_fields_set))  # fmt: skip
        print(f"{cluster.id}: {cluster.name}; SIM {cluster.sim_msisdn or '-'}, "
              f"IMEI {cluster.imei or '-'}, ICCID {cluster.iccid or '-'}")  # fmt: skip
        return 0

    return with_operator(args, WRITE, body)


def cmd_retire(args: argparse.Namespace) -> int:
    from station._registry import retire_cluster

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        cluster = await retire_cluster(sessions, args.id)
        await _audit(sessions, who, "cluster.retire", args.id)
        print(f"{cluster.id} retired; its credentials no longer work")
        return 0

    return with_operator(args, WRITE, body)


def cmd_move(args: argparse.Namespace) -> int:
    from station._registry import move_cluster

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        zones = None if args.zones is None else [z for z in args.zones.split(",") if z]
        cluster = await move_cluster(
            sessions, args.id, village_id=args.village, zones=zones, lat=args.lat, lon=args.lon
        )
        moved = {"village_id": args.village, "zones": zones, "lat": args.lat, "lon": args.lon}
        await _audit(sessions, who, "cluster.move", args.id, _shown(moved))
        print(f"{cluster.id}: village {cluster.village_id or '-'}, "
              f"location {cluster.lat},{cluster.lon}")  # fmt: skip
        return 0

    return with_operator(args, WRITE, body)


async def _audit(
    sessions: Sessions, who: Actor, action: str, target: str, details: dict[str, Any] | None = None
) -> None:
    """The registry commits its own transaction: the entry follows in the next one."""
    from station._audit import record_action

    kind = action.partition(".")[0]
    await record_action(sessions, who, action, f"{kind}:{target}", details)


def _shown(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: str(v) if k == "installed_on" else v for k, v in fields.items() if v is not None}


def _print_report(report: Any, what: str) -> int:
    for row in report.errors:
        print(f"line {row.line}: {row.id or '(no id)'}: {row.error}", file=sys.stderr)
    print(f"{what}: {len(report.imported)} imported, {len(report.errors)} rejected")
    return 0 if not report.errors else 1


def cmd_import(args: argparse.Namespace) -> int:
    from station._registry_import import import_clusters

    text = Path(args.file).read_text(encoding="utf-8")

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        report = await import_clusters(sessions, text)
        await _audit_import(sessions, who, "cluster.import", args.file, report)
        return _print_report(report, "clusters")

    return with_operator(args, WRITE, body)


async def _audit_import(
    sessions: Sessions, who: Actor, action: str, path: str, report: Any
) -> None:
    from station._audit import record_action

    kind = action.partition(".")[0] + "s"  # the API's target: import:clusters
    details: dict[str, Any] = {"file": Path(path).name, "imported": list(report.imported)}
    details["errors"] = len(report.errors)
    await record_action(sessions, who, action, f"import:{kind}", details)


def cmd_village_add(args: argparse.Namespace) -> int:
    from station._registry import add_village

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        village = await add_village(
            sessions, args.id, args.name, args.households, args.lat, args.lon, args.note
        )
        await _audit(sessions, who, "village.create", args.id, {"name": args.name})
        print(f"village {village.id} added: {village.name}")
        return 0

    return with_operator(args, WRITE, body)


def cmd_village_import(args: argparse.Namespace) -> int:
    from station._registry_import import import_villages

    text = Path(args.file).read_text(encoding="utf-8")

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        report = await import_villages(sessions, text)
        await _audit_import(sessions, who, "village.import", args.file, report)
        return _print_report(report, "villages")

    return with_operator(args, WRITE, body)


def cmd_zone_add(args: argparse.Namespace) -> int:
    from station._registry import add_zone

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        zone = await add_zone(sessions, args.id, args.name)
        await _audit(sessions, who, "zone.create", args.id, {"name": args.name})
        print(f"zone {zone.id} added: {zone.name}")
        return 0

    return with_operator(args, WRITE, body)


def cmd_zone_assign(args: argparse.Namespace) -> int:
    from station._registry import assign_zone

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        added = await assign_zone(sessions, args.zone, args.clusters)
        await _audit(sessions, who, "zone.assign", args.zone, {"added": list(added)})
        print(f"zone {args.zone}: added {', '.join(added) or 'none (already members)'}")
        return 0

    return with_operator(args, WRITE, body)


def cmd_mosquitto_config(args: argparse.Namespace) -> int:
    from devices import (
        acl_text,
        generate_password,
        hash_password,
        make_persistence_dir,
        mosquitto_conf,
        password_file_text,
        station_username,
        write_atomic,
    )
    from station._registry import credential_hashes

    settings = settings_from(args)
    out = Path(args.output).resolve()
    store = Path(args.persistence_dir).resolve() if args.persistence_dir else out / "data"
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
        make_persistence_dir(store)
        conf = mosquitto_conf(
            out, port=args.port, bind=args.bind, tls_port=args.tls_port,
            certfile=args.certfile, keyfile=args.keyfile,
            extra=[f"pid_file {args.pid_file}"] if args.pid_file else [],
            persistence_dir=store,
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
    parser.add_argument("--sim-msisdn", help="SIM phone number [số thuê bao], e.g. 0912345678")
    parser.add_argument("--installed-on", help="YYYY-MM-DD")
    parser.add_argument("--installed-as", choices=["new_station", "replacement", "extension"])
    parser.add_argument("--json", action="store_true", help="print the bundle as JSON")


def register(sub: Subparsers) -> None:
    cluster = add_group(sub, "cluster", "register and manage clusters [cụm loa]")
    p = add_command(cluster, "register", cmd_register, "register a cluster; prints its bundle")
    p.add_argument("id")
    add_operator(p)
    _cluster_options(p)
    p = add_command(cluster, "provision", cmd_provision, "issue new credentials to a cluster")
    p.add_argument("id")
    add_operator(p)
    p.add_argument("--json", action="store_true")
    p = add_command(cluster, "replace", cmd_replace, "replace a broken cluster by a new ICT one")
    p.add_argument("old_id")
    add_operator(p)
    p.add_argument("new_id")
    _cluster_options(p, kind_default="ict")
    p = add_command(cluster, "edit", cmd_edit, "correct a cluster's name, location, hardware")
    p.add_argument("id")
    add_operator(p)
    p.add_argument("--name")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    for name in ("model", "serial", "imei", "iccid", "firmware", "note"):
        p.add_argument(f"--{name}", help="'' clears it")
    p.add_argument("--sim-msisdn", help="SIM phone number [số thuê bao]; '' clears it")
    p.add_argument("--installed-on", help="YYYY-MM-DD")
    p.add_argument("--installed-as", choices=["new_station", "replacement", "extension"])
    p = add_command(cluster, "retire", cmd_retire, "retire a cluster (revokes its credentials)")
    p.add_argument("id")
    add_operator(p)
    p = add_command(cluster, "move", cmd_move, "change a cluster's village, zones or location")
    p.add_argument("id")
    add_operator(p)
    p.add_argument("--village")
    p.add_argument("--zones", help="comma-separated zone ids (replaces the set; '' = none)")
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p = add_command(cluster, "import", cmd_import, "import clusters from CSV")
    add_operator(p)
    p.epilog = IMPORT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file")

    village = add_group(sub, "village", "villages [thôn/bản] of the commune")
    p = add_command(village, "add", cmd_village_add, "add a village")
    add_operator(p)
    p.add_argument("id")
    p.add_argument("name")
    p.add_argument("--households", type=int)
    p.add_argument("--lat", type=float)
    p.add_argument("--lon", type=float)
    p.add_argument("--note", default="")
    add_command(village, "list", cmd_village_list, "list villages")
    p = add_command(village, "import", cmd_village_import, "import villages from CSV")
    add_operator(p)
    p.epilog = IMPORT_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter
    p.add_argument("file")

    zone = add_group(sub, "zone", "zones: named groups of clusters")
    p = add_command(zone, "add", cmd_zone_add, "add a zone")
    add_operator(p)
    p.add_argument("id")
    p.add_argument("name", nargs="?", default="")
    p = add_command(zone, "assign", cmd_zone_assign, "put clusters into a zone")
    add_operator(p)
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
    p.add_argument(
        "--persistence-dir", help="where Mosquitto keeps sessions and queues (default: OUTPUT/data)"
    )
