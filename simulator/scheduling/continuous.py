"""``scheduler.policy=continuous``: iteration-level batching (Orca, vLLM).

Every iteration is either a *prefill step* or a *decode step*:

* If requests are waiting (and none is swapped out), admit them first-come
  first-served while the batch stays within ``max_batch_size`` sequences
  (running + new), the new prompt tokens within ``max_batch_tokens``, and
  their KV fits above the watermark; run one step that prefills all of them
  (running requests pause).
* Otherwise every running request decodes one token. Before the step, each
  request that starts a new KV block gets one; when the pool is empty the
  newest running request is preempted (``scheduler.preemption_mode``:
  ``recompute`` drops its KV and requeues it at the head; ``swap`` copies
  its blocks to host memory). Swapped requests come back before any new
  prefill, as in vLLM's v0 scheduler.

This matches vLLM's scheduler without chunked prefill: ``--max-num-seqs`` =
max_batch_size, ``--max-num-batched-tokens`` = max_batch_tokens,
``--preemption-mode``. A prompt longer than max_batch_tokens can never be
scheduled and is rejected (vLLM refuses it the same way); a preempted request
whose recompute exceeds the budget is prefilled alone, so it always finishes.

``scheduler.multi_step=N`` is vLLM V0's multi-step scheduling
(``--num-scheduler-steps``): a decode step opens a group of N, which run
without a scheduling decision (nothing admitted or swapped in until the
group ends; a request that finishes leaves at its last token), and the
engine's per-step CPU work is paid once per group (the latency models
charge each of its steps an N-th of it).
"""

from __future__ import annotations

from simulator.scheduling.base import DECODE_ONLY, SCHEDULERS, Plan, Scheduler


@SCHEDULERS.register("continuous")
class ContinuousScheduler(Scheduler):
    whole_prompts = True
    multi_step_ok = True

    def reject_reason(self, req):
        if req.prompt > self.max_batch_tokens:
            return "prompt_exceeds_max_batch_tokens"
        return super().reject_reason(req)

    def plan(self):
        st = self.state
        members = st.running.members  # (the set's own dict: read at C speed, every step)
        grouped = self.multi_step > 1 and self.in_group()
        if not grouped:  # (a multi-step group under way takes no scheduling decision until it ends)
            if st.swapped:
                self.swap_in()
            elif st.waiting:
                plan = self._admit(len(members) + st.arriving)
                if plan.prefill:
                    return plan
        if not members:
            # Idle; swapped requests wait for memory held by KV in transit to
            # this replica (disaggregation), which frees when it arrives.
            return None
        self.grow_for_decode()
        if not members:  # all preempted: re-plan, which re-admits the oldest
            return self.plan()
        if self.multi_step > 1 and not grouped:
            self.open_group()
        return DECODE_ONLY

    def _admit(self, seqs: int) -> Plan:
        """A prefill step of the waiting requests, first come first served, while the batch (``seqs``
        sequences so far) stays within its limits and their KV fits; empty when the head cannot join."""
        st = self.state
        waiting, kv = st.waiting, st.kv
        plan = Plan()
        tokens = 0
        while waiting and seqs < self.max_batch_size:
            req = waiting[0]
            # A recomputed request may exceed the budget; it then runs alone.
            if plan.prefill and tokens + req.target - max(req.prefilled, kv.cached_tokens(req)) > self.max_batch_tokens:
                break  # (its tokens to compute, asked for only when it would share the step)
            if not kv.can_admit(kv.admit_cost(req, req.target)):
                break
            self.admit_head()
            n = req.target - req.prefilled
            plan.prefill.append((req, n))
            tokens += n
            seqs += 1
        return plan
