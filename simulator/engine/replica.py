"""One model replica: a SimPy process that runs engine iterations back to back.

Each iteration: the scheduler plans the step -> the latency model prices it ->
the clock advances -> the replica applies the step's effects. When there is
nothing to run the process sleeps until a request arrives.
"""

from __future__ import annotations

from collections import deque

import simpy

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
    ):
        from simulator.scheduling import build_scheduler

        self.env = env
        self.index = index
        self.kv = kv
        self.latency = latency
        self.rec = recorder
        self.waiting: deque[Request] = deque()
        self.running = RunningSet(kv.block_size)
        self.in_flight = 0  # admitted requests (holding KV), running or prefilling
        self.steps = 0
        self.scheduler = build_scheduler(cfg, self)
        self._wake: simpy.Event | None = None
        self.process = env.process(self._loop())

    # -- called by the router / scheduler --------------------------------
    def submit(self, req: Request) -> None:
        req.replica = self.index
        reason = self.scheduler.reject_reason(req)
        if reason is not None:
            req.status = "rejected"
            req.reject_reason = reason
            req.finish_s = self.env.now
            self.rec.end_request(req)
            return
        self.waiting.append(req)
        if self._wake is not None and not self._wake.triggered:
            self._wake.succeed()

    def admit(self, req: Request) -> None:
        """The scheduler took ``req`` from the queue and allocated its KV."""
        if req.first_scheduled_s != req.first_scheduled_s:  # NaN: first admission
            req.first_scheduled_s = self.env.now
        req.status = "prefilling"
        self.in_flight += 1

    def preempt(self, req: Request) -> None:
        """Recompute preemption: drop the KV, requeue at the head."""
        running = self.running
        if req.join_step < running.clock:  # it decoded since joining
            req.last_token_s = running.last_decode_end
        running.remove(req)
        self.kv.release(req.blocks)
        req.blocks = 0
        req.preemptions += 1
        req.prefilled = 0
        req.target = req.prompt + req.generated
        req.status = "waiting"
        self.in_flight -= 1
        self.waiting.appendleft(req)

    # -- the engine loop -------------------------------------------------
    def _loop(self):
        env = self.env
        running = self.running
        kv = self.kv
        plan_step = self.scheduler.plan
        price = self.latency.step_time
        record = self.rec.record_step
        while True:
            plan = plan_step()
            if plan is None:
                self._wake = env.event()
                yield self._wake
                self._wake = None
                continue
            shape = StepShape()
            if plan.prefill:
                pt = pairs = ctx = 0
                for req, n in plan.prefill:
                    p = req.prefilled
                    pt += n
                    pairs += n * (p + (n + 1) / 2)
                    ctx += p
                shape.prefill_seqs = len(plan.prefill)
                shape.prefill_tokens = pt
                shape.prefill_attn_pairs = pairs
                shape.prefill_ctx_tokens = ctx
            n_decode = len(running) if plan.decode else 0
            if n_decode:
                shape.decode_seqs = n_decode
                shape.decode_ctx_tokens = running.decode_ctx_tokens()
            dt = price(shape)
            record(
                (
                    self.index,
                    self.steps,
                    env.now,
                    dt,
                    shape.prefill_tokens,
                    shape.prefill_seqs,
                    n_decode,
                    shape.prefill_seqs + n_decode,
                    shape.decode_ctx_tokens,
                    kv.total - kv.free,
                    kv.total,
                    len(self.waiting),
                    self.in_flight,
                    plan.preempted,
                )
            )
            self.steps += 1
            yield env.timeout(dt)
            self._apply(plan, env.now)

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
                running.remove(r)
                r.last_token_s = now
                self._finish(r, now)
        for req, n in plan.prefill:
            req.prefilled += n
            if req.prefilled < req.target:
                continue  # chunked prefill: more chunks to come
            req.generated += 1
            if req.first_token_s != req.first_token_s:  # NaN: the first token
                req.first_token_s = now
            else:  # re-prefill after preemption: the gap since its last token
                rec.record_itl(now - req.last_token_s, 1)
            req.last_token_s = now
            if req.generated >= req.output:
                self._finish(req, now)
            else:
                running.add(req, req.target)

    def _finish(self, req: Request, now: float) -> None:
        self.kv.release(req.blocks)
        req.blocks = 0
        req.finish_s = now
        req.status = "completed"
        self.in_flight -= 1
        self.rec.end_request(req)
