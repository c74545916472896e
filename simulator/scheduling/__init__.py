"""Batching policies (``scheduler.policy``).

Importing this package registers every policy in ``SCHEDULERS``.
"""

from simulator.scheduling import continuous  # noqa: F401  (register)
from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler


def build_scheduler(cfg, replica) -> Scheduler:
    return SCHEDULERS.get(cfg.scheduler.policy)(cfg, replica)


__all__ = ["SCHEDULERS", "Plan", "Scheduler", "build_scheduler"]
