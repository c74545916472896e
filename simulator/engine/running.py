"""The set of requests in their decode phase on one replica.

Every decode step gives each member one token. Instead of touching every
member each step, the set keeps a *decode clock* (how many decode steps the
replica has run) and derives each member's progress from the clock value at
which it joined:

    generated(k) = g0 + (k - join_step)        kv_entries(k) = kv0 + (k - join_step)

Three heaps keyed by clock value say which members finish at a step, which
need a new KV block before a step, and which member is the newest (the
preemption victim). Entries are invalidated lazily with a per-request epoch.
So a decode step costs O(log n) per *event* (finish, new block) rather than
O(n) per step, and the sum of context lengths that the latency model needs is
one multiplication.
"""

from __future__ import annotations

import heapq

from simulator.engine.request import Request


class RunningSet:
    def __init__(self, block_size: int, grows: bool = True):
        self.block_size = block_size
        self.grows = grows  # paged KV: members take a block whenever a token starts one
        self.members: dict[int, Request] = {}
        self.clock = 0  # decode steps completed
        self._finish: list[tuple[int, int, int, Request]] = []
        self._blocks: list[tuple[int, int, int, Request]] = []
        self._newest: list[tuple[float, int, int, Request]] = []
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
            first_need = k + 1 + (-(-kv_entries // bs)) * bs - kv_entries
            if first_need <= last:
                heapq.heappush(self._blocks, (first_need, req.id, e, req))
        heapq.heappush(self._newest, (-req.arrival_s, -req.id, e, req))
        self.fresh.append((req, e))

    def remove(self, req: Request) -> int:
        """Take ``req`` out (finished or preempted); its heap entries go stale.

        Updates ``req.generated`` and returns the KV entries it holds now.
        """
        del self.members[req.id]
        self._ctx_base -= req.kv0 - req.join_step
        if len(self._newest) > 2 * len(self.members) + 64:  # let go of the requests that left (and their memory)
            self._prune_newest()
        steps = self.clock - req.join_step
        req.generated = req.g0 + steps
        req.epoch += 1
        return req.kv0 + steps

    def _prune_newest(self) -> None:
        members = self.members
        live = [x for x in self._newest if x[2] == x[3].epoch and x[3].id in members]
        heapq.heapify(live)
        self._newest = live

    # -- queries ---------------------------------------------------------
    def kv_entries(self) -> int:
        """KV entries the members hold now (between steps)."""
        return self._ctx_base + len(self.members) * self.clock

    def decode_ctx_tokens(self) -> int:
        """Sum of context lengths attended to in the next decode step."""
        return self._ctx_base + len(self.members) * (self.clock + 1)

    def block_needers(self) -> list[Request]:
        """Members that start a new KV block in the next decode step (popped)."""
        nxt = self.clock + 1
        heap = self._blocks
        out = []
        while heap and heap[0][0] <= nxt:
            step, _, e, req = heapq.heappop(heap)
            if e != req.epoch:
                continue
            out.append(req)
            following = step + self.block_size
            if following <= req.join_step + (req.output - req.g0):
                heapq.heappush(heap, (following, req.id, e, req))
        return out

    def next_finish(self) -> int | None:
        """The clock value of the next decode step that finishes a member, or None (no members)."""
        heap = self._finish
        while heap:
            _, _, e, req = heap[0]
            if e == req.epoch:
                return heap[0][0]
            heapq.heappop(heap)  # stale: decode_done would discard it too
        return None

    def block_needs(self, lo: int, hi: int) -> list[int]:
        """The clock values from ``lo`` to ``hi`` at which members start a new KV block:
        one entry per block (what :meth:`block_needers` will return step by step), unsorted."""
        bs = self.block_size
        out: list[int] = []
        for step, _, e, req in self._blocks:
            if e != req.epoch or step > hi:
                continue
            last = min(hi, req.join_step + (req.output - req.g0))
            if step < lo:
                step += -(-(lo - step) // bs) * bs
            if step <= last:
                out.extend(range(step, last + 1, bs))
        return out

    def take_blocks(self, until: int) -> list[int]:
        """What :meth:`block_needers` does step by step up to clock value ``until``, at once:
        each member gets its blocks (``req.blocks``); returns the clock value of every block taken."""
        bs = self.block_size
        heap = self._blocks
        taken: list[int] = []
        later = []
        while heap and heap[0][0] <= until:
            step, rid, e, req = heapq.heappop(heap)
            if e != req.epoch:
                continue
            last = req.join_step + (req.output - req.g0)
            stop = min(until, last)
            n = (stop - step) // bs + 1
            taken.extend(range(step, stop + 1, bs))
            req.blocks += n
            following = step + n * bs
            if following <= last:
                later.append((following, rid, e, req))
        for entry in later:
            heapq.heappush(heap, entry)
        return taken

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
        """The member that arrived last: vLLM's preemption victim."""
        heap = self._newest
        while True:
            _, _, e, req = heap[0]
            if e == req.epoch and req.id in self.members:
                return req
            heapq.heappop(heap)

    # -- the step --------------------------------------------------------
    def draw_step(self) -> int:
        """Tokens the members emit in the next decode step: one each (see SpeculativeRunningSet)."""
        return len(self.members)

    def decode_done(self, now: float) -> tuple[list[Request], float]:
        """Advance the clock after a decode step ending at ``now``.

        Returns the members that produced their last token and the gap since
        the previous decode step, which is the inter-token gap of every member
        that also decoded in that step (members that joined since then have
        their own gaps; the caller takes them from ``self.fresh``).
        """
        self.clock += 1
        k = self.clock
        heap = self._finish
        done = []
        while heap and heap[0][0] <= k:
            _, _, e, req = heapq.heappop(heap)
            if e == req.epoch:
                done.append(req)
        gap = now - self.last_decode_end
        self.last_decode_end = now
        return done, gap
