"""Shared plumbing of the CLI: configuration, logging, a database for one command."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel.ext.asyncio.session import AsyncSession

from station.config import Settings, load_config

Sessions = async_sessionmaker[AsyncSession]
Subparsers = Any  # argparse's _SubParsersAction is private
CommandBody = Callable[[Sessions, Settings], Awaitable[int]]


def settings_from(args: argparse.Namespace) -> Settings:
    return load_config(Path(args.config) if args.config else None)


def setup_logging(settings: Settings) -> None:
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    handler = logging.StreamHandler()
    if settings.logging.json_format:
        from station._logging import JsonFormatter

        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(fmt))
    logging.basicConfig(level=settings.logging.level, handlers=[handler])


def add_command(
    parent: Subparsers, name: str, func: Callable[[argparse.Namespace], int], help_: str
) -> argparse.ArgumentParser:
    """A subcommand that takes ``-c/--config``."""
    parser: argparse.ArgumentParser = parent.add_parser(name, help=help_, description=help_)
    parser.add_argument("-c", "--config", help="config YAML (default: built-in defaults)")
    parser.set_defaults(func=func)
    return parser


def add_group(parent: Subparsers, name: str, help_: str) -> Subparsers:
    return parent.add_parser(name, help=help_).add_subparsers(dest=name, required=True)


def with_station_db(args: argparse.Namespace, body: CommandBody) -> int:
    """Run ``body(sessions, settings)`` against the configured database, migrated first."""
    from station.db import create_engine_for, session_factory, upgrade_async

    settings = settings_from(args)
    logging.basicConfig(level=logging.WARNING)

    async def run() -> int:
        await upgrade_async(settings.database.url)
        engine = create_engine_for(settings.database.url)
        try:
            return await body(session_factory(engine), settings)
        finally:
            await engine.dispose()

    return asyncio.run(run())


async def wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
