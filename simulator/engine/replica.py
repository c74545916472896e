"""One model replica: a SimPy process that runs engine iterations back to back.

Each iteration: the scheduler plans the step -> the latency model prices it ->
the clock advances -> the replica applies the step's effects. When there is
nothing to run the process sleeps until a request arrives (or until the
scheduler's next wake-up time, e.g. a static batch's wait limit).

Where a request can be, on one replica::

    waiting ──admit──► prefilling ──last chunk──► running ──last token──► done
       ▲                    │                        │
       └──── recompute ─────┴────────────────────────┤
                                                     └── swap ──► swapped ──swap in──► running

Static batching adds *held*: requests whose tokens are all produced but whose
batch is still decoding; they keep their KV until the batch ends. Under
disaggregation a prefill replica hands finished prefills to a hook instead of
its own running set, and a decode replica receives them with KV attached.

In a cluster a replica is *serving* (the router may pick it), *draining*
(no new work; it is removed once empty) or *failed* (its process stopped and
every request it held was handed back, see :meth:`Replica.fail`).

The seam with the scheduler: everything a policy reads or changes - the
queues above, the KV manager, the clock, admission, preemption and swapping -
is a :class:`~simulator.scheduling.state.ReplicaState` that the replica owns
(``Replica.sched_state``) and hands to its scheduler. The replica keeps what
the policy never sees: the SimPy process, pricing and recording each step,
applying its effects, and the hooks to the cluster.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import simpy

from simulator.engine import decode_run
from simulator.engine.beam import BeamRunningSet
from simulator.engine.queue import FifoQueue, LazyFifoQueue, TieredQueue
from simulator.engine.request import Request
from simulator.engine.running import RunningSet
from simulator.engine.speculative import Acceptance, SpeculativeRunningSet
from simulator.latency.base import LatencyModel, StepShape
from simulator.memory import BlockManager
from simulator.metrics.recorder import Recorder, StepTuple
from simulator.scheduling import ReplicaState, build_scheduler
from simulator.workload.rng import stream


class Replica:
    def __init__(
        self,
        env: simpy.Environment,
        index: int,
        cfg,
        kv: BlockManager,
        latency: LatencyModel,
        recorder: Recorder,
        *,
        pool: str = "mixed",
        kv_bytes_per_token: float = 0.0,
        host_link_bps: float = 0.0,
        swap_blocks: int = 0,
        queue_work: bool = True,
    ):
        self.env = env
        self.index = index
        self.pool = pool
        self.latency = latency
        self.rec = recorder
        self.state = "serving"
        self._prefill_s: dict[int, float] = {}
        priorities = sorted({int(t.priority) for t in getattr(cfg, "tiers", {}).values()})
        # the queue keeps its prefill work as it goes where admission reads it (``queue_work``)
        if len(priorities) > 1:
            waiting: FifoQueue | TieredQueue = TieredQueue(self.prefill_s, priorities)
        else:
            waiting = FifoQueue(self.prefill_s) if queue_work else LazyFifoQueue(self.prefill_s)
        #: what the scheduler sees and changes: queues, admitted requests, KV, clock
        self.cfg = cfg
        #: beam search: sequences each decoding request puts in a step
        self.beam_width = int(cfg.workload.beam_width)
        sp = cfg.scheduler.speculative
        #: speculative decoding: what each verification step keeps (one seeded stream per replica)
        self.acceptance = (
            Acceptance(sp.num_tokens, sp.acceptance_rate, sp.acceptance_spread, stream(int(cfg.seed), f"speculative/{index}"))
            if sp.method != "none"
            else None
        )
        #: stepping ahead (see _loop): the replica's own time, ahead of the event loop's while it steps ahead
        self.ahead_ok = False
        self._ahead = False
        self._vt = 0.0
        self._ahead_until: float | None = None  # (from arrival_due, see _ahead_limit)
        self.sched_state = ReplicaState(
            self, kv, waiting, pool=pool, swap_blocks=swap_blocks, block_bytes=kv.block_size * kv_bytes_per_token,
            running=self._running_set(kv),
        )  # fmt: skip
        self.outstanding_tokens = 0  # prompt + output tokens of the requests assigned here and not ended
        self.inbound = 0  # disaggregation: requests queued for or in transfer to this replica
        self._inbox: list[tuple[Request, int]] = []  # arrived with KV during a step; join before the next
        #: parallel sampling: later samples of a prompt whose first sample is still to prefill here (by its id)
        self._forks: dict[int, list[Request]] = {}
        self.steps = 0
        self.compute_s = 0.0  # the current step's priced compute time (layer-wise KV transfer overlaps it)
        self.host_link_bps = host_link_bps  # the PCIe path to host memory (swap preemption)
        #: called with a request whose prefill completed, instead of decoding it here
        self.on_prefilled: Callable[[Replica, Request], None] | None = None
        #: called after every step, e.g. to retry KV transfers into this replica
        self.on_step_end: Callable[[Replica], None] | None = None
        #: called with every request that ends here (completed or rejected)
        self.ended: Callable[[Request], None] = recorder.end_request
        #: when the next request for this replica arrives, where the router can tell (round robin): a decode
        #: run is priced up to it and ends just before it (a hint, see simulator.engine.decode_run)
        self.next_arrival: Callable[[Replica], float] | None = None
        self.arrival_due: float | None = None  # its answer, until the next request arrives here
        #: called once a draining replica has nothing left
        self.on_drained: Callable[[Replica], None] | None = None
        self._kv_factory: Callable[[], BlockManager] | None = None  # set by the cluster: builds an empty KV manager after a failure
        self.scheduler = build_scheduler(cfg, self.sched_state)
        self._wake: simpy.Event | None = None
        #: fast-forward: the run of decode-only steps being waited out, see :mod:`simulator.engine.decode_run`
        self._run: decode_run.DecodeRun | None = None
        self.ff_steps = float(decode_run.WORTH_STEPS) * 2  # average steps of the recent runs (see note_ride)
        self.ff_pause = 0  # eligible steps left to step through before the next run
        self.ff_misses = 0  # short runs in a row (each doubles the next pause, see note_ride)
        self.process = env.process(self._loop())

    def _running_set(self, kv: BlockManager) -> RunningSet:
        if self.beam_width > 1:
            return BeamRunningSet(kv.block_size, self.beam_width, stream(int(self.cfg.seed), f"beams/{self.index}"), kv)
        if self.acceptance is not None:
            return SpeculativeRunningSet(kv.block_size, kv.grows, self.acceptance)
        return RunningSet(kv.block_size, grows=kv.grows)

    @property
    def now(self) -> float:
        """The replica's time: the event loop's, or while it steps ahead (see ``_loop``) the start
        of the step it is planning (the scheduling state's clock)."""
        return self._vt if self._ahead else self.env.now

    # -- the scheduling state, as the cluster reads it -----------------------
    # (read from outside, these first bring a fast-forwarded run up to now: see catch_up)
    @property
    def kv(self) -> BlockManager:
        self.catch_up()
        return self.sched_state.kv

    @property
    def waiting(self):
        return self.sched_state.waiting

    @property
    def running(self):
        self.catch_up()
        return self.sched_state.running

    @property
    def prefilling(self) -> dict[int, Request]:
        return self.sched_state.prefilling

    @property
    def swapped(self) -> list:
        return self.sched_state.swapped

    @property
    def in_flight(self) -> int:
        return self.sched_state.in_flight

    @property
    def landed(self) -> int:
        """Requests whose KV arrived during the current step; they join before the next."""
        return len(self._inbox)

    @property
    def arriving(self) -> int:
        """Disaggregation: requests whose KV is allocated here, copying or about to join."""
        return self.sched_state.arriving

    @arriving.setter
    def arriving(self, n: int) -> None:
        self.sched_state.arriving = n

    # -- load figures (for routers) ---------------------------------------
    @property
    def load(self) -> int:
        st = self.sched_state
        return len(st.waiting) + len(st.swapped) + st.in_flight

    @property
    def kv_usage(self) -> float:
        """Fraction of the KV blocks in use now (``kv`` brings a fast-forwarded run up to now first)."""
        kv = self.kv
        return (kv.total - kv.free) / kv.total

    @property
    def empty(self) -> bool:
        st = self.sched_state
        return not (st.waiting or st.in_flight or st.swapped or self.inbound or self._inbox or st.held or self._forks)

    def prefill_s(self, req: Request) -> float:
        """Seconds a lone prefill of ``req``'s pending prompt takes here (memoised by length)."""
        n = req.target
        t = self._prefill_s.get(n)
        if t is None:
            t = self._prefill_s[n] = self.latency.step_time(
                StepShape(prefill_seqs=1, prefill_tokens=n, prefill_attn_pairs=n * (n + 1) / 2)
            )
        return t

    def expected_wait_s(self, priority: int = 0) -> float:
        """Predicted queueing delay of a request arriving now with ``priority``:
        the larger of the prefill work queued ahead of it and the queue ahead
        divided by the recent admission rate (which sees memory-bound waits)."""
        st = self.sched_state
        ahead = st.waiting.work_ahead(priority)
        gap = st.admit_gap_s
        if gap == gap and st.waiting:  # not NaN: admissions observed
            ahead = max(ahead, st.waiting.count_ahead(priority) * gap)
        return ahead

    # -- called by the router / the KV-transfer stage -------------------------
    def submit(self, req: Request) -> None:
        self.arrival_due = self._ahead_until = None
        req.replica = self.index
        req.pool = self.pool
        reason = self.scheduler.reject_reason(req)
        if reason is not None:
            self.reject(req, reason)
            return
        self.outstanding_tokens += req.prompt + req.output
        lead = req.leader
        if lead is not None and lead.replica == self.index and lead.status in ("waiting", "prefilling"):
            # a later sample waits for the first to cache the prompt, then references its blocks
            self._forks.setdefault(lead.id, []).append(req)
            return
        self.sched_state.waiting.append(req)
        self.wake()

    def reject(self, req: Request, reason: str) -> None:
        req.replica = self.index
        req.status = "rejected"
        req.reject_reason = reason
        req.finish_s = self.env.now
        if self._forks:  # its later samples no longer wait for it: they compute the prompt themselves
            self._release_forks(req)
        self.ended(req)

    def wake(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()
        elif self._run is not None and not self._run.woken and self.env.active_process is not self.process:
            run = self._run
            run.woken = True  # a run of decode steps ends at the step in progress
            if run.priced_end > self.env.now:  # (else its timer fires at this instant, and the ride sees woken)
                self.process.interrupt(decode_run.WAKE)

    def receive(self, req: Request, kv_entries: int) -> None:
        """Disaggregation: ``req`` arrives with its KV (blocks already allocated
        here). It joins the running set between steps, never during one."""
        req.replica = self.index
        req.pool = self.pool
        self.sched_state.in_flight += 1
        self.outstanding_tokens += req.prompt + req.output
        self._inbox.append((req, kv_entries))
        self.wake()

    # -- failure and recovery (a TP group fails as a whole) ------------------
    def fail(self) -> list[Request]:
        """Stop this replica now: its process ends (a step in progress is cut
        short and its work lost), its KV memory is wiped, and every request it
        held - queued, prefilling, decoding, swapped out - is returned, in
        arrival order, for the cluster to retry elsewhere or report lost."""
        self.state = "failed"
        self.catch_up()
        if self.process.is_alive:
            self.process.interrupt("replica failure")
        old = self.sched_state
        held = old.waiting.drain()
        held += old.prefilling.values()
        held += old.running.members.values()
        held += [r for _, _, r in old.swapped]
        held += [r for r, _ in old.held]
        held += [r for r, _ in self._inbox]
        held += [f for forks in self._forks.values() for f in forks]
        self._forks = {}
        held.sort(key=lambda r: (r.arrival_s, r.id))
        assert self._kv_factory is not None, "the cluster sets _kv_factory when it builds the replica"
        # a fresh state on the (drained) queue; KV in transfer here is still arriving
        st = ReplicaState(
            self, self._kv_factory(), old.waiting,
            pool=self.pool, swap_blocks=old.swap_blocks, block_bytes=old.block_bytes,
            running=self._running_set(old.kv),
        )  # fmt: skip
        st.arriving = old.arriving
        self.sched_state = st
        self._inbox = []
        self.outstanding_tokens = 0
        self._wake = None
        self.scheduler = build_scheduler(self.cfg, st)
        return held

    def catch_up(self) -> None:
        """Apply and record the steps of a fast-forwarded run that have started by now.
        Anything that reads a replica's state from outside its process (a router, an
        autoscaler metric, admission control: plugins too) sees it as step-by-step
        simulation would once this is called; ``kv``, ``running`` and ``kv_usage`` call it."""
        if self._run is not None:
            self._run.advance(self.env.now)

    def restart(self) -> None:
        """Serve again after a failure (the cold start has been paid)."""
        self.state = "serving"
        self.process = self.env.process(self._loop())

    # -- the engine loop -------------------------------------------------
    def _loop(self):
        """Plan, price, record, wait out and apply one step after another.

        Waiting a step out is a SimPy event, unless the step belongs to a decode run (one event
        for many steps, :mod:`simulator.engine.decode_run`) or the replica may step ahead
        (``ahead_ok``, set by the gateway where its arrival hint is exact): a step that ends
        before the next request arrives is then applied at once, the replica's own time
        (``now``, its scheduling state's clock) running ahead of the event loop's until a step
        reaches past the arrival, whose exact end it waits for."""
        env = self.env
        st = self.sched_state
        running = st.running
        members = running.members  # (len(members) is len(running), at C speed: every step reads it)
        kv = st.kv
        plan_step = self.scheduler.plan
        price_decode = self.latency.decode_step_time
        record_decode, decode_row = self.rec.record_decode, self.rec.decode_row
        speculative = isinstance(running, SpeculativeRunningSet)
        beams = self.beam_width
        # runs of decode-only steps as one event, where every step is alike (see decode_run)
        fast = (
            decode_run.ENABLED and not speculative and beams == 1 and not self.scheduler.holds_finished
            and self.on_step_end is None and self.on_prefilled is None
        )  # fmt: skip
        # a decode-only step may be a plain one (DecodeStepRow: one token per sequence, nothing padded)
        plain = type(running) is RunningSet  # (not speculative, one beam: its kv_entries() is decode_ctx_tokens() less its size)
        grouped = self.scheduler.in_group if self.scheduler.multi_step > 1 else None
        while True:
            if self._inbox and (grouped is None or not grouped()):  # (a multi-step group takes them at its end)
                self._join_inbox()
            plan = plan_step()
            if plan is None:
                if self._ahead:  # idle from a time ahead: the event loop gets there first
                    yield decode_run.step_end_at(env, self._vt)
                    self._ahead = False
                    continue
                if (yield from self._idle()):
                    return
                continue
            start = self._vt if self._ahead else env.now  # (Replica.now, inlined: every step reads it)
            n_decode = len(members) if plan.decode else 0
            if (
                plain and n_decode and not plan.prefill and not plan.padded_seqs
                and not st.preempted and not st.swapped and not st.swap_bytes and not kv.load_s
            ):  # fmt: skip
                # a plain decode step (most steps): priced without a shape, its row the short one
                ctx = running.decode_ctx_tokens()
                dt = self.compute_s = price_decode(n_decode, ctx)
                record_decode(decode_row(
                    self.index, self.steps, start, dt, n_decode, ctx, kv.total - kv.free, kv.total,
                    ctx - n_decode + st.prefill_kv + st.held_kv, len(st.waiting) + self.inbound, st.in_flight,
                ))  # fmt: skip
            else:
                dt, ctx = self._step_row(plan, n_decode, start, speculative, beams)
            self.steps += 1
            run = None
            if fast and n_decode and not plan.prefill:
                if self.ff_pause:  # recent runs were cut short: step through a while (decode_run.note_ride)
                    self.ff_pause -= 1
                else:
                    run = decode_run.plan_run(self, plan, n_decode, ctx, dt, start)
            if run is None and self.ahead_ok:
                end = start + dt
                limit = self._ahead_until
                if end < (self._ahead_limit() if limit is None else limit):  # nothing can happen here before this step ends: apply it now
                    self._vt = end
                    self._ahead = True
                    self._apply(plan, end)
                    continue
            try:
                if run is not None:
                    self._ahead = False  # (a ride waits for its steps' absolute ends)
                    yield from self._ride(run)
                elif self._ahead:
                    self._ahead = False
                    yield decode_run.step_end_at(env, start + dt)
                else:
                    yield decode_run.StepEnd(env, dt)
            except simpy.Interrupt:  # failed mid-step: the step ends now, its work is lost
                self.rec.cut_last_step(self.index, env.now)
                return
            self._apply(plan, env.now)
            if self.on_step_end is not None:
                self.on_step_end(self)

    def _step_row(self, plan, n_decode: int, start: float, speculative: bool, beams: int) -> tuple[float, int]:
        """Price and record any step but a plain decode one (``_loop`` does those): its duration
        and its decode context."""
        st = self.sched_state
        running, kv = st.running, st.kv
        if plan.prefill:
            shape, recompute, completing = self._prefill_shape(plan)
        else:
            shape, recompute, completing = StepShape(), 0, 0
        emitted = running.draw_step() if n_decode and speculative else n_decode
        n_seqs = n_decode * beams  # beam search: every beam is a sequence of the batch
        if n_decode:
            shape.decode_seqs = n_seqs + plan.padded_seqs
            shape.decode_ctx_tokens = running.decode_ctx_tokens() + plan.padded_ctx
        dt = self.compute_s = self.latency.step_time(shape)
        swap_s = st.swap_bytes / self.host_link_bps if st.swap_bytes else 0.0
        dt += swap_s
        if kv.load_s:  # prefix blocks this step's admissions load from offload tiers (memory.offload): the step waits
            dt += kv.load_s
            kv.load_s = 0.0
        preempted, st.preempted, st.swap_bytes = st.preempted, 0, 0.0
        rec = self.rec
        used, kv_tokens, queued = kv.total - kv.free, running.kv_entries() + st.prefill_kv + st.held_kv, len(st.waiting) + self.inbound
        if not n_decode and not plan.padding_tokens and not plan.padded_seqs and not preempted and not swap_s and not st.swapped:
            rec.record_prefill(rec.prefill_row(  # prompts only (PrefillStepRow: the other columns are 0 or repeat these)
                self.index, self.steps, start, dt, shape.prefill_tokens, shape.prefill_seqs, used, kv.total, kv_tokens, queued,
                st.in_flight, recompute, completing,
            ))  # fmt: skip
            return dt, 0
        row: StepTuple = (  # the columns of StepRow, in order
            self.index,
            self.steps,
            start,
            dt,
            shape.prefill_tokens - plan.padding_tokens,
            shape.prefill_seqs,
            n_seqs,
            shape.prefill_seqs + n_seqs + plan.padded_seqs,
            shape.decode_ctx_tokens,
            used,
            kv.total,
            kv_tokens,
            queued,
            st.in_flight,
            len(st.swapped),
            preempted,
            recompute,
            swap_s,
            plan.padding_tokens + plan.padded_seqs,
            emitted + completing,
        )
        rec.record_step(rec.step_row(*row))
        return dt, shape.decode_ctx_tokens

    def _ahead_limit(self) -> float:
        """Steps that end before this time may be applied ahead of the event loop: a few units
        in the last place before the next request's arrival (whose event time SimPy rounds)."""
        limit = self._ahead_until
        if limit is not None:
            return limit
        due = self.arrival_hint()
        # no request left for it: its last steps are events (the simulation ends with the last)
        limit = self._ahead_until = -math.inf if due == math.inf else due - 4 * math.ulp(due)
        return limit

    def arrival_hint(self) -> float:
        """``next_arrival``'s answer, asked once per request arriving here (submit forgets it)."""
        due = self.arrival_due
        if due is None:
            assert self.next_arrival is not None, "only a replica given the arrival hint asks for it"
            due = self.arrival_due = self.next_arrival(self)
        return due

    def _ride(self, run: decode_run.DecodeRun):
        """Wait out ``run`` until its end or a wake-up (an interrupt), whichever comes
        first; its steps are then applied up to the one in progress, which is waited out."""
        env = self.env
        self._run = run
        try:
            while True:
                try:
                    yield decode_run.step_end_at(env, run.priced_end)
                except simpy.Interrupt as stop:
                    if stop.cause != decode_run.WAKE:
                        raise  # a failure: fail() has caught up; the loop cuts the step in progress
                    break
                if run.complete or run.woken:
                    break
                run.extend()  # the priced steps are over and nothing happened: price more
        finally:
            run.advance(env.now)
            self._run = None
            decode_run.note_ride(self, run)
        if run.end > env.now:
            yield decode_run.step_end_at(env, run.end)

    def _join_inbox(self) -> None:
        """Disaggregation: requests whose KV arrived during the last step start decoding."""
        st = self.sched_state
        add = st.running.add
        for req, entries in self._inbox:
            add(req, entries)
        st.arriving -= len(self._inbox)
        self._inbox = []

    def _idle(self):
        """Nothing to run: sleep until woken (an arrival) or until the
        scheduler's wake-up time. Returns True when the loop must end (the
        replica drained, or failed while idle)."""
        env = self.env
        st = self.sched_state
        if self.state == "draining" and self.empty:
            assert self.on_drained is not None, "the fleet drains only replicas it hooked"
            self.on_drained(self)
            return True
        self._wake = env.event()
        wake_at = self.scheduler.next_wakeup
        idle_from = env.now
        queued = len(st.waiting) + self.inbound + st.in_flight + len(st.swapped)
        try:
            if wake_at is not None and wake_at > env.now:
                yield self._wake | env.timeout(wake_at - env.now)
            else:
                yield self._wake
        except simpy.Interrupt:  # failed while idle
            if queued:
                self.rec.record_blocked(env.now - idle_from, queued)
            return True
        self._wake = None
        if queued:  # idle but not empty: blocked on memory or a batch timer
            self.rec.record_blocked(env.now - idle_from, queued)
        return False

    @staticmethod
    def _prefill_shape(plan) -> tuple[StepShape, int, int]:
        """The step's shape as far as its prefill chunks go, the tokens of
        discarded KV it recomputes, and how many prompts it completes (each
        yields a token). Counts the recomputed tokens off ``req.redo``."""
        shape = StepShape()
        recompute = 0
        completing = 0
        pt = pairs = ctx = 0
        for req, n in plan.prefill:
            p = req.prefilled
            if p + n >= req.target:
                completing += 1
            pt += n
            pairs += n * (p + (n + 1) / 2)
            ctx += p
            if req.redo:
                r = n if n < req.redo else req.redo
                req.redo -= r
                recompute += r
        shape.prefill_seqs = len(plan.prefill)
        shape.prefill_tokens = pt + plan.padding_tokens
        shape.prefill_attn_pairs = pairs + plan.padding_pairs
        shape.prefill_ctx_tokens = ctx
        return shape, recompute, completing

    # -- applying a step's effects ---------------------------------------------
    def _apply(self, plan, now: float) -> None:
        """The step ended at ``now``: decodes produce their tokens, prefill chunks are stored."""
        st = self.sched_state
        running = st.running
        rec = self.rec
        if plan.decode:
            # Inter-token gaps: members that joined since the last decode step
            # each have their own gap; all others share one.
            n_fresh = 0
            if running.fresh:
                clock = running.clock
                for r, epoch in running.fresh:
                    if r.epoch == epoch and r.join_step == clock:
                        rec.record_itl(now - r.last_token_s, 1)
                        n_fresh += 1
                running.fresh = []
            continuing = len(running.members) - n_fresh
            done, gap = running.decode_done(now)
            if continuing:  # (Recorder.record_itl, without the call: every decode step records its gap)
                rec.itl_gap_append(gap)
                rec.itl_count_append(continuing)
            for r in done:
                entries = running.remove(r)
                r.last_token_s = now
                self._complete(r, now, entries)
        prefilling = st.prefilling
        for req, n in plan.prefill:
            req.prefilled += n
            st.prefill_kv += n
            if req.prefilled < req.target:
                continue  # chunked prefill: more chunks to come
            del prefilling[req.id]
            st.prefill_kv -= req.target
            st.kv.register(req)
            if self._forks:
                self._release_forks(req)
            req.generated += 1
            if req.first_token_s != req.first_token_s:  # NaN: the first token
                req.prefill_done_s = now
                if self.on_prefilled is not None and req.generated < req.output:
                    # Disaggregation: the request now waits for its decode
                    # replica; its KV stays here until the transfer ends.
                    req.last_token_s = now
                    st.in_flight -= 1
                    self.outstanding_tokens -= req.prompt + req.output
                    self.on_prefilled(self, req)
                    continue
                req.first_token_s = now
            else:  # re-prefill after preemption: the gap since its last token
                rec.record_itl(now - req.last_token_s, 1)
            req.last_token_s = now
            if req.generated >= req.output:
                self._complete(req, now, req.target)
            else:
                running.add(req, req.target)
        if st.held and not running and not prefilling:
            self._end_batch(now)

    def _release_forks(self, req: Request) -> None:
        """``req``'s prompt is cached: its later samples go to the head of the queue (they arrived with it)."""
        forks = self._forks.pop(req.id, None)
        if forks:
            for f in reversed(forks):
                self.sched_state.waiting.appendleft(f)
            self.wake()

    def release_transferred(self, req: Request) -> None:
        """Disaggregation: ``req``'s KV has reached its decode replica."""
        self.sched_state.kv.release_request(req)
        self.wake()

    def _complete(self, req: Request, now: float, kv_entries: int) -> None:
        """``req`` produced its last token."""
        if self.scheduler.holds_finished:
            st = self.sched_state
            st.held.append((req, kv_entries))
            st.held_kv += kv_entries
            return
        self._finish(req, now)

    def _end_batch(self, now: float) -> None:
        st = self.sched_state
        for req, _ in st.held:
            self._finish(req, now)
        st.held = []
        st.held_kv = 0

    def _finish(self, req: Request, now: float) -> None:
        st = self.sched_state
        st.kv.release_request(req)
        req.finish_s = now
        req.status = "completed"
        st.in_flight -= 1
        self.outstanding_tokens -= req.prompt + req.output
        self.ended(req)
