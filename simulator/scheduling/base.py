"""The scheduler interface: what one replica runs in its next iteration.

A scheduler *chooses*; the replica *applies*. A scheduler is built on a
:class:`~simulator.scheduling.state.ReplicaState` - the replica's queues,
admitted requests, KV manager and clock - and sees nothing else of the
replica. Each iteration the replica calls :meth:`Scheduler.plan`, which may
admit waiting requests (allocating their KV blocks), preempt or swap running
ones through the state, and returns a :class:`Plan` - the prefill chunks to
compute and whether the running set decodes - or ``None`` when there is
nothing to do (optionally with ``next_wakeup`` set). The replica then asks
the latency model for the step's duration, advances the clock and applies
the plan's effects in one place.

Policies share the helpers below for the parts real engines share: growing
KV for decodes with preemption of the newest request, and swapping back in.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from simulator.config.checks import need, positive
from simulator.registry import Component, Registry

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.engine.request import Request
    from simulator.scheduling.state import ReplicaState


@dataclass(slots=True)
class Plan:
    prefill: list[tuple[Request, int]] = field(default_factory=list)  # (request, tokens this step)
    decode: bool = False  # the whole running set decodes one token each
    padding_tokens: int = 0  # static batching: prompt padding computed for nothing
    padding_pairs: float = 0.0  # ... and its attention pairs
    padded_seqs: int = 0  # static batching: finished sequences still computed in decode
    padded_ctx: int = 0  # ... and their context


class _ReadOnlyPlan(Plan):
    """A plan no one may change (its fields are set once, its prefill list is an empty tuple)."""

    __slots__ = ()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"DECODE_ONLY is shared by every decode-only step: make a Plan to set {name}")

    def __eq__(self, other: object) -> bool:  # equal to a Plan of the same fields (its prefill a tuple, theirs a list)
        if not isinstance(other, Plan):
            return NotImplemented
        return all(list(getattr(self, f)) == list(getattr(other, f)) if f == "prefill" else getattr(self, f) == getattr(other, f)
                   for f in Plan.__slots__)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]  # (as Plan's)


def _decode_only() -> Plan:
    plan = object.__new__(_ReadOnlyPlan)
    for name, value in (("prefill", ()), ("decode", True), ("padding_tokens", 0), ("padding_pairs", 0.0), ("padded_seqs", 0),
                        ("padded_ctx", 0)):  # fmt: skip
        object.__setattr__(plan, name, value)
    return plan


#: the plan of a step in which every running request decodes and nothing else happens, shared by every
#: such step (plans are read, never changed, once a scheduler returns them; this one cannot be changed)
DECODE_ONLY: Plan = _decode_only()


class Scheduler(Component, ABC):
    """One policy per engine; registered under ``scheduler.policy``. It checks its settings
    (:meth:`check`, and :meth:`check_prompts` against the workload's longest prompt) and is
    built on a replica's state by :func:`simulator.scheduling.build_scheduler`."""

    #: finished requests keep their KV until the whole batch ends (static batching)
    holds_finished = False
    #: needs KV reserved up front (a contiguous allocation mode)
    requires_reservation = False
    #: a prompt must fit the step's token budget whole (no chunking)
    whole_prompts: ClassVar[bool] = False
    #: the engine's own words for raising the budget, appended to the too-long-prompt error
    budget_hint: ClassVar[str] = ""
    #: runs ``scheduler.multi_step`` decode steps per scheduling decision (vLLM V0's multi-step scheduling)
    multi_step_ok: ClassVar[bool] = False

    @classmethod
    def check(cls, sched, key):
        need(sched.max_batch_size >= 1, f"{key}.max_batch_size must be >= 1 (got {sched.max_batch_size}).")
        need(sched.max_batch_tokens >= 1, f"{key}.max_batch_tokens must be >= 1 (got {sched.max_batch_tokens}).")
        positive(sched.max_wait_s, f"{key}.max_wait_s", allow_zero=True)
        modes = ("recompute", "swap")
        need(
            sched.preemption_mode in modes,
            f"{key}.preemption_mode={sched.preemption_mode!r} is not a known preemption mode; choose one of: {', '.join(modes)}.",
        )
        steps = sched.multi_step  # (a scenario-wide key: pools take it from scheduler.multi_step)
        need(
            isinstance(steps, int) and not isinstance(steps, bool) and steps >= 1,
            f"scheduler.multi_step must be a whole number of decode steps >= 1 (got {steps!r}).",
        )
        need(
            steps == 1 or cls.multi_step_ok,
            f"scheduler.multi_step={steps} is vLLM V0's multi-step scheduling without chunked prefill, which "
            f"servesim models with {key}.policy=continuous only (not {cls.name}).",
        )

    @classmethod
    def check_prompts(cls, sched, key: str, prompt_max: float) -> None:
        """The workload's longest prompt (``prompt_max`` tokens) can be scheduled at all."""
        if cls.whole_prompts and math.isfinite(prompt_max):
            need(
                prompt_max <= sched.max_batch_tokens,
                f"{key}.max_batch_tokens={sched.max_batch_tokens} is below the longest prompt the workload can produce "
                f"({int(prompt_max)}), which {cls.name} batching could never schedule (engines refuse to start likewise); "
                f"raise it or use scheduler=chunked_prefill{cls.budget_hint}.",
            )

    def __init__(self, cfg: ScenarioConfig, state: ReplicaState):
        sched = cfg.scheduler
        self.state = state
        #: sequences per step: a beam-search request is workload.beam_width of them
        self.max_batch_size = max(1, int(sched.max_batch_size) // int(cfg.workload.beam_width))
        self.max_batch_tokens = int(sched.max_batch_tokens)
        self.preemption_mode = str(sched.preemption_mode)
        self.next_wakeup: float | None = None
        sp = sched.speculative
        #: token-budget slots a decoding sequence takes: k + 1 when verifying k speculative tokens
        self.decode_queries = int(sp.num_tokens) + 1 if sp.method != "none" else int(cfg.workload.beam_width)
        #: decode steps per scheduling decision (``scheduler.multi_step``): a decode-only step opens a group
        #: of this many, during which nothing is admitted, swapped in or continued (see :meth:`in_group`)
        self.multi_step = int(sched.multi_step)
        self.group_end = 0  # the running set's decode clock at which the group under way ends

    def reject_reason(self, req: Request) -> str | None:
        """Why ``req`` can never run on this replica, or None if it can."""
        # A prefill-pool replica only ever holds the prompt's KV.
        state = self.state
        tokens = req.prompt if state.pool == "prefill" else None
        if not state.kv.ever_fits(req, tokens):
            return "kv_capacity"
        return None

    @abstractmethod
    def plan(self) -> Plan | None:
        """Choose the next iteration's work, or None if the replica is idle."""

    # -- shared mechanics --------------------------------------------------
    def in_group(self) -> bool:
        """A multi-step group is under way: its decode steps run without a scheduling decision
        (vLLM V0 with ``--num-scheduler-steps``: the scheduler runs once per group, so requests
        that arrive meanwhile wait for its end). A group ends early only when its last running
        request does; the next decode step then opens a group of its own."""
        running = self.state.running
        if not running:
            self.group_end = running.clock
            return False
        return running.clock < self.group_end

    def open_group(self) -> None:
        """The decode-only step about to run opens a group of ``multi_step`` steps."""
        self.group_end = self.state.running.clock + self.multi_step

    def victim(self) -> Request:
        """The newest admitted request (latest arrival): vLLM's preemption
        choice. With priority tiers, the newest of the lowest tier present."""
        st = self.state
        if st.tiered:
            members = [*st.running.members.values(), *st.prefilling.values()]
            return min(members, key=lambda r: (r.priority, -r.arrival_s, -r.id))
        best = st.running.newest() if st.running else None
        for req in st.prefilling.values():
            if best is None or (req.arrival_s, req.id) > (best.arrival_s, best.id):
                best = req
        assert best is not None, "victim() is asked for only while requests hold KV"
        return best

    def grow_for_decode(self) -> None:
        """Give every running request that starts a KV block in the next decode
        step its block, preempting the newest requests while the pool is short."""
        st = self.state
        kv = st.kv
        running = st.running
        if running.counts_blocks:
            n = running.take_next(kv.free)
            if n is not None:  # the common case: they fit (no member is listed, the set counts its blocks)
                if n:
                    kv.allocate(n)
                return
        needers = running.block_needers()  # a member once per block it needs (beam groups may need several)
        while len(needers) > kv.free and (st.running or st.prefilling):
            v = self.victim()
            st.preempt(v, self.preemption_mode)
            needers = [r for r in needers if r.id != v.id]
        if needers:
            kv.allocate(len(needers))
        running.blocks_taken(needers)

    def decode_first(self, plan: Plan) -> int:
        """Open a step whose decodes go first (chunked prefill, in-flight
        batching): swap requests back in, give every running request its next
        block, mark the running set to decode, and return the token budget
        left for prompts."""
        st = self.state
        if st.swapped:
            self.swap_in()
        if st.running:
            self.grow_for_decode()
        budget = self.max_batch_tokens
        if st.running:
            plan.decode = True
            budget -= len(st.running) * self.decode_queries
        return budget

    def head_fits(self, req: Request, busy: bool) -> bool:
        """The KV blocks for ``req``'s whole prompt are free now; above the
        watermark too unless the step would otherwise run nothing (``busy``
        false), so an idle replica always takes its next request."""
        kv = self.state.kv
        blocks = kv.admit_cost(req, req.target)
        if not kv.can_admit(blocks) and busy:
            return False
        return blocks <= kv.free

    def admit_head(self) -> Request:
        """Take the head of the queue: its KV blocks for the whole prompt, and a place in the running set."""
        st = self.state
        req = st.waiting.popleft()
        st.kv.admit(req, req.target)
        st.admit(req)
        return req

    def swap_in(self) -> int:
        """Bring swapped requests back, oldest first, while their blocks fit
        with one block to spare (so a returning request can take its next
        block without being evicted again at once). Returns how many came back."""
        st = self.state
        kv = st.kv
        back = 0
        while st.swapped and len(st.running) + len(st.prefilling) + st.arriving < self.max_batch_size:
            req = st.swapped[0][2]
            blocks = kv.blocks_for(req.swapped_kv)
            if blocks + 1 > kv.free or (not kv.can_admit(blocks) and (st.running or st.prefilling)):
                break
            kv.allocate(blocks)
            req.blocks = blocks
            st.swap_in()
            back += 1
        return back


SCHEDULERS: Registry[type[Scheduler]] = Registry("scheduler.policy", "scheduling policy")
