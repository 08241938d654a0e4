"""Validation problems say what is wrong with each field in machine terms.

Every entry of a 422's ``errors`` keeps its English ``message`` and adds pydantic's error
``type`` with its ``params`` (JSON-safe numbers and strings), so the console can say it in the
reader's language; entries the API names by a problem ``code`` carry neither. The router's own
404 and 405 are problems with a code too.
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from api_support import assert_problem, client, running, settings_for, user_with_token
from pydantic import AnyUrl, BaseModel, Field, ValidationError, field_validator

from station.api._problems import PROBLEM_JSON, FieldProblem, validation_problem
from station.config import Settings
from station.db import Role


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


def _by_field(body: Any) -> dict[str, dict[str, Any]]:
    assert body["code"] == "invalid_request", body
    return {e["field"]: e for e in body["errors"]}


async def test_validation_errors_carry_their_type_and_parameters(settings: Settings) -> None:
    async with running(settings) as station:
        bcast = await user_with_token(station, "bcast1", Role.BROADCASTER)
        async with client(station, bcast) as api:
            status, body, response = await api.call("POST", "/programmes", {
                "title": "x" * 201,
                "items": [{"kind": "podcast", "duration_s": -5}],
                "colour": "red",
            })  # fmt: skip
            assert_problem(status, body, 422, field="title")
            assert response.content_type == PROBLEM_JSON
            errors = _by_field(body)
            assert errors["title"] == {
                "field": "title",
                "message": "String should have at most 200 characters",  # English stays
                "type": "string_too_long",
                "params": {"max_length": 200},
            }
            kind = errors["items.0.kind"]
            assert kind["type"] == "literal_error"
            # pydantic's "'a', 'b' or 'c'" loses its English "or"
            assert kind["params"] == {"expected": "'media', 'jingle', 'relay', 'live', 'silence'"}
            assert errors["items.0.duration_s"]["type"] == "greater_than"
            assert errors["items.0.duration_s"]["params"] == {"gt": 0}
            assert errors["colour"]["type"] == "extra_forbidden"
            assert "params" not in errors["colour"]  # nothing to say: no empty object
            assert "title: String should have at most 200 characters" in body["detail"]

            status, body, _ = await api.call("POST", "/schedules", {
                "programme_id": "abc", "start_at": "2030-01-01T06:00", "volume": 101,
            })  # fmt: skip
            assert_problem(status, body, 422, field="targets")
            errors = _by_field(body)
            assert errors["programme_id"]["type"] == "int_parsing"
            assert errors["start_at"]["type"] == "timezone_aware"
            assert errors["volume"]["type"] == "less_than_equal"
            assert errors["volume"]["params"] == {"le": 100}
            assert errors["targets"] == {
                "field": "targets",
                "message": "Field required",
                "type": "missing",
            }

            # Our own validators' sentences are value errors: the message is what to show.
            status, body, _ = await api.call("POST", "/schedules", {
                "programme_id": 1, "start_at": "2030-01-01T06:00:00+07:00", "targets": {},
            })  # fmt: skip
            assert_problem(status, body, 422, field="targets")
            assert _by_field(body)["targets"] == {
                "field": "targets",
                "message": "give either all=true or zones, villages or clusters",
                "type": "value_error",
            }

            # Query parameters too.
            status, body, _ = await api.call("GET", "/programmes?limit=0")
            assert_problem(status, body, 422, field="limit")
            assert _by_field(body)["limit"]["type"] == "greater_than_equal"
            assert _by_field(body)["limit"]["params"] == {"ge": 1}

            # A field the API names by a code of its own has no pydantic type.
            status, body, _ = await api.call("GET", "/programmes?q=a%00b")
            assert_problem(status, body, 422, field="q")
            assert body["code"] == "nul_character"
            assert body["errors"] == [{"field": "q", "message": "NUL character in query parameter"}]


async def test_the_routers_refusals_are_problems_with_a_code(settings: Settings) -> None:
    async with running(settings) as station, client(station) as anon:
        status, body, response = await anon.call("GET", "/no-such-thing")
        assert_problem(status, body, 404)
        assert response.content_type == PROBLEM_JSON
        assert body["code"] == "route_not_found"
        status, body, response = await anon.call("DELETE", "/programmes")
        assert_problem(status, body, 405)
        assert body["code"] == "method_not_allowed"
        assert {"GET", "POST"} <= set(response.headers["Allow"].split(","))
        # A 404 a handler raises is not the router's: it keeps its own code, or none.
        async with anon.http.get(f"{station.base_url}/console/lang/xx") as page:
            assert page.status == 404
            refusal = json.loads(await page.text())
        assert refusal["status"] == 404 and "code" not in refusal
        # The served OpenAPI document describes the new members of a field problem.
        status, doc, _ = await anon.call("GET", "/api/openapi.json")
        schemas = doc["components"]["schemas"]
        entry = schemas["FieldProblem"]
        assert entry["required"] == ["field", "message"]
        assert set(entry["properties"]) == {"field", "message", "type", "params"}
        assert "string_too_long" in entry["properties"]["type"]["description"]
        assert "`route_not_found`" in schemas["Problem"]["properties"]["code"]["description"]


class _Bounds(BaseModel):
    day: date = Field(ge=date(2026, 1, 1))
    amount: Decimal = Field(le=Decimal("2.5"))
    site: AnyUrl
    word: str

    @field_validator("word")
    @classmethod
    def _polite(cls, value: str) -> str:
        raise ValueError("say please")


def test_parameters_are_json_safe() -> None:
    with pytest.raises(ValidationError) as caught:
        _Bounds.model_validate(
            {"day": "2025-12-31", "amount": "3", "site": "not a url", "word": "x"}
        )
    problem = validation_problem(caught.value, prefix="q.")
    errors = {e.field: e for e in problem.errors}
    assert errors["q.day"].params == {"ge": "2026-01-01"}  # a date bound as its ISO text
    assert errors["q.amount"].params == {"le": "2.5"}  # a decimal bound as its text
    assert errors["q.site"].type == "url_parsing"
    assert errors["q.word"] == FieldProblem(
        field="q.word", message="say please", type="value_error"
    )
    # The response is JSON (an exception object from the context would not serialise).
    body = json.loads(problem.response().text or "")
    params = [v for e in body["errors"] for v in e.get("params", {}).values()]
    assert params and all(isinstance(v, str | int | float) for v in params)
    assert body["errors"][-1] == {"field": "q.word", "message": "say please", "type": "value_error"}
