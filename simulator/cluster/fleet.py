"""The fleet: every replica of every pool, and its lifecycle.

::

    provisioning ──cold start──► serving ──drain──► draining ──empty──► removed
                                    │
                                    ├──fail──► failed ──repair_s──► provisioning ...
                                    │
                                    └──spot notice──► interrupted ──notice_s──► failed ...

A replica removed before it serves (a scale-down cancelling a pending start,
or dropping one under repair) passes through ``draining`` and ``removed``
at the same instant, so every scale-down is one ``draining`` row.

A replica is *billed* from the moment it is provisioned until it is removed,
failed ones included (the node is still held while it is repaired). The
cold start is ``cluster.cold_start.provision_s`` plus loading one GPU's share
of the weights at ``cluster.cold_start.storage_gbps``. Each change is one
row of ``replicas.parquet``; the replicas present at t=0 are already warm.

A spot replica (``cluster.tier=spot``, docs/pricing.md) that gets an
interruption notice is ``interrupted``: it takes no new requests but keeps
working on what it holds (and stays billed) until, ``notice_s`` later, it
fails like any other replica: what it still holds follows
``cluster.failures.in_flight``, and it comes back after ``repair_s`` plus a
cold start.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import simpy

from simulator.metrics.recorder import Recorder
from simulator.specs import MemoryBudget, ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.replica import Replica
    from simulator.engine.request import Request

BILLED = ("provisioning", "serving", "draining", "failed", "interrupted")


@dataclass
class Pool:
    """A group of identical replicas (a colocated group, or one side of a disaggregated deployment)."""

    name: str  # "mixed" (one colocated group), a cluster.groups name, "prefill" or "decode"
    cfg: ScenarioConfig  # the scenario as this pool sees it (its hardware, model, tp, scheduler)
    allocation: str  # the KV allocation mode in effect
    spec: ModelSpec
    budget: MemoryBudget
    latency_description: str
    make: Callable[[], Replica]  # builds one more replica of this pool (warm, serving)
    cold_start_s: float  # provisioning + weight loading
    replicas: list[Replica] = field(default_factory=list)  # every replica it ever had, by creation

    @property
    def initial(self) -> int:
        return int(self.cfg.cluster.replicas)


class Fleet:
    def __init__(self, env: simpy.Environment, rec: Recorder, pools: list[Pool], entry: list[Pool], repair_s: float):
        self.env = env
        self.rec = rec
        self.pools = pools
        self.entry = entry  # pools that take new requests (all but a decode pool)
        self.repair_s = repair_s
        self.pool_of: dict[int, Pool] = {}
        self._serving: list[Replica] | None = None
        self.changed = env.event()  # fires at the next lifecycle change (then is renewed)
        self._notices: dict[int, int] = {}  # replica index -> spot notices it got (a reclaim acts on the latest only)
        #: called with the requests a failed replica held
        self.on_failure: Callable[[list[Request]], None] = lambda reqs: None
        #: called when a request ends on any replica, present or future (the gateway's exit)
        self.on_end: Callable[[Request], None] = rec.end_request
        for pool in pools:
            for _ in range(pool.initial):
                rep = self._new(pool)
                self._event(rep, "provisioning")
                self._event(rep, "serving")

    # -- queries --------------------------------------------------------------
    def serving(self) -> list[Replica]:
        """Entry replicas the router may pick now (cached until the next change)."""
        if self._serving is None:
            self._serving = [r for p in self.entry for r in p.replicas if r.state == "serving"]
        return self._serving

    def count(self, pool: Pool, states: tuple[str, ...]) -> int:
        return sum(1 for r in pool.replicas if r.state in states)

    @property
    def billed_gpus(self) -> int:
        return sum(p.spec.gpus for p in self.pools for r in p.replicas if r.state in BILLED)

    @property
    def all_replicas(self) -> list[Replica]:
        return [r for p in self.pools for r in p.replicas]

    # -- changes --------------------------------------------------------------
    def _new(self, pool: Pool) -> Replica:
        rep = pool.make()
        pool.replicas.append(rep)
        self.pool_of[rep.index] = pool
        rep.on_drained = self._removed
        rep.ended = self._ended
        return rep

    def _ended(self, req: Request) -> None:
        self.on_end(req)

    def _event(self, rep: Replica, event: str) -> None:
        self._serving = None
        self.changed.succeed()
        self.changed = self.env.event()
        n_serving = sum(1 for p in self.entry for r in p.replicas if r.state == "serving")
        pool = self.pool_of[rep.index]
        self.rec.replica_event(self.env.now, rep.index, pool.name, event, pool.spec.gpus, n_serving, self.billed_gpus)

    def provision(self, pool: Pool) -> Replica:
        """Start a new replica; it serves after the pool's cold start."""
        rep = self._new(pool)
        rep.state = "provisioning"
        self._event(rep, "provisioning")
        self.env.process(self._warm_up(rep, pool.cold_start_s))
        return rep

    def _warm_up(self, rep: Replica, delay: float, restart: bool = False):
        yield self.env.timeout(delay)
        if rep.state != "provisioning":
            return
        if restart:
            rep.restart()
        rep.state = "serving"
        self._event(rep, "serving")

    def drain(self, rep: Replica) -> None:
        """Stop routing to ``rep``; it is removed once it has finished its work."""
        if rep.state in ("provisioning", "failed"):  # not serving: nothing to finish, drop it at once
            rep.state = "draining"
            self._event(rep, "draining")
            rep.state = "removed"
            self._event(rep, "removed")
            return
        rep.state = "draining"
        self._event(rep, "draining")
        rep.wake()

    def _removed(self, rep: Replica) -> None:
        rep.state = "removed"
        self._event(rep, "removed")

    def fail(self, rep: Replica) -> None:
        """``rep``'s TP group dies; after ``repair_s`` it cold-starts again."""
        draining = rep.state == "draining"
        held = rep.fail()
        self._event(rep, "failed")
        if draining:  # it was on its way out: do not replace it
            rep.state = "removed"
            self._event(rep, "removed")
        else:
            self.env.process(self._repair(rep))
        self.on_failure(held)

    def interrupt(self, rep: Replica, notice_s: float) -> None:
        """A spot interruption notice for ``rep``: no new requests from now; it fails ``notice_s`` later."""
        rep.state = "interrupted"
        self._event(rep, "interrupted")
        self._notices[rep.index] = notice = self._notices.get(rep.index, 0) + 1
        self.env.process(self._reclaim(rep, notice_s, notice))

    def _reclaim(self, rep: Replica, notice_s: float, notice: int):
        if notice_s > 0:
            yield self.env.timeout(notice_s)
        if rep.state == "interrupted" and self._notices[rep.index] == notice:  # (not taken by a failure meanwhile)
            self.fail(rep)

    def _repair(self, rep: Replica):
        yield self.env.timeout(self.repair_s)
        if rep.state != "failed":
            return
        rep.state = "provisioning"
        self._event(rep, "provisioning")
        yield from self._warm_up(rep, self.pool_of[rep.index].cold_start_s, restart=True)
