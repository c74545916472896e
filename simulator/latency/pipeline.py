"""Step time of a pipeline-parallel replica (``cluster.pp`` stages of ``cluster.tp`` GPUs).

The layers are split evenly over ``pp`` stages; the last stage also runs the
LM head. The engine splits a step's sequences into up to ``pp``
micro-batches that follow each other through the stages (vLLM's virtual
engines), and a stage hands each micro-batch's activations to the next with a
point-to-point send (``hardware.p2p_latency_us`` + bytes /
``hardware.p2p_gbps``, fitted to measured NCCL send/recv; each TP rank sends
its 1/tp share). The step this module prices is the *cycle* in which every
sequence advances once: with ``m = min(pp, sequences)`` micro-batches, each
the size of the largest share, and stage times ``tau_i``,

    cycle = overhead + max( sum_i tau_i ,  m * max_i tau_i )

the first term is one micro-batch's trip through the pipeline (it bounds the
cycle when there are fewer micro-batches than stages: the *bubble*, stages
idle while the one micro-batch is elsewhere), the second the busiest stage's
work when the pipeline is full. So at batch 1 a pipeline is no faster than
its slowest path through every layer (no gain from the extra GPUs), while a
full pipeline keeps every stage busy. Tensor-parallel all-reduces stay inside
each stage (in the roofline's per-layer time); the engine's CPU overhead is
paid once per cycle.

Stages on different nodes: the stages fill the nodes in order
(``hardware.gpus_per_node`` GPUs each), so the hand-off after stage ``i``
leaves the node when ``(i + 1) * tp`` is a multiple of ``gpus_per_node``;
that send adds one network hop's latency (``hardware.network_latency_us``)
and moves each TP rank's share over its own NIC (``hardware.network_gbps``).

Ignored: pipelining the chunks of one long prompt, uneven layer splits, and
the all-gather that reassembles a TP-split send.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.latency.base import LatencyModel, StepShape
from simulator.latency.roofline import ACTIVATION_BYTES, RooflineLatency, network_bytes_s, nodes_of
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: when the hardware has no measured send/recv fit: NVLink-class latency, the catalog's interconnect bandwidth
DEFAULT_P2P_LATENCY_US = 10.0


class PipelineLatency(LatencyModel):
    """A roofline over the whole model, priced as a cycle of micro-batches through ``pp`` stages."""

    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec, inner: RooflineLatency):
        super().__init__(cfg, spec)
        hw = cfg.hardware
        self.inner = inner
        self.pp = spec.pp
        lat_us = hw.p2p_latency_us if hw.p2p_latency_us is not None else DEFAULT_P2P_LATENCY_US
        gbps = hw.p2p_gbps if hw.p2p_gbps is not None else hw.interconnect_gbps
        self.send_fixed = float(lat_us) * 1e-6
        self.send_per_token = spec.hidden_size * ACTIVATION_BYTES / spec.tp / (float(gbps) * 1e9)
        gpus = spec.tp * spec.pp
        self.nodes, per_node = nodes_of(hw, gpus)
        #: whether the hand-off after each stage but the last leaves its node
        self.crosses = [(i + 1) * spec.tp % per_node == 0 for i in range(self.pp - 1)]
        if any(self.crosses):
            net = network_bytes_s(hw, gpus, f"cluster.tp x cluster.pp = {gpus} GPUs")
            self.net_fixed = self.send_fixed + float(hw.network_latency_us) * 1e-6
            self.net_per_token = spec.hidden_size * ACTIVATION_BYTES / spec.tp / net

    def send_s(self, tokens: int, crosses: bool = False) -> float:
        """One stage-to-stage hand-off of ``tokens`` tokens' activations (over the network when it ``crosses`` nodes)."""
        if crosses:
            return self.net_fixed + self.net_per_token * tokens
        return self.send_fixed + self.send_per_token * tokens

    def micro_batch(self, shape: StepShape, m: int) -> StepShape:
        """The largest of ``m`` even shares of the step's sequences and tokens."""
        up = lambda x: math.ceil(x / m)  # noqa: E731
        return StepShape(
            prefill_seqs=up(shape.prefill_seqs),
            prefill_tokens=up(shape.prefill_tokens),
            prefill_attn_pairs=shape.prefill_attn_pairs / m,
            prefill_ctx_tokens=up(shape.prefill_ctx_tokens),
            decode_seqs=up(shape.decode_seqs),
            decode_ctx_tokens=up(shape.decode_ctx_tokens),
            decode_queries=shape.decode_queries,
        )

    def stage_times(self, shape: StepShape) -> tuple[int, list[float]]:
        """(micro-batches, each stage's time for one of them)."""
        inner = self.inner
        seqs = shape.prefill_seqs + shape.decode_seqs
        m = max(1, min(self.pp, seqs))
        mb = self.micro_batch(shape, m) if m > 1 else shape
        mb_seqs = mb.prefill_seqs + mb.decode_seqs
        rows = mb_seqs + mb.decode_seqs * (mb.decode_queries - 1)
        lm = inner.lm_head_s(rows)
        body = (inner.step_time(mb) - inner.overhead_s(mb_seqs, not mb.prefill_tokens) - lm) / self.pp
        tokens = mb.prefill_tokens + mb.decode_seqs * mb.decode_queries
        return m, [body + self.send_s(tokens, crosses) for crosses in self.crosses] + [body + lm]

    def step_time(self, shape: StepShape) -> float:
        seqs = shape.prefill_seqs + shape.decode_seqs
        if seqs <= 0:
            return self.inner.step_time(shape)
        m, tau = self.stage_times(shape)
        return self.cpu_s(shape) + max(sum(tau), m * max(tau))

    def cpu_s(self, shape: StepShape) -> float:
        return self.inner.cpu_s(shape)  # the engine's CPU work is the whole replica's, once a step

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        seqs = shape.prefill_seqs + shape.decode_seqs
        if seqs <= 0:
            return self.inner.breakdown(shape)
        m, tau = self.stage_times(shape)
        work = max(sum(tau), m * max(tau))
        return {"pipeline_cycle": work, "step_overhead": self.cpu_s(shape)}

    def describe(self) -> str:
        over = f" over {self.nodes} nodes" if self.nodes > nodes_of(self.cfg.hardware, self.inner.tp)[0] else ""
        return f"{self.inner.describe()} PP{self.pp}{over}"
