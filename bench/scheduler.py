"""Scheduler benchmark: 10,000 recurring schedules, pure expansion vs an APScheduler baseline.

    python bench/scheduler.py [--schedules 10000] [--clusters 500] [--repeat 3]

Measures (best of ``--repeat`` runs, wall time):
- expansion of every schedule over one day and over one week (``scheduler.expand``), the
  work of a rebuild at start;
- the same day's fire times with APScheduler 3 ``CronTrigger.get_next_fire_time`` (what a
  naive dispatcher that keeps one cron job per schedule computes), for the ratio;
- the timeline of every cluster for one day (preemption rules run over all occurrences);
- checking one new schedule's quotas and conflicts against all the others.
- with ``--jitter N``: firing jitter of a started Dispatcher (real APScheduler jobs, fake
  repository and gateway) over N occurrences.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

# This script is named like the package it measures: keep its folder off the import path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from scheduler import (  # noqa: E402
    ItemKind,
    ProgrammeItemSpec,
    ProgrammeSpec,
    Quota,
    Recurrence,
    ScheduleRule,
    check_quotas,
    expand,
    find_conflicts,
    timeline,
)

TZ_NAME = "Asia/Ho_Chi_Minh"
TZ = ZoneInfo(TZ_NAME)
DAY = datetime(2026, 3, 2, tzinfo=TZ)  # a Monday
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def make_rules(count: int, clusters: int, seed: int = 7) -> list[ScheduleRule]:
    rnd = random.Random(seed)
    ids = [f"C{n:04d}" for n in range(clusters)]
    rules = []
    for n in range(count):
        minutes = rnd.choice((5, 10, 15))
        items = [ProgrammeItemSpec(ItemKind.MEDIA, timedelta(minutes=minutes), n)]
        if rnd.random() < 0.3:
            url = "http://vov.example/vov1"
            items.insert(0, ProgrammeItemSpec(ItemKind.RELAY, timedelta(minutes=15), url=url))
        at = clock(rnd.randrange(5, 21), rnd.choice((0, 15, 30, 45)))
        kind = rnd.choices(("daily", "weekly", "monthly"), (5, 4, 1))[0]
        recurrence = Recurrence(
            kind,  # type: ignore[arg-type]
            time_of_day=at,
            weekdays=frozenset(rnd.sample(range(7), rnd.randint(1, 5)))
            if kind == "weekly"
            else frozenset(),
            day_of_month=rnd.randint(1, 28) if kind == "monthly" else None,
            valid_from=date(2026, 1, 1),
            exceptions=frozenset({date(2026, 4, 30), date(2026, 5, 1), date(2026, 9, 2)}),
            timezone=TZ_NAME,
        )
        targets = frozenset(rnd.sample(ids, rnd.randint(1, 12)))
        programme = ProgrammeSpec(n, f"P{n}", tuple(items))
        rules.append(ScheduleRule(n, programme, recurrence, targets, rank=0))
    return rules


def cron_for(rule: ScheduleRule) -> CronTrigger:
    rec = rule.recurrence
    assert rec.time_of_day is not None
    fields: dict[str, Any] = {"hour": rec.time_of_day.hour, "minute": rec.time_of_day.minute}
    if rec.kind == "weekly":
        fields["day_of_week"] = ",".join(WEEKDAYS[d] for d in sorted(rec.weekdays))
    if rec.kind == "monthly":
        fields["day"] = rec.day_of_month
    return CronTrigger(timezone=TZ, start_date=datetime(2026, 1, 1, tzinfo=TZ), **fields)


def apscheduler_day(triggers: list[CronTrigger], start: datetime, end: datetime) -> int:
    """Fire times in [start, end) the way a cron-job-per-schedule dispatcher finds them;
    holidays need a check per fire time (CronTrigger has no exception dates)."""
    fired = 0
    for trigger in triggers:
        previous = None
        now = start
        while True:
            at = trigger.get_next_fire_time(previous, now)
            if at is None or at >= end:
                break
            if at.date() not in (date(2026, 4, 30), date(2026, 5, 1), date(2026, 9, 2)):
                fired += 1
            previous = now = at + timedelta(seconds=1)
    return fired


FIRST: dict[str, float] = {}  # the first (cold) run of each measurement


def best(repeat: int, work: Callable[[], Any], name: str = "") -> tuple[float, Any]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - t0)
    FIRST[name] = times[0]
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--jitter",
        type=int,
        default=0,
        metavar="N",
        help="also measure the dispatcher's firing jitter over N occurrences (Playout)",
    )
    args = parser.parse_args()

    t_build, rules = best(1, lambda: make_rules(args.schedules, args.clusters))
    day_end, week_end = DAY + timedelta(days=1), DAY + timedelta(days=7)
    # Cold first: the (day, time of day) -> UTC cache starts empty, as at a station start.
    t_day, day = best(args.repeat, lambda: expand(rules, DAY, day_end), "day")
    t_week, week = best(args.repeat, lambda: expand(rules, DAY, week_end), "week")
    triggers = [cron_for(r) for r in rules]
    t_cron, fired = best(args.repeat, lambda: apscheduler_day(triggers, DAY, day_end))
    assert fired == len(day), (fired, len(day))  # same answer, so the ratio is fair
    clusters = sorted({c for r in rules for c in r.clusters})
    t_line, lines = best(args.repeat, lambda: timeline(rules, clusters, DAY, day_end))
    slots = sum(len(line.slots) for line in lines.values())
    new = rules[0]
    quotas = {"rural": Quota(max_minutes_per_session=45)}
    where = dict.fromkeys(new.clusters, "rural")
    window = DAY, DAY + timedelta(weeks=5)

    def check() -> tuple[int, int]:
        bad = check_quotas(
            new,
            rules,
            localities=where,
            quotas=quotas,
            window_start=window[0],
            window_end=window[1],
        )
        return len(bad), len(find_conflicts(new, rules, *window))

    t_check, (violations, conflicts) = best(args.repeat, check)

    print(f"python {platform.python_version()} on {platform.machine()}, best of {args.repeat}")
    print(f"{args.schedules} schedules over {args.clusters} clusters (built in {t_build:.2f} s)")
    print(
        f"expand 1 day   : {t_day * 1000:8.1f} ms  ({len(day)} occurrences; cold first run "
        f"{FIRST['day'] * 1000:.1f} ms)"
    )
    print(
        f"expand 7 days  : {t_week * 1000:8.1f} ms  ({len(week)} occurrences; first run "
        f"{FIRST['week'] * 1000:.1f} ms)"
    )
    print(f"APScheduler 1 d: {t_cron * 1000:8.1f} ms  ({fired} fire times, CronTrigger)")
    print(f"  ratio        : {t_cron / t_day:8.1f} x slower than expand")
    print(f"timeline 1 day : {t_line * 1000:8.1f} ms  ({len(clusters)} clusters, {slots} slots)")
    print(
        f"quota+conflicts: {t_check * 1000:8.1f} ms  (one new schedule vs all, 5 weeks; "
        f"{violations} violations, {conflicts} conflicts)"
    )
    if args.jitter:
        firing_jitter(args.jitter)


# --------------------------------------------------------------------------- firing jitter


def firing_jitter(count: int, spread_s: float = 10.0) -> None:
    """The dispatcher's real APScheduler jobs: ``count`` occurrences over ``spread_s`` seconds,
    fired by a started ``Dispatcher`` (fake repository and gateway: no database, no broker);
    jitter = first send - planned fire time. Peer: raw ``loop.call_at`` timers, same times.
    Goal p99 <= 50 ms."""
    import asyncio
    import time as wall

    from devices import ClusterGateway
    from scheduler import Dispatcher, ItemRef, OccurrenceSpec, SessionPlan

    item = ItemRef(1, "a" * 64, 1000, 1000)

    class Repo:
        def __init__(self, due: list[OccurrenceSpec]) -> None:
            self.due = due
            self.done: set[str] = set()

        async def pending_schedules(self) -> list[Any]:
            return []

        async def due_occurrences(self, start: datetime, end: datetime) -> list[OccurrenceSpec]:
            return [
                o for o in self.due if start <= o.occurrence < end and o.session_id not in self.done
            ]

        async def prepare_session(
            self,
            schedule_id: int,
            start_at: datetime,
            expires_at: datetime,
            *,
            occurrence: datetime | None = None,
        ) -> SessionPlan:
            sid = f"s{schedule_id}"
            return SessionPlan(sid, start_at, expires_at, [f"C{schedule_id}"], [item])

        async def record_dispatch(self, schedule_id: int, session_id: str, f: Any) -> None:
            self.done.add(session_id)

        async def mark_missed(self, schedule_id: int, reason: str) -> None: ...
        async def mark_occurrence_missed(self, spec: OccurrenceSpec, reason: str) -> None: ...
        async def upcoming_sessions(self, start: datetime, end: datetime) -> list[SessionPlan]:
            return []

    sent: dict[str, float] = {}

    class Gateway:
        async def send(self, cluster_id: str, command: Any, timeout: float | None = None) -> None:
            sent.setdefault(cluster_id, wall.time())

    async def run() -> tuple[list[float], list[float]]:
        from datetime import UTC

        t0 = datetime.now(UTC) + timedelta(seconds=2)
        due = [
            OccurrenceSpec(n, t0 + timedelta(seconds=spread_s * n / count)) for n in range(count)
        ]
        repo = Repo(due)
        dispatcher = Dispatcher(
            repo,
            cast_gateway(Gateway()),
            lambda c, i: "http://x",
            lead_s=0,  # type: ignore[arg-type]
            forward_horizon_s=0,
            horizon_s=3600,
        )
        await dispatcher.start()
        await asyncio.sleep(spread_s + 3)
        await dispatcher.stop()
        late = [
            (sent[f"C{o.schedule_id}"] - o.occurrence.timestamp()) * 1000
            for o in due
            if f"C{o.schedule_id}" in sent
        ]
        loop = asyncio.get_running_loop()
        peer: list[float] = []
        base = wall.time() + 1
        offset = loop.time() - wall.time()
        for n in range(count):
            when = base + spread_s * n / count
            loop.call_at(when + offset, lambda w=when: peer.append((wall.time() - w) * 1000))
        await asyncio.sleep(spread_s + 1.5)
        return late, peer

    def cast_gateway(g: Any) -> ClusterGateway:
        return g  # type: ignore[no-any-return]

    late, peer = asyncio.run(run())
    for name, values in (("dispatcher firing", late), ("peer: loop.call_at", peer)):
        ordered = sorted(values)
        p50, p99 = (
            ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] for q in (0.5, 0.99)
        )
        print(
            f"jitter {name:<19}: n={len(values)} p50={p50:6.1f} ms  p99={p99:6.1f} ms  "
            f"max={ordered[-1]:6.1f} ms"
        )


if __name__ == "__main__":
    main()
