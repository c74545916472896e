"""The set of requests in their decode phase on one replica.

Every decode step gives each member one token. Instead of touching every
member each step, the set keeps a *decode clock* (how many decode steps the
replica has run) and derives each member's progress from the clock value at
which it joined:

    generated(k) = g0 + (k - join_step)        kv_entries(k) = kv0 + (k - join_step)

Two heaps keyed by clock value say which members finish at a step and which
member is the newest (the preemption victim); entries are invalidated lazily
with a per-request epoch. New KV blocks need no per-member events at all: a
member starts a block every ``block_size`` steps, always at the same clock
value modulo ``block_size`` (its *residue*), from its first block boundary
until it leaves. So the blocks the next step needs are one count (the members
of that residue), and a member's ``req.blocks`` is brought up to date from
its residue when it leaves (:meth:`RunningSet.remove`). A decode step costs
O(log n) per *event* (a finish) rather than O(n) per step, and the sum of
context lengths that the latency model needs is one multiplication.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np

from simulator.engine.request import Request


class RunningSet:
    #: the members' new blocks are counted by residue (:meth:`block_count`); subclasses whose members
    #: grow otherwise list them instead (:meth:`block_needers`) and count each block as it is taken
    counts_blocks = True

    def __init__(self, block_size: int, grows: bool = True):
        self.block_size = block_size
        self.grows = grows  # paged KV: members take a block whenever a token starts one
        self.members: dict[int, Request] = {}
        self.clock = 0  # decode steps completed
        self._finish: list[tuple[int, int, int, Request]] = []
        #: members by the clock value, modulo block_size, at which each starts a new KV block
        self.due = [0] * block_size
        #: the clock value up to which the members have taken their blocks (clock, or clock + 1
        #: once the next decode step's blocks are taken and until that step ends)
        self.grown = 0
        self._ctx_base = 0  # sum over members of (kv0 - join_step)
        self.fresh: list[tuple[Request, int]] = []  # joined since the last decode step (for ITL)
        self.last_decode_end = 0.0

    def __len__(self) -> int:
        return len(self.members)

    def __bool__(self) -> bool:
        return bool(self.members)

    # -- membership ------------------------------------------------------
    def add(self, req: Request, kv_entries: int) -> None:
        """``req`` has just produced a token from a prefill and now decodes."""
        k = self.clock
        req.join_step = k
        req.kv0 = kv_entries
        req.g0 = req.generated
        req.status = "running"
        e = req.epoch
        self.members[req.id] = req
        self._ctx_base += kv_entries - k
        last = k + (req.output - req.generated)  # the decode step that makes the last token
        heapq.heappush(self._finish, (last, req.id, e, req))
        if self.grows:
            bs = self.block_size
            # the first clock value after k at which a token starts a block: every bs-th one from there
            first = req.need0 = k + 1 + (-(-kv_entries // bs)) * bs - kv_entries
            assert first > self.grown, "members join between decode steps, before the next step's blocks are taken"
            self.due[first % bs] += 1
        self.fresh.append((req, e))

    def remove(self, req: Request) -> int:
        """Take ``req`` out (finished or preempted); its heap entries go stale.

        Updates ``req.generated`` and returns the KV entries it holds now.
        """
        del self.members[req.id]
        self._ctx_base -= req.kv0 - req.join_step
        if self.grows:
            self.due[req.need0 % self.block_size] -= 1
            req.blocks += self._started(req)
        steps = self.clock - req.join_step
        req.generated = req.g0 + steps
        req.epoch += 1
        return req.kv0 + steps

    # -- queries ---------------------------------------------------------
    def kv_entries(self) -> int:
        """KV entries the members hold now (between steps)."""
        return self._ctx_base + len(self.members) * self.clock

    def decode_ctx_tokens(self) -> int:
        """Sum of context lengths attended to in the next decode step."""
        return self._ctx_base + len(self.members) * (self.clock + 1)

    def blocks_held(self, req: Request) -> int:
        """KV blocks member ``req`` holds now: ``req.blocks`` counts those it held when it
        joined; the blocks it starts while decoding are added when it leaves."""
        if self.grows and self.counts_blocks and req.id in self.members:
            return req.blocks + self._started(req)
        return req.blocks

    def _started(self, req: Request) -> int:
        """Blocks member ``req`` started since it joined: at clock values need0, need0 + block_size, ...
        up to ``grown`` (or its last step)."""
        upto = min(self.grown, req.join_step + (req.output - req.g0))
        return (upto - req.need0) // self.block_size + 1 if upto >= req.need0 else 0

    def block_count(self, at: int | None = None) -> int:
        """Blocks the members start at clock value ``at`` (default: the next decode step's), one
        each at most, while none leaves (``counts_blocks`` sets only)."""
        if not self.grows:
            return 0
        return self.due[(self.clock + 1 if at is None else at) % self.block_size]

    def block_needers(self) -> list[Request]:
        """Members that start a new KV block in the next decode step, once per block
        (the slow path, when the pool is short and some must be preempted first)."""
        if not self.grows:
            return []
        nxt = self.clock + 1
        bs = self.block_size
        return [r for r in self.members.values() if r.need0 <= nxt and (nxt - r.need0) % bs == 0]

    def blocks_taken(self, needers: list[Request]) -> None:
        """``needers`` (:meth:`block_needers`, less the preempted) have their blocks for the next step."""
        if not self.counts_blocks:
            for r in needers:
                r.blocks += 1
        elif self.members:
            self.take_until(self.clock + 1)

    def next_finish(self) -> int | None:
        """The clock value of the next decode step that finishes a member, or None (no members)."""
        heap = self._finish
        while heap:
            _, _, e, req = heap[0]
            if e == req.epoch:
                return heap[0][0]
            heapq.heappop(heap)  # stale: decode_done would discard it too
        return None

    def block_counts(self, lo: int, hi: int) -> np.ndarray:
        """The blocks the members start at each clock value from ``lo`` to ``hi``, while
        none leaves (a decode run: only its last step may complete a member)."""
        cycle = np.array(self.block_cycle(lo), dtype=np.int64)
        n = hi - lo + 1
        return np.tile(cycle, -(-n // self.block_size))[:n]

    def block_cycle(self, lo: int) -> list[int]:
        """The blocks the members start at clock values ``lo`` to ``lo + block_size - 1``: one
        block's worth of :meth:`block_counts`, which repeats it while none leaves."""
        first = lo % self.block_size
        return self.due[first:] + self.due[:first]

    def blocks_between(self, lo: int, hi: int) -> int:
        """The sum of :meth:`block_counts` from ``lo`` to ``hi``: whole cycles, then the start of one."""
        n = hi - lo + 1
        cycle = self.block_cycle(lo)
        return (n // self.block_size) * sum(cycle) + sum(cycle[: n % self.block_size])

    def take_next(self, free: int) -> int | None:
        """The next decode step's new blocks, taken if they fit in ``free``: their count (the caller
        allocates them), or None, taking nothing, when they do not (``counts_blocks`` sets only).
        :meth:`block_count` and :meth:`take_until` in one call, as every decode step asks."""
        nxt = self.clock + 1
        n = self.due[nxt % self.block_size] if self.grows else 0
        if n > free:
            return None
        self.grown = nxt
        return n

    def take_until(self, until: int) -> None:
        """The members have their blocks up to clock value ``until`` (the next decode step's, or
        those of a decode run's steps as they start)."""
        self.grown = until

    def skip(self, steps: int, end: float) -> None:
        """What :meth:`decode_done` does for ``steps`` decode steps in which no member
        finishes, the last ending at ``end``."""
        self.clock += steps
        k = self.clock
        heap = self._finish
        while heap and heap[0][0] <= k:
            _, _, e, req = heapq.heappop(heap)
            assert e != req.epoch, "a decode run never skips past a member's last token"
        self.last_decode_end = end

    def newest(self) -> Request:
        """The member that arrived last (the higher id of a tie): vLLM's preemption victim. Looked
        for when asked, which is only under memory pressure, rather than kept in a heap every
        member joins (most runs never preempt)."""
        return max(self.members.values(), key=_arrival_order)

    # -- the step --------------------------------------------------------
    def draw_step(self) -> int:
        """Tokens the members emit in the next decode step: one each (see SpeculativeRunningSet)."""
        return len(self.members)

    def decode_done(self, now: float) -> tuple[Sequence[Request], float]:
        """Advance the clock after a decode step ending at ``now``.

        Returns the members that produced their last token and the gap since
        the previous decode step, which is the inter-token gap of every member
        that also decoded in that step (members that joined since then have
        their own gaps; the caller takes them from ``self.fresh``).
        """
        self.clock += 1
        k = self.clock
        heap = self._finish
        done: Sequence[Request] = ()  # (most steps finish no one: no list for them)
        if heap and heap[0][0] <= k:
            done = []
            while heap and heap[0][0] <= k:
                _, _, e, req = heapq.heappop(heap)
                if e == req.epoch:
                    done.append(req)
        gap = now - self.last_decode_end
        self.last_decode_end = now
        return done, gap


def _arrival_order(req: Request) -> tuple[float, int]:
    return (req.arrival_s, req.id)
