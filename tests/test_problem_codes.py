"""Refusals carry a machine ``code`` the console says in Vietnamese (and English).

Every code the API can emit is registered in ``station.api._problems.CODES`` (collected here
from the source too), has a catalogue entry in both languages with the same parameters, and a
few refusals over HTTP carry their code with the parameters the console fills in.
"""

from __future__ import annotations

import ast
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, get_args

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from pydantic_core import PydanticKnownError
from pydantic_core.core_schema import ErrorType

from station import _keys as keys
from station._registry import add_zone, assign_zone
from station._services import StationError, create_programme, register_clusters
from station.api import create_user
from station.api._problems import CODES, ApiError, Problem
from station.api.endpoints._common import not_found, refused
from station.config import Settings
from station.db import MediaItem, Role
from station.web._i18n import LANGUAGES, Catalogue

STATION = Path(__file__).resolve().parents[1] / "station"
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
# Dicts of endpoint modules that map a status or a field to a code.
CODE_MAPS = ("_LIVE_CODES", "_FIELD_CODES", "_HTTP_CODES", "_ROUTING_CODES")


def _codes_in_source() -> dict[str, set[str]]:
    """Every code literal in the station package: ``code="x"`` arguments, ``code = "x"``
    class attributes, ``not_found("what")`` (-> ``what_not_found``) and the code maps."""
    found: dict[str, set[str]] = {}
    for path in STATION.rglob("*.py"):
        tree = ast.parse(path.read_text("utf-8"))
        where = str(path.relative_to(STATION.parent))

        def add(code: object, where: str = where) -> None:
            if isinstance(code, str):
                found.setdefault(code, set()).add(where)

        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "code":
                if isinstance(node.value, ast.Constant):
                    add(node.value.value)
                elif isinstance(node.value, ast.BoolOp):  # code=exc.code or "csv_invalid"
                    for value in node.value.values:
                        if isinstance(value, ast.Constant):
                            add(value.value)
            elif isinstance(node, ast.ClassDef):
                for stmt in node.body:
                    if (
                        isinstance(stmt, ast.Assign)
                        and [getattr(t, "id", "") for t in stmt.targets] == ["code"]
                        and isinstance(stmt.value, ast.Constant)
                    ):
                        add(stmt.value.value)
            elif (
                isinstance(node, ast.Call)
                and getattr(node.func, "id", "") == "not_found"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                add(str(node.args[0].value).replace(" ", "_") + "_not_found")
            elif isinstance(node, ast.Assign) and any(
                getattr(t, "id", "") in CODE_MAPS for t in node.targets
            ):
                assert isinstance(node.value, ast.Dict), where
                for value in node.value.values:
                    assert isinstance(value, ast.Constant), where
                    add(value.value)
    return found


def test_every_code_in_the_source_is_registered() -> None:
    found = _codes_in_source()
    # The scan sees the big areas (a broken scan would find nothing and pass).
    assert {"cluster_exists", "media_in_use", "quota_exceeded", "live_not_live"} <= set(found)
    assert {"cluster_not_found", "media_item_not_found", "topic_dates_invalid"} <= set(found)
    unregistered = {code: sorted(where) for code, where in found.items() if code not in CODES}
    assert unregistered == {}
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", code) for code in CODES)


def test_every_code_has_a_vietnamese_and_an_english_entry() -> None:
    catalogue = Catalogue.load()
    for code, meaning in CODES.items():
        key = f"code.{code}"
        texts = {lang: catalogue.strings[lang].get(key, "") for lang in LANGUAGES}
        assert all(texts.values()), (code, texts)
        assert texts["vi"] != texts["en"], code
        # The same parameters in both languages, and only ones the problem carries (the
        # registry names them in brackets).
        params = {lang: set(PLACEHOLDER.findall(text)) for lang, text in texts.items()}
        assert params["vi"] == params["en"], (code, params)
        named = re.search(r"\[([a-z_, ]+)\]$", meaning)
        carried = {p.strip() for p in named.group(1).split(",")} if named else set()
        assert params["vi"] <= carried, (code, params["vi"], carried)
    vietnamese = [catalogue.strings["vi"][f"code.{c}"] for c in CODES]
    assert sum(bool(re.search("[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", t))
               for t in vietnamese) == len(vietnamese)  # fmt: skip
    words = " ".join(vietnamese)
    for term in ("cụm loa", "chương trình", "lịch phát", "phê duyệt", "phát khẩn cấp", "tiếp âm"):
        assert term in words.lower(), term


# The field problems the console must say in both languages: the commonest pydantic types.
COMMON_FIELD_TYPES = {
    "missing", "extra_forbidden", "string_too_short", "string_too_long", "too_short",
    "too_long", "greater_than", "greater_than_equal", "less_than", "less_than_equal",
    "int_parsing", "int_type", "int_from_float", "float_parsing", "float_type", "bool_parsing",
    "string_type", "string_pattern_mismatch", "datetime_parsing", "datetime_from_date_parsing",
    "date_parsing", "date_from_datetime_parsing", "time_parsing", "timezone_aware", "enum",
    "literal_error", "list_type", "model_type", "url_parsing", "url_scheme", "json_invalid",
}  # fmt: skip
# A context for any of them, to read pydantic's message template (and so its parameters).
_CONTEXT: dict[str, Any] = {
    **dict.fromkeys(("max_length", "min_length", "actual_length", "multiple_of"), 1),
    **dict.fromkeys(("gt", "ge", "lt", "le"), 1),
    **dict.fromkeys(("error", "class_name", "pattern", "expected", "expected_schemes",
                     "discriminator", "tag", "expected_tags", "field_type"), "x"),
}  # fmt: skip


def test_field_problems_have_a_vietnamese_and_an_english_entry() -> None:
    catalogue = Catalogue.load()
    vi, en = catalogue.strings["vi"], catalogue.strings["en"]
    for prefix in ("field.", "fieldname."):
        keys = {lang: {k for k in catalogue.strings[lang] if k.startswith(prefix)}
                for lang in LANGUAGES}  # fmt: skip
        assert keys["vi"] == keys["en"], prefix
    types = {k.removeprefix("field.") for k in vi if k.startswith("field.")}
    assert types >= COMMON_FIELD_TYPES, COMMON_FIELD_TYPES - types
    # value_error is our validators' own sentence: the console shows the API's message.
    assert "value_error" not in types
    for kind in types:
        assert kind in get_args(ErrorType), kind  # a real pydantic error type
        key = f"field.{kind}"
        assert vi[key] and en[key] and vi[key] != en[key], key
        params = {
            lang: set(PLACEHOLDER.findall(catalogue.strings[lang][key])) for lang in LANGUAGES
        }
        assert params["vi"] == params["en"], (key, params)
        # Only parameters pydantic gives that type (its message template names them).
        template = PydanticKnownError(kind, _CONTEXT).message_template
        assert params["vi"] <= set(PLACEHOLDER.findall(template)), (key, params, template)
    # Labels of the fields the console's forms post, and no placeholders in them.
    for name in ("title", "start_at", "items", "media_id", "url", "duration_s", "targets",
                 "volume", "households", "username", "display_name", "title_vi"):  # fmt: skip
        assert vi[f"fieldname.{name}"] and en[f"fieldname.{name}"], name
    assert vi["fieldname.title"] == "Tiêu đề" and vi["fieldname.start_at"] == "Giờ bắt đầu"
    assert not any(PLACEHOLDER.search(v) for k, v in vi.items() if k.startswith("fieldname."))
    assert vi["field.string_too_long"] == "dài quá {max_length} ký tự"


def test_codes_in_problem_bodies_and_the_openapi() -> None:
    error = refused(StationError("cluster C9 is retired", code="cluster_retired", cluster_id="C9"))
    body = error.response().text or ""
    assert '"code": "cluster_retired"' in body and '"cluster_id": "C9"' in body
    assert '"detail": "cluster C9 is retired"' in body  # English for API clients
    assert not_found("media item", media_id=3).code == "media_item_not_found"
    assert ApiError(409, "x", code="no_such_code").code is None  # unregistered: left out
    assert refused(StationError("plain")).code is None
    # A domain error's parameters never replace the standard members of the problem.
    clash = refused(StationError("x", code="village_exists", title="T", status=1, village_id="V"))
    assert clash.title == "Refused" and clash.extra == {"village_id": "V"}
    assert clash.response().status == 422
    schema = Problem.model_json_schema()["properties"]["code"]
    assert "`quota_exceeded`" in schema["description"] and schema["examples"]


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(
        tmp_path,
        mqtt_url,
        database_url,
        station_id,
        approval_required=True,
        emergency_two_person=True,
    )


async def _media(station: Any, title: str) -> int:
    async with station.app[keys.SESSIONS]() as db:
        item = MediaItem(sha256="e" * 64, source_sha256="f" * 64, title=title,
                         duration_ms=30_000, size_bytes=90_000)  # fmt: skip
        db.add(item)
        await db.commit()
        assert item.id is not None
        return item.id


async def test_refusals_carry_their_code_and_parameters(settings: Settings) -> None:
    async with running(settings) as station:
        sessions = station.app[keys.SESSIONS]
        await register_clusters(sessions, [("C1", "Loa chợ")])
        await add_zone(sessions, "Z1", "Thôn Đông")
        await assign_zone(sessions, "Z1", ["C1"])
        media_id = await _media(station, "Bản tin sáng")
        programme = await create_programme(sessions, "Chương trình sáng", [media_id])
        tech = await user_with_token(station, "tech1", Role.TECHNICIAN)
        bcast = await user_with_token(station, "bcast1", Role.BROADCASTER)
        await create_user(sessions, "lead1", Role.APPROVER, "correct horse battery")

        async with client(station, tech) as api:
            status, body, _ = await api.call("POST", "/clusters", {"id": "C1"})
            assert_problem(status, body, 409)
            assert body["code"] == "cluster_exists" and body["cluster_id"] == "C1"
            status, body, _ = await api.call("GET", "/clusters/NOPE")
            assert_problem(status, body, 404)
            assert body["code"] == "cluster_not_found"
            status, body, _ = await api.call("POST", "/zones", {"id": "Z1", "name": "Again"})
            assert_problem(status, body, 409)
            assert body["code"] == "zone_exists" and body["zone_id"] == "Z1"
            status, body, _ = await api.call("DELETE", f"/media/{media_id}")
            assert_problem(status, body, 403)
            assert body["code"] == "role_forbidden" and body["role"] == "technician"

        async with client(station, bcast) as api:
            status, body, _ = await api.call("DELETE", f"/media/{media_id}")
            assert_problem(status, body, 409)
            assert body["code"] == "media_in_use"
            assert body["media_id"] == media_id and body["name"] == "Bản tin sáng"
            assert body["programmes"][0]["title"] == "Chương trình sáng"
            assert "is used by" in body["detail"]  # the English detail stays
            status, body, _ = await api.call("POST", "/media", data=b"x")  # not multipart
            assert_problem(status, body, 415)
            assert body["code"] == "file_part_required"
            status, body, _ = await api.call("POST", "/programmes", {
                "title": "Tiếp âm VOV", "items": [
                    {"kind": "media", "media_id": media_id},
                    {"kind": "relay", "url": "ftp://nope", "duration_s": 60},
                ],
            })  # fmt: skip
            assert_problem(status, body, 422, field="items.1.url")
            assert body["code"] == "item_relay_url" and body["item"] == 2
            start = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
            schedule = {"programme_id": programme.id, "start_at": start,
                        "targets": {"zones": ["Z1"]}}  # fmt: skip
            status, body, _ = await api.call("POST", "/schedules", schedule)
            assert_problem(status, body, 409)
            assert body["code"] == "approval_required"
            assert body["programme_id"] == programme.id and body["name"] == "Chương trình sáng"
            past = {**schedule, "start_at": "2020-01-01T06:00:00+07:00"}
            status, body, _ = await api.call("POST", "/schedules", past)
            assert_problem(status, body, 422, field="start_at")
            assert body["code"] == "schedule_in_past"
            emergency = {"targets": {"all": True}, "media_id": media_id}
            status, body, _ = await api.call("POST", "/emergency", emergency)
            assert_problem(status, body, 403)
            assert body["code"] == "second_person_required"
            wrong = emergency | {"second_username": "lead1", "second_password": "not it"}
            status, body, _ = await api.call("POST", "/emergency", wrong)
            assert body["code"] == "second_person_invalid"
            status, body, _ = await api.call("POST", "/emergency", emergency | {"live": True})
            assert_problem(status, body, 422, field="live")
            assert body["code"] == "emergency_source_one"

        async with client(station) as anon:
            status, body = await anon.login("bcast1", "wrong password")
            assert_problem(status, body, 401)
            assert body["code"] == "login_wrong"
            status, body, _ = await anon.call("GET", "/clusters")
            assert body["code"] == "login_required"
