"""``scheduler.policy=chunked_prefill``: Sarathi-Serve / vLLM chunked prefill.

Every step has a token budget, ``max_batch_tokens`` (vLLM
``--max-num-batched-tokens``). Running requests decode first, one token
each; the rest of the budget is filled with prefill chunks - first the
requests whose prompts are partly computed, in admission order, then new
requests first-come first-served (at most ``max_batch_size`` sequences in
all). A long prompt is spread over several steps, so it no longer stalls
the decodes behind it: each step mixes decodes and at most one budget's
worth of prefill.

KV blocks follow the chunks (paged), so a chunk may be shortened to the free
blocks. When a decode needs a block and none is free, the newest admitted
request (running or part-prefilled) is preempted. If memory is full of
part-prefilled prompts and nothing can move, the newest of them is
preempted too, so the oldest always progresses. This is vLLM's default
since v1 (``--enable-chunked-prefill``).
"""

from __future__ import annotations

from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler


@SCHEDULERS.register("chunked_prefill")
class ChunkedPrefillScheduler(Scheduler):
    def plan(self):
        rep = self.replica
        waiting, running, kv = rep.waiting, rep.running, rep.kv
        plan = Plan()
        if rep.swapped:
            self.swap_in(plan)
        if running:
            self.grow_for_decode(plan)
        budget = self.max_batch_tokens
        if running:
            plan.decode = True
            budget -= len(running)
        bs = kv.block_size
        # 1. continue part-computed prompts, oldest admission first
        for req in list(rep.prefilling.values()):
            if budget <= 0:
                break
            n = min(req.target - req.prefilled, budget)
            need = kv.blocks_to_hold(req, req.prefilled + n)
            if need > kv.free:  # shorten the chunk to the blocks there are
                n = (req.blocks + kv.free) * bs - req.prefilled
                need = kv.free
            if n <= 0:
                continue
            kv.allocate(need)
            req.blocks += need
            plan.prefill.append((req, n))
            budget -= n
        # 2. admit new requests
        seqs = len(running) + len(rep.prefilling)
        while waiting and budget > 0 and seqs < self.max_batch_size and not rep.swapped:
            req = waiting[0]
            n = min(req.target, budget)
            blocks = kv.blocks_to_hold(req, n)
            if not kv.can_admit(blocks):
                break
            waiting.popleft()
            kv.allocate(blocks)
            req.blocks += blocks
            rep.admit(req)
            plan.prefill.append((req, n))
            budget -= n
            seqs += 1
        if plan.prefill or plan.decode:
            return plan
        if rep.prefilling:  # memory full of partial prompts: free the newest, retry
            plan.swap_bytes += rep.preempt(self.victim(), "recompute")
            again = self.plan()
            if again is not None:
                again.preempted += plan.preempted + 1
            return again
        return None
