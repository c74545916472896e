"""The scheduler interface: what one replica runs in its next iteration.

A scheduler *chooses*; the replica *applies*. Each iteration the replica calls
:meth:`Scheduler.plan`, which may admit waiting requests (allocating their KV
blocks), preempt running ones, and returns a :class:`Plan` - the prefill
chunks to compute and whether the running set decodes - or ``None`` when
there is nothing to do. The replica then asks the latency model for the
step's duration, advances the clock and applies the plan's effects in one
place (tokens, first tokens, completions, freed blocks).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simulator.registry import Registry

if TYPE_CHECKING:
    from simulator.engine.replica import Replica
    from simulator.engine.request import Request


@dataclass(slots=True)
class Plan:
    prefill: list[tuple[Request, int]] = field(default_factory=list)  # (request, tokens this step)
    decode: bool = False  # the whole running set decodes one token each
    preempted: int = 0  # preemptions made while planning this step


class Scheduler(ABC):
    """One policy per engine; registered under ``scheduler.policy``."""

    def __init__(self, cfg, replica: Replica):
        self.replica = replica
        self.max_batch_size = int(cfg.scheduler.max_batch_size)
        self.max_batch_tokens = int(cfg.scheduler.max_batch_tokens)

    def reject_reason(self, req: Request) -> str | None:
        """Why ``req`` can never run under this policy, or None if it can."""
        if not self.replica.kv.ever_fits(req.max_kv_tokens):
            return "kv_capacity"
        return None

    @abstractmethod
    def plan(self) -> Plan | None:
        """Choose the next iteration's work, or None if the replica is idle."""


SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler.policy", "scheduling policy")
