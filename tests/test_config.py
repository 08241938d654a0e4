from __future__ import annotations

from pathlib import Path

import pydantic
import pytest
import yaml

from station.config import (
    ConfigError,
    DatabaseSection,
    MqttSection,
    Settings,
    async_driver_url,
    load_config,
    mask_url,
    sync_driver_url,
)

EXAMPLE = Path(__file__).resolve().parents[1] / "config.example.yaml"


def write(tmp_path: Path, text: str, name: str = "loaxa.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path | None = None, env: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, env or {})
    return str(info.value)


# --------------------------------------------------------------------------- defaults


def test_defaults() -> None:
    s = load_config(None, {})
    assert s == Settings()
    assert s.station.id == "xa-demo"
    assert s.station.name == "Đài truyền thanh xã"
    assert s.station.timezone == "Asia/Ho_Chi_Minh"
    assert s.station.tzinfo.key == "Asia/Ho_Chi_Minh"
    assert s.database.url == "sqlite:///./var/loaxa.db"
    assert s.database.backend == "sqlite"
    assert s.mqtt.url == "embedded" and s.mqtt.embedded
    assert (s.mqtt.embedded_host, s.mqtt.embedded_port) == ("127.0.0.1", 1883)
    assert s.mqtt.ca_file is None
    assert s.mqtt.client_id == "loaxa-station-xa-demo"
    assert (s.mqtt.keepalive_s, s.mqtt.publish_timeout_s) == (30, 5.0)
    assert s.mqtt.inbound_queue_size == 10000
    assert (s.mqtt.reconnect_min_s, s.mqtt.reconnect_max_s) == (1, 60)
    assert (s.http.host, s.http.port, s.http.public_base_url) == ("127.0.0.1", 8080, None)
    assert s.media.dir == Path("./var/media")
    assert (s.media.max_upload_mb, s.media.max_duration_s) == (200, 10800)
    assert (s.media.target_lufs, s.media.true_peak_db) == (-16.0, -1.5)
    assert (s.media.speech_filter, s.media.workers, s.media.ffmpeg) == (False, 2, "auto")
    assert s.scheduler.dispatch_lead_s == 5.0
    assert (s.scheduler.play_expiry_s, s.scheduler.misfire_grace_s) == (60, 300)
    assert (s.logging.level, s.logging.json_format) == ("INFO", False)
    assert s.devices.auto_register is False


def test_client_id_follows_station_id_unless_set() -> None:
    assert load_config(None, {"LOAXA_STATION__ID": "xa-an-binh"}).mqtt.client_id == (
        "loaxa-station-xa-an-binh"
    )
    env = {"LOAXA_STATION__ID": "xa-an-binh", "LOAXA_MQTT__CLIENT_ID": "custom"}
    assert load_config(None, env).mqtt.client_id == "custom"
    assert Settings.model_validate({"station": {"id": "s1"}}).mqtt.client_id == "loaxa-station-s1"


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(pydantic.ValidationError):
        s.http.port = 1


@pytest.mark.parametrize(
    ("url", "async_url", "sync_url"),
    [
        (
            "sqlite:///./var/loaxa.db",
            "sqlite+aiosqlite:///./var/loaxa.db",
            "sqlite:///./var/loaxa.db",
        ),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db", "sqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db", "sqlite:///x.db"),
        (
            "postgresql://u:p%40ss@db:5432/loaxa",
            "postgresql+psycopg://u:p%40ss@db:5432/loaxa",
            "postgresql+psycopg://u:p%40ss@db:5432/loaxa",
        ),
        ("postgres://db/loaxa", "postgresql+psycopg://db/loaxa", "postgresql+psycopg://db/loaxa"),
        (
            "postgresql+psycopg://db/loaxa?sslmode=require",
            "postgresql+psycopg://db/loaxa?sslmode=require",
            "postgresql+psycopg://db/loaxa?sslmode=require",
        ),
    ],
)
def test_database_driver_urls(url: str, async_url: str, sync_url: str) -> None:
    section = DatabaseSection(url=url)
    assert section.async_url() == async_url == async_driver_url(url)
    assert section.sync_url() == sync_url == sync_driver_url(url)


# --------------------------------------------------------------------------- YAML


def test_yaml_load_and_relative_paths(tmp_path: Path) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        """
station: {id: xa-an-binh, name: "Đài xã An Bình"}
database: {url: "sqlite:///data/loaxa.db?timeout=3"}
mqtt:
  url: mqtts://station:pw@broker.example:8883
  ca_file: certs/ca.pem
  keepalive_s: 60
http: {port: 0, public_base_url: "http://10.0.0.2:8080/"}
media: {dir: media, ffmpeg: bin/ffmpeg, speech_filter: yes}
scheduler: {dispatch_lead_s: 8}
logging: {level: debug, json: true}
""",
    )
    s = load_config(path, {})
    assert s.station.name == "Đài xã An Bình"
    assert s.database.url == f"sqlite:///{conf_dir}/data/loaxa.db?timeout=3"
    assert s.database.async_url() == f"sqlite+aiosqlite:///{conf_dir}/data/loaxa.db?timeout=3"
    assert s.mqtt.ca_file == conf_dir / "certs" / "ca.pem"
    assert s.mqtt.keepalive_s == 60
    assert s.mqtt.client_id == "loaxa-station-xa-an-binh"
    broker = s.mqtt.broker()
    assert (broker.host, broker.port, broker.tls) == ("broker.example", 8883, True)
    assert (broker.username, broker.password) == ("station", "pw")
    assert s.http.port == 0
    assert s.http.public_base_url == "http://10.0.0.2:8080"
    assert s.media.dir == conf_dir / "media"
    assert s.media.ffmpeg == str(conf_dir / "bin" / "ffmpeg")
    assert s.media.speech_filter is True
    assert s.scheduler.dispatch_lead_s == 8.0
    assert (s.logging.level, s.logging.json_format) == ("DEBUG", True)


def test_yaml_keeps_absolute_paths_and_command_names(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "media: {dir: /srv/media, ffmpeg: ffmpeg}\ndatabase: {url: 'sqlite:////srv/x.db'}\n",
    )
    s = load_config(path, {})
    assert s.media.dir == Path("/srv/media")
    assert s.media.ffmpeg == "ffmpeg"
    assert s.database.url == "sqlite:////srv/x.db"


@pytest.mark.parametrize(
    "text", ["", "# only a comment\n", "station: {}\n", "mqtt:\n  # url: embedded\nhttp:\n"]
)
def test_empty_yaml_means_defaults(tmp_path: Path, text: str) -> None:
    assert load_config(write(tmp_path, text), {}) == Settings()


def test_mqtt_broker_defaults_and_decoding() -> None:
    plain = MqttSection(url="mqtt://broker").broker()
    assert (plain.port, plain.tls, plain.username, plain.password) == (1883, False, None, None)
    assert MqttSection(url="mqtts://broker").broker().port == 8883
    decoded = MqttSection(url="mqtt://st%40tion:p%40ss%3Aword@broker:1884").broker()
    assert (decoded.username, decoded.password, decoded.port) == ("st@tion", "p@ss:word", 1884)
    with pytest.raises(ValueError, match="embedded"):
        MqttSection().broker()


# --------------------------------------------------------------------------- environment


def test_env_overrides_yaml_and_parses_scalars(tmp_path: Path) -> None:
    path = write(tmp_path, "http: {port: 8081}\nmedia: {workers: 3}\n")
    env = {
        "LOAXA_HTTP__PORT": "9000",
        "LOAXA_MQTT__URL": "mqtt://u:secret@broker:1884",
        "LOAXA_MEDIA__SPEECH_FILTER": "true",
        "LOAXA_MEDIA__TARGET_LUFS": "-18.5",
        "LOAXA_LOGGING__JSON": "yes",
        "LOAXA_STATION__NAME": "123",  # text fields keep the text
        "LOAXA_HTTP__PUBLIC_BASE_URL": "",  # empty optional -> None
        "LOAXA_MEDIA__DIR": "rel/media",  # relative to the working directory, not the file
        "LOAXA_TEST_DATABASE_URL": "ignored: not a <SECTION>__<KEY> variable",
        "HOME": "/root",
    }
    s = load_config(path, env)
    assert s.http.port == 9000
    assert s.media.workers == 3
    assert s.mqtt.url == "mqtt://u:secret@broker:1884"
    assert s.media.speech_filter is True
    assert s.media.target_lufs == -18.5
    assert s.logging.json_format is True
    assert s.station.name == "123"
    assert s.http.public_base_url is None
    assert s.media.dir == Path("rel/media")


def test_env_without_file() -> None:
    assert load_config(None, {"LOAXA_DATABASE__URL": "postgresql://pg/loaxa"}).database.url == (
        "postgresql://pg/loaxa"
    )


# --------------------------------------------------------------------------- errors


def test_error_message_format() -> None:
    assert error_of(env={"LOAXA_HTTP__PORT": "70000"}) == (
        "config error: http.port: Input should be less than or equal to 65535 (got 70000)"
        " (from LOAXA_HTTP__PORT)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http: {port: 70000}", "http.port: Input should be less than or equal to 65535"),
        ("mqtt: {urll: x}", "unknown key mqtt.urll"),
        ("mqtt: {url: 'http://broker'}", "mqtt.url: must be 'embedded'"),
        ("mqtt: {url: 'mqtt://'}", "mqtt.url: missing host"),
        ("mqtt: {url: 'mqtt://h:99999'}", "mqtt.url: bad port"),
        ("mqtt: {reconnect_min_s: 10, reconnect_max_s: 5}", "mqtt.reconnect_max_s: must be >="),
        ("mqtt: {keepalive_s: 0}", "mqtt.keepalive_s:"),
        ("mqtt: 5", "mqtt: Input should be"),
        ("radio: {}", "unknown key radio"),
        ("station: {id: '-bad'}", "station.id: String should match pattern"),
        ("station: {id: ''}", "station.id:"),
        ("station: {timezone: Mars/Olympus}", "station.timezone: unknown time zone"),
        ("station: {name: ''}", "station.name:"),
        ("database: {url: 'mysql://db/x'}", "database.url: unsupported database"),
        ("database: {url: 'loaxa.db'}", "database.url: must look like"),
        ("http: {port: eighty}", "http.port: Input should be a valid integer"),
        ("http: {public_base_url: 'ftp://x'}", "http.public_base_url: must be an http"),
        ("media: {workers: 0}", "media.workers: Input should be greater than or equal to 1"),
        ("media: {target_lufs: 3}", "media.target_lufs:"),
        ("media: {true_peak_db: 1}", "media.true_peak_db:"),
        ("media: {speech_filter: maybe}", "media.speech_filter:"),
        ("scheduler: {play_expiry_s: 0}", "scheduler.play_expiry_s:"),
        ("scheduler: {dispatch_lead_s: -1}", "scheduler.dispatch_lead_s:"),
        ("logging: {level: LOUD}", "logging.level: must be one of"),
        ("logging: {json_format: true}", "unknown key logging.json_format"),
    ],
)
def test_yaml_errors_name_the_key(tmp_path: Path, text: str, expected: str) -> None:
    assert f"config error: {expected}" in error_of(write(tmp_path, text))


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "http: {port: -1}\nmedia: {workers: 0}\n"))
    lines = message.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("config error: http.port:")
    assert lines[1].startswith("config error: media.workers:")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"LOAXA_MQTT__URLL": "x"}, "unknown key mqtt.urll (from LOAXA_MQTT__URLL)"),
        ({"LOAXA_RADIO__X": "1"}, "unknown key radio (from LOAXA_RADIO__X)"),
        ({"LOAXA_MEDIA__WORKERS": "many"}, "media.workers: Input should be a valid integer"),
        ({"LOAXA_STATION__TIMEZONE": "Asia"}, "station.timezone: unknown time zone"),
    ],
)
def test_env_errors_name_the_key_and_variable(env: dict[str, str], expected: str) -> None:
    message = error_of(env=env)
    assert message.startswith(f"config error: {expected}")
    assert f"(from {next(iter(env))})" in message


def test_env_into_non_mapping_section(tmp_path: Path) -> None:
    message = error_of(write(tmp_path, "mqtt: 5\n"), {"LOAXA_MQTT__URL": "embedded"})
    assert message.startswith("config error: mqtt: must be a mapping")


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    assert error_of(missing) == f"config error: cannot read {missing}: No such file or directory"


def test_top_level_not_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- just\n- a list\n")
    assert error_of(path) == f"config error: {path}: the top level must be a mapping of sections"


def test_unreadable_path(tmp_path: Path) -> None:
    assert error_of(tmp_path).startswith(f"config error: cannot read {tmp_path}:")


def test_bad_yaml_reports_line(tmp_path: Path) -> None:
    path = write(tmp_path, "station:\n  id: ok\n  name: [unclosed\nhttp: {}\n")
    message = error_of(path)
    assert message.startswith(f"config error: {path}: line ")
    assert "invalid YAML" in message
    bad_indent = write(tmp_path, "station:\n  id: a\n bad: 1\n", "indent.yaml")
    assert "line 3" in error_of(bad_indent)


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("station: {name: 'Đài'}".encode("utf-16"))
    assert "not UTF-8" in error_of(path)


# --------------------------------------------------------------------------- secrets


def test_secrets_masked_everywhere(tmp_path: Path) -> None:
    env = {
        "LOAXA_MQTT__URL": "mqtts://station:hunter2@broker:8883",
        "LOAXA_DATABASE__URL": "postgresql://loaxa:s3cr%40t@db/loaxa",
    }
    s = load_config(None, env)
    for text in (repr(s), str(s), repr(s.mqtt), str(s.database), repr(s.mqtt.broker())):
        assert "hunter2" not in text and "s3cr" not in text, text
    assert "mqtts://station:***@broker:8883" in repr(s)
    redacted = s.redacted()
    assert redacted["mqtt"]["url"] == "mqtts://station:***@broker:8883"
    assert redacted["database"]["url"] == "postgresql://loaxa:***@db/loaxa"
    assert redacted["logging"] == {"level": "INFO", "json": False}
    assert s.mqtt.url == env["LOAXA_MQTT__URL"]  # the real value is still there for use


def test_secrets_masked_in_errors() -> None:
    message = error_of(env={"LOAXA_MQTT__URL": "http://station:hunter2@broker"})
    assert "hunter2" not in message
    assert "station:***@broker" in message


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("mqtt://u:p@h:1883", "mqtt://u:***@h:1883"),
        ("mqtt://u:p@ss@h", "mqtt://u:***@h"),  # unencoded "@" in the password
        ("mqtt://u@h", "mqtt://u@h"),
        ("postgresql://h/db?x=a:b@c", "postgresql://h/db?x=a:b@c"),
        ("embedded", "embedded"),
        ("sqlite:///./x.db", "sqlite:///./x.db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


# --------------------------------------------------------------------------- example file


def test_example_file_loads_to_defaults() -> None:
    s = load_config(EXAMPLE, {})
    base = EXAMPLE.parent
    assert s.database.url == f"sqlite:///{base}/var/loaxa.db"
    assert s.media.dir == base / "var" / "media"
    expected = Settings().model_copy(
        update={
            "database": DatabaseSection(url=s.database.url),
            "media": Settings().media.model_copy(update={"dir": s.media.dir}),
        }
    )
    assert s == expected


def test_example_file_documents_every_key() -> None:
    data = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(data) == set(Settings.model_fields)
    for section, field in Settings.model_fields.items():
        model = field.annotation
        assert isinstance(model, type) and issubclass(model, pydantic.BaseModel)
        keys = {info.alias or name for name, info in model.model_fields.items()}
        assert set(data[section]) == keys, section
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    for i, line in enumerate(lines):
        is_key = line.startswith("  ") and not line.lstrip().startswith("#") and ":" in line
        if is_key:
            # a comment sits above each key or group of related keys
            above = [x for x in lines[:i] if x.strip()]
            j = len(above) - 1
            while j >= 0 and not above[j].lstrip().startswith("#"):
                assert above[j].startswith("  "), f"no comment for: {line}"
                j -= 1
