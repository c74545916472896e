"""KV-cache memory managers (``memory.allocation``)."""

from simulator.memory.paged import BlockManager, ReserveExact, ReserveMax, ReservePow2
from simulator.memory.prefix import PrefixCachingBlockManager
from simulator.registry import Registry

ALLOCATIONS: Registry[type[BlockManager]] = Registry("memory.allocation", "KV allocation mode")
ALLOCATIONS.register("paged")(BlockManager)
ALLOCATIONS.register("reserve_max")(ReserveMax)
ALLOCATIONS.register("reserve_pow2")(ReservePow2)
ALLOCATIONS.register("reserve_exact")(ReserveExact)

__all__ = ["ALLOCATIONS", "BlockManager", "ReserveMax", "ReservePow2", "ReserveExact", "PrefixCachingBlockManager"]
