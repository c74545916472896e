"""``latency.model=roofline``: step time from hardware peaks and model shapes.

The roofline model prices one engine iteration of one replica (``tp`` GPUs
that split every layer evenly) as a sum of kernel families, each of which is
either compute-bound or memory-bound, whichever is slower:

    step = overhead + linear + attention(prefill) + attention(decode) + all-reduce

**Linear layers** (QKV, O, gate, up, down in every layer, plus the LM head)::

    flops = 2 * layer_linear_params * num_layers * tokens
          + 2 * lm_head_params * (prefill_seqs + decode_seqs)
    bytes = weight_bytes + tokens * activation_bytes_per_token
    time  = max(flops / (peak * compute_efficiency),
                bytes / (hbm_bw * memory_efficiency)) / tp

``tokens = prefill_tokens + decode_seqs``. The LM head runs once per sequence
(only the last position's logits are needed). All weights are read once per
step (``ModelSpec.weight_bytes_read_per_step``: every weight but the input
embedding table, at ``model.weight_dtype``). The
activation traffic is the input and output of the four GEMMs of a layer at
2 bytes per element: ``(h + q + 2kv) + (q + h) + (h + 2I) + (I + h)``
elements per token per layer, where ``q`` and ``kv`` are the query and KV
widths and ``I`` the MLP width; that is about ``17 * hidden`` per layer for
Llama-3.1-8B. It only matters between the memory-bound (decode) and the
compute-bound (long prefill) regimes.

**Attention** is priced separately for the prefill and the decode part of a
step, since they run as different kernels::

    flops = 4 * num_layers * num_heads * head_dim * pairs
    bytes = kv_bytes_per_token * (context tokens read + new tokens written)

with ``pairs = prefill_attn_pairs`` (causal query-key pairs) for prefill and
``decode_ctx_tokens`` (one query per context entry) for decode. Attention
runs at the BF16 peak whatever the weight precision (FlashAttention-style
kernels compute in 16-bit), with the same efficiency factors as the linear
layers.

**Tensor parallelism** (``tp > 1``) adds two ring all-reduces per layer
(after attention and after the MLP) of ``tokens * hidden * 2`` bytes each::

    t = 2 (tp - 1) / tp * bytes / (interconnect_gbps * 1e9 * comm_efficiency)
        + allreduce_latency_s

They are not overlapped with compute, as in vLLM's TP implementation.

**Peak compute** follows ``model.weight_dtype``: ``bf16``/``fp16`` use
``hardware.bf16_tflops``; ``fp8`` uses ``hardware.fp8_tflops`` (W8A8; a GPU
without FP8 tensor cores is a :class:`~simulator.errors.ConfigError`);
``int8``/``int4`` are treated as weight-only quantisation: math at the BF16
peak, bytes at the smaller weight size; ``fp32`` uses half the BF16 peak
(the TF32 tensor-core rate on every GPU in the catalog).

**Defaults.** ``compute_efficiency=0.70`` and ``memory_efficiency=0.80`` are
the MFU and MBU that microsoft/vidur's linear-layer profiles reach on A100 and
H100 (Llama-2-7B / Llama-3-8B / Llama-2-70B: MFU 0.64-0.78 at 512-4096
tokens, MBU 0.69-0.87 at 1-16 tokens; ``achieved_efficiency`` in
shared/reference/hardware.yaml). ``comm_efficiency=0.80`` matches the ~83% of
NVLink4 peak that nccl's p2p bandwidth test reaches on H100 (nccl#1264).
``step_overhead_s`` (2 ms by default) stands for scheduling, sampling, input
preparation and kernel launches, and is an assumption, not a measurement.

**Left out:** the efficiency knee between the two regimes (real GEMMs are
below both roofs near ~100-500 tokens, so mid-size batches come out
optimistic); per-GEMM rooflines (one max over the whole linear group);
attention kernels' lower efficiency than GEMMs on some GPUs; norms, rotary,
activation functions and sampling other than through the fixed overhead;
sliding-window attention and MoE; embedding lookups (a few rows of the table,
not counted); compute/communication overlap; pipeline
parallelism; vendor- or kernel-specific efficiency (one set of factors for
every GPU, though e.g. MI300X software typically reaches a lower fraction of
its peak); CPU-GPU contention and power/clock throttling.

``step_time`` runs ~100k times per simulation, so everything that does not
depend on the step's shape is folded into a few per-token and per-pair
coefficients in ``__init__``; a call is a handful of multiply-adds.
"""

from __future__ import annotations

from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape
from simulator.specs import ModelSpec

#: Bytes per activation element (BF16 activations, whatever the weight precision).
ACTIVATION_BYTES = 2.0


def peak_flops(hardware, weight_dtype: str) -> tuple[float, float]:
    """(linear-layer peak, attention peak) in FLOP/s for ``weight_dtype`` on ``hardware``."""
    bf16 = float(hardware.bf16_tflops) * 1e12
    if weight_dtype in ("bf16", "fp16", "int8", "int4"):
        return bf16, bf16
    if weight_dtype == "fp8":
        if hardware.fp8_tflops is None:
            raise ConfigError(
                f"model.weight_dtype='fp8' needs FP8 tensor cores, which hardware={hardware.name} lacks; "
                f"use model.weight_dtype=bf16 or int8 (weight-only), or pick an FP8-capable GPU such as h100-sxm."
            )
        return float(hardware.fp8_tflops) * 1e12, bf16
    if weight_dtype == "fp32":
        return bf16 / 2, bf16 / 2  # TF32 tensor cores
    raise ConfigError(
        f"model.weight_dtype={weight_dtype!r} is not supported by latency.model=roofline; "
        f"choose one of: bf16, fp16, fp8, int8, int4, fp32."
    )


@LATENCY_MODELS.register("roofline")
class RooflineLatency(LatencyModel):
    """Analytical step time: max(compute, memory) per kernel family + fixed overhead."""

    def __init__(self, cfg, spec: ModelSpec):
        super().__init__(cfg, spec)
        hw = cfg.hardware
        lat = cfg.latency
        tp = spec.tp
        self.tp = tp
        self.hardware_name = hw.name
        self.compute_efficiency = ce = float(lat.compute_efficiency)
        self.memory_efficiency = me = float(lat.memory_efficiency)
        self.overhead = float(lat.step_overhead_s)

        linear_peak, attn_peak = peak_flops(hw, cfg.model.weight_dtype)
        flops_s = linear_peak * ce * tp  # achieved FLOP/s of the replica
        attn_flops_s = attn_peak * ce * tp
        bytes_s = float(hw.memory_bw_gbps) * 1e9 * me * tp  # achieved B/s of the replica

        h, d, L = spec.hidden_size, spec.head_dim, spec.num_layers
        q = spec.num_heads * d
        kv = spec.num_kv_heads * d
        inter = spec.intermediate_size
        act_elems = (h + q + 2 * kv) + (q + h) + (h + 2 * inter) + (inter + h)
        self.activation_bytes_per_token = act_elems * ACTIVATION_BYTES * L

        # Linear layers: seconds per token / per sequence / per step.
        self._lin_flop_tok = 2.0 * spec.layer_linear_params * L / flops_s
        self._lin_flop_seq = 2.0 * spec.lm_head_params / flops_s
        self._lin_mem_fixed = spec.weight_bytes_read_per_step / bytes_s
        self._lin_mem_tok = self.activation_bytes_per_token / bytes_s
        # Attention: seconds per query-key pair and per KV entry moved.
        self._attn_flop_pair = 4.0 * L * spec.num_heads * d / attn_flops_s
        self._kv_tok = spec.kv_bytes_per_token / bytes_s
        # Tensor-parallel all-reduces: 2 per layer.
        if tp > 1:
            ring_bw = float(hw.interconnect_gbps) * 1e9 * float(lat.comm_efficiency)
            self._comm_tok = 2 * L * (2.0 * (tp - 1) / tp) * h * ACTIVATION_BYTES / ring_bw
            self._comm_fixed = 2 * L * float(lat.allreduce_latency_s)
        else:
            self._comm_tok = 0.0
            self._comm_fixed = 0.0

    def step_time(self, shape: StepShape) -> float:
        pt = shape.prefill_tokens
        ds = shape.decode_seqs
        tokens = pt + ds
        if tokens <= 0:
            return self.overhead
        kv = self._kv_tok
        pair = self._attn_flop_pair

        lin_c = self._lin_flop_tok * tokens + self._lin_flop_seq * (shape.prefill_seqs + ds)
        lin_m = self._lin_mem_fixed + self._lin_mem_tok * tokens
        t = self.overhead + self._comm_fixed + self._comm_tok * tokens
        t += lin_c if lin_c > lin_m else lin_m

        if pt:
            c = pair * shape.prefill_attn_pairs
            m = kv * (shape.prefill_ctx_tokens + pt)
            t += c if c > m else m
        if ds:
            ctx = shape.decode_ctx_tokens
            c = pair * ctx
            m = kv * (ctx + ds)
            t += c if c > m else m
        return t

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """The terms of :meth:`step_time`, in seconds (for tests, notebooks and reports)."""
        pt, ds = shape.prefill_tokens, shape.decode_seqs
        tokens = pt + ds
        if tokens <= 0:
            parts = dict.fromkeys(
                ("linear_compute", "linear_memory", "prefill_attn_compute", "prefill_attn_memory",
                 "decode_attn_compute", "decode_attn_memory", "comm"),
                0.0,
            )
            parts["overhead"] = parts["total"] = self.overhead
            return parts
        parts = {
            "linear_compute": self._lin_flop_tok * tokens + self._lin_flop_seq * (shape.prefill_seqs + ds),
            "linear_memory": self._lin_mem_fixed + self._lin_mem_tok * tokens,
            "prefill_attn_compute": self._attn_flop_pair * shape.prefill_attn_pairs if pt else 0.0,
            "prefill_attn_memory": self._kv_tok * (shape.prefill_ctx_tokens + pt) if pt else 0.0,
            "decode_attn_compute": self._attn_flop_pair * shape.decode_ctx_tokens if ds else 0.0,
            "decode_attn_memory": self._kv_tok * (shape.decode_ctx_tokens + ds) if ds else 0.0,
            "comm": self._comm_fixed + self._comm_tok * tokens,
            "overhead": self.overhead,
        }
        parts["total"] = (
            parts["overhead"]
            + parts["comm"]
            + max(parts["linear_compute"], parts["linear_memory"])
            + max(parts["prefill_attn_compute"], parts["prefill_attn_memory"])
            + max(parts["decode_attn_compute"], parts["decode_attn_memory"])
        )
        return parts

    def describe(self) -> str:
        gpus = f" x{self.tp}" if self.tp > 1 else ""
        return (
            f"roofline {self.hardware_name}{gpus} ({self.compute_efficiency:.0%} MFU, "
            f"{self.memory_efficiency:.0%} MBU, {self.overhead * 1e3:g} ms overhead)"
        )
