"""KV-cache memory managers.

The cache is a pool of fixed-size blocks of ``memory.block_size`` tokens.
Managers differ in *how much* they take for a request and *when*:

``paged`` (vLLM's PagedAttention)
    ceil(tokens / block_size) blocks, taken as tokens are produced, so waste
    is below one block per request.
``reserve_max``
    At admission, the whole ``memory.max_model_len`` (prompt + the most
    output the engine allows), as FasterTransformer and Orca-era engines did.
``reserve_pow2``
    At admission, prompt + the next power of two of the request's actual
    output length (bucketed reservation with an output-length oracle).
``reserve_exact``
    At admission, prompt + exact output length - 1 (the oracle bound: the
    least a contiguous reservation could take).

Contiguous reservations are counted in blocks too (rounded up). By default
external fragmentation is not modelled: any free blocks can hold a
reservation. ``memory.contiguous_allocator`` (``first_fit``, ``buddy``)
places each reservation as one range of the pool instead
(:mod:`simulator.memory.placement`, docs/levers/fragmentation.md).
Admission keeps ``memory.watermark`` of the pool free (as vLLM does) so
running requests can still grow right after a burst of prefills.
"""

from __future__ import annotations

from typing import Any

from simulator.errors import ConfigError
from simulator.memory.contiguous import CONTIGUOUS_ALLOCATORS
from simulator.registry import Component


class BlockManager(Component):
    """Paged allocation: blocks follow the tokens actually stored. Each allocation mode
    registers under ``memory.allocation`` (:data:`simulator.memory.ALLOCATIONS`)."""

    grows = True  # running requests take new blocks as they produce tokens
    caches_prefixes = False
    load_s = 0.0  # KV copy time owed by the next step (prefix blocks loaded from offload tiers)
    parks_swaps = False  # True: swapped-out KV parks in an offload host tier (park/unpark), not in swap space

    @classmethod
    def check(cls, spec: Any, key: str) -> None:
        """``memory.contiguous_allocator`` names a known allocator, and only for a reservation mode."""
        name = getattr(spec, "contiguous_allocator", None)
        if name is None:
            return
        if name not in CONTIGUOUS_ALLOCATORS:
            raise ConfigError(
                f"{key}.contiguous_allocator={name!r} is not a known contiguous allocator; "
                f"choose one of: {', '.join(CONTIGUOUS_ALLOCATORS.names())}, or null (capacity counted in blocks)."
            )
        if cls.grows:
            raise ConfigError(
                f"{key}.contiguous_allocator={name} places each reservation of a reserve_* mode as one contiguous "
                f"range, but {key}.allocation={cls.name} has no contiguous ranges (its blocks are taken one at a "
                f"time, anywhere in the pool). Use {key}.allocation=reserve_max, reserve_pow2 or reserve_exact "
                f"(scheduler=static reads paged as reserve_max: set it explicitly), or {key}.contiguous_allocator=null."
            )

    def __init__(self, total_blocks: int, block_size: int, watermark: float = 0.0, max_model_len: int = 0):
        if total_blocks <= 0:
            raise ValueError("the KV cache must hold at least one block")
        self.total = int(total_blocks)
        self.block_size = int(block_size)
        self.free = self.total
        self.watermark_blocks = int(watermark * self.total)
        self.max_model_len = int(max_model_len)

    @property
    def used(self) -> int:
        return self.total - self.free

    #: whether this mode reserves ahead of the tokens or counts blocks its own way (it overrides
    #: :meth:`reservation` or :meth:`blocks_for`; set for each subclass): else the block count of
    #: :meth:`blocks_to_hold` and :meth:`ever_fits` is inlined (asked three times for every request)
    reserves = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.reserves = cls.reservation is not BlockManager.reservation or cls.blocks_for is not BlockManager.blocks_for

    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def reservation(self, req) -> int:
        """Tokens reserved for ``req`` at admission (0: none, blocks follow tokens)."""
        return 0

    def blocks_to_hold(self, req, tokens: int) -> int:
        """Extra blocks ``req`` needs so that it can hold ``tokens`` KV entries."""
        if self.reserves:
            need = self.blocks_for(max(tokens, self.reservation(req))) - req.blocks
        else:  # (blocks_for, inlined: no reservation)
            need = -(-tokens // self.block_size) - req.blocks
        return need if need > 0 else 0

    # -- admission and release (overridden by prefix caching) -------------------
    def cached_tokens(self, req) -> int:
        """Prompt tokens of ``req`` that admission would find already computed."""
        return 0

    def admit_cost(self, req, tokens: int) -> int:
        """Free blocks ``req`` would consume to hold ``tokens`` KV entries."""
        return self.blocks_to_hold(req, tokens)

    def admit(self, req, tokens: int) -> None:
        """Give ``req`` the blocks to hold ``tokens`` KV entries (after ``admit_cost`` fitted)."""
        blocks = self.blocks_to_hold(req, tokens)
        self.allocate(blocks)
        req.blocks += blocks

    def register(self, req) -> None:
        """``req``'s prompt is computed (prefix caching registers its blocks)."""

    def release_request(self, req) -> None:
        """Return every block ``req`` holds."""
        self.release(req.blocks)
        req.blocks = 0

    def can_admit(self, blocks: int) -> bool:
        """Whether a new request needing ``blocks`` may be admitted now."""
        return self.free - blocks >= self.watermark_blocks

    def ever_fits(self, req, tokens: int | None = None) -> bool:
        """Whether ``req`` can run to completion even alone (holding at most
        ``tokens`` KV entries here; default: its longest, prompt + output - 1)."""
        tokens = req.max_kv_tokens if tokens is None else tokens
        blocks = self.blocks_for(max(tokens, self.reservation(req))) if self.reserves else -(-tokens // self.block_size)
        return blocks <= self.total - self.watermark_blocks

    def allocate(self, blocks: int) -> None:
        if blocks > self.free:
            raise RuntimeError(f"KV allocation of {blocks} blocks with only {self.free} free")
        self.free -= blocks

    def release(self, blocks: int) -> None:
        self.free += blocks
        if self.free > self.total:
            raise RuntimeError("released more KV blocks than were allocated")


class ReserveMax(BlockManager):
    grows = False

    def reservation(self, req) -> int:
        return self.max_model_len


class ReservePow2(BlockManager):
    grows = False

    def reservation(self, req) -> int:
        return min(req.prompt + (1 << (req.output - 1).bit_length()), self.max_model_len)


class ReserveExact(BlockManager):
    grows = False

    def reservation(self, req) -> int:
        return req.prompt + req.output - 1
