"""The ``loaxa`` command line.

Each area registers its subcommands from its own module. Errors a user can cause (bad config,
unknown ids, rejected media) print one clear line on stderr and exit 2; no traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from . import (
    _clusters,
    _core,
    _fleet,
    _library,
    _live,
    _media,
    _playout,
    _reports,
    _schedules,
    _topics,
    _upstream,
    _users,
)

REGISTRARS = [
    _core.register,
    _clusters.register,
    _fleet.register,
    _library.register,
    _media.register,
    _playout.register,
    _schedules.register,
    _upstream.register,
    _reports.register,
    _topics.register,
    _live.register,
    _users.register,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="loaxa", description="loaxa: commune radio station service (đài truyền thanh xã)"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for register in REGISTRARS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from station._services import StationError
    from station.config import ConfigError
    from station.media import MediaRejected

    args = build_parser().parse_args(argv)
    try:
        code: int = args.func(args)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except (StationError, MediaRejected, FileNotFoundError) as exc:
        print(f"loaxa: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return code


__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    sys.exit(main())
