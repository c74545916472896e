"""Batching policies (``scheduler.policy``).

Importing this package registers every policy in ``SCHEDULERS``.
"""

from simulator.scheduling import chunked, continuous, inflight, static  # noqa: F401  (register)
from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler


def build_scheduler(cfg, replica) -> Scheduler:
    """The policy named by ``cfg.scheduler.policy``, for ``replica``."""
    return SCHEDULERS.get(cfg.scheduler.policy)(cfg, replica)


__all__ = ["SCHEDULERS", "Plan", "Scheduler", "build_scheduler"]
