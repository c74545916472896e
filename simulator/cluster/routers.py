"""Routers: which serving replica gets a request (``cluster.router``).

A router sees the request and the replicas that are serving right now (never
a draining, failed or still-provisioning one) and returns one of them. Load
figures are read from the replicas at that instant, as a gateway polling
its engines would:

``round_robin``        in turn, over the replicas serving now
``random``             uniformly at random (seeded stream ``router``)
``jsq``                join the shortest queue: fewest requests waiting, running or swapped
``least_tokens``       fewest outstanding tokens (prompt + output of requests assigned, not ended)
``least_kv``           lowest KV-cache usage; ties by fewest requests
``power_of_two``       two replicas at random, the one with fewer requests (Mitzenmacher's d=2)
``session_affinity``   a session's turns go to the replica that served its last turn
``prefix_affinity``    requests sharing a prompt prefix go to the replica that cached it

The affinity routers fall back to ``jsq`` for a request without a key, and
leave a remembered replica that is gone or overloaded - holding more than
``cluster.affinity_slack`` x (the least-loaded replica's requests + 1) - for
the least-loaded one (bounded-load affinity, as SGLang's cache-aware router
balances cache hits against load).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

from simulator.registry import Component, Registry
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.replica import Replica
    from simulator.engine.request import Request


class Router(Component, ABC):
    """One routing policy; registered under ``cluster.router``, built per run from the scenario."""

    def __init__(self, cfg: ScenarioConfig) -> None:
        self.rng = stream(cfg.seed, "router")

    @abstractmethod
    def choose(self, req: Request, replicas: list[Replica]) -> Replica:
        """The replica, among the serving ``replicas``, that takes ``req``."""


ROUTERS: Registry[type[Router]] = Registry("cluster.router", "router")


def _least_loaded(replicas: list[Replica]) -> Replica:
    return min(replicas, key=lambda r: (r.load, r.index))


@ROUTERS.register("round_robin")
class RoundRobin(Router):
    def __init__(self, cfg: ScenarioConfig) -> None:
        super().__init__(cfg)
        self.turn = 0

    def choose(self, req, replicas):
        rep = replicas[self.turn % len(replicas)]
        self.turn += 1
        return rep


@ROUTERS.register("random")
class Random(Router):
    def choose(self, req, replicas):
        return replicas[int(self.rng.integers(len(replicas)))]


@ROUTERS.register("jsq")
class JoinShortestQueue(Router):
    def choose(self, req, replicas):
        return _least_loaded(replicas)


@ROUTERS.register("least_tokens")
class LeastOutstandingTokens(Router):
    def choose(self, req, replicas):
        return min(replicas, key=lambda r: (r.outstanding_tokens, r.index))


@ROUTERS.register("least_kv")
class LeastKVUsage(Router):
    def choose(self, req, replicas):
        return min(replicas, key=lambda r: (r.kv_usage, r.load, r.index))


@ROUTERS.register("power_of_two")
class PowerOfTwo(Router):
    def choose(self, req, replicas):
        if len(replicas) == 1:
            return replicas[0]
        i, j = self.rng.choice(len(replicas), size=2, replace=False)
        a, b = replicas[int(i)], replicas[int(j)]
        return a if a.load <= b.load else b


class _Affinity(Router):
    """Remember key -> replica; keep using it while it serves and is not overloaded."""

    def __init__(self, cfg: ScenarioConfig) -> None:
        super().__init__(cfg)
        self.slack = float(cfg.cluster.affinity_slack)
        self.home: dict[object, Replica] = {}

    @abstractmethod
    def key(self, req: Request):
        """What the request's affinity follows (a session, a prefix), or None for no affinity."""

    def choose(self, req, replicas):
        key = self.key(req)
        least = _least_loaded(replicas)
        if key is None:
            return least
        home = self.home.get(key)
        if home is not None and home.state == "serving" and home.load <= self.slack * (least.load + 1):
            return home
        self.home[key] = least
        return least


@ROUTERS.register("session_affinity")
class SessionAffinity(_Affinity):
    def key(self, req):
        return req.session or None


@ROUTERS.register("prefix_affinity")
class PrefixAffinity(_Affinity):
    def key(self, req):
        return req.affinity if req.affinity is not None else (req.session or None)


def build_router(cfg: ScenarioConfig) -> Router:
    return ROUTERS.get(cfg.cluster.router)(cfg)
