"""The latency-model interface: how long one engine iteration takes.

A replica asks its latency model for the duration of every step, describing
the step only by its *shape* (how many prefill and decode tokens, how much
attention context). Models never see request objects, so they can cache and
vectorise freely.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING

from simulator.registry import Component, Registry
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


@dataclass(slots=True)
class StepShape:
    """The work in one engine iteration on one replica.

    prefill_seqs        sequences that process prompt tokens this step
    prefill_tokens      prompt tokens computed this step (sum of chunk lengths)
    prefill_attn_pairs  causal query-key pairs of the prefill chunks:
                        sum over chunks of c * (p + (c + 1) / 2) for a chunk of
                        c tokens after p tokens already in the KV cache
    prefill_ctx_tokens  sum over prefill chunks of p (cached context re-read)
    decode_seqs         sequences generating one token each this step
    decode_ctx_tokens   sum of their context lengths (KV entries read)
    decode_queries      positions each decoding sequence computes: 1, or k + 1
                        when speculative decoding verifies k proposed tokens
    """

    prefill_seqs: int = 0
    prefill_tokens: int = 0
    prefill_attn_pairs: float = 0.0
    prefill_ctx_tokens: int = 0
    decode_seqs: int = 0
    decode_ctx_tokens: int = 0
    decode_queries: int = 1


class LatencyModel(Component, ABC):
    """Maps a step shape to seconds. Subclasses register under ``latency.model``, check their
    own ``latency.*`` settings (:meth:`~simulator.registry.Component.check`) and build from
    the scenario and the model's shape."""

    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec):
        self.cfg = cfg
        self.spec = spec

    @abstractmethod
    def step_time(self, shape: StepShape) -> float:
        """Seconds the step takes on this replica (all TP ranks together)."""

    def decode_step_time(self, seqs: int, ctx_tokens: int) -> float:
        """:meth:`step_time` of a decode-only step of ``seqs`` sequences over ``ctx_tokens`` context
        entries in all (the engine's most common step, priced without building its shape)."""
        return self.step_time(StepShape(decode_seqs=seqs, decode_ctx_tokens=ctx_tokens))

    def decode_times(self, seqs: int, ctx_tokens: int, count: int) -> list[float]:
        """:meth:`step_time` of ``count`` decode-only steps of ``seqs`` sequences, the first over
        ``ctx_tokens`` context entries in all, each next over ``seqs`` more (a decode run, priced
        ahead: a wake-up may drop its later steps, so what pricing says of them waits for :meth:`ran_to`)."""
        return [self.step_time(StepShape(decode_seqs=seqs, decode_ctx_tokens=ctx_tokens + i * seqs)) for i in range(count)]

    def ran_to(self, seqs: int, ctx_tokens: int) -> None:
        """A decode run has started its step of ``seqs`` sequences over ``ctx_tokens`` context entries,
        its longest so far: a model that holds back what pricing ahead would tell the user (a profile's
        past-the-grid warning) tells it now, for the steps that run."""

    def cpu_s(self, shape: StepShape) -> float:
        """Seconds of :meth:`step_time` that are the engine's CPU work between forward passes (its
        ``step_overhead``: scheduling, input preparation, output processing), which
        ``scheduler.async_scheduling`` overlaps with the GPU's work (:mod:`simulator.latency.overlap`).
        It depends on the step's sequences and tokens, not on their contexts. A model that prices
        no such work (``latency.model=constant``) has none."""
        return 0.0

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """Seconds per operator for one step; the values sum to :meth:`step_time`.
        Attention operators have keys containing ``attention``."""
        return {"step": self.step_time(shape)}

    def describe(self) -> str:
        return type(self).__name__


class LatencyWrapper(LatencyModel):
    """A latency model that changes another's step times (``inner``). A subclass defines how
    (``step_time`` and, to stay consistent, ``decode_step_time``, ``decode_times``,
    ``breakdown``, ``describe``); ``ran_to`` and ``cpu_s`` pass through, and attributes no
    latency model has (a roofline's parts) are looked up on the inner model."""

    def __init__(self, inner: LatencyModel):
        self.inner = inner
        self.cfg, self.spec = inner.cfg, inner.spec

    def ran_to(self, seqs: int, ctx_tokens: int) -> None:
        self.inner.ran_to(seqs, ctx_tokens)

    def cpu_s(self, shape: StepShape) -> float:
        return self.inner.cpu_s(shape)

    def __getattr__(self, name: str):
        if name == "inner":  # not set yet (a copy or an unpickling in progress): no recursion through it
            raise AttributeError(name)
        return getattr(self.inner, name)


LATENCY_MODELS: Registry[type[LatencyModel]] = Registry("latency.model", "latency model")


def build_latency_model(cfg: ScenarioConfig, spec: ModelSpec) -> LatencyModel:
    """The scenario's latency model (``latency.model``); :func:`simulator.latency.build_latency_model`
    also wraps it for speculative decoding."""
    return LATENCY_MODELS.get(cfg.latency.model)(cfg, spec)
