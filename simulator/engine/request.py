"""The state of one request while it is inside the simulator.

A request is created when it arrives and written to the per-request columns
(then dropped) when it ends, so long traces do not keep objects alive.
"""

from __future__ import annotations

import math

import numpy as np

#: prefix-cache block keys are ``prefix id * KEY_SPAN + block end``: one int per block, unique while
#: prompts are shorter than 2**32 tokens (an int hashes and compares faster than an (id, end) pair)
KEY_SPAN = 1 << 32


class Request:
    __slots__ = (
        "id",
        "arrival_s",
        "prompt",
        "output",
        "replica",
        # progress
        "generated",  # output tokens produced so far
        "prefilled",  # tokens of the current prefill target already computed
        "target",  # tokens the current prefill must compute (prompt, or prompt+generated after recompute)
        "blocks",  # KV blocks held (while it decodes: those held when it joined, see RunningSet.blocks_held)
        "dst_blocks",  # KV blocks held on a decode replica while the KV is in transit
        "redo",  # tokens of discarded KV still to be recomputed
        "swapped_kv",  # KV entries parked in host memory (swap preemption)
        "prefix_runs",  # prefix caching: the full prompt blocks, as runs of one prefix id (see set_prefix)
        "shared",  # prefix caching: leading blocks held as references to cached blocks
        "hit_memo",  # prefix caching: (cache version, cache, hits) of the last lookup
        # decode bookkeeping (see RunningSet)
        "join_step",
        "kv0",
        "g0",
        "need0",
        "epoch",
        # timestamps and counters
        "first_scheduled_s",
        "first_token_s",
        "last_token_s",
        "prefill_done_s",  # when the prefill produced the first token (before any KV transfer)
        "finish_s",
        "preemptions",
        "swaps",
        "pool",
        "tenant",
        "session",
        "tier",
        "affinity",  # routing key of the prompt's shared prefix (prefix_affinity), or None
        "priority",  # the tier's priority: higher is queued ahead and preempted last
        "attempts",  # times the client sent it (retries after rejection or replica failure)
        "leader",  # workload.n > 1: the first sample of the same prompt (None for it and without n)
        "status",
        "reject_reason",
    )

    def __init__(self, rid: int, arrival_s: float, prompt: int, output: int):
        self.id = rid
        self.arrival_s = arrival_s
        self.prompt = prompt
        self.output = output
        self.replica = -1
        self.generated = 0
        self.prefilled = 0
        self.target = prompt
        self.blocks = 0
        self.dst_blocks = 0
        self.redo = 0
        self.swapped_kv = 0
        self.prefix_runs: tuple[tuple[int, int, int], ...] = ()
        self.shared = 0
        self.hit_memo = None
        self.join_step = 0
        self.kv0 = 0
        self.g0 = 0
        self.need0 = 0
        self.epoch = 0
        self.first_scheduled_s = math.nan
        self.first_token_s = math.nan
        self.last_token_s = math.nan
        self.finish_s = math.nan
        self.preemptions = 0
        self.swaps = 0
        self.pool = ""
        self.tenant = ""
        self.session = ""
        self.tier = ""
        self.affinity: int | None = None
        self.leader: Request | None = None
        self.priority = 0
        self.attempts = 1
        self.prefill_done_s = math.nan
        self.status = "waiting"
        self.reject_reason = ""

    def restart(self) -> None:
        """Start over, as a retry elsewhere after a replica failure: the lost
        attempt's progress, KV and timestamps are dropped; arrival, labels and
        counters stay (so TTFT and e2e include the time lost)."""
        self.replica = -1
        self.generated = self.prefilled = self.blocks = self.dst_blocks = self.redo = self.swapped_kv = 0
        self.target = self.prompt
        self.shared = 0
        self.hit_memo = None
        self.epoch += 1
        self.first_scheduled_s = self.first_token_s = self.last_token_s = self.prefill_done_s = math.nan
        self.status = "waiting"

    @property
    def max_kv_tokens(self) -> int:
        """KV entries held just before the last token is produced."""
        return self.prompt + self.output - 1

    def set_prefix(self, ids, granularity: int, block_size: int) -> None:
        """The full prompt blocks from chained prefix ids (one id per ``granularity`` tokens),
        as runs of consecutive blocks whose last tokens one id covers: ``prefix_runs`` holds
        ``(key, first block, end block)`` per run. Block j's key is the covering id and the
        block's end position (``id * KEY_SPAN + (j + 1) * block_size``), which names the whole
        prompt up to that point; a run's key is its first block's, and block j of the run has
        key ``key + (j - first) * block_size``. A 12,000-token prompt in 512-token ids is 24
        runs instead of 750 block keys."""
        n = min(self.prompt // block_size, len(ids) * granularity // block_size)
        if n <= 0:
            self.prefix_runs = ()
            return
        if granularity >= block_size:  # an id covers the last tokens of one block at least: a run per id
            last = (n * block_size - 1) // granularity  # the id covering the last full block
            id_of = ids[: last + 1].tolist() if hasattr(ids, "tolist") else [int(i) for i in ids[: last + 1]]
            # blocks ends[c-1]..ends[c]-1 end inside id c's tokens (only the last id's can reach past block n)
            ends = [(c + 1) * granularity // block_size for c in range(len(id_of))]
            ends[-1] = min(ends[-1], n)
            starts = [0, *ends[:-1]]
            keys = [prefix_id * KEY_SPAN + (first + 1) * block_size for prefix_id, first in zip(id_of, starts)]
            self.prefix_runs = tuple(zip(keys, starts, ends))
            return
        covering = (np.arange(1, n + 1, dtype=np.int64) * block_size - 1) // granularity  # id index of each block
        firsts = np.flatnonzero(np.diff(covering, prepend=-1))
        ends = [*firsts[1:].tolist(), n]
        firsts_l = firsts.tolist()
        chosen = covering[firsts].tolist()
        id_of = ids.tolist() if hasattr(ids, "tolist") else [int(i) for i in ids]  # Python ints (a list may hold numpy ints)
        self.prefix_runs = tuple(
            (id_of[c] * KEY_SPAN + (first + 1) * block_size, first, end) for c, first, end in zip(chosen, firsts_l, ends)
        )

    def __repr__(self) -> str:
        return f"Request(id={self.id}, prompt={self.prompt}, output={self.output}, generated={self.generated})"
