"""Admission control and load shedding at the gateway (``admission.*``, ``tiers.*``).

Every arriving request (and every retry) passes, in order:

1. ``rate_limited``      its tenant's token bucket lacks prompt + output tokens
                         (``admission.rate_limit``; one bucket per tier and tenant,
                         refilled at ``tokens_per_s`` up to ``burst_tokens``). A
                         rejected request is not charged. A request larger than
                         the whole bucket can never pass: ``exceeds_burst``
                         (final, not retried).
2. the router picks a serving replica (``no_replica`` when none serves),
3. ``queue_full``        more than ``max_queue`` requests already wait on that
                         replica (0: admit only when nothing waits ahead),
4. ``wait_too_long``     its predicted queueing delay exceeds ``max_wait_s``,
5. ``kv_pressure``       its KV usage is above ``kv_watermark`` (a fraction),
6. ``slo_unattainable``  with ``slo_aware``: predicted queueing delay + the
                         request's own prefill time exceeds its TTFT SLO.

Each threshold may be set per tier (``tiers.<name>.max_queue`` ...): giving
the free tier a lower KV watermark than the enterprise tier sheds free
traffic first as the cluster fills. The predicted delay is the replica's
:meth:`~simulator.engine.replica.Replica.expected_wait_s` for the request's
priority.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.replica import Replica
    from simulator.engine.request import Request


@dataclass(frozen=True)
class Limits:
    """The thresholds that apply to one tier."""

    max_queue: int | None
    max_wait_s: float | None
    kv_watermark: float | None
    ttft_s: float | None  # the deadline slo_aware checks against
    tokens_per_s: float | None
    burst_tokens: float | None


def tier_limits(cfg: ScenarioConfig) -> dict[str, Limits]:
    """Limits by tier name ('' = requests without a tier)."""
    adm, rl = cfg.admission, cfg.admission.rate_limit

    def pick(value, default):
        return default if value is None else value

    out = {"": Limits(adm.max_queue, adm.max_wait_s, adm.kv_watermark, cfg.slo.ttft_s, rl.tokens_per_s, rl.burst_tokens)}
    for name, t in cfg.tiers.items():
        out[name] = Limits(
            pick(t.max_queue, adm.max_queue),
            pick(t.max_wait_s, adm.max_wait_s),
            pick(t.kv_watermark, adm.kv_watermark),
            pick(t.ttft_s, cfg.slo.ttft_s),
            pick(t.tokens_per_s, rl.tokens_per_s),
            pick(t.burst_tokens, rl.burst_tokens),
        )
    return out


def reads_queue_work(cfg: ScenarioConfig) -> bool:
    """Whether admission reads a replica's expected wait (``max_wait_s`` for some tier, or
    SLO-aware admission): only then must replicas keep their queued prefill work up to date."""
    return bool(cfg.admission.slo_aware) or any(lim.max_wait_s is not None for lim in tier_limits(cfg).values())


class TokenBuckets:
    """One token bucket per key (tier, tenant), filled lazily from the time of its last use."""

    def __init__(self) -> None:
        self.level: dict[object, float] = {}
        self.stamp: dict[object, float] = {}

    @staticmethod
    def capacity(rate: float, burst: float | None) -> float:
        return rate if burst is None else burst  # default: one second of refill

    def take(self, key, tokens: float, rate: float, burst: float | None, now: float) -> bool:
        cap = self.capacity(rate, burst)
        level = self.level.get(key, cap)
        level = min(cap, level + (now - self.stamp.get(key, now)) * rate)
        self.stamp[key] = now
        if tokens > level:
            self.level[key] = level
            return False
        self.level[key] = level - tokens
        return True


class Admission:
    def __init__(self, cfg: ScenarioConfig):
        self.limits = tier_limits(cfg)
        self.slo_aware = bool(cfg.admission.slo_aware)
        self.buckets = TokenBuckets()
        #: some tier has admission control (else nobody asks ``reject_reason``) / a rate limit (``rate_limit_reason``)
        self.active = self.slo_aware or any(
            v is not None for lim in self.limits.values() for v in (lim.max_queue, lim.max_wait_s, lim.kv_watermark)
        )
        self.rate_limits = any(lim.tokens_per_s is not None for lim in self.limits.values())

    def rate_limit_reason(self, req: Request, now: float) -> str | None:
        """``rate_limited`` when the request's bucket is short now, ``exceeds_burst`` when it always will be."""
        lim = self.limits[req.tier]
        if lim.tokens_per_s is None:
            return None
        tokens = req.prompt + req.output
        if tokens > TokenBuckets.capacity(lim.tokens_per_s, lim.burst_tokens):
            return "exceeds_burst"
        if self.buckets.take((req.tier, req.tenant), tokens, lim.tokens_per_s, lim.burst_tokens, now):
            return None
        return "rate_limited"

    def reject_reason(self, req: Request, rep: Replica) -> str | None:
        """Why ``rep`` should not take ``req`` now, or None to admit it (asked only where ``active``)."""
        lim = self.limits[req.tier]
        if lim.max_queue is not None and len(rep.waiting) > lim.max_queue:
            return "queue_full"
        wait = rep.expected_wait_s(req.priority) if (lim.max_wait_s is not None or self.slo_aware) else 0.0
        if lim.max_wait_s is not None and wait > lim.max_wait_s:
            return "wait_too_long"
        if lim.kv_watermark is not None and rep.kv_usage > lim.kv_watermark:
            return "kv_pressure"
        if self.slo_aware and lim.ttft_s is not None and wait + rep.prefill_s(req) > lim.ttft_s:
            return "slo_unattainable"
        return None
