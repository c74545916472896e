"""A model cascade: a small model answers first, a large one redoes what it gets wrong (``cluster.cascade``).

Two ``cluster.groups`` take part, named by ``cascade.small`` and
``cascade.large`` (each with its own ``model``). When a request enters the
gateway (its first attempt, after the API server) it takes one *route*:

``large``     not in the ``share`` sent to the small model (seeded stream ``cascade.share``): straight to the large group
``overload``  in the share, but the small group's waiting requests per serving replica exceed
              ``overload_queue`` (or no small replica serves): straight to the large group
``small``     to the small group

A request that completes on the small group is *escalated* with
probability ``escalation_rate`` (seeded stream ``cascade.escalation``):
the gateway re-sends it, at that instant, to the large group as a new
attempt of the same request (same prompt and output lengths; its progress,
KV and timestamps start over as after a replica failure, its arrival
stays). The user sees the large model's answer, so TTFT and e2e are
measured from the original arrival and include the small attempt, whose
GPU time is spent all the same. Both draws are made before the run, one per
request id, so a seed gives the same routes and escalations.

Retries (a rejection, a replica failure) go back to the group the request
is on, or to the large group when no small replica serves then. An escalation is not counted in ``attempts`` (the client sent the
request once); it is recorded in ``escalated_s``. Within a group, the
scenario's ``cluster.router`` picks the replica (one router per group,
its random draws from the stream ``router.<group>``).

What is not modelled: the answer's quality beyond the escalation
probability (no dependence on the prompt, its length or the load), the
cost of judging the small answer (it is free and instant), streaming the
small answer to the user before it is withdrawn, and cascades of more than
two models.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.cluster.routers import Router, build_router
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.replica import Replica
    from simulator.engine.request import Request
    from simulator.metrics.recorder import Recorder

#: the routes a request can take, as in the ``cascade_route`` column
ROUTES = ("small", "large", "overload")


class Cascade:
    """The route of each request, the group each one is on, and the escalations."""

    def __init__(self, cfg: ScenarioConfig, rec: Recorder, n_requests: int) -> None:
        c = cfg.cluster.cascade
        seed = int(cfg.seed)
        self.small, self.large = str(c.small), str(c.large)
        self.overload_queue = None if c.overload_queue is None else int(c.overload_queue)
        self.first_small: list[bool] = (stream(seed, "cascade.share").random(n_requests) < float(c.share)).tolist()
        self.escalates: list[bool] = (stream(seed, "cascade.escalation").random(n_requests) < float(c.escalation_rate)).tolist()
        self.routers: dict[str, Router] = {}
        for name in (self.small, self.large):
            router = build_router(cfg)
            router.rng = stream(seed, f"router.{name}")
            self.routers[name] = router
        #: request id -> the group it is sent to now (while it is in the cluster)
        self.group: dict[int, str] = {}
        self.route = rec.request_column("cascade_route", "", "string")
        self.escalated_s = rec.request_column("escalated_s", math.nan, "float64")
        self.counts = dict.fromkeys(ROUTES, 0)
        self.escalated = 0
        self._serving: list[Replica] | None = None  # the fleet's serving list split below
        self._split: dict[str, list[Replica]] = {}

    # -- where a request goes -------------------------------------------------
    def _groups(self, serving: list[Replica]) -> dict[str, list[Replica]]:
        """``serving`` by group (recomputed when the fleet's serving list changes)."""
        if serving is not self._serving:
            self._serving = serving
            self._split = {self.small: [], self.large: []}
            for rep in serving:
                if rep.pool in self._split:
                    self._split[rep.pool].append(rep)
        return self._split

    def _overloaded(self, small: list[Replica]) -> bool:
        if not small:
            return True
        if self.overload_queue is None:
            return False
        waiting = sum(len(r.waiting) for r in small)
        return waiting > self.overload_queue * len(small)

    def enter(self, req: Request, serving: list[Replica]) -> None:
        """``req`` enters the gateway (its first attempt): choose its route."""
        if not self.first_small[req.id]:
            route = "large"
        elif self._overloaded(self._groups(serving)[self.small]):
            route = "overload"
        else:
            route = "small"
        self.counts[route] += 1
        self.route[req.id] = route
        self.group[req.id] = self.small if route == "small" else self.large

    def candidates(self, req: Request, serving: list[Replica]) -> tuple[Router, list[Replica]]:
        """The router and the serving replicas of the group ``req`` is on now; a request on the
        small group when none of its replicas serves (a retry after a failure) moves to the large one."""
        groups = self._groups(serving)
        group = self.group[req.id]
        if group == self.small and not groups[group]:
            group = self.group[req.id] = self.large
        return self.routers[group], groups[group]

    # -- when an attempt ends -------------------------------------------------
    def escalate(self, req: Request, now: float) -> bool:
        """``req`` ended an attempt at ``now``: True when it is to be redone on the large group
        (the caller restarts and re-sends it), False when it has ended for good."""
        group = self.group.get(req.id)
        if group == self.small and req.status == "completed" and self.escalates[req.id]:
            self.group[req.id] = self.large
            self.escalated_s[req.id] = now
            self.escalated += 1
            return True
        self.group.pop(req.id, None)
        return False
