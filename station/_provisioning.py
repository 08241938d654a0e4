"""Where clusters reach this station: the endpoints a provisioning bundle carries.

Shared by the CLI (``loaxa cluster register``) and the REST API (``POST /fleet/clusters``), so
both hand out the same broker and audio URLs.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from station._registry import Endpoints
from station.config import Settings

__all__ = ["endpoints_for"]


def endpoints_for(settings: Settings) -> Endpoints:
    """Where clusters reach this station, from the configuration (no credentials in URLs)."""
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
    cas: list[Path] = []
    if mqtt.ca_file is not None and broker_url.startswith("mqtts"):
        cas.append(mqtt.ca_file)
    if settings.http.tls_ca is not None:
        cas.append(settings.http.tls_ca)
    return Endpoints(settings.station.id, broker_url, settings.http.base_url, _ca_bundle(cas))


def _ca_bundle(files: list[Path]) -> str | None:
    """One PEM text with each distinct CA once: the bundle has a single ``ca_pem`` that clusters
    trust for MQTT and HTTPS alike (a PEM file may hold several certificates)."""
    pems: list[str] = []
    for path in dict.fromkeys(files):
        pem = path.read_text(encoding="utf-8").strip()
        if pem not in pems:
            pems.append(pem)
    return "\n".join(pems) + "\n" if pems else None
