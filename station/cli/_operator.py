"""Who runs a changing CLI command: the audit log's actor for the command line.

Without ``--as`` the actor is ``cli:<OS login>`` (no user id): whoever can run the CLI can
already write the database, and the OS login is what the machine vouches for. ``--as NAME``
(or ``$LOAXA_AS``) names an account instead: it must exist, be enabled and hold the
permission the API asks for the same action, else the command is refused before it acts; the
entry then carries the user's name and id, and the OS login in its user agent. Passwords are
asked only where the API asks for one too (the emergency two-person rule).
"""

from __future__ import annotations

import argparse
import getpass
import os
from collections.abc import Awaitable, Callable

from station._audit import Actor
from station._services import StationError
from station.config import Settings

from ._common import Sessions, with_station_db

OperatorBody = Callable[[Sessions, Settings, Actor], Awaitable[int]]
AS_ENV = "LOAXA_AS"


def os_login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


def add_operator(parser: argparse.ArgumentParser) -> None:
    """``--as USERNAME``: act (and be audited) as this account of the station."""
    parser.add_argument(
        "--as",
        dest="as_user",
        metavar="USERNAME",
        default=None,
        help=f"act as this station account, checked against its role (default: ${AS_ENV}, "
        "else audited as cli:<OS login>)",
    )


def named_user(args: argparse.Namespace) -> str:
    return str(getattr(args, "as_user", None) or os.environ.get(AS_ENV, "")).strip()


async def resolve_operator(
    sessions: Sessions, args: argparse.Namespace, permission: str | None
) -> Actor:
    """The actor of this command; StationError if ``--as`` names no one fit for it."""
    from station.api._accounts import find_user
    from station.api._roles import Permission, permissions_of

    login = os_login()
    name = named_user(args)
    if not name:
        return Actor(f"cli:{login}"[:64], user_agent="loaxa-cli")
    user = await find_user(sessions, name)
    if user is None or user.id is None:
        raise StationError(f"--as {name}: no such user (see `loaxa user list`)")
    if user.disabled:
        raise StationError(f"--as {name}: the account is disabled")
    if permission is not None and Permission(permission) not in permissions_of(user.role):
        raise StationError(f"--as {name}: a {user.role} may not do this (needs {permission})")
    return Actor(user.username, user_id=user.id, user_agent=f"loaxa-cli (os user {login})"[:200])


def with_operator(args: argparse.Namespace, permission: str | None, body: OperatorBody) -> int:
    """Run ``body(sessions, settings, actor)`` once the operator is known and allowed."""

    async def run(sessions: Sessions, settings: Settings) -> int:
        who = await resolve_operator(sessions, args, permission)
        return await body(sessions, settings, who)

    return with_station_db(args, run)
