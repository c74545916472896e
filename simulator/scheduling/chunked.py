"""``scheduler.policy=chunked_prefill``: Sarathi-Serve / vLLM chunked prefill.

Every step has a token budget, ``max_batch_tokens`` (vLLM
``--max-num-batched-tokens``). Running requests decode first, one token
each; the rest of the budget is filled with prefill chunks - first the
requests whose prompts are partly computed, in admission order, then new
requests first-come first-served (at most ``max_batch_size`` sequences in
all). A long prompt is spread over several steps, so it no longer stalls
the decodes behind it: each step mixes decodes and at most one budget's
worth of prefill.

A request is admitted only when the KV blocks for its whole prompt fit
(above the watermark), and takes them all at once, as vLLM's v0 scheduler
does with chunked prefill; its later chunks need no more memory, so partly
computed prompts never starve each other. When a decode needs a block and
none is free, the newest admitted request (running or part-prefilled) is
preempted. This is vLLM's ``--enable-chunked-prefill`` (the default since
its v1 engine, whose KV allocation per chunk is not modelled).
"""

from __future__ import annotations

from simulator.config.checks import need
from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler


@SCHEDULERS.register("chunked_prefill")
class ChunkedPrefillScheduler(Scheduler):
    @classmethod
    def check(cls, sched, key):
        super().check(sched, key)
        need(
            sched.max_batch_tokens >= sched.max_batch_size,
            f"{key}.max_batch_tokens ({sched.max_batch_tokens}) must be >= {key}.max_batch_size "
            f"({sched.max_batch_size}) with chunked prefill, so every running request can decode each step.",
        )

    def plan(self):
        st = self.state
        waiting, running = st.waiting, st.running
        plan = Plan()
        budget = self.decode_first(plan)
        # 1. continue part-computed prompts, oldest admission first (their blocks are held)
        for req in st.prefilling.values():
            if budget <= 0:
                break
            n = min(req.target - req.prefilled, budget)
            plan.prefill.append((req, n))
            budget -= n
        # 2. admit new requests: their whole prompt's blocks must fit now
        seqs = len(running) + len(st.prefilling) + st.arriving
        while waiting and budget > 0 and seqs < self.max_batch_size and not st.swapped:
            if not self.head_fits(waiting[0], bool(running or st.prefilling or plan.prefill)):
                break
            req = self.admit_head()
            n = min(req.target - req.prefilled, budget)
            plan.prefill.append((req, n))
            budget -= n
            seqs += 1
        if plan.prefill or plan.decode:
            return plan
        return None
