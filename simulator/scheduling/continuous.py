"""``scheduler.policy=continuous``: iteration-level batching (Orca, vLLM).

Every iteration is either a *prefill step* or a *decode step*:

* If requests are waiting, admit them first-come first-served while the batch
  stays within ``max_batch_size`` sequences (running + new), the new prompt
  tokens within ``max_batch_tokens``, and their prompt KV blocks fit above the
  watermark; run one step that prefills all of them (running requests pause).
* Otherwise every running request decodes one token. Before the step, each
  request that starts a new KV block gets one; when the pool is empty the
  newest running request is preempted (KV dropped, recomputed later) and put
  back at the head of the queue, as vLLM does with its default recompute mode.

This matches vLLM's default (v0) scheduler without chunked prefill:
``--max-num-seqs`` = max_batch_size, ``--max-num-batched-tokens`` =
max_batch_tokens. A prompt longer than max_batch_tokens can never be
scheduled and is rejected (vLLM refuses it the same way); a preempted request
whose recompute exceeds the budget is prefilled alone, so it always finishes.
"""

from __future__ import annotations

from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler


@SCHEDULERS.register("continuous")
class ContinuousScheduler(Scheduler):
    def reject_reason(self, req):
        if req.prompt > self.max_batch_tokens:
            return "prompt_exceeds_max_batch_tokens"
        return super().reject_reason(req)

    def plan(self):
        rep = self.replica
        waiting, running, kv = rep.waiting, rep.running, rep.kv
        if waiting:
            admitted = []
            tokens = 0
            seqs = len(running)
            while waiting and seqs < self.max_batch_size:
                req = waiting[0]
                need = req.target
                # A recomputed request may exceed the budget; it then runs alone.
                if admitted and tokens + need > self.max_batch_tokens:
                    break
                blocks = kv.blocks_for(need)
                if not kv.can_admit(blocks):
                    break
                waiting.popleft()
                kv.allocate(blocks)
                req.blocks = blocks
                rep.admit(req)
                admitted.append((req, need))
                tokens += need
                seqs += 1
            if admitted:
                return Plan(prefill=admitted)
        if not running:
            return None
        preempted = 0
        needers = running.block_needers()
        if len(needers) > kv.free:
            pending = {r.id for r in needers}
            while len(pending) > kv.free:
                victim = running.newest()
                rep.preempt(victim)
                pending.discard(victim.id)
                preempted += 1
            needers = [r for r in needers if r.id in pending]
        if needers:
            kv.allocate(len(needers))
            for r in needers:
                r.blocks += 1
        if not running:  # all preempted: re-plan, which re-admits the oldest
            return self.plan()
        return Plan(decode=True, preempted=preempted)
