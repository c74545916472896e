"""``scheduler.policy=inflight``: TensorRT-LLM's in-flight batching without context chunking.

Every step has a token budget, ``max_batch_tokens`` (TensorRT-LLM
``max_num_tokens``). Running requests generate first, one token each; then
waiting requests join *whole*: a new request's entire prompt (its context
phase) runs in the same step as the generations, first-come first-served,
while it fits in the rest of the budget and the batch stays within
``max_batch_size`` sequences. A prompt that does not fit waits for a step
with room (requests behind it wait too: FCFS); a prompt longer than the whole
budget can never run and is rejected, as TensorRT-LLM rejects it.

Unlike ``continuous`` (vLLM V0: prefill-only steps that pause every decode),
context and generation share a step, so arrivals do not stall the running
batch for a whole prefill; unlike ``chunked_prefill``, a long prompt is not
split, so a step that admits one is as long as that prompt's prefill. This is
TensorRT-LLM's default (``enable_chunked_context=False``); with chunking on it
behaves as ``chunked_prefill``. Admission needs the request's KV to fit
(above the watermark); ``engine=trtllm`` pairs it with
``memory.allocation=reserve_exact`` (the GUARANTEED_NO_EVICT policy).
"""

from __future__ import annotations

import math
import warnings

from simulator.scheduling.base import SCHEDULERS, Plan
from simulator.scheduling.continuous import ContinuousScheduler


@SCHEDULERS.register("inflight")
class InflightScheduler(ContinuousScheduler):
    """Continuous batching whose steps mix the decodes with whole new prompts
    (it shares ``continuous``'s rejection of prompts beyond the budget)."""

    multi_step_ok = False  # TensorRT-LLM schedules every iteration

    budget_hint = " (TensorRT-LLM: max_num_tokens, or enable_chunked_context)"

    @classmethod
    def check_prompts(cls, sched, key, prompt_max):
        super().check_prompts(sched, key, prompt_max)
        if math.isfinite(prompt_max) and prompt_max > sched.max_batch_tokens / 2:
            warnings.warn(
                f"{key}.policy=inflight with prompts up to {int(prompt_max)} tokens against a step budget of "
                f"{sched.max_batch_tokens} ({key}.max_batch_tokens): a prompt joins only when the running batch leaves "
                f"room for it whole, so long prompts can wait for the batch to drain; TensorRT-LLM users raise "
                f"max_num_tokens or enable chunked context ({key}.policy=chunked_prefill).",
                stacklevel=2,
            )

    def plan(self):
        st = self.state
        waiting, running, kv = st.waiting, st.running, st.kv
        plan = Plan()
        budget = self.decode_first(plan)
        seqs = len(running) + st.arriving
        while waiting and seqs < self.max_batch_size and not st.swapped:
            req = waiting[0]
            n = req.target - max(req.prefilled, kv.cached_tokens(req))
            # a recomputed request longer than the budget runs alone, so it always finishes
            if n > budget and (plan.prefill or running):
                break
            if not self.head_fits(req, bool(running or plan.prefill)):
                break
            self.admit_head()
            n = req.target - req.prefilled
            plan.prefill.append((req, n))
            budget -= n
            seqs += 1
        if plan.prefill or plan.decode:
            return plan
        return None
