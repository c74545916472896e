"""Failure injection (``cluster.failures``).

A replica is a tensor-parallel group: when any of its GPUs fails, the whole
group stops (one NCCL communicator, one engine). Failures come

* at fixed times ``at_s``, each hitting the replica named in ``replica``
  (same position), or else the serving replica holding the most requests;
* at random, when ``mtbf_gpu_hours`` is set: each serving GPU fails at rate
  1 / MTBF, so a TP-k replica fails k times as often as a TP-1 one. The
  failures form a Poisson process (seeded stream ``failures``) whose rate
  follows the GPUs serving at each moment; each hits a replica with
  probability proportional to its GPU count.

What happens to the requests it held is ``in_flight`` (see
:mod:`simulator.cluster.gateway`); the replica comes back after
``repair_s`` plus a cold start (see :mod:`simulator.cluster.fleet`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from simulator.cluster.fleet import Fleet
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


class FailureInjector:
    def __init__(self, env: simpy.Environment, cfg: ScenarioConfig, fleet: Fleet):
        self.env = env
        self.fleet = fleet
        self.cfg = cfg.cluster.failures
        self.rng = stream(cfg.seed, "failures")
        self.skipped = 0  # fixed failures aimed at a replica that was not serving then
        if self.cfg.at_s:
            env.process(self._fixed())
        if self.cfg.mtbf_gpu_hours is not None:
            env.process(self._random())

    def _serving(self):
        return [r for p in self.fleet.pools for r in p.replicas if r.state in ("serving", "draining")]

    def _fixed(self):
        f = self.cfg
        for k, t in sorted(enumerate(f.at_s), key=lambda kt: kt[1]):
            if t > self.env.now:
                yield self.env.timeout(t - self.env.now)
            alive = self._serving()
            if k < len(f.replica):
                alive = [r for r in alive if r.index == f.replica[k]]
            if not alive:
                self.skipped += 1
                continue
            self.fleet.fail(max(alive, key=lambda r: (r.load, -r.index)))

    def _random(self):
        """A Poisson process whose rate follows the serving GPUs: after any
        change to the fleet the pending draw is discarded and redrawn at the
        new rate (exact, as the exponential is memoryless)."""
        assert self.cfg.mtbf_gpu_hours is not None  # this process runs only when an MTBF is set
        per_gpu_s = float(self.cfg.mtbf_gpu_hours) * 3600.0
        env, fleet = self.env, self.fleet
        while True:
            alive = self._serving()
            changed = fleet.changed
            if not alive:
                yield changed
                continue
            gpus = [fleet.pool_of[r.index].spec.gpus for r in alive]  # a replica fails as a unit: any of its GPUs
            fire = env.timeout(float(self.rng.exponential(per_gpu_s / sum(gpus))))
            yield fire | changed
            if not fire.processed:  # the fleet changed first: redraw at the new rate
                continue
            pick = int(self.rng.choice(len(alive), p=[g / sum(gpus) for g in gpus]))
            fleet.fail(alive[pick])
