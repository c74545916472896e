"""``latency.model=roofline``: step time from hardware peaks and model shapes.

The roofline model prices one engine iteration of one replica (``tp`` GPUs
that split every layer evenly) as the sum of the kernels a decoder stack
runs, each priced on one GPU::

    step = linear + lm_head + elementwise + attention_prefill + attention_decode
           + allreduce + step_overhead

Every factor below is data in ``latency.*`` (or in the hardware catalog),
overridable, and has a source; ``docs/fidelity.md`` shows what the model
gets right and wrong against published real-engine measurements.

**One GEMM** of ``M`` rows (tokens) by a ``K x N`` weight shard::

    c = 2 M K N / (peak * compute_efficiency)                 (math)
    m = (w K N + a M (K + N)) / (hbm_bw * memory_efficiency)  (weights + activations)
    t = gemm_latency_s + (c^n + m^n)^(1/n)                    n = overlap_exponent

A kernel overlaps its memory stream and its math imperfectly, so near the
compute/memory balance point (~100-500 rows) a real GEMM reaches neither roof;
the ``n``-norm is the smooth maximum that says so (``n -> inf`` is the plain
roofline). ``gemm_latency_s`` is the fixed cost of a kernel (launch, ramp-up,
tail), which dominates small shards at high TP. The four factors are data of
each GPU (``hardware.gemm``; ``latency.*`` overrides them), fitted (least
squares on log time) to the per-GEMM torch timings Vidur published: A100's to
the **A100** tables (Llama-2-7B and Llama-3-8B at TP 1-8, 1-32k tokens: 0.745,
0.821, n 1.378, 5.08 us), Hopper's to the **H100** tables (Llama-2-7B and -70B:
0.764, 0.93 at its bound, 1.292, 5.27 us), other GPUs' the joint fit. A layer's
GEMMs then come within a median of 3.8-5.4% of each table (the plain roofline
with the former 0.70 / 0.80 factors: 8-24%); the A100 factors priced against
the H100 tables they were not fitted on give 10.4% and 12.3%
(``tests/test_roofline_fidelity.py``).

A decoder layer runs four GEMMs (QKV, attention output, fused gate+up, down);
the LM head is one more, over one row per sequence (only the last position's
logits are sampled), kept in BF16 by FP8 checkpoints.

**Precision.** ``bf16``/``fp16`` use ``hardware.bf16_tflops`` and
``latency.compute_efficiency``; ``fp8`` (W8A8) uses ``hardware.fp8_tflops``
and its own efficiency, ``hardware.gemm.compute_efficiency_fp8`` (0.719 on
Hopper, 0.587 on the L40S and B200: least squares to the static FP8 GEMMs
TensorRT-LLM 1.3 runs at real model shapes, as AIConfigurator timed them; the
doubled peak is not the doubled speed of BF16's 0.76); ``int8``/``int4`` are weight-only:
BF16 math, smaller weight bytes; ``fp32`` runs at half the BF16 peak (TF32).

**Elementwise kernels** (two fused add+RMSNorms, SiLU-and-multiply, rotary:
the four vLLM and TensorRT-LLM run per Llama layer) are memory-bound:
``(8 h + 3 I/tp + 2 (q + kv)/tp) * 2`` bytes per token per layer at
``memory_efficiency``, plus ``gemm_latency_s`` each (a kernel's duration floor:
Vidur's unfused torch timings show 20-30 us a layer for six such kernels at
1-128 tokens on A100 and H100).

**Attention** is priced per kernel family, prefill and decode separately::

    flops   = 4 * num_layers * (num_heads / tp) * head_dim * (pairs + row_pairs * rows)
    bytes   = kv_bytes_per_token / tp * (context tokens read + new tokens written)
    prefill = num_layers * attention_latency + max(flops / (bf16_peak * attention_efficiency),
                                                   bytes / (hbm_bw * memory_efficiency))

with ``pairs = prefill_attn_pairs`` (causal query-key pairs) and ``rows`` the
chunk's query tokens; decode is the same with ``pairs = decode_ctx_tokens``,
no row cost and one GEMM kernel latency a layer. KV entries stream at HBM
speed, or at ``hardware.attention.decode_kv_rate_g`` billion entries a second
(each engine's own kernels': ``decode_kv_rate_by_engine_g``) where that is
slower: a kernel must convert each 1-byte FP8 entry before its math, and on
Hopper that, not HBM, bounds it (AIConfigurator's decode tables, three
engines' newest releases, batch >= 64, context >= 4k, 4-8 query heads per KV
head: FP8 entries reach 70% of HBM on an H100 and 55% on an H200, whose same
SMs serve 43% more bandwidth, against 84-87% for BF16 entries; 2,344 and
2,649 G entries/s for any engine). 16-bit entries, though not converted, stream
below the GEMMs' share of HBM too, and ``decode_kv_rate_bf16_g`` (and
``..._by_engine_g``) bound BF16 and FP16 caches the same way (H100 1,452, H200
2,023 G entries/s). The MI300X's FP8 rate, 2,750 G entries/s (52% of HBM), is the
one that reproduces the prompt-length differences of AMD's published vLLM
latencies (``benchmarks/amd_v0_latency.py``). Only grouped-query caches of those widths get the catalog's
rates: INT8/INT4 caches and latent attention's kernels were not timed. The three attention factors
are data of each GPU (``hardware.attention``; ``latency.attention_*``
override them), fitted (least squares on log time) to the context-attention
kernel timings NVIDIA's AIConfigurator measured with TensorRT-LLM's, vLLM's
and SGLang's own kernels (``benchmarks/aic_tables.py``): on Hopper 64.7% of
the BF16 peak on long prompts, 530 pairs of work per query row (a query
tile's fixed cost: a 512-token prompt runs at about a fifth of the peak) and
12.2 us a layer. A constant 60% with no row cost, as before, was 49-79% fast
on prompts under 1k tokens.

**Tensor parallelism** adds two all-reduces per layer of ``tokens * hidden *
2`` bytes, not overlapped with compute (as in vLLM). Each costs
``latency + bytes / bandwidth`` by the faster of two measured paths from the
hardware's ``allreduce`` table for that GPU count: NCCL (fits to the
torch.distributed all-reduce timings Vidur measured on DGX A100 and DGX H100
nodes, ``network/*/all_reduce.csv``: 17-31 us and 190-280 GB/s of algorithm
bandwidth on H100 for 2-8 GPUs) and the engines' one-shot custom all-reduce
kernel, which serving engines use for small messages (vLLM's, timed on H100
in sgl-project/sglang PR #2904: 8.7-10 us and 27-60 GB/s for 2-8 GPUs), where
the engine runs one on the GPU's vendor (``latency.custom_allreduce``). A
GPU count the table lacks uses a ring over ``interconnect_gbps *
comm_efficiency`` plus ``allreduce_latency_s``. Over more GPUs than a node
holds (``hardware.gpus_per_node``) the all-reduce crosses the scale-out
network as NCCL's cost model prices it (``allreduce_paths``; docs/cluster.md,
"Across nodes"), and so do expert-parallel all-to-alls.

**Fixed costs.** ``step_overhead_s + step_overhead_per_seq_s * sequences`` is
the engine's per-iteration CPU work (scheduling, input preparation, sampling,
detokenisation) that the GPU waits for; it does not shrink on a faster GPU.
Engine presets (``engine=``) set it per engine. Under multi-step scheduling
(``scheduler.multi_step=N``, vLLM V0's ``--num-scheduler-steps``) that work
runs once per group of N decode steps (vLLM RFC #6854: "Multi-step decoding
will be able to amortize all these overheads over n-steps at a time"), so a
decode-only step pays an N-th of it. An engine that overlaps that work with the
GPU's (``scheduler.async_scheduling``: TensorRT-LLM's PyTorch backend, SGLang,
vLLM's ``--async-scheduling``) pays only what the GPU's work does not hide
(:mod:`simulator.latency.overlap`).

**Left out:** wave and tile quantisation (the smooth maximum absorbs their
average);
power/clock throttling; the attention backend (one set of attention factors
per GPU for every engine: its fit to three engines' kernels has a median
error of 16-19%, each engine's own table 6-16%); decode attention's own
efficiency with BF16 entries (84-87% of HBM in the same tables, priced at
``memory_efficiency``) and how the FP8 rate moves with query heads per KV head
(pooled on an H200: 2,562 G/s at 1, 2,768 at 4, 2,612 at 8, 2,228 at 16, as
Llama 3.1 405B has); measured factors for GPUs without a
table (GEMMs: L40S and B200 use the joint A100+H100 fit, MI300X a published
ROCm utilisation figure; attention: B200 and MI300X use Hopper's, A30 the A100's).

``step_time`` runs ~100k times per simulation: everything that does not
depend on the step's shape is folded into coefficients in ``__init__``, and
the GEMM sum is cached per token count.
"""

from __future__ import annotations

import functools
import importlib.util
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, LatencyModel, StepShape
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: Bytes per activation element (BF16 activations, whatever the weight precision).
ACTIVATION_BYTES = 2.0
#: Elementwise kernels per decoder layer: 2 fused add+RMSNorm, rotary, SiLU-and-multiply.
ELEMENTWISE_KERNELS = 4


#: latency.* key -> (hardware block, its key, scale to the latency key's unit)
FACTORS = {
    "compute_efficiency": ("gemm", "compute_efficiency", 1.0),
    "compute_efficiency_fp8": ("gemm", "compute_efficiency_fp8", 1.0),
    "memory_efficiency": ("gemm", "memory_efficiency", 1.0),
    "overlap_exponent": ("gemm", "overlap_exponent", 1.0),
    "gemm_latency_s": ("gemm", "latency_us", 1e-6),
    "attention_efficiency": ("attention", "efficiency", 1.0),
    "attention_row_pairs": ("attention", "row_pairs", 1.0),
    "attention_latency_s": ("attention", "latency_us", 1e-6),
}


def factor(cfg: ScenarioConfig, key: str) -> float:
    """A roofline factor: ``latency.<key>`` when set, else the GPU's measured ``hardware.gemm`` or
    ``hardware.attention`` value."""
    value = getattr(cfg.latency, key)
    if value is not None:
        return float(value)
    block, hw_key, scale = FACTORS[key]
    return float(getattr(getattr(cfg.hardware, block), hw_key)) * scale


@functools.cache
def engine_families() -> frozenset[str]:
    """The engine families the catalog's presets belong to (``vllm_v1`` -> ``vllm``). Found without
    importing ``simulator.scenarios``, whose import registers the config schema (a run read back from
    the compose cache never builds it)."""
    spec = importlib.util.find_spec("simulator.scenarios")
    folders = list(spec.submodule_search_locations or []) if spec else []
    return frozenset(p.stem.split("_")[0] for folder in folders for p in Path(folder, "engine").glob("*.yaml"))


def _rate(value, key: str, off: str) -> float | None:
    """A rate in billions of entries a second as entries a second (None: no bound); bad values name ``key``."""
    if value is None or value == math.inf:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{key} must be a positive number of KV-cache entries, in billions a second (got {value!r}); "
                          f"{off} for no bound but HBM bandwidth.")
    return float(value) * 1e9


#: KV-cache width -> the hardware.attention fields of its measured decode rate (pooled, per engine)
KV_RATE_FIELDS = {"fp8": ("decode_kv_rate_g", "decode_kv_rate_by_engine_g"),
                  "bf16": ("decode_kv_rate_bf16_g", "decode_kv_rate_bf16_by_engine_g"),
                  "fp16": ("decode_kv_rate_bf16_g", "decode_kv_rate_bf16_by_engine_g")}


def decode_kv_rate(cfg: ScenarioConfig, spec: ModelSpec | None = None) -> float | None:
    """KV-cache entries a second one GPU's attention kernels read at most (None: no bound but HBM).

    ``latency.attention_decode_kv_rate_g`` when set (``inf``: no bound), for any model and KV width.
    Else the GPU's measured ``hardware.attention`` rate for the cache's width (FP8:
    ``decode_kv_rate_*``; BF16 and FP16: ``decode_kv_rate_bf16_*``) and the scenario's engine family
    (its own kernels: ``..._by_engine_g``, where null means no bound), else for any engine
    (``..._g``): only for grouped-query attention, the kernels the rates were measured on, and
    not for INT8/INT4 caches, whose kernels were not timed. Every catalog value is checked, in use
    or not."""
    attention = cfg.hardware.attention
    families = engine_families()
    rates: dict[str, tuple[float | None, dict, str]] = {}
    for pooled_key, engine_key in dict.fromkeys(KV_RATE_FIELDS.values()):
        by_engine = dict(getattr(attention, engine_key) or {})
        for family, value in by_engine.items():
            if family not in families:
                raise ConfigError(f"hardware.attention.{engine_key} has no engine family {family!r}; "
                                  f"choose among: {', '.join(sorted(families))} (an engine preset's name up to its first '_').")
            _rate(value, f"hardware.attention.{engine_key}.{family}", "set it to null")
        pooled = _rate(getattr(attention, pooled_key), f"hardware.attention.{pooled_key}", "leave it null")
        rates[pooled_key] = (pooled, by_engine, engine_key)
    override = cfg.latency.attention_decode_kv_rate_g
    if override is not None:
        return _rate(override, "latency.attention_decode_kv_rate_g", "set it to inf")
    fields = KV_RATE_FIELDS.get(str(cfg.model.kv_dtype))
    if fields is None or (spec is not None and spec.is_mla):
        return None
    pooled, by_engine, engine_key = rates[fields[0]]
    family = str(cfg.engine_name).split("_")[0]
    if family in by_engine:
        return _rate(by_engine[family], f"hardware.attention.{engine_key}.{family}", "set it to null")
    return pooled


def peak_flops(cfg: ScenarioConfig, weight_dtype: str) -> tuple[float, float]:
    """(linear-layer, attention) achievable FLOP/s of one GPU for ``weight_dtype``."""
    hardware = cfg.hardware
    bf16 = float(hardware.bf16_tflops) * 1e12
    ce = factor(cfg, "compute_efficiency")
    attn = bf16 * factor(cfg, "attention_efficiency")
    if weight_dtype in ("bf16", "fp16", "int8", "int4"):
        return bf16 * ce, attn
    if weight_dtype == "fp8":
        if hardware.fp8_tflops is None:
            raise ConfigError(
                f"model.weight_dtype='fp8' needs FP8 tensor cores, which hardware={hardware.name} lacks; "
                f"use model.weight_dtype=bf16 or int8 (weight-only), or pick an FP8-capable GPU such as h100-sxm."
            )
        return float(hardware.fp8_tflops) * 1e12 * factor(cfg, "compute_efficiency_fp8"), attn
    if weight_dtype == "fp32":
        return bf16 / 2 * ce, attn / 2  # TF32 tensor cores
    raise ConfigError(
        f"model.weight_dtype={weight_dtype!r} is not supported by latency.model=roofline; "
        f"choose one of: bf16, fp16, fp8, int8, int4, fp32."
    )


def allreduce_paths(hardware, gpus: int, latency) -> tuple[list[tuple[float, float]], str]:
    """The ways one all-reduce over ``gpus`` GPUs can run, each (latency s, algorithm bandwidth B/s),
    and where they come from. An engine takes the fastest for each message size: NCCL's (RCCL's)
    measured path, and its own one-shot kernel's (the table's ``custom_*``) where the engine runs
    one on this vendor's GPUs (``latency.custom_allreduce``).

    Over more GPUs than one node holds (``hardware.gpus_per_node``) only NCCL runs (the engines'
    custom kernels stay on NVLink), hierarchically as NCCL's cost model prices it: in each node as
    that node's all-reduce, and across the ``nodes`` nodes a reduce up and a broadcast down a tree
    of depth log2(nodes), each level one network hop (``hardware.network_latency_us``); the bytes
    cross the network on every GPU's own NIC (rail-optimised), S / gpus_per_node each, in a ring
    of 2 (nodes - 1) / nodes of them, so the algorithm bandwidth is the lesser of the node's and
    ``gpus_per_node * network_gbps * nodes / (2 (nodes - 1))``."""
    nodes, per_node = nodes_of(hardware, gpus)
    if nodes > 1:
        net = network_bytes_s(hardware, gpus, f"cluster.tp={gpus}")
        paths, source = allreduce_paths(hardware, per_node, latency)
        alpha, beta = paths[0]  # NCCL's (or the ring model's) path; a custom kernel cannot leave the node
        alpha += 2 * int(math.log2(nodes)) * float(hardware.network_latency_us) * 1e-6
        beta = min(beta, per_node * net * nodes / (2.0 * (nodes - 1)))
        return [(alpha, beta)], f"{source} in each node of {per_node}, network across {nodes}"
    entry = allreduce_row(hardware, gpus)
    if entry is not None:
        paths = [(float(entry["latency_us"]) * 1e-6, float(entry["bandwidth_gbps"]) * 1e9)]
        if entry.get("custom_latency_us") is not None and str(hardware.vendor) in latency.custom_allreduce:
            paths.append((float(entry["custom_latency_us"]) * 1e-6, float(entry["custom_bandwidth_gbps"]) * 1e9))
        return paths, "measured"
    # A ring moves 2 (n - 1) / n of the message over each GPU's link.
    link = float(hardware.interconnect_gbps) * 1e9 * float(latency.comm_efficiency)
    return [(float(latency.allreduce_latency_s), link * gpus / (2.0 * (gpus - 1)))], "ring model"


def allreduce_row(hardware, gpus: int) -> dict | None:
    """The GPU's measured all-reduce row (``hardware.allreduce``) for ``gpus`` GPUs, or None."""
    return next((entry for entry in hardware.allreduce or () if int(entry["gpus"]) == gpus), None)


def nodes_of(hardware, gpus: int) -> tuple[int, int]:
    """(nodes, GPUs per node) that ``gpus`` GPUs of ``hardware`` take."""
    per_node = hardware.gpus_per_node
    if isinstance(per_node, bool) or not isinstance(per_node, int) or per_node < 1:
        raise ConfigError(f"hardware.gpus_per_node must be a whole number of GPUs >= 1 (got {per_node!r}).")
    return -(-gpus // per_node), per_node


def network_bytes_s(hardware, gpus: int, what: str) -> float:
    """The scale-out network's bytes/s per GPU, for ``what`` spanning ``gpus`` GPUs over several nodes."""
    nodes, per_node = nodes_of(hardware, gpus)
    gbps = hardware.network_gbps
    if gbps is None:
        raise ConfigError(
            f"{what} spans {nodes} nodes of {per_node} {hardware.name} GPUs (hardware.gpus_per_node), but the "
            f"catalog has no scale-out network for {hardware.name}: set hardware.network_gbps (achieved one-way GB/s "
            f"per GPU, e.g. 48 for 400 Gb/s InfiniBand NDR, one NIC per GPU) or keep it within {per_node} GPUs."
        )
    if isinstance(gbps, bool) or not isinstance(gbps, int | float) or not math.isfinite(gbps) or gbps <= 0:
        raise ConfigError(f"hardware.network_gbps must be a positive number of GB/s (got {gbps!r}).")
    lat = hardware.network_latency_us
    if isinstance(lat, bool) or not isinstance(lat, int | float) or not math.isfinite(lat) or lat < 0:
        raise ConfigError(f"hardware.network_latency_us must be a number of microseconds >= 0 (got {lat!r}).")
    return float(gbps) * 1e9


class _Gemm:
    """Time of one GEMM shard as a function of its rows (see the module docstring)."""

    __slots__ = ("flop_row", "mem_fixed", "mem_row", "latency", "n", "inv_n")

    def __init__(self, k: float, n_cols: float, weight_bytes: float, flops_s: float, bytes_s: float, latency: float, n: float):
        self.flop_row = 2.0 * k * n_cols / flops_s
        self.mem_fixed = weight_bytes * k * n_cols / bytes_s
        self.mem_row = ACTIVATION_BYTES * (k + n_cols) / bytes_s
        self.latency = latency
        self.n = n  # inf: the plain roofline, max(c, m)
        self.inv_n = 1.0 / n

    def __call__(self, rows: float) -> float:
        c = self.flop_row * rows
        m = self.mem_fixed + self.mem_row * rows
        n = self.n
        if n == math.inf:
            return self.latency + (c if c > m else m)
        return self.latency + (c**n + m**n) ** self.inv_n

    def grouped(self, rows: float, groups: float) -> float:
        """One grouped GEMM over ``groups`` weight matrices of this shape (the experts a step
        touches) and ``rows`` rows in all: each matrix is read once, the rows are computed once."""
        c = self.flop_row * rows
        m = self.mem_fixed * groups + self.mem_row * rows
        n = self.n
        if n == math.inf:
            return self.latency + (c if c > m else m)
        return self.latency + (c**n + m**n) ** self.inv_n


class _ByKey(dict):
    """A dict that makes a missing value with ``make(key)`` and keeps it (a lookup at C speed after that)."""

    def __init__(self, make: Callable[[int], float]) -> None:
        super().__init__()
        self.make = make

    def __missing__(self, key: int) -> float:
        value = self[key] = self.make(key)
        return value


@LATENCY_MODELS.register("roofline")
class RooflineLatency(LatencyModel):
    """Analytical step time: kernel by kernel, smooth max(compute, memory) + fixed costs."""

    def __init__(self, cfg: ScenarioConfig, spec: ModelSpec):
        super().__init__(cfg, spec)
        hw = cfg.hardware
        lat = cfg.latency
        tp = spec.tp
        self.tp = tp
        self.hardware_name = hw.name
        self.weight_dtype = cfg.model.weight_dtype
        self.compute_efficiency = factor(cfg, "compute_efficiency_fp8" if self.weight_dtype == "fp8" else "compute_efficiency")
        self.memory_efficiency = me = factor(cfg, "memory_efficiency")
        self.overhead = float(lat.step_overhead_s)
        self.overhead_per_seq = float(lat.step_overhead_per_seq_s)
        # multi-step scheduling (scheduler.multi_step): a decode-only step's share of its group's one CPU pass
        self.multi_step = int(cfg.scheduler.multi_step)
        self._dec_overhead = self.overhead / self.multi_step
        self._dec_overhead_per_seq = self.overhead_per_seq / self.multi_step
        lam = factor(cfg, "gemm_latency_s")
        n = factor(cfg, "overlap_exponent")

        flops_s, attn_flops_s = peak_flops(cfg, self.weight_dtype)
        bytes_s = float(hw.memory_bw_gbps) * 1e9 * me  # one GPU
        wb = spec.weight_bytes_per_param

        h, d, L = spec.hidden_size, spec.head_dim, spec.num_layers
        q = spec.num_heads * d
        kv = spec.num_kv_heads * d
        inter = spec.intermediate_size
        self.num_layers = L
        # The four GEMMs of a layer, sharded: column-parallel QKV and gate+up, row-parallel O and down.
        self._layer_gemms = [
            _Gemm(h, (q + 2 * kv) / tp, wb, flops_s, bytes_s, lam, n),
            _Gemm(q / tp, h, wb, flops_s, bytes_s, lam, n),
            _Gemm(h, 2 * inter / tp, wb, flops_s, bytes_s, lam, n),
            _Gemm(inter / tp, h, wb, flops_s, bytes_s, lam, n),
        ]
        self.spec = spec
        self._moe = spec.is_moe or spec.is_mla or not spec.gated_mlp
        if self._moe:  # per-layer-kind GEMM lists (mixtures of experts, latent attention, plain MLPs)
            self._init_layer_kinds(spec, wb, flops_s, bytes_s, lam, n)
        # quantised checkpoints (FP8, INT8, INT4: ModelOpt, llm-compressor, AWQ, GPTQ) keep the LM head in
        # 16 bits, computed at the BF16 rate (ModelSpec.table_bytes_per_param, which the memory model holds too)
        lm_wb = spec.table_bytes_per_param
        lm_flops = peak_flops(cfg, "bf16")[0] if lm_wb != wb else flops_s
        self._lm_head = _Gemm(h, spec.vocab_size / tp, lm_wb, lm_flops, bytes_s, lam, n)
        self._linear_cache: dict[int, float] = {}
        self._lm_cache: dict[int, float] = {}
        #: a decode step's time before attention by batch size (``_token_work_s(seqs, seqs, seqs)``, made
        #: when first asked: batch sizes repeat, a few hundred of them in a run)
        self._decode_work = _ByKey(self._decode_token_work_s)
        ew_elems = 8 * h + 3 * inter / tp + 2 * (q + kv) / tp
        self._ew_tok = L * ew_elems * ACTIVATION_BYTES / bytes_s
        self._ew_fixed = L * ELEMENTWISE_KERNELS * lam
        # Attention: seconds per query-key pair, per KV entry moved, and per kernel.
        # MLA with absorbed weights: q.k over the latent and rope dims, attention x latent for V
        d_attn = (2 * spec.kv_lora_rank + spec.qk_rope_head_dim) / 2 if spec.is_mla else d
        self._attn_flop_pair = 4.0 * L * (spec.num_heads / tp) * d_attn / attn_flops_s
        # KV entries stream at HBM speed, or at the GPU's entry rate where converting them binds first (FP8 KV;
        # measured on grouped-query kernels: latent attention's, every head reading one latent, is not covered)
        kv_rate = decode_kv_rate(cfg, spec)
        kv_bytes_s = bytes_s if kv_rate is None else min(bytes_s, kv_rate * spec.kv_bytes_per_element)
        self.kv_rate: float | None = kv_rate if kv_bytes_s < bytes_s else None  # binding: said in describe()
        self._kv_tok = spec.kv_bytes_per_token / tp / kv_bytes_s
        self._attn_fixed = L * lam
        self._attn_row = factor(cfg, "attention_row_pairs")
        self._prefill_attn_fixed = L * factor(cfg, "attention_latency_s")
        # Sliding-window layers attend to at most `window` keys per query and read at most that much KV.
        self._window = spec.sliding_window if spec.sliding_layers else 0
        if self._window:
            per_layer_pair = self._attn_flop_pair / L
            self._attn_flop_pair = per_layer_pair * (L - spec.sliding_layers)
            self._swa_flop_pair = per_layer_pair * spec.sliding_layers
            self._kv_tok = (L - spec.sliding_layers) * spec.kv_bytes_per_token_per_layer / tp / kv_bytes_s
            self._swa_kv_tok = spec.sliding_layers * spec.kv_bytes_per_token_per_layer / tp / kv_bytes_s
        # Tensor-parallel all-reduces: 2 per layer of tokens x hidden x 2 bytes.
        #: the GPU has a custom all-reduce timing at this TP that the engine does not run (latency.custom_allreduce)
        row = allreduce_row(hw, tp) if tp > 1 else None
        self.custom_allreduce_off = row is not None and row.get("custom_latency_us") is not None and str(hw.vendor) not in lat.custom_allreduce
        if tp > 1:
            paths, self.allreduce_source = allreduce_paths(hw, tp, lat)
            self._comm_paths = [(2 * L * alpha, 2 * L * h * ACTIVATION_BYTES / beta) for alpha, beta in paths]
        else:
            self.allreduce_source = "none"
            self._comm_paths = []
        # Expert parallelism across data-parallel replicas: per MoE layer an all-to-all dispatches each
        # token's hidden state to the GPUs of its k experts and another combines the results; each of
        # the replica's tp GPUs sends a tp-th of its tokens, (ep - 1)/ep of them to other GPUs.
        ep = int(cfg.cluster.ep or 1)
        self._a2a: tuple[float, float] | None = None
        if spec.is_moe and ep > tp:
            per_node = nodes_of(hw, ep)[1]
            alpha = min(a for a, _ in allreduce_paths(hw, min(ep, per_node), lat)[0]) if ep > 1 else 0.0
            link = float(hw.interconnect_gbps) * 1e9 * float(lat.comm_efficiency)
            sent = spec.experts_per_token * h * ACTIVATION_BYTES / tp  # bytes a GPU sends per token of its replica
            per_token = sent * (min(ep, per_node) - 1) / ep / link
            if ep > per_node:  # (ep - per_node)/ep of them leave the node, on each GPU's own NIC, meanwhile
                alpha += float(hw.network_latency_us) * 1e-6
                net = network_bytes_s(hw, ep, f"cluster.ep={ep}")
                per_token = max(per_token, sent * (ep - per_node) / ep / net)
            self._a2a = (2 * spec.moe_layers * alpha, 2 * spec.moe_layers * per_token)

    def _init_layer_kinds(self, spec: ModelSpec, wb: float, flops_s: float, bytes_s: float, lam: float, n: float) -> None:
        """GEMMs of attention, dense MLPs and MoE MLPs, each sharded over TP (the router and the
        latent projections MLA engines replicate run whole on every rank)."""
        tp, h = self.tp, spec.hidden_size
        g = lambda k, cols: _Gemm(k, cols, wb, flops_s, bytes_s, lam, n)  # noqa: E731
        if spec.is_mla:
            heads, rope, nope, v = spec.num_heads, spec.qk_rope_head_dim, spec.qk_nope_head_dim, spec.v_head_dim
            q = [g(h, spec.q_lora_rank), g(spec.q_lora_rank, heads * (nope + rope) / tp)] if spec.q_lora_rank else [
                g(h, heads * (nope + rope) / tp)
            ]
            self._attn_gemms = [*q, g(h, spec.kv_lora_rank + rope), g(spec.kv_lora_rank, heads * (nope + v) / tp), g(heads * v / tp, h)]
        else:
            self._attn_gemms = self._layer_gemms[:2]
        mlp = 2 if spec.gated_mlp else 1  # gate and up fused
        self._dense_mlp = [g(h, mlp * spec.intermediate_size / tp), g(spec.intermediate_size / tp, h)]
        w = spec.moe_intermediate_size
        # cluster.ep = tp: each GPU holds tp-th of the experts whole and computes, for every token the
        # replica's TP attention gives all GPUs, the rows routed to its experts; the partial outputs are
        # summed by the same all-reduce as TP (vLLM's expert parallelism without data-parallel attention)
        self.ep = ep = int(self.cfg.cluster.ep or 1)
        self._expert = [g(h, mlp * w), g(w, h)] if ep > 1 else [g(h, mlp * w / tp), g(w / tp, h)]
        # ep > tp: ep/tp replicas run attention data-parallel and share the experts; the replicas of a
        # group step together (modelled as each carrying this replica's batch)
        self._group = ep // tp if ep > tp else 1
        self._shared = [g(h, mlp * spec.shared_experts * w / tp), g(spec.shared_experts * w / tp, h)] if spec.shared_experts else []
        self._router = g(h, spec.num_experts) if spec.is_moe else None

    def moe_s(self, tokens: int) -> float:
        """One MoE layer's MLP for ``tokens`` rows: the router, the shared experts, and the routed
        experts as grouped GEMMs over the experts the step touches (each read once)."""
        spec = self.spec
        assert self._router is not None  # built for MoE models, the only ones with MoE layers
        t = self._router(tokens) + sum(gm(tokens) for gm in self._shared)
        group = self._group * tokens  # tokens the experts see: the whole data-parallel group's
        touched: float = spec.experts_touched(group)
        rows: float = group * spec.experts_per_token
        if self.ep > 1:  # the busiest GPU's share: its experts, and imbalance x its fair share of rows
            touched, rows = touched / self.ep, min(rows, rows / self.ep * spec.expert_imbalance)
        return t + sum(gm.grouped(rows, touched) for gm in self._expert)

    def _layers_s(self, tokens: int) -> float:
        spec = self.spec
        attn = sum(gm(tokens) for gm in self._attn_gemms)
        t = spec.num_layers * attn + spec.dense_layers * sum(gm(tokens) for gm in self._dense_mlp)
        return t + spec.moe_layers * self.moe_s(tokens) if spec.moe_layers else t

    # -- kernel families (seconds per step; public: the profile model fills gaps with them) --
    def linear_s(self, tokens: int) -> float:
        """The layer GEMMs of every layer for ``tokens`` rows."""
        if tokens <= 0:
            return 0.0
        t = self._linear_cache.get(tokens)
        if t is None:
            t = self._layers_s(tokens) if self._moe else self.num_layers * sum(g(tokens) for g in self._layer_gemms)
            if len(self._linear_cache) < 65536:
                self._linear_cache[tokens] = t
        return t

    def lm_head_s(self, rows: int) -> float:
        """The LM head over ``rows`` logit rows (one per sequence in the step)."""
        if rows <= 0:
            return 0.0
        t = self._lm_cache.get(rows)
        if t is None:
            t = self._lm_cache[rows] = self._lm_head(rows)
        return t

    def elementwise_s(self, tokens: int) -> float:
        return self._ew_fixed + self._ew_tok * tokens if tokens > 0 else 0.0

    def attention_prefill_s(self, pairs: float, kv_tokens: int, rows: int = 0) -> float:
        """Prefill attention over ``pairs`` causal query-key pairs of ``rows`` query rows (the chunk's
        tokens), reading/writing ``kv_tokens`` KV entries. Each row costs ``attention_row_pairs`` pairs
        more: the fixed work of its query tile, which keeps short prompts far below the peak."""
        if pairs <= 0 and kv_tokens <= 0:
            return 0.0
        extra = self._attn_row * rows
        c = self._attn_flop_pair * (pairs + extra)
        m = self._kv_tok * kv_tokens
        if self._window:  # each query sees at most the window (the pair count is capped per token)
            c += self._swa_flop_pair * (min(pairs, kv_tokens * self._window) + extra)
            m += self._swa_kv_tok * kv_tokens
        return self._prefill_attn_fixed + (c if c > m else m)

    def attention_decode_s(self, seqs: int, ctx_tokens: int, queries: int = 1) -> float:
        """Decode attention of ``seqs`` sequences over ``ctx_tokens`` context entries in all, each
        sequence with ``queries`` query positions (k + 1 when verifying speculative tokens): the
        context is read once, the math and the new entries scale with the queries."""
        if seqs <= 0:
            return 0.0
        if queries == 1:  # every decode step but a speculative verification (the hot path)
            c = self._attn_flop_pair * ctx_tokens
            m = self._kv_tok * (ctx_tokens + seqs)
            if self._window:  # sliding layers read at most the window per sequence (capped in total: the
                seen = min(ctx_tokens, seqs * self._window)  # step knows only the sum of contexts)
                c += self._swa_flop_pair * seen
                m += self._swa_kv_tok * (seen + seqs)
            return self._attn_fixed + (c if c > m else m)
        c = self._attn_flop_pair * ctx_tokens * queries
        m = self._kv_tok * (ctx_tokens + seqs * queries)
        if self._window:  # sliding layers read at most the window per sequence (capped in total: the
            seen = min(ctx_tokens, seqs * self._window)  # step knows only the sum of contexts)
            c += self._swa_flop_pair * seen * queries
            m += self._swa_kv_tok * (seen + seqs * queries)
        return self._attn_fixed + (c if c > m else m)

    def allreduce_s(self, tokens: int) -> float:
        """Two all-reduces per layer of ``tokens`` x hidden activations, each by its fastest path."""
        if tokens <= 0 or not self._comm_paths:
            return 0.0
        return min(fixed + per_token * tokens for fixed, per_token in self._comm_paths)

    def alltoall_s(self, tokens: int) -> float:
        """Expert-parallel dispatch and combine of ``tokens`` tokens over every MoE layer (0 without)."""
        if tokens <= 0 or self._a2a is None:
            return 0.0
        return self._a2a[0] + self._a2a[1] * tokens

    def overhead_s(self, seqs: int, decode_only: bool = False) -> float:
        """The engine's CPU work for a step of ``seqs`` sequences; a decode-only step under
        multi-step scheduling pays a ``scheduler.multi_step``-th of it."""
        if decode_only:
            return self._dec_overhead + self._dec_overhead_per_seq * seqs
        return self.overhead + self.overhead_per_seq * seqs

    def cpu_s(self, shape: StepShape) -> float:
        return self.overhead_s(shape.prefill_seqs + shape.decode_seqs, not shape.prefill_tokens)

    # -- the step --------------------------------------------------------------------------
    def step_time(self, shape: StepShape) -> float:
        pt = shape.prefill_tokens
        ds = shape.decode_seqs
        q = shape.decode_queries  # > 1: speculative verification, every position through the model and the LM head
        tokens = pt + ds * q if q != 1 else pt + ds
        seqs = shape.prefill_seqs + ds
        rows = seqs + ds * (q - 1) if q != 1 else seqs
        t = self._token_work_s(tokens, seqs, rows, not pt)
        if tokens <= 0:
            return t
        if pt:
            t += self.attention_prefill_s(shape.prefill_attn_pairs, shape.prefill_ctx_tokens + pt, pt)
        if ds:
            t += self.attention_decode_s(ds, shape.decode_ctx_tokens) if q == 1 else self.attention_decode_s(ds, shape.decode_ctx_tokens, q)
        return t

    def decode_step_time(self, seqs: int, ctx_tokens: int) -> float:
        # step_time's sums for this shape, in its order (the same float)
        if seqs <= 0:
            return super().decode_step_time(seqs, ctx_tokens)
        work = self._decode_work[seqs]
        if self._window:
            return work + self.attention_decode_s(seqs, ctx_tokens)
        c = self._attn_flop_pair * ctx_tokens  # attention_decode_s, inlined
        m = self._kv_tok * (ctx_tokens + seqs)
        return work + (self._attn_fixed + (c if c > m else m))

    def _decode_token_work_s(self, seqs: int) -> float:
        return self._token_work_s(seqs, seqs, seqs, True)

    def _token_work_s(self, tokens: int, seqs: int, rows: int, decode_only: bool) -> float:
        """A step's time before attention, summed in this order (which :meth:`decode_times` relies on):
        overheads, the layer GEMMs of ``tokens`` rows, the LM head of ``rows`` rows, elementwise work,
        collectives."""
        t = self.overhead_s(seqs, decode_only)
        if tokens <= 0:
            return t
        lin = self._linear_cache.get(tokens)
        t += lin if lin is not None else self.linear_s(tokens)
        lm = self._lm_cache.get(rows)
        t += lm if lm is not None else self.lm_head_s(rows)
        t += self._ew_fixed + self._ew_tok * tokens
        if self._comm_paths:
            t += self.allreduce_s(tokens)
        if self._a2a is not None:
            t += self.alltoall_s(tokens)
        return t

    def decode_times(self, seqs: int, ctx_tokens: int, count: int) -> list[float]:
        # step_time's sum: the part that does not depend on the context once, then each step's attention
        if seqs <= 0:
            return super().decode_times(seqs, ctx_tokens, count)
        t = self._decode_work[seqs]
        # attention_decode_s's arithmetic, step by step, in numpy (the same floats; tests/test_fast_forward.py holds
        # the two paths to step_time's values). numpy's fixed cost of about 5 us pays from about 48 steps on.
        if count >= 48 and not self._window:
            ctxs = np.arange(ctx_tokens, ctx_tokens + count * seqs, seqs, dtype=np.float64)[:count]  # (whole numbers: exact)
            cs = None if self._kv_tok >= self._attn_flop_pair else self._attn_flop_pair * ctxs
            ctxs += seqs
            ctxs *= self._kv_tok
            if cs is not None:  # else memory bounds every step: kv * (ctx + seqs) >= flop * ctx, rounded alike
                np.maximum(cs, ctxs, out=ctxs)  # the larger of compute and memory
            ctxs += self._attn_fixed
            ctxs += t  # (t + (fixed + x): the same sums, each commutes)
            return ctxs.tolist()
        if self._window:
            attn = self.attention_decode_s
            return [t + attn(seqs, ctx_tokens + i * seqs) for i in range(count)]
        flop, kv, fixed = self._attn_flop_pair, self._kv_tok, self._attn_fixed  # attention_decode_s, inlined
        out = []
        ctx = ctx_tokens
        for _ in range(count):
            c = flop * ctx
            m = kv * (ctx + seqs)
            out.append(t + (fixed + (c if c > m else m)))
            ctx += seqs
        return out

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        """Seconds per operator family; the values sum to :meth:`step_time`."""
        pt, ds, q = shape.prefill_tokens, shape.decode_seqs, shape.decode_queries
        tokens = pt + ds * q
        seqs = shape.prefill_seqs + ds
        return {
            "linear": self.linear_s(tokens),
            "lm_head": self.lm_head_s(seqs + ds * (q - 1)) if tokens > 0 else 0.0,
            "elementwise": self.elementwise_s(tokens),
            "attention_prefill": self.attention_prefill_s(shape.prefill_attn_pairs, shape.prefill_ctx_tokens + pt, pt) if pt else 0.0,
            "attention_decode": self.attention_decode_s(ds, shape.decode_ctx_tokens, q) if ds else 0.0,
            "allreduce": self.allreduce_s(tokens),
            **({"alltoall": self.alltoall_s(tokens)} if self._a2a is not None else {}),
            "step_overhead": self.overhead_s(seqs, not pt),
        }

    def describe(self) -> str:
        gpus = (f" x{self.tp}" if self.tp > 1 else "") + (f" EP{self.ep}" if getattr(self, "ep", 1) > 1 else "")
        nodes, _ = nodes_of(self.cfg.hardware, max(self.tp, getattr(self, "ep", 1)))
        gpus += f" over {nodes} nodes" if nodes > 1 else ""
        per_seq = f" + {self.overhead_per_seq * 1e6:g} us/seq" if self.overhead_per_seq else ""
        group = f" once per {self.multi_step} decode steps" if self.multi_step > 1 else ""
        kv = f", KV read at {self.kv_rate / 1e9:,.0f} G entries/s" if self.kv_rate else ""
        comm = ", no custom all-reduce" if self.custom_allreduce_off else ""
        return (
            f"roofline {self.hardware_name}{gpus} ({self.compute_efficiency:.0%} MFU, "
            f"{self.memory_efficiency:.0%} MBU{kv}{comm}, {self.overhead * 1e3:.3g} ms{per_seq} overhead{group})"
        )
