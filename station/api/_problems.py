"""RFC 9457 problem details: the one error format of the HTTP API.

Handlers raise ``ApiError`` (or let a domain error map to one); the middleware turns it, any
``web.HTTPException`` and any unexpected exception into ``application/problem+json``.
Validation problems carry ``errors: [{field, message, type, params}]`` naming each offending
field: ``type`` and ``params`` (pydantic's error type and context) let the console say what is
wrong in the user's language (``field.<type>``); ``message`` stays English.

Every refusal a console user can meet also carries a machine ``code`` (snake_case, one of
``CODES``) and its parameters as extension members (``cluster_id``, ``media_id``...): the
console says it in the user's language from its catalogue (``code.<code>``); ``detail`` stays
an English sentence for API clients. Domain errors bring theirs (``StationError.code``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import date, time, timedelta
from decimal import Decimal
from http import HTTPStatus
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# Every ``code`` the API can put in a problem, with what it means (the OpenAPI lists them; a
# test checks each has a Vietnamese and an English catalogue entry). Parameters in brackets.
CODES: dict[str, str] = {
    # sign-in, sessions, roles, request framing
    "login_required": "not logged in, or the session or API token ended",
    "login_wrong": "wrong username or password",
    "login_throttled": "too many failed tries [retry_after_s]",
    "csrf_failed": "missing or wrong X-CSRF-Token header",
    "password_change_required": "change the one-time password first",
    "role_forbidden": "the user's role may not do this [role]",
    "resource_changed": "changed since it was read (If-Match) [current_etag]",
    "body_too_large": "request body too large [limit_bytes]",
    "json_required": "send the body as application/json",
    "nul_character": "NUL characters are refused",
    "invalid_request": "invalid input; errors names each field",
    "multipart_malformed": "malformed multipart body",
    "file_part_required": "send multipart/form-data (or text/csv) with a 'file' part",
    "broker_unavailable": "the MQTT broker did not take the command",
    "route_not_found": "no such address in the API",
    "method_not_allowed": "the address does not take this method (see Allow)",
    # not found
    "approval_not_found": "no such approval",
    "cluster_not_found": "no such cluster [cluster_id]",
    "emergency_not_found": "no such emergency (or it already ended) [emergency_id]",
    "media_item_not_found": "no such media item [media_id]",
    "programme_not_found": "no such programme [programme_id]",
    "schedule_not_found": "no such schedule",
    "token_not_found": "no such API token",
    "user_not_found": "no such user",
    "village_not_found": "no such village [village_id]",
    "zone_not_found": "no such zone [zone_id]",
    "zone_member_not_found": "the cluster is not in the zone",
    # users, passwords, tokens
    "username_invalid": "2-64 characters: lower-case letters, digits, '_', '.', '-'",
    "username_taken": "the username is taken [username]",
    "password_policy": "the password is too short or too long [min, max]",
    "password_wrong": "wrong current password",
    "password_change_needs_session": "log in to change a password (not with an API token)",
    "last_admin": "the last active admin cannot be demoted or disabled",
    "token_role_scope": "the role cannot create a token of this scope [role, scope]",
    "token_name_invalid": "a token name has 1-64 characters",
    "tokens_admin_only": "only admins see other users' tokens",
    "token_needs_session": "log in to create tokens (a token cannot mint tokens)",
    # clusters
    "cluster_exists": "a cluster with this id is already registered [cluster_id]",
    "cluster_unknown": "unknown cluster(s) [cluster_ids]",
    "cluster_retired": "the cluster is retired [cluster_id]",
    "cluster_never_connects": "a legacy fm/wired cluster never connects [cluster_id, kind]",
    "cluster_cannot_identify": "the cluster cannot play a tone [cluster_id]",
    "cluster_invalid": "invalid cluster fields (see detail)",
    "cluster_id_repeated": "a cluster id is given more than once [cluster_id]",
    "cluster_keeps_name": "a cluster keeps a name",
    "lat_lon_together": "give latitude and longitude together",
    "lat_lon_range": "latitude/longitude out of range",
    "bridge_needed": "an fm/wired cluster needs a bridge [kind]",
    "bridge_unknown": "the bridge is not a registered bridge cluster [bridge_id]",
    "bridge_retired": "the bridge is retired [bridge_id]",
    "bridge_only_legacy": "only fm/wired clusters have a bridge and a zone code",
    "replacement_kind": "a replacement must be an ICT cluster (ict or bridge)",
    "replacement_same_id": "the replacement needs a new cluster id",
    "replacement_drives": "the old cluster drives legacy clusters: replace it by a bridge"
    " [cluster_id, clusters]",
    "bridge_still_drives": "the bridge still drives legacy clusters [cluster_id, clusters]",
    # villages and zones
    "village_unknown": "unknown village [village_id]",
    "village_exists": "the village already exists [village_id]",
    "village_id_invalid": "invalid village id [village_id]",
    "village_name_needed": "a village needs a name",
    "households_negative": "households must not be negative",
    "zone_exists": "the zone already exists [zone_id]",
    "zone_id_invalid": "invalid zone id [zone_id]",
    "zone_name_needed": "a zone needs a name",
    "zone_unknown": "unknown zone(s) [zone_ids]",
    "csv_not_utf8": "the CSV must be UTF-8",
    "csv_invalid": "the CSV is unreadable or its header is wrong (see detail)",
    "import_needs_database": "dry runs and imports need a database file or PostgreSQL",
    "import_not_a_number": "a CSV row: the column needs a number [column, value]",
    "cluster_status_invalid": "a CSV row: status is working, faulty or retired [value]",
    "csv_row_columns": "a CSV row has the wrong number of columns [line]",
    # targets
    "targets_reach_none": "the targets reach no cluster",
    "target_unknown": "unknown zone, village or cluster [target, ids]",
    "targets_invalid": "targets: give all, or lists of clusters, zones or villages",
    # media
    "media_in_use": "a programme uses the item [media_id, name, programmes]",
    "media_just_used": "a programme took the item up meanwhile: not deleted [media_id]",
    "media_unknown": "unknown media item(s) [media_ids]",
    "media_title_needed": "a media item needs a title",
    "media_title_too_long": "the title is too long [max]",
    "language_invalid": "invalid language code [language]",
    "topic_unknown": "unknown topic code(s) [topics]",
    "topic_retired": "topic(s) no longer in use [topics]",
    "topic_not_found": "no such topic [topic]",
    "topic_exists": "the topic code exists already: codes are never reused [topic]",
    "topic_already_retired": "the topic is retired already [topic]",
    "topic_code_invalid": "a topic code looks like I.9 or II.10",
    "topic_title_invalid": "a topic needs a title of at most 500 characters",
    "topic_dates_invalid": "the topic's end is before its start",
    "upload_missing": "the upload has no file",
    "upload_empty": "the uploaded file is empty",
    "upload_too_large": "the file is over the size limit [max_mb]",
    "audio_rejected": "the audio is unusable [reason]",
    # programmes and approval
    "programme_title_needed": "a programme needs a title",
    "programme_items_needed": "a programme needs at least one item",
    "programme_items_or_media": "give items, or media_ids, not both",
    "programme_nothing_to_change": "nothing to change: give a title, items, topics or language",
    "item_kind_unknown": "an item's kind is unknown [item]",
    "item_media_needed": "a media or jingle item needs a media item [item]",
    "item_media_unknown": "an item's media item does not exist [item, media_ids]",
    "item_no_duration": "a media or jingle item plays its whole file: no duration [item]",
    "item_duration_needed": "a relay, live or silence item needs a positive duration [item]",
    "item_too_long": "an item lasts at most 24 hours [item]",
    "item_mount_invalid": "a live item's mount name is invalid [item]",
    "item_relay_url": "a relay item needs a stream URL (http, https, rtmp) [item]",
    "programme_unknown": "unknown programme, or it has no items [programme_id]",
    "programme_version_stale": "the programme changed since it was reviewed [current, sent]",
    "programme_already_approved": "this version is already approved [version]",
    "approval_required": "the programme's current version is not approved"
    " [programme_id, name, version]",
    # schedules
    "schedule_conflict": "overlaps schedules of the same priority [conflicts, choices]",
    "quota_exceeded": "breaks the airtime quota [violations]",
    "schedule_not_editable": "on air, done or cancelled: it can no longer change"
    " [schedule_id, state]",
    "schedule_in_past": "the start time is in the past",
    "schedule_never_airs": "never airs after now: check the dates and exceptions",
    "recurrence_invalid": "the recurrence is refused (see detail)",
    "priority_needs_emergency": "this priority needs the emergency permission [priority]",
    "week_plan_empty": "the week plan has no rows",
    "week_plan_refused": "rows of the week plan are refused: nothing was imported"
    " [refused_rows, total_rows, rows]",
    # rows of a week plan (import report rows: code and params)
    "week_time_invalid": "start or end is not a time HH:MM [line, column, value]",
    "week_kind_invalid": "kind is media, relay or live [line, value]",
    "week_weekdays_invalid": "the weekdays are not understood (mon-fri, sat,sun...) [line, value]",
    "week_end_not_after_start": "end is not after start [line, start, end]",
    "week_title_needed": "the row needs a title [line]",
    "week_target_invalid": "a target is a village id, zone:ID or cluster:ID [line, value]",
    "week_media_missing": "no media item has the row's title [line, title]",
    "week_relay_url_missing": "no stream URL for the relay row's title [line, title]",
    # emergency and live
    "emergency_source_one": "give exactly one of media_id, relay_url or live",
    "second_person_required": "a second user must confirm",
    "second_person_invalid": "the second user cannot confirm this",
    "bulletin_not_found": "no such bulletin from upstream",
    "bulletin_not_proposed": "the bulletin is no longer waiting to be placed"
    " [bulletin_id, bulletin_status]",
    "bulletin_not_confirm_needed": "the emergency bulletin does not wait for a confirmation"
    " [bulletin_id, bulletin_status]",
    "bulletin_already_decided": "the bulletin was decided: no recording can be attached"
    " [bulletin_id, bulletin_status]",
    "bulletin_has_recording": "the bulletin already has a recording [bulletin_id]",
    "bulletin_no_audio": "the bulletin has no audio yet: it waits for one [bulletin_id]",
    "bulletin_confirmed_meanwhile": "another operator confirmed the bulletin meanwhile"
    " [bulletin_id]",
    "bulletin_decided_meanwhile": "the bulletin was placed or declined meanwhile [bulletin_id]",
    "bulletin_clash_changed": "the clashing programme's schedule can no longer change"
    " [schedule_id]",
    "bulletin_time_needed": "an own session needs a time (at)",
    "bulletin_outside_window": "the time is outside the bulletin's validity"
    " [window_start, window_end]",
    "bulletin_clash_needed": "give the clashing programme's session and an item",
    "bulletin_clash_unknown": "the session is not among the bulletin's clashes [session_id]",
    "bulletin_item_out_of_range": "the programme has no such item [item, items]",
    "live_too_many_mounts": "too many live mounts at once [max]",
    "live_already_live": "the mount is already live [mount]",
    "live_bad_source": "the live source is refused [mount]",
    "live_not_live": "the mount is not live [mount]",
    "live_unavailable": "the live hub is shutting down",
    "live_mount_invalid": "a mount name is 1-32 of a-z 0-9 _ - [mount]",
    "live_relay_url_invalid": "a relay source is relay:http(s)://URL",
    "live_device_invalid": "an alsa:/pulse: device name is refused",
    "live_source_unsupported": "not a source an operator may choose (alsa, pulse, relay,"
    " icecast, browser, push)",
    "live_wrong_source": "the mount waits for another kind of source [mount, source_kind]",
    "live_source_busy": "the mount already has a source connected [mount]",
    # reports
    "report_period_invalid": "the report period is refused (see detail)",
}


def code_of(code: str | None) -> str | None:
    """``code`` when registered; an unregistered one is logged and left out (tests catch it)."""
    if code is None or code in CODES:
        return code
    log.error("problem code %r is not in station.api._problems.CODES", code)
    return None


class FieldProblem(BaseModel):
    """One offending field of a validation problem."""

    field: str = Field(
        description="its path, dot-separated (`title`, `items.0.media_id`, a query parameter); "
        "`(body)` for the body as a whole",
        examples=["items.0.media_id"],
    )
    message: str = Field(description="what is wrong, in English", examples=["Field required"])
    type: str | None = Field(
        default=None,
        description="pydantic's error type (`missing`, `string_too_long`, `greater_than_equal`,"
        " `int_parsing`, `datetime_parsing`, `enum`, `extra_forbidden`...), for clients that "
        "say it in their own words; `value_error` is a validator's own sentence (`message`); "
        "absent when the API names the problem by the problem's `code` instead",
        examples=["string_too_long"],
    )
    params: dict[str, str | int | float] | None = Field(
        default=None,
        description="the error type's parameters (`max_length`, `min_length`, `ge`, `le`, "
        "`expected`...)",
        examples=[{"max_length": 200}],
    )


class Problem(BaseModel):
    """The body of every error response."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    code: str | None = Field(
        default=None,
        description="What was refused, for clients that say it in their own words; its "
        "parameters are extension members of the problem. Codes: "
        + "; ".join(f"`{k}`: {v}" for k, v in CODES.items()),
        examples=["cluster_exists", "media_in_use", "quota_exceeded"],
    )
    errors: list[FieldProblem] | None = None


class ApiError(Exception):
    """An error for the client: ``status``, a short ``title`` and a ``detail`` sentence."""

    def __init__(
        self,
        status: int,
        detail: str = "",
        *,
        title: str = "",
        code: str | None = None,
        params: Mapping[str, object] | None = None,
        errors: Sequence[FieldProblem] = (),
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title or _reason(status)
        self.detail = detail
        self.code = code_of(code)
        self.errors = list(errors)
        self.headers = dict(headers or {})
        # ``params`` (a domain error's ids and names) never override the standard members.
        self.extra = {k: v for k, v in (params or {}).items() if k not in _RESERVED} | extra

    def response(self) -> web.Response:
        errors = [e.model_dump(exclude_none=True) for e in self.errors] if self.errors else None
        return problem(
            self.status,
            self.title,
            self.detail,
            headers=self.headers,
            code=self.code,
            errors=errors,
            **self.extra,
        )


def field_error(
    field: str,
    message: str,
    status: int = 422,
    *,
    code: str | None = None,
    params: Mapping[str, object] | None = None,
) -> ApiError:
    """A validation problem about one named field (``code``: what, when the console knows)."""
    return ApiError(
        status,
        f"{field}: {message}",
        title="Invalid request",
        code=code or "invalid_request",
        params=params,
        errors=[FieldProblem(field=field, message=message)],
    )


def validation_problem(exc: ValidationError, prefix: str = "") -> ApiError:
    errors = [
        FieldProblem(
            field=prefix + (".".join(str(p) for p in err["loc"]) or "(body)"),
            message=str(err["msg"]).removeprefix("Value error, "),
            type=err["type"],
            params=_params(err.get("ctx")) or None,
        )
        for err in exc.errors(include_url=False)
    ]
    detail = "; ".join(f"{e.field}: {e.message}" for e in errors[:5])
    return ApiError(422, detail, title="Invalid request", code="invalid_request", errors=errors)


def _params(ctx: Mapping[str, Any] | None) -> dict[str, str | int | float]:
    """pydantic's error context, JSON-safe: numbers and strings (a bound that is a date or a
    decimal as its text); exceptions and other objects are left out."""
    params: dict[str, str | int | float] = {}
    for name, value in (ctx or {}).items():
        if isinstance(value, bool):
            params[name] = str(value).lower()
        elif isinstance(value, int | str) or (isinstance(value, float) and math.isfinite(value)):
            params[name] = value
        elif isinstance(value, date | time):
            params[name] = value.isoformat()
        elif isinstance(value, Decimal | timedelta):
            params[name] = str(value)
    for name, value in params.items():
        if name.startswith("expected") and isinstance(value, str):
            # "'a', 'b' or 'c'": the English "or" goes, leaving a list any language can show.
            head, _, last = value.rpartition(" or ")
            params[name] = f"{head}, {last}" if head else last
    return params


_RESERVED = frozenset({"type", "title", "status", "detail", "code", "errors", "instance"})

# aiohttp's own refusals (body limits, bad requests) that a console can meet.
_HTTP_CODES = {413: "body_too_large"}
# The router's refusals: no route for the path, or a method the route does not take.
_ROUTING_CODES = {404: "route_not_found", 405: "method_not_allowed"}


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem(
    status: int,
    title: str,
    detail: str = "",
    *,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> web.Response:
    body: dict[str, Any] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update({k: v for k, v in extra.items() if v is not None})
    return web.json_response(body, status=status, content_type=PROBLEM_JSON, headers=headers)


@web.middleware
async def problem_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == PROBLEM_JSON:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        routing = request.match_info.http_exception is exc  # raised by the router itself
        code = (_ROUTING_CODES if routing else _HTTP_CODES).get(exc.status)
        return problem(exc.status, exc.reason, exc.text or "", headers=headers, code=code)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return problem(500, "Internal Server Error", "the error was logged")
