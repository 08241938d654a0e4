"""The dispatcher's APScheduler jobs end before the station's stop goes on (a job cancelled in
a database transaction rolls it back first; left running, it held SQLite's write lock)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from scheduler._jobs import JobExecutor


async def running_scheduler(job: object) -> tuple[AsyncIOScheduler, JobExecutor]:
    executor = JobExecutor()
    scheduler = AsyncIOScheduler(timezone=UTC, executors={"default": executor})
    scheduler.start()
    scheduler.add_job(job, "date", run_date=datetime.now(UTC))
    return scheduler, executor


async def test_a_cancelled_job_finishes_its_cleanup_before_the_stop_returns() -> None:
    started, events = asyncio.Event(), []

    async def job_in_a_transaction() -> None:
        started.set()
        try:
            await asyncio.sleep(60)
        finally:
            await asyncio.sleep(0.2)  # the rollback
            events.append("rolled back")

    scheduler, executor = await running_scheduler(job_in_a_transaction)
    async with asyncio.timeout(10):
        await started.wait()
    scheduler.shutdown(wait=False)
    assert events == []  # APScheduler only cancelled it
    assert await executor.wait_stopped() == 0
    assert events == ["rolled back"]


async def test_a_lost_cancel_is_sent_again_and_a_stuck_job_is_given_up() -> None:
    started, events = asyncio.Event(), []

    async def swallows_one_cancel() -> None:  # as Python 3.11's wait_for can
        started.set()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            events.append("lost")
        await asyncio.sleep(60)
        events.append("never")

    scheduler, executor = await running_scheduler(swallows_one_cancel)
    async with asyncio.timeout(10):
        await started.wait()
    scheduler.shutdown(wait=False)
    assert await executor.wait_stopped(again_s=0.05) == 0
    assert events == ["lost"]

    started.clear()
    released = asyncio.Event()

    async def never_ends() -> None:  # until the test releases it
        started.set()
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                events.append("ignored")

    scheduler, executor = await running_scheduler(never_ends)
    async with asyncio.timeout(10):
        await started.wait()
    scheduler.shutdown(wait=False)
    assert await executor.wait_stopped(again_s=0.05, give_up_s=0.3) == 1  # logged, not waited
    assert events.count("ignored") >= 2
    released.set()
