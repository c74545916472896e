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

Two levers sit in front of the replicas (docs/levers/cache_cascade.md): a
response cache (:mod:`simulator.cluster.response_cache`) answers its hits
before anything else happens to them, and a model cascade
(:mod:`simulator.cluster.cascade`) chooses each request's group when it
enters, and re-sends the answers it escalates from the small group to the
large one when they end (``end``).

Every request ends exactly once, here, whatever path it took; the run ends
when every request that was issued has ended.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import simpy

from simulator.cluster.admission import Admission
from simulator.cluster.cascade import Cascade
from simulator.cluster.fleet import Fleet
from simulator.cluster.response_cache import ResponseCache, cache_active
from simulator.cluster.routers import RoundRobin, build_router
from simulator.engine import decode_run
from simulator.engine.request import Request
from simulator.metrics.recorder import Recorder
from simulator.workload import Workload
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.replica import Replica

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
        # round-robin arrival hints (next_arrival_s): the open loop's arrival times and each serving
        # replica's place in the router's turn
        self._arrival: list[float] = []
        self._positions: tuple[list | None, dict[int, int]] = (None, {})
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
        #: parallel sampling: each request's first sample (workload.leader), and the latest first sample made
        self.leader_of = workload.leader.tolist() if workload.leader is not None else None
        self._lead: Request | None = None
        #: API-server time before a request reaches a replica (tokenisation, HTTP): a fixed delay
        self.front_s = float(cfg.latency.request_overhead_s)
        self._levers(cfg, workload, rec)

    def _levers(self, cfg: ScenarioConfig, workload: Workload, rec: Recorder) -> None:
        """The response cache and the cascade, when on; with either, the ``served_by`` column."""
        on = cache_active(cfg), bool(cfg.cluster.cascade.enabled)
        self.served_by: dict[int, str] | None = rec.request_column("served_by", "", "string") if any(on) else None
        self.cache = ResponseCache(cfg, workload) if on[0] else None
        self.cascade = Cascade(cfg, rec, len(workload)) if on[1] else None

    # -- feeding ----------------------------------------------------------------
    def start(self, steady: bool = False) -> None:
        """Feed the fleet. ``steady``: its serving replicas stay as they are (no failure, spot
        reclaim, autoscaler or transfer to a decode pool), so with nothing retried the round-robin
        arrival hints are exact and replicas may step ahead to them (see ``Replica._loop``)."""
        if self.cfg.workload.arrival == "closed_loop":
            users = min(int(self.cfg.workload.users), len(self.wl))
            self.next_index = 0
            for _ in range(users):
                self.feeders += 1
                self.env.process(self._user())
        else:
            self.feeders += 1
            self.env.process(self._open_loop())
            if type(self.router) is RoundRobin and self.cache is None and self.cascade is None and self.leader_of is None:
                ahead = steady and self.retry.max_attempts <= 1 and decode_run.ENABLED
                for rep in self.fleet.serving():
                    rep.next_arrival = self.next_arrival_s
                    rep.ahead_ok = ahead
            if self.cache is not None:
                self.feeders += 1
                self.env.process(self._cache_hits())
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
        if self.leader_of is not None:  # samples of one prompt are consecutive: the first is made first
            j = self.leader_of[i]
            if j == i:
                self._lead = req
            elif self._lead is not None and self._lead.id == j:  # (unless the cache answered the first)
                req.leader = self._lead
        self.issued += 1
        return req

    def next_arrival_s(self, rep: Replica) -> float:
        """When the next request for ``rep`` reaches it, as round-robin routing of the open loop's
        arrivals in order says (inf: none left). A hint that lets a decode run end just before
        it instead of being cut short by it: requests turned away before the router or routed
        again (retries), a change of the serving replicas or a failure can make it wrong, which
        costs speed, never results."""
        replicas = self.fleet.serving()
        if rep.state != "serving" or not replicas:
            return math.inf
        if self._positions[0] is not replicas:
            self._positions = (replicas, {id(r): k for k, r in enumerate(replicas)})
        place = self._positions[1].get(id(rep))
        if place is None:
            return math.inf
        assert isinstance(self.router, RoundRobin)
        turn = self.router.turn  # requests routed so far: request `turn` is the next, and so on in turn
        i = turn + (place - turn) % len(replicas)
        return self._arrival[i] + self.front_s if i < len(self._arrival) else math.inf

    def _open_loop(self):
        env = self.env
        front = self.front_s
        hit = self.cache.hit if self.cache is not None else None
        self._arrival = arrival = self.wl.arrival_s.tolist()
        for i, t in enumerate(arrival):
            if hit is not None and hit[i]:
                continue  # answered by the cache (_cache_hits)
            delay = t + front - env.now
            if delay > 0:
                yield env.timeout(delay)
            if front:
                self.rec.record_blocked(front, 1)  # in the API server: in the system for Little's law
            self.enter(self._make(i, t))
        self.feeders -= 1
        self._check_done()

    def _cache_hits(self):
        """Open loop: each request the cache answers ends ``latency_s`` after its arrival."""
        assert self.cache is not None
        env, cache = self.env, self.cache
        lat = cache.latency_s
        for i, t in enumerate(self.wl.arrival_s.tolist()):
            if not cache.hit[i]:
                continue
            delay = t + lat - env.now
            if delay > 0:
                yield env.timeout(delay)
            self._answer_hit(self._make(i, t))
        self.feeders -= 1
        self._check_done()

    def _answer_hit(self, req: Request) -> None:
        assert self.cache is not None
        self.rec.record_blocked(self.cache.latency_s, 1)  # waiting for the cache: in the system for Little's law
        self.cache.answer(req)
        self.end(req)

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
            if self.cache is not None and self.cache.hit[i]:
                yield env.timeout(self.cache.latency_s)
                self._answer_hit(req)
                continue
            wake = self.waiters[req.id] = env.event()
            if self.front_s:
                self.rec.record_blocked(self.front_s, 1)
                yield env.timeout(self.front_s)
            self.enter(req)
            yield wake
        self.feeders -= 1
        self._check_done()

    # -- one attempt --------------------------------------------------------------
    def enter(self, req: Request) -> None:
        """``req`` leaves the API server for its first attempt (a cascade chooses its group here)."""
        if self.cascade is not None:
            self.cascade.enter(req, self.fleet.serving())
        self.arrive(req)

    def arrive(self, req: Request, limit: bool = True) -> None:
        """One attempt of ``req``: rate limit (unless ``limit`` is false), router, admission, a replica."""
        admission = self.admission  # (asked only where some tier sets a limit: every request passes here)
        reason = admission.rate_limit_reason(req, self.env.now) if limit and admission.rate_limits else None
        if reason is not None:
            self.turn_away(req, reason)
            return
        replicas = self.fleet.serving()
        router = self.router
        if self.cascade is not None:  # only the replicas of the request's group
            router, replicas = self.cascade.candidates(req, replicas)
        if not replicas:
            self.turn_away(req, "no_replica")
            return
        rep = router.choose(req, replicas) if req.leader is None else (self._sample_replica(req, replicas) or router.choose(req, replicas))
        if self.transfers is not None:
            reason = self.transfers.reject_reason(req)
            if reason is not None:  # the decode pool can never hold it
                req.pool = "decode"
                rep.reject(req, reason)
                return
        reason = admission.reject_reason(req, rep) if admission.active else None
        if reason is not None:
            self.turn_away(req, reason, rep.index)
            return
        rep.submit(req)

    @staticmethod
    def _sample_replica(req: Request, replicas: list) -> Replica | None:
        """A later sample of a prompt goes where its first sample went (to share its cached prompt), if serving."""
        lead = req.leader
        if lead is None or lead.replica < 0:
            return None
        return next((r for r in replicas if r.index == lead.replica), None)

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
        if self.cascade is not None and self.cascade.escalate(req, self.env.now):
            req.restart()  # the small model's answer is redone by the large one; the request goes on
            self.arrive(req, limit=False)  # the client sent it once: its tokens were charged then
            return
        if self.served_by is not None and req.status == "completed":
            self.served_by[req.id] = req.pool  # "cache", or the group whose replica answered
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

