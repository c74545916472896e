"""Batching policies (``scheduler.policy``).

Importing this package registers every policy in ``SCHEDULERS``. A policy
sees one replica only through a :class:`ReplicaState` (see
:mod:`simulator.scheduling.state`).
"""

from simulator.config.schema import ScenarioConfig
from simulator.scheduling import chunked, continuous, inflight, static  # noqa: F401  (register)
from simulator.scheduling.base import SCHEDULERS, Plan, Scheduler
from simulator.scheduling.state import ReplicaState


def build_scheduler(cfg: ScenarioConfig, state: ReplicaState) -> Scheduler:
    """The policy named by ``cfg.scheduler.policy``, planning on ``state``."""
    return SCHEDULERS.get(cfg.scheduler.policy)(cfg, state)


__all__ = ["SCHEDULERS", "Plan", "ReplicaState", "Scheduler", "build_scheduler"]
