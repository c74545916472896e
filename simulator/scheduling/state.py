"""What a scheduler sees of one replica: :class:`ReplicaState`.

The seam between a policy and the engine. A scheduler reads and changes only
this object: the waiting queue, the admitted requests (part-prefilled,
decoding, swapped out, held by a static batch), the KV manager, the clock,
and three operations - :meth:`~ReplicaState.admit`,
:meth:`~ReplicaState.preempt` and :meth:`~ReplicaState.swap_in`. The
replica (the engine's ``Replica``) owns one, hands it to its scheduler,
runs the SimPy loop around it and applies each step's effects to it; tests
can build one by hand, with no SimPy process, latency model or recorder.

The state is the container the replica itself uses (its queues and counters
live here, not in copies), so nothing is synchronised per step.
"""

from __future__ import annotations

import heapq
import math

from simulator.engine.queue import FifoQueue, TieredQueue
from simulator.engine.request import Request
from simulator.engine.running import RunningSet


class ReplicaState:
    """The scheduling state of one replica.

    ``clock`` is anything with a ``now`` attribute in seconds (the replica,
    whose time is its SimPy environment's unless it steps ahead of it).
    ``kv`` is a KV manager from :mod:`simulator.memory`. ``waiting`` defaults to a FIFO queue whose prefill work is not priced.
    ``swap_blocks`` is the host memory for swap preemption, in KV blocks, and
    ``block_bytes`` the size of one block (it prices the swap traffic).
    """

    __slots__ = (
        "clock",
        "pool",
        "kv",
        "waiting",
        "tiered",
        "prefilling",
        "running",
        "swapped",
        "held",
        "prefill_kv",
        "held_kv",
        "in_flight",
        "arriving",
        "swap_blocks",
        "swap_blocks_free",
        "block_bytes",
        "preempted",
        "swap_bytes",
        "admit_gap_s",
        "last_admit_s",
    )

    def __init__(
        self,
        clock,
        kv,
        waiting: FifoQueue | TieredQueue | None = None,
        *,
        pool: str = "mixed",
        swap_blocks: int = 0,
        block_bytes: float = 0.0,
        running: RunningSet | None = None,
    ):
        self.clock = clock
        self.pool = pool  # "prefill": only prompts' KV is ever held here
        self.kv = kv
        self.waiting = FifoQueue(_unpriced) if waiting is None else waiting
        self.tiered = isinstance(self.waiting, TieredQueue)  # priority tiers: victims by tier
        self.prefilling: dict[int, Request] = {}  # admitted, prompt not yet fully computed (admission order)
        self.running = RunningSet(kv.block_size, grows=kv.grows) if running is None else running  # decoding
        self.swapped: list[tuple[float, int, Request]] = []  # heap: oldest arrival first
        self.held: list[tuple[Request, int]] = []  # static batching: (request, KV entries), done, batch still running
        self.prefill_kv = 0  # KV entries of the prefilling requests
        self.held_kv = 0  # KV entries of the held requests
        self.in_flight = 0  # admitted requests holding KV here (prefilling, running, held)
        self.arriving = 0  # disaggregation: KV allocated here for a request still in transfer
        self.swap_blocks = swap_blocks  # host memory for swapped KV, in blocks
        self.swap_blocks_free = swap_blocks
        self.block_bytes = block_bytes
        # preemption effects since the replica last recorded a step
        self.preempted = 0
        self.swap_bytes = 0.0
        self.admit_gap_s = math.nan  # smoothed time between admissions (for wait prediction)
        self.last_admit_s = math.nan

    # -- the operations a policy performs ------------------------------------
    def admit(self, req: Request) -> None:
        """``req`` was taken from the queue and its first KV allocated: it starts prefilling."""
        now = self.clock.now
        if req.first_scheduled_s != req.first_scheduled_s:  # NaN: first admission
            req.first_scheduled_s = now
        last = self.last_admit_s
        if last == last:
            gap = self.admit_gap_s
            self.admit_gap_s = now - last if gap != gap else 0.9 * gap + 0.1 * (now - last)
        self.last_admit_s = now
        req.status = "prefilling"
        self.prefilling[req.id] = req
        self.prefill_kv += req.prefilled  # a prefix found in the cache is already stored
        self.in_flight += 1

    def preempt(self, req: Request, mode: str = "recompute") -> None:
        """Evict ``req`` (prefilling or running) to make room: ``swap`` parks its KV
        in host memory if it fits there, otherwise (and always for a partial
        prompt) its KV is dropped and it returns to the head of the queue.
        Its swap copy is priced in the next step."""
        running = self.running
        if req.id in self.prefilling:
            del self.prefilling[req.id]
            self.prefill_kv -= req.prefilled
            entries = req.prefilled
            mode = "recompute"  # a partial prompt is cheaper to redo than to swap
        else:
            if req.join_step < running.clock:  # it decoded since joining
                req.last_token_s = running.last_decode_end
            entries = running.remove(req)
        blocks = req.blocks
        self.kv.release_request(req)
        req.preemptions += 1
        self.preempted += 1
        self.in_flight -= 1
        if mode == "swap" and self._park(blocks):
            req.swapped_kv = entries
            req.swaps += 1
            req.status = "swapped"
            heapq.heappush(self.swapped, (req.arrival_s, req.id, req))
            self.swap_bytes += blocks * self.block_bytes
            return
        req.prefilled = 0
        req.target = req.prompt + req.generated
        req.redo = entries
        req.status = "waiting"
        self.waiting.appendleft(req)

    def _park(self, blocks: int) -> bool:
        """Room for a swapped-out request's ``blocks`` in host memory: the offload host tier when there is
        one (memory.offload.host_gb, shared with offloaded prefix blocks), else the swap space."""
        if self.kv.parks_swaps:
            return self.kv.park(blocks)
        if blocks > self.swap_blocks_free:
            return False
        self.swap_blocks_free -= blocks
        return True

    def swap_in(self) -> Request:
        """Bring the oldest swapped request back to the running set (its blocks
        are already allocated, in ``req.blocks``)."""
        _, _, req = heapq.heappop(self.swapped)
        blocks = req.blocks
        if self.kv.parks_swaps:
            self.kv.unpark(blocks)
        else:
            self.swap_blocks_free += blocks
        self.in_flight += 1
        self.running.add(req, req.swapped_kv)
        self.swap_bytes += blocks * self.block_bytes
        return req


def _unpriced(req: Request) -> float:
    return 0.0
