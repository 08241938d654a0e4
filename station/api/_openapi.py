"""The OpenAPI 3.1 document, generated from the endpoint registry and pydantic's JSON Schema."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaValue, models_json_schema

from ._auth import CSRF_HEADER, SESSION_COOKIE
from ._framework import API_PREFIX, ID_MAX, ApiRouter, Endpoint, Upload
from ._problems import PROBLEM_JSON, Problem

REF = "#/components/schemas/{model}"
_ERRORS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Not allowed (role, CSRF token, or a pending password change)",
    404: "Not found",
    409: "Conflict with the current state",
    412: "The resource changed since it was read (If-Match)",
    413: "Request body too large",
    415: "Unsupported media type",
    422: "Invalid input; `errors` names each field",
    429: "Too many tries; see Retry-After",
}


def build_openapi(
    routers: Sequence[ApiRouter], *, title: str, version: str, description: str = ""
) -> dict[str, Any]:
    endpoints = [e for r in routers for e in r.endpoints]
    wanted: list[tuple[type[BaseModel], Literal["validation", "serialization"]]] = [
        (Problem, "serialization")
    ]
    for e in endpoints:
        if e.body is not None:
            wanted.append((e.body, "validation"))
        if e.query is not None:
            wanted.append((e.query, "validation"))
        if e.response is not None:
            wanted.append((e.response, "serialization"))
    keyed, top = models_json_schema(list(dict.fromkeys(wanted)), ref_template=REF)
    schemas: dict[str, Any] = dict(top.get("$defs", {}))

    def ref(model: type[BaseModel], mode: Literal["validation", "serialization"]) -> Any:
        return keyed[(model, mode)]

    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(API_PREFIX + e.path, {})[e.method.lower()] = _operation(e, ref, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version, "description": description},
        "servers": [{"url": "/"}],
        "tags": [{"name": r.tag, "description": r.description} for r in routers],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "API token"},
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": SESSION_COOKIE,
                    "description": f"console session; unsafe methods also need {CSRF_HEADER}",
                },
            },
        },
    }


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_JSON: {"schema": {"$ref": REF.format(model="Problem")}}},
    }


def _operation(e: Endpoint, ref: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    op: dict[str, Any] = {
        "operationId": e.operation_id,
        "summary": e.summary,
        "tags": list(e.tags),
        "parameters": [],
        "responses": {},
    }
    if e.description:
        op["description"] = e.description
    if e.permission is None:
        op["security"] = []
    else:
        op["security"] = [{"bearer": []}, {"session": []}]
        op["x-permission"] = str(e.permission)
    for name, kind in e.path_params.items():
        schema: dict[str, Any] = {"type": "string", "minLength": 1}
        if kind is int:
            schema = {"type": "integer", "minimum": 0, "maximum": min(ID_MAX, 999_999_999)}
        op["parameters"].append({"name": name, "in": "path", "required": True, "schema": schema})
    if e.query is not None:
        op["parameters"].extend(_query_parameters(ref(e.query, "validation"), schemas))
    if e.if_match:
        op["parameters"].append(
            {
                "name": "If-Match",
                "in": "header",
                "required": False,
                "schema": {"type": "string"},
                "description": "ETag from a previous read; 412 if the resource changed since",
            }
        )
    if e.body is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref(e.body, "validation")}},
        }
    if isinstance(e.upload, Upload):
        op["requestBody"] = _upload_body(e.upload)
    elif e.upload:
        op["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "required": ["file"],
                        "properties": {
                            "file": {
                                "type": "string",
                                "contentMediaType": "application/octet-stream",
                            },
                            "title": {"type": "string", "maxLength": 200},
                        },
                    }
                }
            },
        }
    responses = op["responses"]
    if e.media_type is not None:
        responses[str(e.status)] = {
            "description": "OK",
            "content": {e.media_type: {"schema": {"type": "string"}}},
        }
    elif e.response is None:
        responses["204"] = {"description": "Done"}
    else:
        responses[str(e.status)] = {
            "description": "OK",
            "content": {"application/json": {"schema": ref(e.response, "serialization")}},
        }
        if e.if_match or (e.method == "GET" and e.path_params):
            responses[str(e.status)]["headers"] = {"ETag": {"schema": {"type": "string"}}}
    codes = set(e.errors)
    if e.permission is not None:
        codes |= {401, 403}
    if e.path_params:
        codes.add(404)
    if e.body is not None or e.upload:
        codes |= {400, 413, 415, 422}
    if e.query is not None:
        codes.add(422)
    if e.if_match:
        codes.add(412)
    for code in sorted(codes):
        responses[str(code)] = _problem(_ERRORS.get(code, "Error"))
    return op


def _upload_body(upload: Upload) -> dict[str, Any]:
    """A ``file`` part of a multipart form, or the same file as the raw body."""
    file = {"type": "string", "contentMediaType": upload.file_type}
    content: dict[str, Any] = {
        "multipart/form-data": {
            "schema": {"type": "object", "required": ["file"], "properties": {"file": file}}
        }
    }
    for media_type in upload.raw_types:
        content[media_type] = {"schema": {"type": "string"}}
    return {"required": True, "content": content}


def _query_parameters(schema: JsonSchemaValue, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    if "$ref" in schema:
        schema = schemas[schema["$ref"].rsplit("/", 1)[-1]]
    required = set(schema.get("required", []))
    params = []
    for name, prop in schema.get("properties", {}).items():
        param: dict[str, Any] = {
            "name": name,
            "in": "query",
            "required": name in required,
            "schema": _without_null(prop),
        }
        if prop.get("description"):
            param["description"] = prop["description"]
        params.append(param)
    return params


def _without_null(prop: dict[str, Any]) -> dict[str, Any]:
    """``X | None = None`` query filters: absent means None; there is no null on a URL."""
    schema = {k: v for k, v in prop.items() if k not in ("title", "description", "default")}
    options = [o for o in schema.pop("anyOf", []) if o != {"type": "null"}]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    if prop.get("default") is not None:
        schema["default"] = prop["default"]
    return schema
