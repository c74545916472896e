"""The autoscaler (``cluster.autoscaler``): Kubernetes HPA's rule on one replica group.

Every ``interval_s`` it reads a load metric averaged over the group's
serving replicas (each an :class:`AutoscalerMetric` registered under its
``cluster.autoscaler.metric`` name in :data:`SCALING_METRICS`):

``queue``      requests waiting per replica
``requests``   requests waiting or running per replica (vLLM's num_requests_*)
``kv_usage``   fraction of KV blocks in use

and recommends ``ceil(serving x metric / target)`` replicas, clamped to
[``min_replicas``, ``max_replicas``] (no change while metric / target is
within 10% of 1, HPA's tolerance). Recommendations are stabilised: it
scales *up* to the lowest recommendation of the last ``up_window_s`` and
*down* to the highest of the last ``down_window_s``, so one quiet interval
does not drop capacity a burst will need again. New replicas pay the cold
start before they serve (see :mod:`simulator.cluster.fleet`); removed ones
stop taking requests and finish what they hold first.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Generator
from typing import TYPE_CHECKING

import simpy

from simulator.cluster.fleet import Fleet, Pool
from simulator.errors import ConfigError
from simulator.registry import Component, Registry

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

TOLERANCE = 0.1


class AutoscalerMetric(Component, ABC):
    """A load metric averaged over the serving replicas, compared with ``cluster.autoscaler.target``."""

    @staticmethod
    @abstractmethod
    def value(serving) -> float:
        """The metric over the serving replicas."""


SCALING_METRICS: Registry[type[AutoscalerMetric]] = Registry("cluster.autoscaler.metric", "autoscaler metric")


@SCALING_METRICS.register("queue")
class QueueLength(AutoscalerMetric):
    """Requests waiting per replica."""

    @staticmethod
    def value(serving):
        return sum(len(r.waiting) for r in serving) / len(serving)


@SCALING_METRICS.register("requests")
class Requests(AutoscalerMetric):
    """Requests waiting or running per replica (vLLM's num_requests_*)."""

    @staticmethod
    def value(serving):
        return sum(r.load for r in serving) / len(serving)


@SCALING_METRICS.register("kv_usage")
class KVUsage(AutoscalerMetric):
    """Fraction of KV blocks in use; its target is a fraction too."""

    @classmethod
    def check(cls, a, key):
        if not 0 < a.target <= 1:
            raise ConfigError(f"{key}.target (a KV usage fraction) must lie in (0, 1] (got {a.target!r}).")

    @staticmethod
    def value(serving):
        return sum(r.kv_usage for r in serving) / len(serving)


METRICS = tuple(SCALING_METRICS.names())


class Autoscaler:
    def __init__(self, env: simpy.Environment, cfg: ScenarioConfig, fleet: Fleet, pool: Pool):
        self.env = env
        self.cfg = cfg.cluster.autoscaler
        self.fleet = fleet
        self.pool = pool
        self.decisions: list[tuple[float, float, int]] = []  # (time, metric, recommendation)
        env.process(self._run())

    def _run(self) -> Generator[simpy.Event, object, None]:
        a, env, fleet, pool = self.cfg, self.env, self.fleet, self.pool
        history: deque[tuple[float, int]] = deque()
        keep = max(a.up_window_s, a.down_window_s)
        value = SCALING_METRICS.get(a.metric).value
        while True:
            yield env.timeout(a.interval_s)
            now = env.now
            serving = [r for r in pool.replicas if r.state == "serving"]
            # failed replicas come back (repair), and a scale-down drops them first; a spot replica under notice
            # is on its way out and cannot be dropped, so it does not count (its replacement, when it comes, does)
            current = fleet.count(pool, ("provisioning", "serving", "failed"))
            if serving:
                metric = value(serving)
                ratio = metric / a.target
                want = current if abs(ratio - 1) <= TOLERANCE else math.ceil(len(serving) * ratio)
            else:
                metric, want = math.nan, current
            want = min(max(want, a.min_replicas), a.max_replicas)
            self.decisions.append((now, metric, want))
            history.append((now, want))
            while history and history[0][0] < now - keep:
                history.popleft()
            up = min(w for t, w in history if t >= now - a.up_window_s)
            down = max(w for t, w in history if t >= now - a.down_window_s)
            if up > current:
                for _ in range(up - current):
                    fleet.provision(pool)
            elif down < current:
                self._remove(current - down)

    def _remove(self, n: int) -> None:
        """Drop ``n`` replicas: not-yet-serving ones first, then the least loaded (newest on ties)."""
        pool = self.pool
        order = sorted(
            (r for r in pool.replicas if r.state in ("provisioning", "failed", "serving")),
            key=lambda r: (r.state == "serving", r.load, -r.index),
        )
        for rep in order[:n]:
            self.fleet.drain(rep)
