"""``scheduler.policy=static``: request-level batching (FasterTransformer, naive HF).

The replica runs one batch at a time. It waits until ``max_batch_size``
requests are queued or the oldest has waited ``scheduler.max_wait_s``, then
takes up to ``max_batch_size`` of them (first come, first served, while their
KV reservations fit), prefills them together with every prompt padded to the
longest, and decodes the whole batch until its longest request is done.
Nobody joins mid-batch. Sequences that finish early keep computing padding
and keep their KV; their responses return when the batch ends (so their
end-to-end latency and TPOT include the wait for the longest).

KV is reserved up front for prompt + the most output the engine allows, i.e.
up to ``memory.max_model_len`` per request (``memory.allocation=paged`` is
read as ``reserve_max``); the contiguous modes ``reserve_pow2`` and
``reserve_exact`` may be chosen instead to see what better length knowledge
would buy. ``max_batch_tokens`` does not apply: a static batch's prefill is
as large as its padded prompts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.scheduling.state import ReplicaState


@SCHEDULERS.register("static")
class StaticScheduler(Scheduler):
    holds_finished = True
    requires_reservation = True

    def __init__(self, cfg: ScenarioConfig, state: ReplicaState):
        super().__init__(cfg, state)
        self.max_wait_s = float(cfg.scheduler.max_wait_s)

    def plan(self):
        st = self.state
        waiting, running, kv = st.waiting, st.running, st.kv
        self.next_wakeup = None
        if running:  # the batch decodes on, finished members as padding
            return Plan(decode=True, padded_seqs=len(st.held), padded_ctx=st.held_kv + len(st.held))
        if not waiting:
            return None
        oldest = waiting[0]
        deadline = oldest.arrival_s + self.max_wait_s
        if len(waiting) < self.max_batch_size and st.clock.now < deadline:
            self.next_wakeup = deadline
            return None
        plan = Plan()
        while waiting and len(plan.prefill) < self.max_batch_size:
            req = waiting[0]
            if not kv.can_admit(kv.admit_cost(req, req.target)) and plan.prefill:
                break
            waiting.popleft()
            kv.admit(req, req.target)
            st.admit(req)
            plan.prefill.append((req, req.target))
        longest = max(n for _, n in plan.prefill)
        for _, n in plan.prefill:
            plan.padding_tokens += longest - n
            plan.padding_pairs += longest * (longest + 1) / 2 - n * (n + 1) / 2
        return plan
