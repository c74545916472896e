"""Fast-forward: a run of decode-only steps waited out as one event.

Most engine iterations change nothing but every sequence's length: no
arrival, no admission, no completion, no preemption. When a replica plans
such a step, :func:`plan_run` works out how many of the following steps are
certainly alike - up to and including the next step that completes a
request, and short of the first step whose new KV blocks would not fit - and
prices them a stretch at a time. The replica then waits for the end of the
run (or for something to wake it) in one SimPy event instead of one per step.

Nothing is skipped, only deferred: :meth:`DecodeRun.advance` replays the
steps through the replica's own code (``Replica._apply``, the running set's
block heap, the KV manager, the recorder) the moment anyone could notice -
the run ends, a request arrives (the wake-up interrupts the run, which ends
at the step in progress), something reads the replica's KV or running set,
the replica fails, or the simulation stops. So every step row, inter-token
gap and request time is the one step-by-step simulation writes;
``tests/test_fast_forward.py`` compares the two on every scheduling policy and
cluster feature, exact ties included.

Times are exact too: each step's end is the previous end plus its duration,
the same float additions SimPy makes, and the run's end event is scheduled
at that very float (:func:`step_end_at`). Ties are settled the same way on
both paths: step ends are URGENT events (:class:`StepEnd`), so at one instant
every step end comes before any other event.

Under round-robin routing a replica knows when its next request arrives
(``Gateway.next_arrival_s``): a run is then priced up to that time at once and
ends with the last step that ends by then, instead of being cut short by the
arrival (an interrupt, a catch-up and steps priced in vain). The hint only
shapes runs - a wrong one (a request turned away before the router, a retry,
a failure) costs speed, never results.

Latency models must price a step from its shape alone (a pure function):
a run prices steps ahead and drops those a wake-up cuts off.

Off (the step-by-step path) with ``SERVESIM_FAST_FORWARD=0`` in the
environment, or :data:`ENABLED` set false, to compare the two; that also
turns off replicas stepping ahead to their next arrival (``Replica._loop``).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import math
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import simpy

from simulator.latency.base import LatencyModel
from simulator.metrics.recorder import DecodeRows, Recorder

if TYPE_CHECKING:
    from simulator.scheduling.base import Plan, Scheduler
    from simulator.scheduling.state import ReplicaState


class Replica(Protocol):
    """What a run needs of its replica (``simulator.engine.replica.Replica``, which imports this module)."""

    index: int
    steps: int
    compute_s: float
    inbound: int
    ff_steps: float
    ff_pause: int
    ff_misses: int
    sched_state: ReplicaState
    scheduler: Scheduler
    latency: LatencyModel
    rec: Recorder
    _inbox: list
    _forks: dict
    next_arrival: Callable[[Any], float] | None  # (called with the replica itself)

    def arrival_hint(self) -> float: ...

    def _apply(self, plan: Plan, now: float) -> None: ...

#: fast-forward decode runs (the default); ``SERVESIM_FAST_FORWARD=0`` turns it off
ENABLED = os.environ.get("SERVESIM_FAST_FORWARD", "1") != "0"
#: the longest run, in steps
MAX_STEPS = 1 << 16
#: steps priced when a run starts (then twice as many each time it outlasts them)
FIRST_STRETCH = 8
#: a run shorter than this is stepped through one event a step (the run costs more than it saves)
MIN_STEPS = 3
#: a catch-up of fewer steps than this goes step by step in Python rather than in numpy
SHORT = 12
#: runs that last fewer steps than this on average (recent ones weigh most) are not worth it ...
WORTH_STEPS = 6.0
#: ... and the replica steps through this many eligible steps before trying again, twice as many after
#: each further short run in a row, up to 2**MAX_BACKOFF times as many (a replica of a large fleet, where
#: runs never pay, then hardly tries: on a 64-replica fleet of 100,000 requests runs cost 5% of the CPU time)
PAUSE_STEPS = 32
MAX_BACKOFF = 5


class StepEnd(simpy.events.Event):
    """The end of an engine step: a timeout ``delay`` from now, scheduled URGENT.

    At one instant, every step end comes before every other event (an arrival,
    a failure, an autoscaler tick), whenever each was scheduled: a request
    that arrives exactly as a step ends joins the step after, and a replica
    read at that instant shows the next step started. That order is what lets a
    fast-forwarded run stand for the steps it waits out. (As ``simpy.Timeout``
    does, it sets the event's outcome directly.)"""

    def __init__(self, env: simpy.Environment, delay: float) -> None:
        self.env = env
        self.callbacks = []
        self._value = None
        self._ok = True
        env.schedule(self, simpy.events.URGENT, delay)


def step_end_at(env: simpy.Environment, when: float) -> StepEnd:
    """A :class:`StepEnd` at exactly ``when`` (``now + delay`` can round off it)."""
    now = env.now
    delay = when - now
    while now + delay < when:
        delay = math.nextafter(delay, math.inf)
    while now + delay > when and delay > 0:
        delay = math.nextafter(delay, -math.inf)
    if now + delay == when:
        return StepEnd(env, delay)
    # No delay reaches ``when`` from ``now`` (a ``now`` in a lower binade can have bits below ``when``'s
    # last place, so ``now + delay`` steps over it): put the event on SimPy's queue at ``when`` itself, the
    # entry ``Environment.schedule`` makes (time, priority, event id, event).
    end = StepEnd.__new__(StepEnd)
    end.env, end.callbacks, end._value, end._ok = env, [], None, True
    heapq.heappush(env._queue, (when, simpy.events.URGENT, next(env._eid), end))
    return end


#: the cause of the interrupt that cuts a run short when the replica is woken
WAKE = "decode run cut short"


class DecodeRun:
    """Steps ``0 .. length - 1`` of a run: step 0 is the one the replica has just
    started; step ``i`` lasts ``durations[i]`` and ends at ``ends[i]`` (priced a
    stretch at a time: :meth:`extend`). Only the last may complete a request.
    ``applied`` steps have had their effects applied and ``started`` have been
    recorded; one step is always in progress (``started == applied + 1``)."""

    __slots__ = ("rep", "plan", "length", "durations", "ends", "ctx0", "seqs", "clock0", "queued", "in_flight", "swapped",
                 "applied", "started", "free0", "needs", "woken", "until")  # fmt: skip

    def __init__(
        self, rep: Replica, plan: Plan, length: int, dt: float, now: float, ctx0: int, seqs: int, until: float = math.inf
    ):
        st = rep.sched_state
        self.rep = rep
        self.plan = plan
        self.length = length
        self.durations = [dt]
        self.ends = [now + dt]
        self.ctx0 = ctx0  # step 0's decode context; each step adds one token per sequence
        self.seqs = seqs
        self.clock0 = st.running.clock  # the running set's decode clock when step 0 started
        # the queue figures every row of the run reports (they hold still until the run is cut)
        self.queued = len(st.waiting) + rep.inbound
        self.in_flight = st.in_flight
        self.swapped = len(st.swapped)
        self.applied = 0
        self.started = 1
        self.free0 = st.kv.free  # blocks free for the run's steps 1..
        self.needs = 0  # blocks the priced steps take
        self.woken = False  # the replica was woken: the run ends at the step in progress
        self.until = until  # a request is expected then: the run ends with the last step that ends by then
        self.extend()

    def extend(self) -> None:
        """Price the next stretch of steps (as many as are priced already, at least
        FIRST_STRETCH, up to the run's length), which ends the run short of a step
        whose new KV blocks would not all fit (that step preempts)."""
        have = len(self.durations)
        stretch = max(have, FIRST_STRETCH)
        if have == 1 and self.until < math.inf:  # price up to the expected arrival at once (steps only get longer)
            stretch = max(stretch, min(int((self.until - self.ends[0]) / self.durations[0]) + 1, MAX_STEPS))
        count = min(stretch, self.length - have)
        if count <= 0:
            return
        # step i starts its blocks at clock value clock0 + i + 1
        lo = self.clock0 + have + 1
        running = self.rep.sched_state.running
        total = running.blocks_between(lo, lo + count - 1)
        if self.needs + total > self.free0:
            # the first step whose blocks would not all fit ends the run before it
            needs = np.cumsum(running.block_counts(lo, lo + count - 1))
            count = int(np.searchsorted(needs, self.free0 - self.needs, side="right"))
            self.length = have + count
            if count <= 0:
                return
        self.needs += total
        seqs = self.seqs
        more = self.rep.latency.decode_times(seqs, self.ctx0 + have * seqs, count)
        self.durations += more
        ends = self.ends
        ends += itertools.islice(itertools.accumulate(more, initial=ends[-1]), 1, None)  # SimPy's additions, in turn
        if ends[-1] > self.until:  # the run ends before the step in progress when the request arrives
            self.length = bisect.bisect_right(ends, self.until)
            del ends[self.length :], self.durations[self.length :]

    @property
    def priced_end(self) -> float:
        return self.ends[-1]

    @property
    def complete(self) -> bool:
        """Every step of the run is priced."""
        return len(self.ends) == self.length

    @property
    def end(self) -> float:
        """When the step in progress ends."""
        return self.ends[self.started - 1]

    def advance(self, now: float) -> None:
        """Bring the replica to ``now``: apply every step that ended by ``now``
        (never the run's last: the replica applies that one) and start the next;
        the step in progress at ``now`` stays in progress. A step ending exactly
        at ``now`` has ended (step ends come first at an instant: :class:`StepEnd`)."""
        upto = min(bisect.bisect_right(self.ends, now), self.length - 1)  # steps ending by now
        if upto <= self.applied:
            return
        rep = self.rep
        if self.applied == 0:  # step 0: members that joined before it have their own first gaps
            rep._apply(self.plan, self.ends[0])
            self.applied = 1
        self._start(self.started, upto + 1)
        self._finish(self.applied, upto)
        rep.latency.ran_to(self.seqs, self.ctx0 + (self.started - 1) * self.seqs)  # (the longest step started yet)

    def _finish(self, first: int, stop: int) -> None:
        """The ends of steps ``first .. stop - 1`` (first >= 1): one token for every member
        (none finishes), one inter-token gap each, the clock forward."""
        if stop <= first:
            return
        rep = self.rep
        ends = self.ends
        if stop - first < SHORT:
            record = rep.rec.record_itl
            for i in range(first, stop):
                record(ends[i] - ends[i - 1], self.seqs)
        else:
            rep.rec.record_itl_many(ends[first - 1 : stop], self.seqs)
        rep.sched_state.running.skip(stop - first, ends[stop - 1])
        self.applied = stop

    def _start(self, first: int, stop: int) -> None:
        """Steps ``first .. stop - 1`` start: their sequences' new KV blocks (plan_run
        checked they fit: nobody is preempted) and their rows."""
        if stop <= first:
            return
        if stop - first < SHORT:
            for i in range(first, stop):
                self._start_one(i)
            return
        rep = self.rep
        st = rep.sched_state
        running, kv = st.running, st.kv
        m = stop - first
        lo = self.clock0 + first + 1  # the clock value step `first` starts its blocks at
        taken = running.blocks_between(lo, lo + m - 1)
        cycle = running.block_cycle(lo)
        running.take_until(lo + m - 1)
        used = kv.total - kv.free
        if taken:
            kv.allocate(taken)
        seqs = self.seqs
        rep.rec.record_run(DecodeRows(
            rep.index, rep.steps, first, self.ends[first - 1 : stop - 1], self.durations[first:stop], seqs, self.ctx0,
            used, cycle, kv.total,
            # the members' KV entries when step 0 started (the clock then: clock0)
            running.kv_entries() - (running.clock - self.clock0) * seqs + st.prefill_kv + st.held_kv,
            self.queued, self.in_flight, self.swapped,
        ))  # fmt: skip
        rep.steps += m
        rep.compute_s = self.durations[stop - 1]
        self.started = stop

    def _start_one(self, i: int) -> None:
        """:meth:`_start` for one step (the same row, a tuple)."""
        rep = self.rep
        st = rep.sched_state
        running, kv = st.running, st.kv
        k = self.clock0 + i + 1  # the clock value the step starts its blocks at
        taken = running.block_count(k)
        running.take_until(k)
        if taken:
            kv.allocate(taken)
        seqs = self.seqs
        dt = rep.compute_s = self.durations[i]
        kv_tokens = running.kv_entries() - (running.clock - self.clock0 - i) * seqs + st.prefill_kv + st.held_kv
        rec = rep.rec
        if self.swapped:
            rec.record_step(rec.step_row(
                rep.index, rep.steps, self.ends[i - 1], dt, 0, 0, seqs, seqs, self.ctx0 + i * seqs,
                kv.total - kv.free, kv.total, kv_tokens, self.queued, self.in_flight, self.swapped, 0, 0, 0.0, 0, seqs,
            ))  # fmt: skip
        else:  # (the same row, short: DecodeStepRow)
            rec.record_decode(rec.decode_row(
                rep.index, rep.steps, self.ends[i - 1], dt, seqs, self.ctx0 + i * seqs,
                kv.total - kv.free, kv.total, kv_tokens, self.queued, self.in_flight,
            ))  # fmt: skip
        rep.steps += 1
        self.started = i + 1


def plan_run(rep: Replica, plan: Plan, seqs: int, ctx: int, dt: float, now: float) -> DecodeRun | None:
    """The run that starts with the decode-only step ``plan`` of ``seqs`` sequences over ``ctx``
    context entries (just recorded, priced ``dt``, starting ``now``), or None when the next
    step may differ. (The replica does not ask while it steps through after short runs: note_ride.)"""
    st = rep.sched_state
    if st.waiting or st.prefilling or st.swapped or st.held or st.arriving or rep._inbox or rep._forks:
        return None
    running = st.running
    clock = running.clock  # decode steps done before this one
    finish = running.next_finish()
    if finish is None:
        return None
    steps = min(finish - clock, MAX_STEPS)  # the step that completes a request ends the run
    if rep.scheduler.multi_step > 1:  # so does a multi-step group's last: the scheduler decides after it
        steps = min(steps, rep.scheduler.group_end - clock)
    if steps < MIN_STEPS:
        return None
    until = math.inf
    if rep.next_arrival is not None:
        until = rep.arrival_hint()
        if until < now + MIN_STEPS * dt:  # too soon for a run (a decode step never gets shorter)
            return None
    run = DecodeRun(rep, plan, steps, dt, now, ctx, seqs, until)
    return run if run.length >= MIN_STEPS else None


def note_ride(rep: Replica, run: DecodeRun) -> None:
    """After a run: how many steps it lasted. Where runs keep being cut after a
    few steps (arrivals every few steps on each replica of a large fleet) they
    cost more than they save, so the replica steps through the next PAUSE_STEPS
    eligible steps one event each before trying again, and twice as many after
    each further short run in a row (a run of WORTH_STEPS or more starts the
    count again). Either way the results are the same; this only picks the
    cheaper path."""
    rep.ff_steps = 0.75 * rep.ff_steps + 0.25 * run.started
    if run.started >= WORTH_STEPS:
        rep.ff_misses = 0
    if rep.ff_steps < WORTH_STEPS:
        rep.ff_pause = PAUSE_STEPS << min(rep.ff_misses, MAX_BACKOFF)
        rep.ff_misses += 1
