"""Accounts, API tokens and the audit log from the command line.

``loaxa user add NAME --role admin`` creates the first admin (there are no default
credentials). Passwords are read from ``--password-stdin``, asked twice on a terminal, or
generated and printed once. Every change is written to the audit log as the operator:
``cli:<login>``, or the account named with ``--as`` (it needs ``users:manage``).
"""

from __future__ import annotations

import argparse
import getpass
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from station.config import Settings

from ._common import Sessions, Subparsers, add_command, add_group, with_station_db
from ._operator import add_operator, with_operator

if TYPE_CHECKING:
    from station._audit import Actor

_ROLES = ["admin", "broadcaster", "approver", "technician", "viewer"]
_AGO = re.compile(r"^(?P<n>\d+)(?P<unit>[mhd])$")
MANAGE = "users:manage"


def _fail(message: str) -> Exception:
    from station._services import StationError

    return StationError(message)


def _read_password(args: argparse.Namespace) -> str | None:
    """From stdin, or asked twice on a terminal; None = generate one."""
    if getattr(args, "password_stdin", False):
        line = sys.stdin.readline().rstrip("\r\n")
        if not line:
            raise _fail("no password on standard input")
        return line
    if sys.stdin.isatty() and not getattr(args, "generate", False):
        first = getpass.getpass("password (empty = generate one): ")
        if not first:
            return None
        if getpass.getpass("again: ") != first:
            raise _fail("the passwords differ")
        return first
    return None


def cmd_user_add(args: argparse.Namespace) -> int:
    from station.api import AccountError, audit, create_user
    from station.db import Role

    password = _read_password(args)

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        try:
            user, generated = await create_user(
                sessions,
                args.name,
                Role(args.role),
                password,
                display_name=args.display_name,
                must_change_password=password is None,
            )
        except AccountError as exc:
            raise _fail(str(exc)) from None
        await audit(
            who,
            "user.create",
            f"user:{user.username}",
            {"role": user.role},
            sessions=sessions,
        )
        print(f"created {user.role} {user.username!r} (id {user.id})")
        if generated:
            print(f"one-time password (shown once, change it at first login): {generated}")
        return 0

    return with_operator(args, MANAGE, body)


def cmd_user_list(args: argparse.Namespace) -> int:
    from sqlmodel import select

    from station.db import User

    async def body(sessions: Sessions, settings: Settings) -> int:
        async with sessions() as db:
            users = (await db.exec(select(User).order_by(User.username))).all()
        print(f"{'id':>4} {'username':<20} {'role':<12} {'state':<10} last login")
        for u in users:
            state = "disabled" if u.disabled else ("pw-change" if u.must_change_password else "ok")
            seen = "-"
            if u.last_login_at:
                seen = f"{u.last_login_at.astimezone(settings.station.tzinfo):%Y-%m-%d %H:%M}"
            print(f"{u.id:>4} {u.username:<20} {u.role:<12} {state:<10} {seen}")
        return 0

    return with_station_db(args, body)


def cmd_user_passwd(args: argparse.Namespace) -> int:
    from station.api import AccountError, audit, find_user, set_password
    from station.api._secrets import generate_password

    password = _read_password(args)

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        user = await find_user(sessions, args.name)
        if user is None or user.id is None:
            raise _fail(f"no user {args.name!r}")
        new = password or generate_password()
        try:
            await set_password(sessions, user.id, new, must_change=password is None)
        except AccountError as exc:
            raise _fail(str(exc)) from None
        await audit(who, "user.password_reset", f"user:{user.username}", sessions=sessions)
        print(f"password of {user.username!r} changed")
        if password is None:
            print(f"one-time password (shown once, change it at first login): {new}")
        return 0

    return with_operator(args, MANAGE, body)


def cmd_token_create(args: argparse.Namespace) -> int:
    from station.api import AccountError, audit, create_token, find_user
    from station.db import Role

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        user = await find_user(sessions, args.user)
        if user is None:
            raise _fail(f"no user {args.user!r}")
        try:
            token, secret = await create_token(
                sessions, user, args.name, Role(args.role) if args.role else None
            )
        except AccountError as exc:
            raise _fail(str(exc)) from None
        await audit(
            who,
            "token.create",
            f"token:{token.id}",
            {"user": user.username, "name": token.name, "role": token.role},
            sessions=sessions,
        )
        print(f"token {token.id} for {user.username} ({token.role}); shown once:", file=sys.stderr)
        print(secret)
        return 0

    return with_operator(args, MANAGE, body)


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from station.api import audit, revoke_token

    async def body(sessions: Sessions, _settings: Settings, who: Actor) -> int:
        token = await revoke_token(sessions, args.id)
        if token is None:
            raise _fail(f"no token {args.id}")
        await audit(who, "token.revoke", f"token:{token.id}", sessions=sessions)
        print(f"token {token.id} ({token.name}) revoked")
        return 0

    return with_operator(args, MANAGE, body)


def _since(text: str) -> datetime:
    match = _AGO.match(text)
    if match:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match["unit"]]
        return datetime.now(UTC) - timedelta(**{unit: int(match["n"])})
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise _fail(f"--since {text!r}: use 30m, 12h, 7d or an ISO date/time") from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def cmd_audit(args: argparse.Namespace) -> int:
    from sqlmodel import col, select

    from station.api import audit_csv
    from station.db import AuditEntry

    since = _since(args.since) if args.since else None

    async def body(sessions: Sessions, settings: Settings) -> int:
        query = select(AuditEntry).order_by(col(AuditEntry.id).desc()).limit(args.limit)
        if since is not None:
            query = query.where(col(AuditEntry.at) >= since)
        if args.action:
            query = query.where(col(AuditEntry.action).startswith(args.action, autoescape=True))
        if args.actor:
            query = query.where(AuditEntry.actor == args.actor)
        if args.target:
            query = query.where(AuditEntry.target == args.target)
        async with sessions() as db:
            rows = list(reversed((await db.exec(query)).all()))
        if args.csv:
            sys.stdout.write(audit_csv(rows))
            return 0
        for e in rows:
            at = e.at.astimezone(settings.station.tzinfo)
            print(
                f"{at:%Y-%m-%d %H:%M:%S} {e.actor or '-':<20} {e.action:<22} {e.target:<20} {e.ip}"
            )
        return 0

    return with_station_db(args, body)


def register(sub: Subparsers) -> None:
    user = add_group(sub, "user", "local accounts [tài khoản]")
    p = add_command(user, "add", cmd_user_add, "create a user (no default credentials exist)")
    p.add_argument("name")
    p.add_argument("--role", required=True, choices=_ROLES)
    p.add_argument("--display-name", default="")
    p.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    p.add_argument("--generate", action="store_true", help="generate a one-time password")
    add_operator(p)
    add_command(user, "list", cmd_user_list, "list users")
    p = add_command(user, "passwd", cmd_user_passwd, "set a user's password")
    p.add_argument("name")
    p.add_argument("--password-stdin", action="store_true")
    p.add_argument("--generate", action="store_true", help="generate a one-time password")
    add_operator(p)

    token = add_group(sub, "token", "API tokens for scripts and the upstream system")
    p = add_command(token, "create", cmd_token_create, "create a token (printed once)")
    p.add_argument("--user", required=True)
    p.add_argument("--name", required=True)
    p.add_argument("--role", choices=_ROLES, help="scope (default: the user's role)")
    add_operator(p)
    p = add_command(token, "revoke", cmd_token_revoke, "revoke a token")
    p.add_argument("id", type=int)
    add_operator(p)

    p = add_command(sub, "audit", cmd_audit, "show or export the audit log")
    p.add_argument("--since", help="30m, 12h, 7d or an ISO date/time")
    p.add_argument("--action", help="action prefix, e.g. login or schedule.")
    p.add_argument("--actor", help="exactly this actor, e.g. lan or cli:root")
    p.add_argument("--target", help="exactly this target, e.g. cluster:C1")
    p.add_argument("--limit", type=int, default=1000)
    p.add_argument("--csv", action="store_true", help="CSV on standard output")
