"""``scheduler.async_scheduling=true``: the engine's CPU work overlaps the GPU's.

An engine that runs its loop step by step leaves the GPU idle while the CPU
schedules the next batch, prepares its inputs and processes the last step's
outputs; the latency models add that work (``step_overhead``) to every step.
Async (overlap) scheduling launches step ``n + 1`` on the GPU before the CPU
has processed step ``n``'s tokens, so the two run concurrently and a step
takes the longer of the two::

    step = max(GPU work, CPU work)          instead of   GPU work + CPU work

What ships it: TensorRT-LLM's PyTorch backend ("Overlap Scheduler ... At step
n, the system launches GPU computation for step n+1 without waiting for CPU
tasks ... from step n to complete"; "Enabled by default", from 1.0 on:
nvidia.github.io/TensorRT-LLM/torch/features/overlap_scheduler.html; opt-in
as ``enable_overlap_scheduler`` in 0.17-0.18), SGLang's overlap scheduler
(the "zero-overhead batch scheduler" of v0.4, on unless
``--disable-overlap-schedule``: lmsys.org/blog/2024-12-04-sglang-v0-4) and
vLLM V1's ``--async-scheduling``.

**Left out:** the one step of lag the overlap brings. A request that arrives
while step ``n`` runs joins step ``n + 2`` (step ``n + 1`` was scheduled when
``n`` launched), and a finished request is seen to have finished one step
late ("The optimization introduces one extra decoding step"): each adds about
one decode step to a request's time to first token or to its end, a few to
tens of milliseconds, which servesim does not add. The first step after the
engine sat idle has no step to hide its CPU work behind and really takes the
sum (a millisecond or two more at very light load). A step's CPU work is set
beside its own GPU work, where the engine sets it beside the next step's: the
same in a steady run, not right after a long prefill step. And the overhead
is one number per engine (``latency.step_overhead_s`` and per sequence),
fitted as if it were all CPU work: whatever GPU work it carries (sampling,
padding) is hidden with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from simulator.latency.base import LatencyModel, LatencyWrapper, StepShape

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def overlapped(total: float, cpu: float) -> float:
    """A step of ``total`` seconds, ``cpu`` of them the engine's CPU work, with that work
    run beside the GPU's: the longer of the two."""
    gpu = total - cpu
    return gpu if gpu >= cpu else cpu


class OverlappedLatency(LatencyWrapper):
    """``inner``'s step times with its CPU work (:meth:`~LatencyModel.cpu_s`) overlapped."""

    def __init__(self, inner: LatencyModel):
        super().__init__(inner)
        self._decode_cpu: dict[int, float] = {}  # a decode step's CPU work, by its sequences

    def _cpu_decode(self, seqs: int) -> float:
        cpu = self._decode_cpu.get(seqs)
        if cpu is None:
            cpu = self._decode_cpu[seqs] = self.inner.cpu_s(StepShape(decode_seqs=seqs))
        return cpu

    def step_time(self, shape: StepShape) -> float:
        cpu = self.inner.cpu_s(shape)  # (first: a speculative model's step_time changes the shape it is given)
        return overlapped(self.inner.step_time(shape), cpu)

    def decode_step_time(self, seqs: int, ctx_tokens: int) -> float:
        return overlapped(self.inner.decode_step_time(seqs, ctx_tokens), self._cpu_decode(seqs))

    def decode_times(self, seqs: int, ctx_tokens: int, count: int) -> list[float]:
        cpu = self._cpu_decode(seqs)
        return [overlapped(t, cpu) for t in self.inner.decode_times(seqs, ctx_tokens, count)]

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """The inner model's operators, with ``step_overhead`` the part of the CPU work the GPU's
        work does not hide (0 unless the CPU takes longer), so the values still sum to the step."""
        cpu = self.inner.cpu_s(shape)
        out = dict(self.inner.breakdown(shape))
        gpu = sum(out.values()) - out.get("step_overhead", 0.0)
        out["step_overhead"] = max(0.0, cpu - gpu)
        return out

    def describe(self) -> str:
        return f"{self.inner.describe()}; CPU work overlapped (scheduler.async_scheduling)"


def with_overlap(cfg: ScenarioConfig, model: LatencyModel) -> LatencyModel:
    """``model``, wrapped when the scenario's engine overlaps its CPU work (``scheduler.async_scheduling``)."""
    return OverlappedLatency(model) if cfg.scheduler.async_scheduling else model
