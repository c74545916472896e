"""Step time under speculative decoding: the proposal, then the target's verification.

A step that decodes with ``scheduler.speculative.method`` set costs

* **verification**: the target model's step with ``decode_queries = k + 1``
  positions per decoding sequence (more GEMM rows and LM-head rows; the KV
  context is read once, so at small batches verifying k + 1 positions costs
  little more than decoding one: the gain speculative decoding lives on);
* **proposal**, before it, by method:

  ``draft``  k autoregressive steps of the draft model over the same batch (its
             first step also runs the step's prompt tokens through the draft,
             which must keep its own KV of them); a roofline of the draft model
             on the same GPUs and TP, without the engine's CPU overheads, which
             the step pays once.
  ``mtp``    k steps of the target's multi-token-prediction module: one decoder
             layer and the (shared) LM head, priced as a one-layer roofline of
             the target (DeepSeek-V3's MTP module is one transformer block,
             DeepSeek-V3 technical report section 2.2).
  ``ngram``  prompt lookup on the CPU: no GPU time (vLLM's n-gram proposer; its
             CPU cost hides behind the GPU step).

With ``latency=constant`` the proposal is free and every step costs
``latency.step_s``: the oracle the tests use to check token accounting.
What is ignored: rejection sampling's own kernels, the draft's KV transfer
under disaggregation, tree (multi-candidate) speculation.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from simulator.latency.base import LatencyModel, StepShape
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def proposer_spec(cfg: ScenarioConfig, spec: ModelSpec) -> ModelSpec | None:
    """The model that proposes tokens on the GPU: the draft, the target's one-layer MTP module, or None (ngram)."""
    sp = cfg.scheduler.speculative
    if sp.method == "draft":
        from simulator.config.catalog import load_model

        return ModelSpec.from_config(load_model(str(sp.draft_model), "scheduler.speculative.draft_model"), spec.tp)
    if sp.method == "mtp":
        # one decoder layer of the model's own kind (an MoE layer for an MoE model) with the embedding and
        # head, which it shares with the target (DeepSeek-V3 report, section 2.2): priced, not held again
        one = replace(cfg.model, num_layers=1, first_dense_layers=0, moe_layer_step=1, params_total=None)
        return replace(ModelSpec.from_config(one, spec.tp, int(cfg.cluster.ep)), shares_tables=True)
    return None


class SpeculativeLatency(LatencyModel):
    """The target's latency model with verification of k + 1 positions and the proposer's time added."""

    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec, target: LatencyModel):
        super().__init__(cfg, spec)
        sp = cfg.scheduler.speculative
        self.target = target
        self.method = str(sp.method)
        self.k = int(sp.num_tokens)
        self.proposer: LatencyModel | None = None
        pspec = proposer_spec(cfg, spec)
        if pspec is not None and cfg.latency.model == "roofline":
            from simulator.latency.roofline import RooflineLatency

            quiet = replace(cfg.latency, step_overhead_s=0.0, step_overhead_per_seq_s=0.0)
            self.proposer = RooflineLatency(replace(cfg, latency=quiet), pspec)
        self._draft_name = pspec.name if pspec is not None and self.method == "draft" else None

    def step_time(self, shape: StepShape) -> float:
        ds = shape.decode_seqs
        if not ds:
            return self.target.step_time(shape)
        shape.decode_queries = self.k + 1
        t = self.target.step_time(shape)
        if self.proposer is not None:
            t += self.proposal_s(shape)
        return t

    def proposal_s(self, shape: StepShape) -> float:
        """k proposer steps over the decoding sequences; the first also takes the step's prompt tokens."""
        assert self.proposer is not None
        first = replace(shape, decode_queries=1)
        later = StepShape(decode_seqs=shape.decode_seqs, decode_ctx_tokens=shape.decode_ctx_tokens)
        t = self.proposer.step_time(first)
        for j in range(1, self.k):
            later.decode_ctx_tokens = shape.decode_ctx_tokens + j * shape.decode_seqs
            t += self.proposer.step_time(later)
        return t

    def cpu_s(self, shape: StepShape) -> float:
        if shape.decode_seqs:  # the target verifies k + 1 positions; the proposer runs without CPU overheads
            shape = replace(shape, decode_queries=self.k + 1)
        return self.target.cpu_s(shape)

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        if not shape.decode_seqs:
            return self.target.breakdown(shape)
        shape.decode_queries = self.k + 1
        out = dict(self.target.breakdown(shape))
        out["speculative_proposal"] = self.proposal_s(shape) if self.proposer is not None else 0.0
        return out

    def describe(self) -> str:
        by = f" draft {self._draft_name}" if self._draft_name else f" {self.method}"
        return f"{self.target.describe()} + speculative{by} k={self.k}"
