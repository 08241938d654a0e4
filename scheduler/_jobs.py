"""APScheduler's asyncio executor with a shutdown that can be waited for.

``AsyncIOScheduler.shutdown`` cancels the jobs that are running (reconcile, dispatch, the
emergency runner's poll) and forgets them: it cannot wait, it is not a coroutine. A job
cancelled in a database transaction still has to roll it back; left running past the
station's stop it held SQLite's write lock while the next owner of the file (a restarted
station, a test) waited and failed with "database is locked". ``JobExecutor`` keeps the jobs
it cancelled, and ``wait_stopped`` waits until they have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from apscheduler.executors.asyncio import AsyncIOExecutor

log = logging.getLogger(__name__)

CANCEL_AGAIN_S = 0.5  # Python 3.11's wait_for can lose a cancel (gh-86296): cancel again
GIVE_UP_S = 10.0  # then leave it (logged) rather than hold up the shutdown


class JobExecutor(AsyncIOExecutor):  # type: ignore[misc]  # APScheduler 3 has no types
    def __init__(self) -> None:
        super().__init__()
        self._stopping: set[asyncio.Future[Any]] = set()
        self._shut_down = asyncio.Event()

    def shutdown(self, wait: bool = True) -> None:
        # The running jobs, before the base class cancels and forgets them.
        self._stopping = {f for f in self._pending_futures if not f.done()}
        super().shutdown(wait)
        self._shut_down.set()

    async def wait_stopped(
        self, *, again_s: float = CANCEL_AGAIN_S, give_up_s: float = GIVE_UP_S
    ) -> int:
        """Wait for the jobs cancelled by ``shutdown`` to end; returns how many were left
        running after ``give_up_s`` (logged). The scheduler's ``shutdown`` reaches the
        executor only at the loop's next turn (APScheduler's ``run_in_event_loop``)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + give_up_s
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(give_up_s):
                await self._shut_down.wait()
        pending, self._stopping = self._stopping, set()
        while pending:
            left = deadline - loop.time()
            if left <= 0:
                log.error(
                    "%d scheduler jobs still running %.0f s after the stop", len(pending), give_up_s
                )
                break
            _, pending = await asyncio.wait(pending, timeout=min(again_s, left))
            for future in pending:
                future.cancel()
        return len(pending)
