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
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable

import simpy

from simulator.engine.queue import FifoQueue, TieredQueue
from simulator.engine.request import Request
from simulator.engine.running import RunningSet
from simulator.latency.base import LatencyModel, StepShape
from simulator.memory import BlockManager
from simulator.metrics.recorder import Recorder


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
    ):
        from simulator.scheduling import build_scheduler

        self.env = env
        self.index = index
        self.pool = pool
        self.kv = kv
        self.latency = latency
        self.rec = recorder
        self.state = "serving"
        self._prefill_s: dict[int, float] = {}
        priorities = sorted({int(t.priority) for t in getattr(cfg, "tiers", {}).values()})
        self.tiered = len(priorities) > 1
        self.waiting = TieredQueue(self.prefill_s, priorities) if self.tiered else FifoQueue(self.prefill_s)
        self.outstanding_tokens = 0  # prompt + output tokens of the requests assigned here and not ended
        self.admit_gap_s = math.nan  # smoothed time between admissions (for wait prediction)
        self._last_admit_s = math.nan
        self.prefilling: dict[int, Request] = {}  # admitted, prompt not yet fully computed
        self.running = RunningSet(kv.block_size, grows=kv.grows)
        self.swapped: list[tuple[float, int, Request]] = []  # heap: oldest arrival first
        self.held: list[tuple[Request, int]] = []  # static batching: (request, KV entries), done, batch still running
        self.prefill_kv = 0  # KV entries of the prefilling requests
        self.held_kv = 0
        self.in_flight = 0  # admitted requests holding KV here (prefilling, running, held)
        self.inbound = 0  # disaggregation: requests queued for or in transfer to this replica
        self.arriving = 0  # disaggregation: ... of which KV is allocated here (copying, or copied and about to join)
        # preemption effects since the last recorded step (a plan may be dropped, these never are)
        self._preempted = 0
        self._swap_bytes = 0.0
        self._inbox: list[tuple[Request, int]] = []  # arrived with KV during a step; join before the next
        self.steps = 0
        # swap preemption: host memory and the PCIe path to it
        self.block_bytes = kv.block_size * kv_bytes_per_token
        self.host_link_bps = host_link_bps
        self.swap_blocks_free = swap_blocks
        #: called with a request whose prefill completed, instead of decoding it here
        self.on_prefilled: Callable[[Replica, Request], None] | None = None
        #: called after every step, e.g. to retry KV transfers into this replica
        self.on_step_end: Callable[[Replica], None] | None = None
        #: called with every request that ends here (completed or rejected)
        self.ended: Callable[[Request], None] = recorder.end_request
        #: called once a draining replica has nothing left
        self.on_drained: Callable[[Replica], None] | None = None
        self._kv_factory = None  # set by the cluster: builds an empty KV manager after a failure
        self.cfg = cfg
        self.swap_blocks = swap_blocks
        self.scheduler = build_scheduler(cfg, self)
        self._wake: simpy.Event | None = None
        self.process = env.process(self._loop())

    # -- load figures (for routers) ---------------------------------------
    @property
    def load(self) -> int:
        return len(self.waiting) + len(self.swapped) + self.in_flight

    @property
    def kv_usage(self) -> float:
        return (self.kv.total - self.kv.free) / self.kv.total

    @property
    def empty(self) -> bool:
        return not (self.waiting or self.in_flight or self.swapped or self.inbound or self._inbox or self.held)

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
        ahead = self.waiting.work_ahead(priority)
        gap = self.admit_gap_s
        if gap == gap and self.waiting:  # not NaN: admissions observed
            ahead = max(ahead, self.waiting.count_ahead(priority) * gap)
        return ahead

    # -- called by the router / scheduler --------------------------------
    def submit(self, req: Request) -> None:
        req.replica = self.index
        req.pool = self.pool
        reason = self.scheduler.reject_reason(req)
        if reason is not None:
            self.reject(req, reason)
            return
        self.outstanding_tokens += req.prompt + req.output
        self.waiting.append(req)
        self.wake()

    def reject(self, req: Request, reason: str) -> None:
        req.replica = self.index
        req.status = "rejected"
        req.reject_reason = reason
        req.finish_s = self.env.now
        self.ended(req)

    def wake(self) -> None:
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def admit(self, req: Request) -> None:
        """The scheduler took ``req`` from the queue and allocated its first KV."""
        now = self.env.now
        if req.first_scheduled_s != req.first_scheduled_s:  # NaN: first admission
            req.first_scheduled_s = now
        last = self._last_admit_s
        if last == last:
            gap = self.admit_gap_s
            self.admit_gap_s = now - last if gap != gap else 0.9 * gap + 0.1 * (now - last)
        self._last_admit_s = now
        req.status = "prefilling"
        self.prefilling[req.id] = req
        self.prefill_kv += req.prefilled  # a prefix found in the cache is already stored
        self.in_flight += 1

    def receive(self, req: Request, kv_entries: int) -> None:
        """Disaggregation: ``req`` arrives with its KV (blocks already allocated
        here). It joins the running set between steps, never during one."""
        req.replica = self.index
        req.pool = self.pool
        self.in_flight += 1
        self.outstanding_tokens += req.prompt + req.output
        self._inbox.append((req, kv_entries))
        self.wake()

    def preempt(self, req: Request, mode: str = "recompute") -> None:
        """Evict ``req`` to make room (its swap copy is priced in the next step)."""
        running = self.running
        if req.id in self.prefilling:
            del self.prefilling[req.id]
            self.prefill_kv -= req.prefilled
            entries = req.prefilled
            mode = "recompute"  # a partial prompt is cheaper to redo than to swap
        else:
            if req.join_step < running.clock:  # it decoded since joining
                req.last_token_s = running.last_decode_end
            entries = running.remove(req)
        blocks = req.blocks
        self.kv.release_request(req)
        req.preemptions += 1
        self._preempted += 1
        self.in_flight -= 1
        if mode == "swap" and blocks <= self.swap_blocks_free:
            self.swap_blocks_free -= blocks
            req.swapped_kv = entries
            req.swaps += 1
            req.status = "swapped"
            heapq.heappush(self.swapped, (req.arrival_s, req.id, req))
            self._swap_bytes += blocks * self.block_bytes
            return
        req.prefilled = 0
        req.target = req.prompt + req.generated
        req.redo = entries
        req.status = "waiting"
        self.waiting.appendleft(req)

    def swap_in(self) -> Request:
        """Bring the oldest swapped request back (the scheduler allocated its blocks)."""
        _, _, req = heapq.heappop(self.swapped)
        blocks = req.blocks
        self.swap_blocks_free += blocks
        self.in_flight += 1
        self.running.add(req, req.swapped_kv)
        self._swap_bytes += blocks * self.block_bytes
        return req

    # -- failure and recovery (a TP group fails as a whole) ------------------
    def fail(self) -> list[Request]:
        """Stop this replica now: its process ends (a step in progress is cut
        short and its work lost), its KV memory is wiped, and every request it
        held - queued, prefilling, decoding, swapped out - is returned, in
        arrival order, for the cluster to retry elsewhere or report lost."""
        from simulator.scheduling import build_scheduler

        self.state = "failed"
        if self.process.is_alive:
            self.process.interrupt("replica failure")
        held = self.waiting.drain()
        held += self.prefilling.values()
        held += self.running.members.values()
        held += [r for _, _, r in self.swapped]
        held += [r for r, _ in self.held]
        held += [r for r, _ in self._inbox]
        held.sort(key=lambda r: (r.arrival_s, r.id))
        self.kv = self._kv_factory()
        self.prefilling = {}
        self.running = RunningSet(self.kv.block_size, grows=self.kv.grows)
        self.swapped = []
        self.held = []
        self._inbox = []
        self.prefill_kv = self.held_kv = self.in_flight = self.outstanding_tokens = 0
        self._preempted, self._swap_bytes = 0, 0.0
        self.swap_blocks_free = self.swap_blocks
        self.admit_gap_s = self._last_admit_s = math.nan
        self._wake = None
        self.scheduler = build_scheduler(self.cfg, self)
        return held

    def restart(self) -> None:
        """Serve again after a failure (the cold start has been paid)."""
        self.state = "serving"
        self.process = self.env.process(self._loop())

    # -- the engine loop -------------------------------------------------
    def _loop(self):
        env = self.env
        running = self.running
        kv = self.kv
        plan_step = self.scheduler.plan
        price = self.latency.step_time
        record = self.rec.record_step
        while True:
            if self._inbox:
                for req, entries in self._inbox:
                    running.add(req, entries)
                self.arriving -= len(self._inbox)
                self._inbox = []
            plan = plan_step()
            if plan is None:
                if self.state == "draining" and self.empty:
                    self.on_drained(self)
                    return
                self._wake = env.event()
                wake_at = self.scheduler.next_wakeup
                idle_from = env.now
                queued = len(self.waiting) + self.inbound + self.in_flight + len(self.swapped)
                try:
                    if wake_at is not None and wake_at > env.now:
                        yield self._wake | env.timeout(wake_at - env.now)
                    else:
                        yield self._wake
                except simpy.Interrupt:  # failed while idle
                    if queued:
                        self.rec.record_blocked(env.now - idle_from, queued)
                    return
                self._wake = None
                if queued:  # idle but not empty: blocked on memory or a batch timer
                    self.rec.record_blocked(env.now - idle_from, queued)
                continue
            shape = StepShape()
            recompute = 0
            completing = 0  # prefills whose last chunk runs now: each yields a token
            if plan.prefill:
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
            n_decode = len(running) if plan.decode else 0
            if n_decode:
                shape.decode_seqs = n_decode + plan.padded_seqs
                shape.decode_ctx_tokens = running.decode_ctx_tokens() + plan.padded_ctx
            dt = price(shape)
            swap_s = self._swap_bytes / self.host_link_bps if self._swap_bytes else 0.0
            dt += swap_s
            preempted, self._preempted, self._swap_bytes = self._preempted, 0, 0.0
            record(
                (
                    self.index,
                    self.steps,
                    env.now,
                    dt,
                    shape.prefill_tokens - plan.padding_tokens,
                    shape.prefill_seqs,
                    n_decode,
                    shape.prefill_seqs + n_decode + plan.padded_seqs,
                    shape.decode_ctx_tokens,
                    kv.total - kv.free,
                    kv.total,
                    running.kv_entries() + self.prefill_kv + self.held_kv,
                    len(self.waiting) + self.inbound,
                    self.in_flight,
                    len(self.swapped),
                    preempted,
                    recompute,
                    swap_s,
                    plan.padding_tokens + plan.padded_seqs,
                    n_decode + completing,
                )
            )
            self.steps += 1
            try:
                yield env.timeout(dt)
            except simpy.Interrupt:  # failed mid-step: the step ends now, its work is lost
                self.rec.cut_last_step(self.index, env.now)
                return
            self._apply(plan, env.now)
            if self.on_step_end is not None:
                self.on_step_end(self)

    def _apply(self, plan, now: float) -> None:
        running = self.running
        rec = self.rec
        if plan.decode:
            # Inter-token gaps: members that joined since the last decode step
            # each have their own gap; all others share one.
            n_fresh = 0
            clock = running.clock
            for r, epoch in running.fresh:
                if r.epoch == epoch and r.join_step == clock:
                    rec.record_itl(now - r.last_token_s, 1)
                    n_fresh += 1
            running.fresh = []
            continuing = len(running) - n_fresh
            done, gap = running.decode_done(now)
            rec.record_itl(gap, continuing)
            for r in done:
                entries = running.remove(r)
                r.last_token_s = now
                self._complete(r, now, entries)
        for req, n in plan.prefill:
            req.prefilled += n
            self.prefill_kv += n
            if req.prefilled < req.target:
                continue  # chunked prefill: more chunks to come
            del self.prefilling[req.id]
            self.prefill_kv -= req.target
            self.kv.register(req)
            req.generated += 1
            if req.first_token_s != req.first_token_s:  # NaN: the first token
                req.prefill_done_s = now
                if self.on_prefilled is not None and req.generated < req.output:
                    # Disaggregation: the request now waits for its decode
                    # replica; its KV stays here until the transfer ends.
                    req.last_token_s = now
                    self.in_flight -= 1
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
        if self.held and not running and not self.prefilling:
            self._end_batch(now)

    def release_transferred(self, req: Request) -> None:
        """Disaggregation: ``req``'s KV has reached its decode replica."""
        self.kv.release_request(req)
        self.wake()

    def _complete(self, req: Request, now: float, kv_entries: int) -> None:
        """``req`` produced its last token."""
        if self.scheduler.holds_finished:
            self.held.append((req, kv_entries))
            self.held_kv += kv_entries
            return
        self._finish(req, now)

    def _end_batch(self, now: float) -> None:
        for req, _ in self.held:
            self._finish(req, now)
        self.held = []
        self.held_kv = 0

    def _finish(self, req: Request, now: float) -> None:
        self.kv.release_request(req)
        req.finish_s = now
        req.status = "completed"
        self.in_flight -= 1
        self.outstanding_tokens -= req.prompt + req.output
        self.ended(req)
