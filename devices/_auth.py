"""Device credentials and topic rights, the same rules for the embedded broker and Mosquitto.

Passwords are stored in Mosquitto 2.0's password-file format, ``$7$<iterations>$<salt b64>$<hash
b64>``: PBKDF2-HMAC-SHA512 over a 12-byte salt, 64-byte key, standard base64 (checked against
``mosquitto_passwd`` of Mosquitto 2.0.11). One stored hash therefore serves both brokers.

Rights (``TopicPolicy``): a cluster (username = its id) may publish only on its own
``loaxa/v1/<station>/c/<id>/{status,heartbeat,ack,event}`` and subscribe only to its own
``.../c/<id>/cmd``; the station user may do anything under ``loaxa/v1/<station>/#``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from devices.protocol import DEVICE_TO_STATION, Topics, is_valid_id

HASH_PREFIX = "$7$"
DEFAULT_ITERATIONS = 1000  # Mosquitto's own default is 101; each check costs ~1 ms at 1000
_SALT_BYTES = 12
_KEY_BYTES = 64

ANONYMOUS = "anonymous"
"""The credential of an anonymous login (never a ``$7$`` hash, so never equal to one)."""

CredentialLookup = Callable[[str], str | None]
"""Maps a username (a cluster id) to its stored ``$7$`` hash, or None if it has none."""


def generate_password(nbytes: int = 18) -> str:
    """A random URL-safe password (24 characters for the default 18 bytes)."""
    return secrets.token_urlsafe(nbytes)


def hash_password(
    password: str, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None
) -> str:
    if iterations < 1:
        raise ValueError("iterations must be positive")
    salt = salt if salt is not None else secrets.token_bytes(_SALT_BYTES)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, _KEY_BYTES)
    b64 = base64.b64encode
    return f"{HASH_PREFIX}{iterations}${b64(salt).decode()}${b64(key).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """True if ``password`` matches a ``$7$`` hash; False for a wrong password or a bad hash."""
    parts = encoded.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7":
        return False
    try:
        iterations = int(parts[2])
        salt = base64.b64decode(parts[3], validate=True)
        expected = base64.b64decode(parts[4], validate=True)
    except ValueError:
        return False
    if not 1 <= iterations <= 10_000_000 or not expected:
        return False
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, len(expected))
    return hmac.compare_digest(key, expected)


def station_username(station_id: str) -> str:
    """The station's own MQTT user; ``~`` is never in a cluster id, so no cluster can take it."""
    return f"~{station_id}"


@dataclass
class TopicPolicy:
    """Who may connect and what each user may publish and subscribe to.

    ``credentials`` is called for every connect, so the station can change it at any time (it
    does on register/replace/retire). With ``allow_anonymous`` a client without a username may
    act as any cluster of the station (demo and tests only); a client that gives a username is
    always checked.
    """

    station_id: str
    station_user: str
    station_password_hash: str
    credentials: CredentialLookup = field(default=lambda _user: None)
    allow_anonymous: bool = False

    def __post_init__(self) -> None:
        self.prefix = f"{Topics(self.station_id).prefix}/"

    def authenticate(self, username: str | None, password: str | None) -> bool:
        return self.login(username, password) is not None

    def login(self, username: str | None, password: str | None) -> str | None:
        """The credential a login is accepted on (the stored hash it matched, or ``ANONYMOUS``),
        or None if it is refused. Keep it with the session: ``login_holds`` tells later whether
        that credential is still the current one (a reissue or a retirement revokes it)."""
        credential = self.current_credential(username)
        if credential is None:
            return None
        if username is None:
            return credential  # anonymous, and allowed
        return credential if verify_password(password or "", credential) else None

    def current_credential(self, username: str | None) -> str | None:
        """What a login as ``username`` is checked against now; None: nobody may log in so."""
        if username is None:
            return ANONYMOUS if self.allow_anonymous else None
        if username == self.station_user:
            return self.station_password_hash
        if is_valid_id(username):
            return self.credentials(username)
        return None

    def login_holds(self, username: str | None, credential: str | None) -> bool:
        """True while the credential a session logged in with is still current: False once the
        cluster's password was reissued or the cluster retired (or anonymity switched off).
        A dict lookup and a string compare, cheap enough for every message."""
        return credential is not None and self.current_credential(username) == credential

    def may_publish(self, username: str | None, topic: str) -> bool:
        if not topic.startswith(self.prefix):
            return False
        if username == self.station_user:
            return True
        cluster_id, channel = self._own(topic)
        if cluster_id is None or channel not in DEVICE_TO_STATION:
            return False
        return username is None or username == cluster_id

    def may_subscribe(self, username: str | None, topic_filter: str) -> bool:
        if not topic_filter.startswith(self.prefix):
            return False
        if username == self.station_user:
            return True
        if self._live(topic_filter):  # live audio packets: any receiver of the station
            return True
        cluster_id, channel = self._own(topic_filter)
        if cluster_id is None or channel != "cmd":
            return False
        return username is None or username == cluster_id

    def _live(self, topic: str) -> bool:
        """``<prefix>/live/<mount>`` (no wildcards): MQTT stream commands name it."""
        parts = topic[len(self.prefix) :].split("/")
        return len(parts) == 2 and parts[0] == "live" and is_valid_id(parts[1])

    def _own(self, topic: str) -> tuple[str | None, str | None]:
        parts = topic[len(self.prefix) :].split("/")
        if len(parts) != 3 or parts[0] != "c" or not is_valid_id(parts[1]):
            return None, None  # also refuses wildcards: '+' and '#' are not valid ids
        return parts[1], parts[2]


def credentials_from(mapping: Mapping[str, str]) -> CredentialLookup:
    """A lookup over a fixed mapping (tests, tools)."""
    return mapping.get
