"""KV-cache memory managers (``memory.allocation``)."""

from simulator.config.schema import ScenarioConfig
from simulator.memory.contiguous import CONTIGUOUS_ALLOCATORS, Buddy, ContiguousAllocator, FirstFit
from simulator.memory.paged import BlockManager, ReserveExact, ReserveMax, ReservePow2
from simulator.memory.placement import PLACED, ContiguousReservation
from simulator.memory.prefix import PrefixCachingBlockManager
from simulator.registry import Registry

ALLOCATIONS: Registry[type[BlockManager]] = Registry("memory.allocation", "KV allocation mode")
ALLOCATIONS.register("paged")(BlockManager)
ALLOCATIONS.register("reserve_max")(ReserveMax)
ALLOCATIONS.register("reserve_pow2")(ReservePow2)
ALLOCATIONS.register("reserve_exact")(ReserveExact)


def kv_allocation(cfg: ScenarioConfig, pool: str, requires_reservation: bool) -> str:
    """The allocation mode replicas of ``pool`` use: ``memory.allocation``, except that a prefill
    pool only ever holds prompts until their transfer (paged), and a request-level scheduler
    (``requires_reservation``) reserves up front (a growing mode becomes ``reserve_max``)."""
    allocation = cfg.memory.allocation
    if pool == "prefill":
        return "paged"
    if requires_reservation and ALLOCATIONS.get(allocation).grows:
        return "reserve_max"
    return allocation


def build_kv_manager(cfg: ScenarioConfig, pool: str, allocation: str, kv_blocks: int) -> BlockManager:
    """One replica's KV manager: ``kv_blocks`` blocks in the ``allocation`` mode, caching prefixes
    with ``memory.prefix_caching`` (not on a decode pool, which receives KV and never prefills); a
    reservation mode places its reservations as contiguous ranges with ``memory.contiguous_allocator``."""
    mem = cfg.memory
    kv_cls = ALLOCATIONS.get(allocation)
    max_model_len = mem.max_model_len or cfg.model.max_context
    if mem.contiguous_allocator is not None and kv_cls in PLACED:
        placed = PLACED[kv_cls]
        return placed(kv_blocks, mem.block_size, mem.watermark, max_model_len, allocator=mem.contiguous_allocator)
    if mem.prefix_caching and allocation == "paged" and pool != "decode":
        kv_cls = PrefixCachingBlockManager
    return kv_cls(kv_blocks, mem.block_size, mem.watermark, max_model_len)


__all__ = [
    "ALLOCATIONS",
    "CONTIGUOUS_ALLOCATORS",
    "BlockManager",
    "Buddy",
    "ContiguousAllocator",
    "ContiguousReservation",
    "FirstFit",
    "ReserveMax",
    "ReservePow2",
    "ReserveExact",
    "PrefixCachingBlockManager",
    "build_kv_manager",
    "kv_allocation",
]
