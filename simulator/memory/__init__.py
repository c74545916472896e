"""KV-cache memory managers (``memory.allocation``)."""

from simulator.memory.paged import BlockManager
from simulator.registry import Registry

ALLOCATIONS: Registry = Registry("memory.allocation", "KV allocation mode")
ALLOCATIONS.register("paged")(BlockManager)

__all__ = ["BlockManager", "ALLOCATIONS"]
