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

Spot interruptions (docs/pricing.md) come from the same injector: each
serving replica of a pool that pays the spot tier is interrupted at its
rate (:func:`simulator.config.pricing.spot_rate_per_hour`, per replica-hour:
an instance is reclaimed whole, however many GPUs it has), a Poisson
process on its own seeded stream ``spot``. An interrupted replica gets
``pricing.spot.notice_s`` of notice (:meth:`Fleet.interrupt`), then fails as
above.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from simulator.cluster.fleet import Fleet
from simulator.config.pricing import spot_rate_per_hour
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
        #: spot interruptions per replica-second, by pool name (pools that pay spot at a rate > 0)
        self.spot_rates = {p.name: spot_rate_per_hour(p.cfg) / 3600.0 for p in fleet.pools if spot_rate_per_hour(p.cfg) > 0}
        self.notice_s = float(cfg.pricing.spot.notice_s)
        if self.spot_rates:
            self.spot_rng = stream(cfg.seed, "spot")
            env.process(self._spot())

    def _serving(self):
        return [r for p in self.fleet.pools for r in p.replicas if r.state in ("serving", "draining", "interrupted")]

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

    def _spot(self):
        """Spot interruptions: a Poisson process whose rate is the sum of the serving spot replicas'
        rates, redrawn after any change to the fleet (exact, as the exponential is memoryless); each
        interruption hits a serving spot replica with probability proportional to its rate."""
        env, fleet, rates = self.env, self.fleet, self.spot_rates
        while True:
            exposed = [r for p in fleet.pools if p.name in rates for r in p.replicas if r.state == "serving"]
            changed = fleet.changed
            if not exposed:
                yield changed
                continue
            weights = [rates[fleet.pool_of[r.index].name] for r in exposed]
            total = sum(weights)
            fire = env.timeout(float(self.spot_rng.exponential(1.0 / total)))
            yield fire | changed
            if not fire.processed:  # the fleet changed first: redraw at the new rate
                continue
            pick = int(self.spot_rng.choice(len(exposed), p=[w / total for w in weights])) if len(exposed) > 1 else 0
            fleet.interrupt(exposed[pick], self.notice_s)
