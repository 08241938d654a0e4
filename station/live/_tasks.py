"""Ending the live hub's helper tasks in bounded time, whatever they were awaiting.

One ``cancel()`` does not reliably end a task on Python 3.11: ``asyncio.wait_for`` returns the
result of the future it waits for when that future completes in the same loop turn as the
cancellation of the waiting task, and the cancellation is lost (gh-86296, fixed in 3.12). The
MQTT link's ``publish`` waits that way for every packet, so a live-over-MQTT sink cancelled
while a packet went out carried on, back to its queue, and waited there for ever: nothing fills
it once the mount stops, and the station's shutdown waited on it. Loops that such a task runs
check a closing flag of their owner as well; this module cancels again until the task ends.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

CANCEL_AGAIN_S = 0.5  # a task still running this long after a cancel is cancelled again
GIVE_UP_S = 5.0  # then it is left behind (logged) rather than hold up a shutdown


async def cancel_and_wait(
    tasks: Iterable[asyncio.Task[Any]],
    *,
    again_s: float = CANCEL_AGAIN_S,
    give_up_s: float = GIVE_UP_S,
) -> list[asyncio.Task[Any]]:
    """Cancel ``tasks`` and wait until they end, cancelling those still running every
    ``again_s`` (a lost cancellation, see above). Only for tasks whose cleanup needs no more
    than ``again_s``. Bounded: after ``give_up_s`` the ones still running are logged and
    returned. Their results and exceptions are retrieved (never logged as unretrieved)."""
    everything = list(tasks)
    pending = {task for task in everything if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_s
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            names = ", ".join(sorted(task.get_name() for task in pending))
            log.error("live tasks still running %.1f s after cancelling them: %s", give_up_s, names)
            break
        _, pending = await asyncio.wait(pending, timeout=min(again_s, left))
    await asyncio.gather(*(t for t in everything if t.done()), return_exceptions=True)
    return sorted(pending, key=lambda task: task.get_name())
