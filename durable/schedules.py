"""Cron schedules: `Schedule` declarations and the scheduler that fires each tick once.

How a tick fires exactly once, however many workers run:

1. Every scheduler reads the due rows (active, unpaused, `next_fire_at <= now`).
2. It claims one tick with a compare-and-set (`Store.claim_schedule_tick`) that moves
   `next_fire_at` past the due time *and* records the tick in `pending_fire_at`,
   conditioned on `next_fire_at` still being the due time it read. Of racing
   workers only the first one succeeds (in Postgres, row locking serialises them).
3. The winner starts the run with the idempotency key `schedule:{name}:{tick}` and
   then clears `pending_fire_at` (`Store.confirm_schedule_tick`).

A process that dies between 2 and 3 leaves `pending_fire_at` set; after
`CLAIM_GRACE` any scheduler re-claims it (`Store.reclaim_schedule_tick`, again a
compare-and-set) and triggers it with the same idempotency key, which starts nothing
if the run was in fact created. So a tick is neither lost nor doubled.

Catch-up: when a due row is older than one tick (no worker ran for a while), only the
latest tick at or before now is claimed and fired; the ones before it are skipped.

Time zones and DST: fire times are wall-clock times in the schedule's zone. A wall
time that occurs twice (clocks going back) fires once, at its first occurrence,
unless the minute or hour field starts with `*` (e.g. `*/15 * * * *`), which keeps
firing at its interval through the repeated hour. A wall time skipped when clocks go
forward fires at the same offset as before the change (02:30 becomes 03:30 on a
spring-forward night), except for `*` minute/hour expressions, for which it simply
does not exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterError, croniter

from durable.errors import DurableError, SerializationError, ValidationError
from durable.outage import Outage
from durable.store.base import ScheduleInfo
from durable.workflow import WorkflowDef, _version_key

if TYPE_CHECKING:
    from durable.runtime import Runtime

log = logging.getLogger("durable.schedules")

#: How long a claimed tick may stay unconfirmed before another scheduler re-triggers it.
CLAIM_GRACE = timedelta(seconds=10)
#: The scheduler loop looks at the table at least this often (seconds), so pauses,
#: resumes and other processes' changes are seen promptly.
MAX_SLEEP = 1.0
MIN_SLEEP = 0.01

_EPS = timedelta(microseconds=1)
_DST_WINDOW = timedelta(hours=3)  # larger than any DST shift (at most 2 h in tzdata)
_PROBE_STEP = timedelta(hours=6)  # no zone changes its offset twice within 6 h
_MAX_SEGMENTS = 400  # offset segments crossed looking for the next fire time (~200 years)
_CATCH_UP_WINDOWS = tuple(
    timedelta(seconds=s) for s in (1, 60, 3600, 86400, 31 * 86400, 366 * 86400, 3000 * 86400)
)


class ScheduleNotFound(DurableError, LookupError):
    """No schedule with that name exists in the database."""


def _fields(expression: str) -> list[str]:
    return expression.split() if isinstance(expression, str) else []


def _croniter_form(expression: str) -> str:
    """croniter wants the seconds field last; durable's six-field form has it first."""
    fields = _fields(expression)
    if len(fields) == 6:
        fields = fields[1:] + fields[:1]
    return " ".join(fields)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError) as exc:
        raise ValidationError(
            f"unknown time zone {name!r}: use an IANA name such as 'UTC' or 'Europe/Paris'"
        ) from exc


class Schedule:
    """A cron schedule on a workflow: 5 fields, or 6 with seconds first.

    `input` is a value or a zero-argument callable evaluated at fire time; `timezone`
    None means the runtime's timezone.
    """

    __slots__ = ("expression", "input", "name", "timezone")

    def __init__(
        self,
        expression: str,
        name: str | None = None,
        input: Any | Callable[[], Any] = None,
        timezone: str | None = None,
    ) -> None:
        fields = expression.split() if isinstance(expression, str) else []
        if len(fields) not in (5, 6) or not croniter.is_valid(
            " ".join(fields[1:] + fields[:1]) if len(fields) == 6 else expression
        ):
            raise ValidationError(
                f"invalid cron expression {expression!r}: expected 5 fields "
                "(minute hour day month weekday) or 6 with seconds first"
            )
        if name is not None and (not isinstance(name, str) or not name or "\x00" in name):
            raise ValidationError(f"invalid schedule name {name!r}: must be a non-empty string")
        if timezone is not None:
            _zone(timezone)
        self.expression = expression
        self.name = name
        self.input = input
        self.timezone = timezone

    def __repr__(self) -> str:
        return f"Schedule({self.expression!r}, name={self.name!r})"

    def name_for(self, workflow_name: str) -> str:
        """The schedule's name: the explicit one, else `"{workflow}[{expression}]"`."""
        return self.name or f"{workflow_name}[{self.expression}]"

    def next_fire(self, after: datetime, timezone: str | None = None) -> datetime:
        """The first fire time strictly after `after` (aware), as an aware UTC datetime.

        `timezone` applies when the schedule has none of its own (default "UTC").
        """
        return cron_for(self.expression, self.timezone or timezone or "UTC").next_after(after)


@functools.lru_cache(maxsize=1024)
def cron_for(expression: str, timezone: str) -> Cron:
    """The (cached) fire-time calculator of one expression in one time zone."""
    return Cron(expression, timezone)


class Cron:
    """Fire times of a cron expression in a time zone, correct across DST changes."""

    def __init__(self, expression: str, timezone: str) -> None:
        fields = _fields(expression)
        if len(fields) not in (5, 6) or not croniter.is_valid(_croniter_form(expression)):
            raise ValidationError(f"invalid cron expression {expression!r}")
        self.expression = expression
        self.timezone = timezone
        self._expr = _croniter_form(expression)
        self._tz = _zone(timezone)
        minute, hour = fields[-5], fields[-4]
        # Like Vixie cron: "*"-style minute/hour fields are intervals and run through DST
        # changes as such; fixed times run once per wall-clock time.
        self._interval = minute.startswith("*") or hour.startswith("*")

    def __repr__(self) -> str:
        return f"Cron({self.expression!r}, {self.timezone!r})"

    # -- building blocks --------------------------------------------------------------

    def _offset(self, instant: datetime) -> timedelta:
        off = instant.astimezone(self._tz).utcoffset()
        return off if off is not None else timedelta(0)

    def _wall_next(self, after: datetime) -> datetime:
        """The first matching wall-clock time strictly after the naive wall time `after`."""
        try:
            nxt: datetime = croniter(self._expr, after).get_next(datetime)
        except CroniterError as exc:
            raise ValidationError(
                f"cron expression {self.expression!r} never fires after {after}: {exc}"
            ) from exc
        return nxt

    def _transition(self, start: datetime, end: datetime) -> datetime | None:
        """The first instant in (start, end] whose UTC offset differs from start's."""
        off = self._offset(start)
        lo = start
        while lo < end:
            hi = min(lo + _PROBE_STEP, end)
            if self._offset(hi) != off:
                # Offsets change on whole seconds: bisect on integer timestamps.
                lo_s, hi_s = math.floor(lo.timestamp()), math.ceil(hi.timestamp())
                while hi_s - lo_s > 1:
                    mid = (lo_s + hi_s) // 2
                    if self._offset(datetime.fromtimestamp(mid, UTC)) == off:
                        lo_s = mid
                    else:
                        hi_s = mid
                return datetime.fromtimestamp(hi_s, UTC)
            lo = hi
        return None

    # -- fire times -------------------------------------------------------------------

    def next_after(self, after: datetime) -> datetime:
        """The first fire time strictly after `after` (aware), as an aware UTC datetime."""
        if after.tzinfo is None:
            raise ValueError("next_after needs an aware datetime")
        t = after.astimezone(UTC)
        # The UTC timeline is a sequence of segments of constant offset. Within one,
        # wall time is monotonic in UTC, so croniter on naive wall times is exact; at
        # each boundary the repeated or skipped wall times are handled explicitly.
        seg = t
        prev: datetime | None = None  # the offset change that started this segment
        prev_off = timedelta(0)
        if self._offset(t - _DST_WINDOW) != self._offset(t):
            prev = self._transition(t - _DST_WINDOW, t)
            prev_off = self._offset(t - _DST_WINDOW)
        for _ in range(_MAX_SEGMENTS):
            off = self._offset(seg)
            base = t if seg == t else seg - _EPS  # fire times must be > base
            lower = base + off
            if prev is not None and prev_off > off and not self._interval:
                # Clocks went back: wall times up to prev + prev_off already fired.
                lower = max(lower, prev + prev_off - _EPS)
            wall = self._wall_next(lower.replace(tzinfo=None))
            candidate = (wall - off).replace(tzinfo=UTC)
            found: list[datetime] = []
            if prev is not None and prev_off < off and not self._interval:
                # Clocks went forward: skipped wall times fire at the old offset.
                gap_wall = self._wall_next(
                    max(base + prev_off, prev + prev_off - _EPS).replace(tzinfo=None)
                )
                if gap_wall < (prev + off).replace(tzinfo=None):
                    found.append((gap_wall - prev_off).replace(tzinfo=UTC))
            change = self._transition(seg, candidate)
            if change is None:
                found.append(candidate)
                return min(found)
            if found and min(found) < change:
                return min(found)
            prev, prev_off, seg = change, off, change
        raise ValidationError(f"cron expression {self.expression!r} never fires")

    def latest_fire(self, due: datetime, now: datetime) -> datetime:
        """The latest fire time in (due, now], or `due` itself when there is none.

        This is the tick a late scheduler fires: the ones before it are skipped.
        """
        if now <= due:
            return due
        # Fast path: croniter's previous wall time, verified against next_after.
        try:
            off = self._offset(now)
            wall: datetime = croniter(self._expr, (now + off + _EPS).replace(tzinfo=None)).get_prev(
                datetime
            )
            guess = (wall - off).replace(tzinfo=UTC)
            if guess <= now and self.next_after(guess) > now:
                if guess <= due:
                    return due
                if self.next_after(guess - _EPS) == guess:
                    return guess
        except (CroniterError, ValidationError):
            pass
        # General path: find a fire time in a widening window before now, then walk on.
        for window in _CATCH_UP_WINDOWS:
            start = max(due, now - window)
            fire = self.next_after(start)
            if fire <= now:
                while (nxt := self.next_after(fire)) <= now:
                    fire = nxt
                return fire
            if start == due:
                break
        return due


# -- the scheduler ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Entry:
    """A schedule declared in this process's code."""

    name: str
    defn: WorkflowDef
    schedule: Schedule
    timezone: str


def declared_schedules(runtime: Runtime) -> dict[str, _Entry]:
    """Every schedule of the runtime's registered workflows, by name.

    When several versions of a workflow declare the same schedule, the newest one
    fires it. The same name on two different workflows is an error.
    """
    entries: dict[str, _Entry] = {}
    defns = sorted(runtime.registry.all(), key=lambda d: (d.name, _version_key(d.version)))
    for defn in defns:
        for sched in defn.schedules:
            if not isinstance(sched, Schedule):
                raise ValidationError(
                    f"workflow {defn.name!r}: schedules must be Schedule objects, got {sched!r}"
                )
            name = sched.name_for(defn.name)
            other = entries.get(name)
            if other is not None and other.defn.name != defn.name:
                raise ValidationError(
                    f"schedule name {name!r} is used by workflows {other.defn.name!r} and "
                    f"{defn.name!r}; give one of them another name"
                )
            tz = sched.timezone or runtime.timezone or "UTC"
            _zone(tz)
            entries[name] = _Entry(name, defn, sched, tz)
    return entries


async def _evaluate(value: Any) -> Any:
    if callable(value):
        value = value()
        if inspect.isawaitable(value):
            value = await value
    return value


class Scheduler:
    """Fires the runtime's schedules: one background loop per worker runtime."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime
        self._entries: dict[str, _Entry] | None = None
        self._registry_keys: list[tuple[str, str]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Write the declared schedules to the table, then fire them in the background."""
        await self.sync()
        self._stopping.clear()
        self._task = asyncio.create_task(self._loop(), name="durable-scheduler")

    async def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop, letting a tick in progress finish (up to `timeout` seconds)."""
        self._stopping.set()
        task, self._task = self._task, None
        if task is None:
            return
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            await asyncio.wait({task})

    async def sync(self) -> None:
        """Upsert every declared schedule; deactivate the ones no longer declared.

        A new schedule (or one whose expression or timezone changed, or that was
        inactive) starts at its next fire time from now; otherwise the stored next fire
        time and the paused flag are kept.
        """
        keys = self._rt.registry.keys()
        entries = declared_schedules(self._rt)
        store = self._rt.store
        now = self._rt.clock.now()
        for e in entries.values():
            changed = await store.upsert_schedule(
                name=e.name,
                workflow=e.defn.name,
                expression=e.schedule.expression,
                timezone=e.timezone,
                next_fire_at=cron_for(e.schedule.expression, e.timezone).next_after(now),
                now=now,
            )
            if changed:
                log.info("schedule %r of workflow %r registered or updated", e.name, e.defn.name)
        workflows = sorted({d.name for d in self._rt.registry.all()})
        removed = await store.deactivate_schedules(workflows, sorted(entries), now)
        for name in removed:
            log.info("schedule %r is no longer declared in code: deactivated", name)
        self._entries = entries
        self._registry_keys = keys

    async def _loop(self) -> None:
        outage = Outage("scheduler", log, first=MAX_SLEEP, maximum=30.0)
        while not self._stopping.is_set():
            delay = MAX_SLEEP
            try:
                await self.tick()
                entries = self._entries or {}
                nxt = await self._rt.store.next_schedule_due(sorted(entries)) if entries else None
                if nxt is not None:
                    wait = (nxt - self._rt.clock.now()).total_seconds() + 0.002
                    delay = min(MAX_SLEEP, max(MIN_SLEEP, wait))
                outage.recovered()
            except Exception as exc:
                delay = outage.failed(exc)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._stopping.wait()

    # -- firing -----------------------------------------------------------------------

    async def tick(self) -> int:
        """Fire every due tick (and re-trigger stale claims); returns how many runs started."""
        if self._entries is None or self._registry_keys != self._rt.registry.keys():
            await self.sync()  # first use, or workflows were registered since
        entries = self._entries or {}
        if not entries:
            return 0
        store = self._rt.store
        names = sorted(entries)
        now = self._rt.clock.now()
        started = 0

        stale_before = now - CLAIM_GRACE
        for row in await store.stale_schedule_claims(names, stale_before):
            fire_at = row.pending_fire_at
            if fire_at is None:  # pragma: no cover - filtered by the query
                continue
            if await store.reclaim_schedule_tick(row.name, fire_at, stale_before, now):
                log.warning(
                    "schedule %r: re-triggering tick %s claimed at %s but never confirmed",
                    row.name,
                    fire_at.isoformat(),
                    row.claimed_at,
                )
                started += await self._fire(entries[row.name], fire_at)

        for row in await store.due_schedules(names, now):
            if row.pending_fire_at is not None:
                continue  # another scheduler is triggering its claim (or it is stale: above)
            cron = cron_for(row.expression, row.timezone)
            fire_at = cron.latest_fire(row.next_fire_at, now)
            next_fire_at = cron.next_after(max(now, fire_at))
            won = await store.claim_schedule_tick(
                name=row.name,
                due_at=row.next_fire_at,
                expression=row.expression,
                timezone=row.timezone,
                fire_at=fire_at,
                next_fire_at=next_fire_at,
                now=now,
            )
            if not won:
                log.debug(
                    "schedule %r: tick due at %s claimed elsewhere", row.name, row.next_fire_at
                )
                continue
            if fire_at != row.next_fire_at:
                log.info(
                    "schedule %r: missed ticks from %s skipped; firing %s",
                    row.name,
                    row.next_fire_at.isoformat(),
                    fire_at.isoformat(),
                )
            started += await self._fire(entries[row.name], fire_at)
        return started

    async def _fire(self, entry: _Entry, fire_at: datetime) -> int:
        """Start the run of one claimed tick, then confirm the claim. 1 if a run started."""
        key = f"schedule:{entry.name}:{fire_at.isoformat()}"
        created = False
        try:
            value = await _evaluate(entry.schedule.input)
        except Exception:
            log.exception("schedule %r: input callable failed; tick %s skipped", entry.name, key)
        else:
            try:
                handle = await self._rt.trigger(entry.defn, value, idempotency_key=key)
            except (ValidationError, SerializationError) as exc:
                log.error("schedule %r: tick %s not started: %s", entry.name, key, exc)
            else:
                created = handle.created
        # Any other error (database, connection) propagates and leaves the claim
        # pending: a scheduler re-triggers it after CLAIM_GRACE.
        await self._rt.store.confirm_schedule_tick(entry.name, fire_at)
        return 1 if created else 0


# -- administration --------------------------------------------------------------------


class ScheduleAdmin:
    """List, pause and resume schedules in the runtime's database."""

    def __init__(self, runtime: Runtime) -> None:
        self._rt = runtime

    async def list(self) -> list[ScheduleInfo]:
        return [r.info() for r in await self._rt.store.list_schedules()]

    async def pause(self, name: str) -> None:
        """Stop firing until resumed; survives restarts. ScheduleNotFound if unknown."""
        if not await self._rt.store.pause_schedule(name, self._rt.clock.now()):
            raise ScheduleNotFound(f"no schedule named {name!r}")

    async def resume(self, name: str) -> None:
        """Fire again from the next tick after now: ticks missed while paused never fire."""
        store = self._rt.store
        while True:
            row = await store.get_schedule(name)
            if row is None:
                raise ScheduleNotFound(f"no schedule named {name!r}")
            if not row.paused:
                return
            now = self._rt.clock.now()
            # Compare-and-set on the expression the fire time was computed from: a
            # concurrent redefinition makes it fail, and the loop recomputes.
            if await store.resume_schedule(
                name,
                expression=row.expression,
                timezone=row.timezone,
                next_fire_at=cron_for(row.expression, row.timezone).next_after(now),
                now=now,
            ):
                return


__all__ = [
    "CLAIM_GRACE",
    "Cron",
    "Schedule",
    "ScheduleAdmin",
    "ScheduleInfo",
    "ScheduleNotFound",
    "Scheduler",
    "cron_for",
    "declared_schedules",
]
