"""Paged KV-cache memory (vLLM's PagedAttention block manager).

The cache is a pool of fixed-size blocks of ``memory.block_size`` tokens.
A request holds ceil(tokens / block_size) blocks; a new block is taken only
when a token starts one, so waste is below one block per request. Admission
keeps ``memory.watermark`` of the pool free (as vLLM does) so that running
requests can still grow right after a burst of prefills.
"""

from __future__ import annotations


class BlockManager:
    def __init__(self, total_blocks: int, block_size: int, watermark: float = 0.0):
        if total_blocks <= 0:
            raise ValueError("the KV cache must hold at least one block")
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.free = self.total
        self.watermark_blocks = int(watermark * self.total)
        self.peak_used = 0

    @property
    def used(self) -> int:
        return self.total - self.free

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def can_admit(self, blocks: int) -> bool:
        """Whether a new request needing ``blocks`` may be admitted now."""
        return self.free - blocks >= self.watermark_blocks

    def ever_fits(self, tokens: int) -> bool:
        """Whether a request that grows to ``tokens`` can run even alone."""
        return self.blocks_for(tokens) <= self.total - self.watermark_blocks

    def allocate(self, blocks: int) -> None:
        if blocks > self.free:
            raise RuntimeError(f"KV allocation of {blocks} blocks with only {self.free} free")
        self.free -= blocks
        used = self.total - self.free
        if used > self.peak_used:
            self.peak_used = used

    def release(self, blocks: int) -> None:
        self.free += blocks
        if self.free > self.total:
            raise RuntimeError("released more KV blocks than were allocated")
