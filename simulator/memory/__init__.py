"""KV-cache memory managers (``memory.allocation``)."""

import warnings

from simulator.config.schema import ScenarioConfig
from simulator.memory.contiguous import CONTIGUOUS_ALLOCATORS, Buddy, ContiguousAllocator, FirstFit
from simulator.memory.paged import BlockManager, ReserveExact, ReserveMax, ReservePow2
from simulator.memory.placement import PLACED, ContiguousReservation
from simulator.memory.prefix import HOST, SSD, PrefixCachingBlockManager, Tier
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


def build_kv_manager(
    cfg: ScenarioConfig, pool: str, allocation: str, kv_blocks: int, block_bytes: float = 0.0, gpus: int = 1
) -> BlockManager:
    """One replica's KV manager: ``kv_blocks`` blocks in the ``allocation`` mode, caching prefixes
    with ``memory.prefix_caching`` (not on a decode pool, which receives KV and never prefills), over
    the offload tiers of ``memory.offload`` (``block_bytes``: one block's KV on the replica's ``gpus``);
    a reservation mode places its reservations as contiguous ranges with ``memory.contiguous_allocator``."""
    mem = cfg.memory
    kv_cls = ALLOCATIONS.get(allocation)
    max_model_len = mem.max_model_len or cfg.model.max_context
    if mem.contiguous_allocator is not None and kv_cls in PLACED:
        placed = PLACED[kv_cls]
        return placed(kv_blocks, mem.block_size, mem.watermark, max_model_len, allocator=mem.contiguous_allocator)
    if mem.prefix_caching and allocation == "paged" and pool != "decode":
        tiers = offload_tiers(cfg, block_bytes, gpus)
        return PrefixCachingBlockManager(kv_blocks, mem.block_size, mem.watermark, max_model_len, tiers, block_bytes)
    return kv_cls(kv_blocks, mem.block_size, mem.watermark, max_model_len)


def offload_tiers(cfg: ScenarioConfig, block_bytes: float, gpus: int) -> list[Tier]:
    """The host and SSD tiers of ``memory.offload`` for one replica (per-GPU figures times ``gpus``)."""
    off = cfg.memory.offload
    if not (off.host_gb or off.ssd_gb):
        return []
    if block_bytes <= 0:
        raise ValueError("memory.offload needs the bytes of one KV block to size its tiers")
    host_gbps = off.host_gbps if off.host_gbps is not None else cfg.hardware.host_link_gbps
    tiers = [
        Tier("host", HOST, int(off.host_gb * 1e9 * gpus // block_bytes), float(host_gbps) * 1e9 * gpus, off.host_latency_us * 1e-6),
        Tier("ssd", SSD, int(off.ssd_gb * 1e9 * gpus // block_bytes), float(off.ssd_gbps) * 1e9 * gpus, off.ssd_latency_us * 1e-6),
    ]
    for tier, gb in zip(tiers, (off.host_gb, off.ssd_gb)):
        if gb and tier.capacity == 0:
            warnings.warn(
                f"memory.offload.{tier.name}_gb={gb:g} holds no whole KV block ({block_bytes / 1e9 / gpus:.3g} GB per GPU "
                f"for this model): the {tier.name} tier is left out",
                stacklevel=2,
            )
    return tiers


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
