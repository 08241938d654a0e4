"""``loaxa live start|stop|status``: live and relay mounts of the running station, over its API."""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import urllib.error
import urllib.request
from typing import Any

from station.config import Settings

from ._common import Subparsers, add_command, add_group, settings_from


def station_url(args: argparse.Namespace, settings: Settings, path: str) -> str:
    """``path`` on the running station: ``--url``, else ``http.base_url`` (``https://`` when
    the station serves TLS)."""
    return (args.url or settings.http.base_url).rstrip("/") + path


def station_tls(settings: Settings) -> ssl.SSLContext:
    """Verify the station against the system's CAs plus ``http.tls_ca``: a station with a
    certificate from the commune's private CA is trusted without turning verification off.
    ValueError (naming the file) if the CA cannot be loaded."""
    context = ssl.create_default_context()
    ca = settings.http.tls_ca
    if ca is not None:
        try:
            context.load_verify_locations(cafile=str(ca))
        except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
            raise ValueError(f"cannot load http.tls_ca {ca}: {exc}") from None
    return context


def _call(args: argparse.Namespace, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    settings = settings_from(args)
    url = station_url(args, settings, "/api/v1" + path)
    try:
        context = station_tls(settings)
    except ValueError as exc:
        return 0, {"detail": str(exc)}
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Accept", "application/json")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    token = args.token or os.environ.get("LOAXA_API_TOKEN", "")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15, context=context) as response:
            raw = response.read()
            return response.status, json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        try:
            detail = json.loads(exc.read()).get("detail", "")
        except ValueError:
            detail = ""
        return exc.code, {"detail": detail or exc.reason}
    except (urllib.error.URLError, OSError) as exc:
        return 0, {"detail": f"the station is not reachable at {url} ({exc}): is it running?"}


def _failed(status: int, body: Any) -> int:
    hint = " (give an API token with --token or LOAXA_API_TOKEN)" if status in (401, 403) else ""
    print(f"loaxa live: {status or 'no answer'}: {body.get('detail', '')}{hint}")
    return 1


def _show(mount: dict[str, Any]) -> None:
    counts = f"listeners={mount['listeners']} skipped={mount['skipped']} dropped={mount['dropped']}"
    print(f"{mount['mount']:<12} {mount['state']:<10} {mount['source']:<30} {counts}")


def cmd_start(args: argparse.Namespace) -> int:
    from station.live import OPERATOR_SOURCE, OPERATOR_SOURCES_HELP

    if not OPERATOR_SOURCE.match(args.source):  # the API refuses it too (422); say why here
        print(f"loaxa live: unknown --source {args.source!r}: use {OPERATOR_SOURCES_HELP}",
              file=sys.stderr)  # fmt: skip
        return 2
    status, body = _call(args, "POST", "/live", {"mount": args.mount, "source": args.source})
    if status != 201:
        return _failed(status, body)
    _show(body)
    return 0


def cmd_stop(args: argparse.Namespace) -> int:
    status, body = _call(args, "DELETE", f"/live/{args.mount}")
    return 0 if status == 204 else _failed(status, body)


def cmd_status(args: argparse.Namespace) -> int:
    status, body = _call(args, "GET", "/live")
    if status != 200:
        return _failed(status, body)
    for mount in body["items"]:
        _show(mount)
    if not body["items"]:
        print("no live mounts")
    status, body = _call(args, "GET", "/live/alerts?state=open")
    if status != 200:
        return _failed(status, body)
    for alert in body["items"]:  # kept in the alerts table: `loaxa alerts --all` for history
        print(
            f"alert: {alert['mount']} {alert['kind']} since {alert['raised_at']} {alert['detail']}"
        )
    return 0


def register(sub: Subparsers) -> None:
    group = add_group(sub, "live", "live and relay mounts of the running station")
    for name, func, help_ in (
        ("start", cmd_start, "start a mount"),
        ("stop", cmd_stop, "stop a mount"),
        ("status", cmd_status, "list mounts (state, source, listeners) and open alerts"),
    ):
        p = add_command(group, name, func, help_)
        p.add_argument("--url", help="the station's base URL (default: from the config)")
        p.add_argument("--token", help="API token (default: $LOAXA_API_TOKEN)")
        if name != "status":
            p.add_argument("--mount", required=True, help="mount name, e.g. xa")
        if name == "start":
            p.add_argument(
                "--source",
                required=True,
                help="alsa:DEV, pulse:DEV, relay:URL, icecast (a source client pushes), browser "
                "(the console's microphone) or push (whichever of the two connects first)",
            )
