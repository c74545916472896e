"""Contiguous allocators over a fixed pool of KV blocks (``memory.contiguous_allocator``).

Engines before PagedAttention (FasterTransformer, Orca) kept each request's
KV cache as one contiguous tensor slice, reserved at admission. The pool is
then a line of ``total`` blocks, and each reservation needs one free *range*
of adjacent blocks: free space splits into holes between live reservations
(external fragmentation), and a request can wait although the free blocks,
added up, would hold it. Two placement policies:

``first_fit``
    A free list of ranges in address order; a reservation takes the low end
    of the first range long enough. A freed range merges with free
    neighbours on either side (coalescing), so a pool that empties is one
    range again.
``buddy``
    A binary buddy allocator: a reservation of n blocks takes a block of
    2^ceil(log2 n) (the rounding is internal waste of the allocator), split
    from the smallest free block large enough, halving it and freeing the
    other halves; a freed block merges with its buddy (the other half of
    the same parent) while that one is free, up the orders. A pool that is
    not a power of two is tiled from address 0 by its binary digits
    (28,089 = 16,384 + 8,192 + 2,048 + ...), the top-level blocks, which
    never merge with each other: the largest reservation is the largest
    top-level block.

Both are deterministic (lowest address first). Neither moves a live
reservation: no compaction, no defragmentation.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from bisect import bisect_left, insort
from typing import ClassVar

from simulator.registry import Component, Registry


class ContiguousAllocator(Component, ABC):
    """Places ranges of blocks in a pool of ``total`` blocks, each at a start offset it returns."""

    #: one sentence for docs and messages
    describe: ClassVar[str] = ""

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError("a contiguous pool must hold at least one block")
        self.total = int(total)
        self.free_blocks = self.total
        self._taken: dict[int, int] = {}  # start -> blocks taken (after rounding)

    # -- queries -----------------------------------------------------------
    def size_for(self, blocks: int) -> int:
        """Blocks a reservation of ``blocks`` takes (after the allocator's rounding)."""
        return int(blocks)

    def capacity(self) -> int:
        """The largest reservation an empty pool can place."""
        return self.total

    @abstractmethod
    def largest_free(self) -> int:
        """The longest free range now (0 when the pool is full)."""

    @abstractmethod
    def free_ranges(self) -> list[tuple[int, int]]:
        """The free ranges as ``(start, length)`` in address order."""

    def fits(self, blocks: int) -> bool:
        """Whether a reservation of ``blocks`` could be placed now."""
        return 0 < self.size_for(blocks) <= self.largest_free()

    def fragmentation(self) -> float:
        """External fragmentation now: 1 - longest free range / free blocks (0: free space is one range)."""
        if self.free_blocks == 0:
            return 0.0
        return 1.0 - self.largest_free() / self.free_blocks

    def taken(self, start: int) -> int:
        """Blocks the live reservation at ``start`` holds."""
        return self._taken[start]

    # -- changes -----------------------------------------------------------
    def allocate(self, blocks: int) -> int | None:
        """Place a reservation of ``blocks``: its start, or None when no free range fits."""
        size = self.size_for(blocks)
        if size <= 0:
            raise ValueError(f"a reservation needs at least one block (got {blocks})")
        start = self._place(size)
        if start is None:
            return None
        self._taken[start] = size
        self.free_blocks -= size
        return start

    def release(self, start: int) -> int:
        """Free the reservation at ``start``; returns the blocks it held."""
        size = self._taken.pop(start, None)
        if size is None:
            raise RuntimeError(f"no reservation starts at block {start}")
        self._unplace(start, size)
        self.free_blocks += size
        return size

    @abstractmethod
    def _place(self, size: int) -> int | None:
        """Take a free range of ``size`` blocks; its start, or None when none is long enough."""

    @abstractmethod
    def _unplace(self, start: int, size: int) -> None:
        """Give the range back (merging it with free neighbours as the allocator does)."""


class FirstFit(ContiguousAllocator):
    describe = "a free list of ranges in address order; the first range that fits, coalesced on free"

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self._starts: list[int] = [0]  # free range starts, ascending
        self._length: dict[int, int] = {0: self.total}  # free range start -> length
        self._largest: int | None = self.total  # cache; None = recompute

    def largest_free(self) -> int:
        if self._largest is None:
            self._largest = max(self._length.values(), default=0)
        return self._largest

    def free_ranges(self) -> list[tuple[int, int]]:
        return [(s, self._length[s]) for s in self._starts]

    def _place(self, size: int) -> int | None:
        if size > self.largest_free():
            return None
        for i, start in enumerate(self._starts):
            length = self._length[start]
            if length < size:
                continue
            del self._length[start]
            if length == size:
                del self._starts[i]
            else:  # keep the high end free
                self._starts[i] = start + size
                self._length[start + size] = length - size
            if length == self._largest:
                self._largest = None
            return start
        raise AssertionError("largest_free() promised a range that fits")

    def _unplace(self, start: int, size: int) -> None:
        starts, length = self._starts, self._length
        i = bisect_left(starts, start)
        end = start + size
        if i < len(starts) and starts[i] == end:  # merge with the free range just after
            size += length.pop(end)
            del starts[i]
        if i > 0 and starts[i - 1] + length[starts[i - 1]] == start:  # ... and the one just before
            start = starts[i - 1]
            size += length[start]
        else:
            starts.insert(i, start)
        length[start] = size
        if self._largest is not None and size > self._largest:
            self._largest = size


class Buddy(ContiguousAllocator):
    describe = "a binary buddy allocator: power-of-two blocks, split on allocation and merged with free buddies"

    def __init__(self, total: int) -> None:
        super().__init__(total)
        self.max_order = self.total.bit_length() - 1
        self._free: list[list[int]] = [[] for _ in range(self.max_order + 1)]  # order -> free starts, ascending
        start = 0
        for order in range(self.max_order, -1, -1):  # the top-level blocks: the binary digits of total
            if self.total >> order & 1:
                self._free[order].append(start)
                start += 1 << order

    @staticmethod
    def order_of(blocks: int) -> int:
        """The order of the smallest buddy block holding ``blocks`` (ceil(log2 blocks))."""
        return max(int(blocks) - 1, 0).bit_length()

    def size_for(self, blocks: int) -> int:
        return 1 << self.order_of(blocks) if blocks > 0 else 0

    def capacity(self) -> int:
        return 1 << self.max_order

    def largest_free(self) -> int:
        for order in range(self.max_order, -1, -1):
            if self._free[order]:
                return 1 << order
        return 0

    def free_ranges(self) -> list[tuple[int, int]]:
        """The free buddy blocks as ``(start, length)`` in address order (adjacent ones that are
        not buddies stay separate: they cannot hold one reservation together)."""
        return sorted((s, 1 << order) for order, starts in enumerate(self._free) for s in starts)

    def _place(self, size: int) -> int | None:
        want = self.order_of(size)
        order = next((o for o in range(want, self.max_order + 1) if self._free[o]), None)
        if order is None:
            return None
        start = self._free[order].pop(0)  # the lowest address
        while order > want:  # split: keep the low half, free the high half (its buddy)
            order -= 1
            insort(self._free[order], start + (1 << order))
        return start

    def _unplace(self, start: int, size: int) -> None:
        order = self.order_of(size)
        while order < self.max_order:
            buddy = start ^ (1 << order)
            free = self._free[order]
            i = bisect_left(free, buddy)
            if i == len(free) or free[i] != buddy:
                break
            del free[i]  # merge with the free buddy into their parent
            start = min(start, buddy)
            order += 1
        insort(self._free[order], start)


CONTIGUOUS_ALLOCATORS: Registry[type[ContiguousAllocator]] = Registry(
    "memory.contiguous_allocator", "contiguous allocator"
)
CONTIGUOUS_ALLOCATORS.register("first_fit")(FirstFit)
CONTIGUOUS_ALLOCATORS.register("buddy")(Buddy)
