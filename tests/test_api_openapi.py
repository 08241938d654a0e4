"""The OpenAPI document: generated from the registry, valid 3.1, and the running API conforms
to it (schemathesis: no 5xx, responses match the documented schemas)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from api_support import client, running, settings_for, user_with_token
from openapi_spec_validator import validate
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from station.api import API_PREFIX
from station.api.endpoints import ROUTERS
from station.config import Settings
from station.db import Role

# Operations that would lock the fuzzing client out (revoking its own token, demoting itself).
_SKIP = {"revoke_api_token", "patch_user", "logout"}
# More for a deeper local run: LOAXA_FUZZ_EXAMPLES=50 pytest tests/test_api_openapi.py
EXAMPLES_PER_OPERATION = int(os.environ.get("LOAXA_FUZZ_EXAMPLES", "6"))


@pytest.fixture
def settings(tmp_path: Path, mqtt_url: str, database_url: str, station_id: str) -> Settings:
    return settings_for(tmp_path, mqtt_url, database_url, station_id)


async def test_document_is_valid_and_complete(settings: Settings) -> None:
    async with running(settings) as station, client(station) as api:
        status, doc, _ = await api.call("GET", "/api/openapi.json")
    assert status == 200
    validate(doc)  # OpenAPI 3.1 meta-schema
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    registered = {(e.method, API_PREFIX + e.path) for r in ROUTERS for e in r.endpoints}
    assert documented == registered
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["tags"], (method, path)
            codes = set(op["responses"])
            if op["security"]:
                assert {"401", "403"} <= codes, (method, path)
            if "requestBody" in op:
                assert {"413", "422"} <= codes, (method, path)
    login = doc["paths"][f"{API_PREFIX}/auth/login"]["post"]
    assert login["security"] == []
    problem = doc["components"]["schemas"]["Problem"]
    assert {"type", "title", "status"} <= set(problem["properties"])


def _fuzz(doc: dict[str, Any], base_url: str, token: str) -> int:
    schema = schemathesis.openapi.from_dict(doc)
    headers = {"Authorization": f"Bearer {token}"}
    checks = [not_a_server_error, response_schema_conformance]
    calls = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.definition.raw.get("operationId") in _SKIP:
            continue

        @hypothesis.settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(hypothesis.HealthCheck),
            phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],
        )
        @hypothesis.given(case=operation.as_strategy())
        def run(case: Any) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(base_url=base_url, headers=headers, checks=checks)

        run()
    return calls


async def test_schemathesis_against_the_live_api(settings: Settings) -> None:
    async with running(settings) as station:
        token = await user_with_token(station, "fuzz", Role.ADMIN)
        async with client(station) as api:
            _, doc, _ = await api.call("GET", "/api/openapi.json")
        # schemathesis is synchronous (requests): run it in a thread, the station on this loop
        calls = await asyncio.to_thread(_fuzz, doc, station.base_url, token)
    assert calls >= 50
