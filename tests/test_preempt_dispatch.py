"""The dispatcher's preemption pass with fakes: what comes back, when, and after a restart."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import cast

from devices import ClusterGateway
from devices.protocol import Command, PlayCommand, StreamCommand
from scheduler import (
    Aired,
    Dispatcher,
    ItemKind,
    ItemRef,
    OnAir,
    Part,
    ProgrammeItemSpec,
    Session,
    SessionPlan,
    StreamPart,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SEC = timedelta(seconds=1)
NEWS = ItemRef(7, "a" * 64, 1000, 60_000)
BULLETIN = ItemRef(8, "b" * 64, 1000, 20_000)
BRIEF = ItemRef(9, "c" * 64, 1000, 30_000)
VOV = StreamPart("http://vov.example/vov1", 120_000)


class FakeGateway:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Command]] = []

    async def send(self, cluster_id: str, command: Command, timeout: float | None = None) -> None:
        self.sent.append((cluster_id, command))


class FakePreemptions:
    """The sessions on air, as the station's store would read them from the database."""

    def __init__(self, on_air: list[OnAir]) -> None:
        self.sessions = on_air
        self.interrupted: list[tuple[str, str, str | None]] = []

    async def on_air(self, window_start: datetime, window_end: datetime) -> list[OnAir]:
        return [o for o in self.sessions if window_start <= o.plan.start_at < window_end]

    async def record_interrupted(self, session_id: str, cluster_id: str, by: str | None) -> None:
        self.interrupted.append((session_id, cluster_id, by))


def _on_air(
    sid: str,
    start: datetime,
    parts: tuple[Part, ...],
    clusters: list[str],
    priority: int,
    grace: timedelta,
) -> OnAir:
    specs = tuple(
        ProgrammeItemSpec(ItemKind.MEDIA, timedelta(milliseconds=p.duration_ms), p.media_id)
        if isinstance(p, ItemRef)
        else ProgrammeItemSpec(ItemKind.RELAY, timedelta(milliseconds=p.duration_ms), url=VOV.url)
        for p in parts
    )
    length = sum((s.duration for s in specs), timedelta(0))
    session = Session(sid, priority, start, specs, start + length + grace)
    plan = SessionPlan(
        sid,
        start,
        start + timedelta(minutes=1),
        clusters,
        [p for p in parts if isinstance(p, ItemRef)],
        parts=parts,
        priority=priority,
    )
    return OnAir(Aired(session, frozenset(clusters)), plan)


def _dispatcher(repo: FakePreemptions, gateway: FakeGateway, now: datetime) -> Dispatcher:
    return Dispatcher(
        cast(object, None),  # type: ignore[arg-type]  # the schedule side is not used here
        cast(ClusterGateway, gateway),
        lambda cid, item: f"http://st/{cid}/{item.sha256}",
        clock=lambda: now,
        preemptions=repo,
        resume_delay_s=0.5,
    )


async def test_pass_resumes_at_the_offset_rejoins_relays_records_the_rest_and_restarts() -> None:
    grace = timedelta(minutes=5)
    repo = FakePreemptions(
        [
            _on_air("s1-1", T0, (NEWS,), ["C1", "C2"], 40, grace),
            _on_air("s2-1", T0, (VOV,), ["C3"], 20, grace),
            _on_air("s3-1", T0, (BRIEF,), ["C4"], 40, timedelta(0)),  # no grace
            _on_air("s9-1", T0 + 10 * SEC, (BULLETIN, BULLETIN), ["C1", "C3", "C4"], 80, grace),
        ]
    )
    gateway = FakeGateway()
    during = _dispatcher(repo, gateway, T0 + 30 * SEC)
    await during.preempt()
    assert gateway.sent == [] and repo.interrupted == []  # the bulletin is on air
    job = during.scheduler.get_job("preempt")
    assert job is not None and job.trigger.run_date == T0 + 50 * SEC  # when it ends

    end = T0 + 50 * SEC
    await _dispatcher(repo, gateway, end).preempt()
    sent = {cid: c for cid, c in gateway.sent}
    assert sorted(sent) == ["C1", "C3"]  # C2 was never cut; C4 is past its window
    play = sent["C1"]
    assert isinstance(play, PlayCommand) and play.session_id == "s1-1~r50"
    assert play.offset_ms == 10_000 and play.start_at == end + 0.5 * SEC  # where it stopped
    stream = sent["C3"]
    assert isinstance(stream, StreamCommand) and stream.session_id == "s2-1~r50"
    assert stream.start_at == end + 0.5 * SEC and stream.until == T0 + 120 * SEC  # rejoins
    assert repo.interrupted == [("s3-1", "C4", "s9-1")]  # proof: cut by the bulletin

    # Restarted 5 s later: rebuilt from the same sessions, the same ids (a cluster that has
    # them acks a duplicate: nothing plays twice); the relay keeps its slot's end.
    gateway.sent.clear()
    await _dispatcher(repo, gateway, end + 5 * SEC).preempt()
    again = {cid: c for cid, c in gateway.sent}
    assert again["C1"].id == play.id and again["C3"].id == stream.id
    assert isinstance(again["C3"], StreamCommand) and again["C3"].until == stream.until
