"""The gateway: where requests enter the cluster, and where they end.

Requests are fed one at a time - by one arrival process for open-loop
traffic, or by one process per user for closed-loop clients
(``workload.arrival=closed_loop``: send, wait for the answer, think for an
exponential ``workload.think_s``, send again). Each attempt goes through the
rate limiter, the router and admission control (see
:mod:`simulator.cluster.admission`) to a replica.

A request turned away for a transient reason is retried by its client after
an exponential backoff with jitter (``workload.retry``), up to
``max_attempts`` attempts in all; its last rejection is final. Reasons that
no retry can fix (the prompt can never fit) end the request at once.
Requests held by a failed replica are re-routed at once
(``cluster.failures.in_flight=retry``) or end rejected with
``replica_failure`` (``lost``).

Every request ends exactly once, here, whatever path it took; the run ends
when every request that was issued has ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import simpy

from simulator.cluster.admission import Admission
from simulator.cluster.fleet import Fleet
from simulator.cluster.routers import build_router
from simulator.engine.request import Request
from simulator.metrics.recorder import Recorder
from simulator.workload import Workload
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: rejections a client may retry (the others would fail again)
TRANSIENT = frozenset(
    {"queue_full", "wait_too_long", "kv_pressure", "slo_unattainable", "rate_limited", "no_replica", "replica_failure"}
)


class Gateway:
    def __init__(self, env: simpy.Environment, cfg: ScenarioConfig, workload: Workload, fleet: Fleet, rec: Recorder, transfers=None):
        self.env = env
        self.cfg = cfg
        self.wl = workload
        self.fleet = fleet
        self.rec = rec
        self.transfers = transfers
        self.router = build_router(cfg)
        self.admission = Admission(cfg)
        self.retry = cfg.workload.retry
        self.rng_retry = stream(cfg.seed, "retry")
        self.lose_in_flight = cfg.cluster.failures.in_flight == "lost"
        self.priority = {name: int(t.priority) for name, t in cfg.tiers.items()}
        self.issued = 0
        self.ended = 0
        self.feeders = 0  # arrival processes still running
        self.done = env.event()
        self.waiters: dict[int, simpy.Event] = {}  # closed loop: request id -> its user's wake-up
        self.retries = 0
        fleet.on_end = self.end
        fleet.on_failure = self.on_failure
        # per-request columns, as lists (fast scalar access)
        self.prompt = workload.prompt_tokens.tolist()
        self.output = workload.output_tokens.tolist()
        self.tenant = workload.tenant.tolist() if workload.tenant is not None else None
        self.session = workload.session.tolist() if workload.session is not None else None
        self.tier = workload.tier.tolist() if workload.tier is not None else None
        self.prefix: tuple[list, int, int] | None = None
        if workload.prefix_ids is not None:
            self.prefix = (workload.prefix_ids, int(workload.prefix_block_tokens), int(cfg.memory.block_size))
        self.cache_prefixes = bool(cfg.memory.prefix_caching)
        #: API-server time before a request reaches a replica (tokenisation, HTTP): a fixed delay
        self.front_s = float(cfg.latency.request_overhead_s)

    # -- feeding ----------------------------------------------------------------
    def start(self) -> None:
        if self.cfg.workload.arrival == "closed_loop":
            users = min(int(self.cfg.workload.users), len(self.wl))
            self.next_index = 0
            for _ in range(users):
                self.feeders += 1
                self.env.process(self._user())
        else:
            self.feeders += 1
            self.env.process(self._open_loop())
        if not self.feeders:
            self._check_done()

    def _make(self, i: int, t: float) -> Request:
        req = Request(i, t, self.prompt[i], self.output[i])
        if self.tenant is not None:
            req.tenant = str(self.tenant[i])
        if self.session is not None:
            req.session = str(self.session[i])
        if self.tier is not None:
            req.tier = str(self.tier[i])
            req.priority = self.priority.get(req.tier, 0)
        if self.prefix is not None:
            ids, granularity, block_size = self.prefix
            if len(ids[i]):
                req.affinity = int(ids[i][0])
            if self.cache_prefixes:
                req.set_prefix(ids[i], granularity, block_size)
        self.issued += 1
        return req

    def _open_loop(self):
        env = self.env
        front = self.front_s
        for i, t in enumerate(self.wl.arrival_s.tolist()):
            delay = t + front - env.now
            if delay > 0:
                yield env.timeout(delay)
            if front:
                self.rec.record_blocked(front, 1)  # in the API server: in the system for Little's law
            self.arrive(self._make(i, t))
        self.feeders -= 1
        self._check_done()

    def _user(self):
        env = self.env
        think_s = getattr(self.wl, "think_s", None)
        think = think_s.tolist() if think_s is not None else None
        horizon = self.cfg.workload.duration_s
        while self.next_index < len(self.wl):
            i = self.next_index
            self.next_index += 1
            if think is not None and think[i] > 0:
                yield env.timeout(think[i])
            if horizon is not None and env.now >= horizon:
                break
            req = self._make(i, env.now)
            wake = self.waiters[req.id] = env.event()
            if self.front_s:
                self.rec.record_blocked(self.front_s, 1)
                yield env.timeout(self.front_s)
            self.arrive(req)
            yield wake
        self.feeders -= 1
        self._check_done()

    # -- one attempt --------------------------------------------------------------
    def arrive(self, req: Request) -> None:
        now = self.env.now
        reason = self.admission.rate_limit_reason(req, now)
        if reason is not None:
            self.turn_away(req, reason)
            return
        replicas = self.fleet.serving()
        if not replicas:
            self.turn_away(req, "no_replica")
            return
        rep = self.router.choose(req, replicas)
        if self.transfers is not None:
            reason = self.transfers.reject_reason(req)
            if reason is not None:  # the decode pool can never hold it
                req.pool = "decode"
                rep.reject(req, reason)
                return
        reason = self.admission.reject_reason(req, rep)
        if reason is not None:
            self.turn_away(req, reason, rep.index)
            return
        rep.submit(req)

    def turn_away(self, req: Request, reason: str, replica: int = -1) -> None:
        """Reject this attempt; the client retries it later if it may."""
        if reason in TRANSIENT and req.attempts < self.retry.max_attempts:
            r = self.retry
            delay = min(r.max_backoff_s, r.backoff_s * r.multiplier ** (req.attempts - 1))
            delay *= 1.0 - r.jitter * float(self.rng_retry.random())
            self.env.process(self._retry_after(req, delay))
            return
        req.replica = replica
        req.status = "rejected"
        req.reject_reason = reason
        req.finish_s = self.env.now
        self.end(req)

    def _retry_after(self, req: Request, delay: float):
        self.rec.record_blocked(delay, 1)  # the client is still waiting: in the system for Little's law
        yield self.env.timeout(delay)
        req.attempts += 1
        self.retries += 1
        self.arrive(req)

    def on_failure(self, held: list[Request]) -> None:
        for req in held:
            if self.lose_in_flight:
                self._lose(req)
                continue
            req.restart()
            req.attempts += 1
            self.arrive(req)

    def _lose(self, req: Request) -> None:
        req.status = "rejected"
        req.reject_reason = "replica_failure"
        req.finish_s = self.env.now
        self.end(req)

    # -- the one exit -----------------------------------------------------------
    def end(self, req: Request) -> None:
        self.rec.end_request(req)
        self.ended += 1
        wake = self.waiters.pop(req.id, None)
        if wake is not None:
            wake.succeed()
        if self.ended == self.issued:
            self._check_done()

    def _check_done(self) -> None:
        if not self.feeders and self.ended == self.issued and not self.done.triggered:
            self.done.succeed()

