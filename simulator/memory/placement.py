"""Reservation modes that place each reservation as one contiguous range
(``memory.allocation=reserve_*`` with ``memory.contiguous_allocator`` set).

Without ``memory.contiguous_allocator`` a ``reserve_*`` manager counts its
pool in blocks: any free blocks can hold a reservation, so only internal
waste (reserved but never written) is modelled. Here each reservation also
needs one free range of the pool, placed by a
:class:`~simulator.memory.contiguous.ContiguousAllocator`: a request whose
reservation finds no range long enough waits at the head of the queue like
any admission that lacks memory, even when the free blocks added up would
hold it (external fragmentation). ``buddy`` also rounds each reservation up
to a power of two blocks, and those blocks count as used.

How much each request reserves is the mode's (:mod:`simulator.memory.paged`);
only the placement changes. Reservations never grow, so after admission no
request asks for more blocks; the watermark applies as without an allocator.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from simulator.memory.contiguous import CONTIGUOUS_ALLOCATORS, ContiguousAllocator
from simulator.memory.paged import BlockManager, ReserveExact, ReserveMax, ReservePow2

if TYPE_CHECKING:
    from simulator.engine.request import Request

Stat = int | float | str


class ContiguousReservation(BlockManager):
    """A ``reserve_*`` manager whose reservations are ranges placed by a contiguous allocator.

    Concrete classes mix it with a reservation mode (``ContiguousReserveMax`` ...),
    which supplies :meth:`reservation`.
    """

    grows = False

    def __init__(
        self,
        total_blocks: int,
        block_size: int,
        watermark: float = 0.0,
        max_model_len: int = 0,
        allocator: str = "first_fit",
    ) -> None:
        super().__init__(total_blocks, block_size, watermark, max_model_len)
        self.allocator: ContiguousAllocator = CONTIGUOUS_ALLOCATORS.get(allocator)(self.total)
        self._owned: dict[int, int] = {}  # request id -> start of its range
        # ranges taken through allocate(blocks) without a request (a transfer onto a decode
        # replica, a swap-in): blocks asked -> starts, oldest first; a request gives one back
        # by its block count when it ends
        self._anonymous: dict[int, deque[int]] = {}
        self._asking: int | None = None  # the request whose admission cost was last asked
        # counters for stats()
        self.placements = 0
        self.asked_blocks = 0  # blocks the reservations asked for
        self.taken_blocks = 0  # ... and took (buddy rounds up)
        self.refusals = 0  # admission checks refused for want of a range while enough blocks were free
        self.blocked: set[int] = set()  # requests refused so at least once
        self._frag_sum = 0.0
        self._frag_samples = 0
        self.fragmentation_max = 0.0

    # -- admission -----------------------------------------------------------
    def admit_cost(self, req: Request, tokens: int) -> int:
        """Free blocks ``req`` would take to hold ``tokens`` KV entries (rounded as the allocator places them)."""
        self._asking = req.id
        return self.allocator.size_for(self.blocks_to_hold(req, tokens))

    def can_admit(self, blocks: int) -> bool:
        """Above the watermark, as without an allocator, and a free range holds ``blocks`` now."""
        asking, self._asking = self._asking, None
        taken = self.allocator.size_for(blocks)
        if self.free - taken < self.watermark_blocks:
            return False
        if taken and not self.allocator.fits(taken):
            self.refusals += 1
            if asking is not None:
                self.blocked.add(asking)
            return False
        return True

    def ever_fits(self, req: Request, tokens: int | None = None) -> bool:
        """Whether ``req``'s reservation fits an empty pool: within the watermark, and in one range."""
        tokens = req.max_kv_tokens if tokens is None else tokens
        taken = self.allocator.size_for(self.blocks_for(max(tokens, self.reservation(req))))
        return taken <= self.total - self.watermark_blocks and taken <= self.allocator.capacity()

    def admit(self, req: Request, tokens: int) -> None:
        """Place ``req``'s reservation (after ``admit_cost`` and ``can_admit`` said it fits)."""
        blocks = self.blocks_to_hold(req, tokens)
        if blocks == 0:
            return
        if req.id in self._owned:
            raise RuntimeError(f"request {req.id} already holds a contiguous reservation, which cannot grow")
        start = self._place(blocks)
        self._owned[req.id] = start
        req.blocks += self.allocator.taken(start)

    def release_request(self, req: Request) -> None:
        """Free ``req``'s range (its own, or one taken for it by block count)."""
        start = self._owned.pop(req.id, None)
        if start is not None:
            self._unplace(start)
        elif req.blocks:
            self.release(req.blocks)
        req.blocks = 0

    # -- the count interface (callers that hold no request) -------------------
    def allocate(self, blocks: int) -> None:
        """Place a range of ``blocks`` for a request that claims it later by its block count."""
        self._anonymous.setdefault(blocks, deque()).append(self._place(blocks))

    def release(self, blocks: int) -> None:
        """Free the oldest range taken by :meth:`allocate` for ``blocks`` blocks."""
        starts = self._anonymous.get(blocks)
        if not starts:
            raise RuntimeError(f"released a KV range of {blocks} blocks that was never allocated")
        self._unplace(starts.popleft())

    # -- placement -------------------------------------------------------------
    def _place(self, blocks: int) -> int:
        start = self.allocator.allocate(blocks)
        if start is None:
            raise RuntimeError(
                f"KV allocation of {blocks} blocks found no free range (largest {self.allocator.largest_free()}, "
                f"{self.free} blocks free)"
            )
        taken = self.allocator.taken(start)
        self.free -= taken
        self.placements += 1
        self.asked_blocks += blocks
        self.taken_blocks += taken
        self._sample()
        return start

    def _unplace(self, start: int) -> None:
        self.free += self.allocator.release(start)
        self._sample()

    def _sample(self) -> None:
        frag = self.allocator.fragmentation()
        self._frag_sum += frag
        self._frag_samples += 1
        if frag > self.fragmentation_max:
            self.fragmentation_max = frag

    def stats(self) -> dict[str, Stat]:
        """What placement cost: refusals for want of a range, rounding, and external fragmentation
        (1 - longest free range / free blocks) sampled at every placement and release."""
        alloc = self.allocator
        return {
            "allocator": alloc.name,
            "placements": self.placements,
            "fragmentation_refusals": self.refusals,
            "requests_delayed_by_fragmentation": len(self.blocked),
            "rounding_blocks": self.taken_blocks - self.asked_blocks,
            "rounding_share": 1 - self.asked_blocks / self.taken_blocks if self.taken_blocks else 0.0,
            "external_fragmentation_mean": self._frag_sum / self._frag_samples if self._frag_samples else 0.0,
            "external_fragmentation_max": self.fragmentation_max,
            "largest_free_range_at_end": alloc.largest_free(),
            "free_ranges_at_end": len(alloc.free_ranges()),
        }


class ContiguousReserveMax(ContiguousReservation, ReserveMax):
    """``reserve_max`` placed as contiguous ranges."""


class ContiguousReservePow2(ContiguousReservation, ReservePow2):
    """``reserve_pow2`` placed as contiguous ranges."""


class ContiguousReserveExact(ContiguousReservation, ReserveExact):
    """``reserve_exact`` placed as contiguous ranges."""


#: the placed variant of each reservation mode
PLACED: dict[type[BlockManager], type[ContiguousReservation]] = {
    ReserveMax: ContiguousReserveMax,
    ReservePow2: ContiguousReservePow2,
    ReserveExact: ContiguousReserveExact,
}
