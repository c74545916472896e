"""Energy of a run: GPU power from each step's utilisation, idle power for billed time between steps.

Each GPU draws its idle power ``hardware.idle_w`` whenever it is billed (the
``cost`` section's GPU-hours: provisioning, serving, draining, under repair),
and during a step of duration ``d`` it adds ``(tdp_w - idle_w) x u`` over
``d``. ``u`` in [0, 1] is the step's utilisation::

    t_compute = linear FLOPs / (dense peak x compute efficiency)
                + attention FLOPs / (BF16 peak x attention efficiency)
    t_memory  = (weights read + KV read and written) / (HBM bandwidth x memory efficiency)
    u         = min(1, max(t_compute, memory_power_share x t_memory) / (GPUs x d))

so a step that keeps the tensor cores busy at their achieved rate for its
whole duration draws the board's maximum power, and one that streams HBM at
its achieved bandwidth with idle tensor cores draws ``memory_power_share`` of
the dynamic range (memory-bound decode on an H200 draws 137-300 W of its
700 W: Ma et al., arXiv:2605.11999, 2026). Power linear in utilisation between
an idle and a peak figure is the model of Fan, Weber and Barroso (ISCA 2007,
"Power provisioning for a warehouse-sized computer"), and the "load-scaled
TDP" baseline GPU power predictors are compared with (WattGPU, 2026).

The work of a step comes from its columns (``prefill_tokens``, ``prefill_seqs``,
``decode_seqs``, ``decode_ctx_tokens``, ``duration_s``) and the model's shape
(:class:`~simulator.specs.ModelSpec`), counted as the roofline latency model
counts it: 2 FLOPs per active weight per token through the layers, the LM head
once per sequence, ``4 x layers x heads x head_dim`` FLOPs per attention
query-key pair (decode: every context token; prefill: a chunk's causal pairs,
taken as if it had no cached context, as the table does not record it); the
weights are read once per step (for a mixture of experts, the experts a step
of that many tokens touches), KV entries read for decode context and written
for every new token. The rates are the hardware's achieved ones
(``hardware.gemm``, ``latency.*`` overrides), as the roofline uses them.

Energy in all: GPU energy = idle_w x billed GPU-seconds + sum over steps of
(tdp_w - idle_w) x GPUs x u x d, per group (pool) with its own hardware;
facility energy = GPU energy x ``energy.pue``; cost = facility kWh x
``energy.usd_per_kwh``. Joules per token divide the GPU energy by the tokens
of completed requests (as the ``cost`` section's per-token figures do).

Not modelled: host CPUs, memory, NICs and switches, storage; cooling beyond the
PUE factor; power capping, clock throttling and temperature; the power of KV
transfers between pools and of swapping (a swap's copy time lengthens its
step, so it dilutes that step's utilisation: it draws about idle power).

The step table may hold millions of rows: the arithmetic runs in float64 over
slices of :data:`CHUNK` rows, so only a few columns of one slice exist at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import ConfigError
from simulator.metrics.sections import EnergyGroup, EnergySection

#: rows per slice of the step table (a few float64 temporaries of this length exist at once)
CHUNK = 1 << 18

NOTE = (
    "GPU boards only: idle_w for every billed GPU-second, plus (tdp_w - idle_w) x utilisation during steps "
    "(utilisation = the larger of compute time and memory_power_share x memory time at the achieved rates, "
    "over the step); facility = GPU x pue. Host CPUs, network, storage and cooling beyond PUE are not modelled; "
    "J/token divide GPU energy by completed requests' tokens"
)


class _Work:
    """Per-step work coefficients of one pool: FLOPs and bytes per token, sequence and context entry, and its rates."""

    def __init__(self, cfg: Any, spec: Any) -> None:
        hw, lat = cfg.hardware, cfg.latency
        gemm = hw.gemm
        ce = lat.compute_efficiency if lat.compute_efficiency is not None else gemm.compute_efficiency
        me = lat.memory_efficiency if lat.memory_efficiency is not None else gemm.memory_efficiency
        # the rates simulator.latency.roofline.peak_flops gives (tests/test_energy.py holds the two together;
        # metrics sit below the latency layer, so they are restated here)
        bf16 = float(hw.bf16_tflops) * 1e12
        dtype = str(cfg.model.weight_dtype)
        ae = lat.attention_efficiency if lat.attention_efficiency is not None else hw.attention.efficiency
        self.attn_rate = bf16 * float(ae)
        self.lm_rate = bf16 * float(ce)  # quantised checkpoints keep the LM head in 16 bits, as the roofline prices it
        if dtype == "fp8" and hw.fp8_tflops is not None:
            ce8 = lat.compute_efficiency_fp8 if lat.compute_efficiency_fp8 is not None else gemm.compute_efficiency_fp8
            self.linear_rate = float(hw.fp8_tflops) * 1e12 * float(ce8)
        elif dtype == "fp32":
            self.linear_rate = self.lm_rate = bf16 / 2 * float(ce)  # TF32 tensor cores
            self.attn_rate /= 2
        else:
            self.linear_rate = self.lm_rate = bf16 * float(ce)
        self.bytes_rate = float(hw.memory_bw_gbps) * 1e9 * float(me)
        self.gpus = int(spec.gpus)
        lm = float(spec.lm_head_params)
        self.lm_flops = 2.0 * lm  # per sequence (one logit row each)
        body = float(spec.params_active) - lm * (1 if spec.tie_word_embeddings else 2)
        self.token_flops = 2.0 * max(body, 0.0)  # per token through the layers
        d_attn = (2 * spec.kv_lora_rank + spec.qk_rope_head_dim) / 2 if spec.is_mla else spec.head_dim
        self.pair_flops = 4.0 * spec.num_layers * spec.num_heads * d_attn
        self.kv_bytes = float(spec.kv_bytes_per_token)
        wb = float(spec.weight_bytes_per_param)
        weights = float(spec.weight_bytes_read_per_step)
        self.moe = spec.is_moe
        if self.moe:  # the routed experts are read only where a step's tokens go
            self.expert_bytes = spec.moe_layers * float(spec.expert_params) * wb
            self.experts, self.k, self.imbalance = (
                spec.num_experts,
                spec.experts_per_token,
                float(spec.expert_imbalance),
            )
            held = spec.num_experts * (spec.tp / spec.ep if spec.ep > spec.tp else 1.0)
            weights -= held * self.expert_bytes
            self.held = held
        self.weights = max(weights, 0.0)

    def utilisation(
        self, dur: np.ndarray, pt: np.ndarray, ps: np.ndarray, ds: np.ndarray, ctx: np.ndarray, share: float
    ) -> np.ndarray:
        """u of each step (float64 arrays of one slice; 0 for a step of no time)."""
        tokens = pt + ds
        with np.errstate(invalid="ignore", divide="ignore"):
            chunk = np.where(ps > 0, pt / ps, 0.0)  # mean chunk per prefilling sequence
        pairs = ctx + pt * (chunk + 1.0) * 0.5
        t_c = (
            self.token_flops * tokens / self.linear_rate
            + self.lm_flops * (ps + ds) / self.lm_rate
            + self.pair_flops * pairs / self.attn_rate
        )
        read = np.where(tokens > 0, self.weights, 0.0)
        if self.moe:
            touched = self.experts * (1.0 - (1.0 - self.k / self.experts) ** (tokens / self.imbalance))
            read += np.minimum(touched, self.held) * self.expert_bytes
        t_m = (read + self.kv_bytes * (ctx + tokens)) / self.bytes_rate
        busy = np.maximum(t_c, share * t_m)
        del t_c, t_m, read, pairs, chunk
        u = np.zeros_like(dur)
        np.divide(busy, self.gpus * dur, out=u, where=dur > 0)
        return np.minimum(u, 1.0, out=u)


def step_utilisation(cfg: Any, spec: Any, steps: pd.DataFrame, share: float | None = None) -> np.ndarray:
    """u of every row of ``steps`` as one replica of ``cfg``/``spec`` runs them (for tests and notebooks)."""
    share = float(cfg.energy.memory_power_share) if share is None else share
    d, pt, ps, ds, ctx = (
        steps[c].to_numpy(dtype=np.float64)
        for c in ("duration_s", "prefill_tokens", "prefill_seqs", "decode_seqs", "decode_ctx_tokens")
    )
    return _Work(cfg, spec).utilisation(d, pt, ps, ds, ctx, share)


def _busy_sums(
    steps: pd.DataFrame, works: Mapping[int, _Work], replica_pool: np.ndarray, share: float
) -> dict[int, tuple[float, float]]:
    """Per pool index: (sum of u x duration, sum of duration) over its steps, a slice of rows at a time."""
    out = {p: (0.0, 0.0) for p in works}
    names = ("duration_s", "prefill_tokens", "prefill_seqs", "decode_seqs", "decode_ctx_tokens")
    n = len(steps)
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        pool = replica_pool[steps["replica"].to_numpy()[start:stop]]
        cols = [steps[c].to_numpy()[start:stop].astype(np.float64) for c in names]
        for p, work in works.items():
            if len(works) == 1:
                mine = cols
            else:
                sel = pool == p
                if not sel.any():
                    continue
                mine = [c[sel] for c in cols]
            u = work.utilisation(mine[0], mine[1], mine[2], mine[3], mine[4], share)
            ud, d = out[p]
            out[p] = (ud + float(np.dot(u, mine[0])), d + float(mine[0].sum()))
    return out


def energy_section(
    cfg: Any,
    pools: Sequence[Any],
    steps: pd.DataFrame,
    by_group: Mapping[str, Mapping[str, Any]],
    *,
    window_s: float,
    input_tokens: int,
    output_tokens: int,
) -> EnergySection:
    """The ``energy`` section of ``summary.json`` (see the module docstring).

    ``pools`` are the run's pools (``name``, ``cfg``, ``spec``, ``replicas``, ``initial``);
    ``by_group`` the ``cost`` section's ``by_group`` (each group's ``gpu_hours`` billed):
    the idle energy integrates the same GPU-hours the bill does. Tokens are of completed requests.
    """
    ecfg = cfg.energy
    pue, price, share = float(ecfg.pue), float(ecfg.usd_per_kwh), float(ecfg.memory_power_share)
    section: EnergySection = {
        "gpu_kwh": None,
        "facility_kwh": None,
        "pue": pue,
        "mean_power_w_per_gpu": None,
        "busy_utilisation": None,
        "joules_per_token": None,
        "joules_per_output_token": None,
        "usd_per_kwh": price,
        "usd": None,
        "by_group": {},
        "note": NOTE,
    }
    missing = sorted(
        {str(p.cfg.hardware.name) for p in pools if p.cfg.hardware.idle_w is None or p.cfg.hardware.tdp_w is None}
    )
    if missing:
        section["note"] = (
            f"no power data for hardware {', '.join(missing)} (set hardware.idle_w and hardware.tdp_w); " + NOTE
        )
        return section
    top = max((r.index for p in pools for r in p.replicas), default=-1)
    if len(steps):
        top = max(top, int(steps["replica"].max()))
    replica_pool = np.full(top + 1, -1, dtype=np.int64)
    for i, p in enumerate(pools):
        for r in p.replicas:
            replica_pool[r.index] = i
    works = {i: _Work(p.cfg, p.spec) for i, p in enumerate(pools)}
    sums = _busy_sums(steps, works, replica_pool, share) if len(steps) else {i: (0.0, 0.0) for i in works}
    total_j = billed_s = busy_gpu_s = ud_gpu_s = 0.0
    groups: dict[str, EnergyGroup] = {}
    for i, p in enumerate(pools):
        hw, work = p.cfg.hardware, works[i]
        idle, tdp = float(hw.idle_w), float(hw.tdp_w)
        entry = by_group.get(p.name)
        seconds = float(entry["gpu_hours"]) * 3600.0 if entry is not None else float(p.initial * work.gpus) * window_s
        ud, d = sums[i]
        joules = idle * seconds + (tdp - idle) * work.gpus * ud
        total_j, billed_s = total_j + joules, billed_s + seconds
        busy_gpu_s, ud_gpu_s = busy_gpu_s + work.gpus * d, ud_gpu_s + work.gpus * ud
        groups[p.name] = {
            "hardware": str(hw.name),
            "idle_w": idle,
            "tdp_w": tdp,
            "gpu_hours": seconds / 3600.0,
            "gpu_kwh": joules / 3.6e6,
            "mean_power_w_per_gpu": joules / seconds if seconds > 0 else None,
            "busy_utilisation": ud / d if d > 0 else None,
        }
    tokens = input_tokens + output_tokens
    gpu_kwh = total_j / 3.6e6
    section["gpu_kwh"] = gpu_kwh
    section["facility_kwh"] = gpu_kwh * pue
    section["mean_power_w_per_gpu"] = total_j / billed_s if billed_s > 0 else None
    section["busy_utilisation"] = ud_gpu_s / busy_gpu_s if busy_gpu_s > 0 else None
    section["joules_per_token"] = total_j / tokens if tokens else None
    section["joules_per_output_token"] = total_j / output_tokens if output_tokens else None
    section["usd"] = gpu_kwh * pue * price
    section["by_group"] = groups
    return section


def check_energy(cfg: Any, hardware: Sequence[tuple[str, Any]]) -> None:
    """ConfigError for energy settings no physics allows: ``hardware`` lists (config key, HardwareConfig) of every pool."""
    e = cfg.energy
    if not float(e.pue) >= 1.0:
        raise ConfigError(
            f"energy.pue={e.pue!r} is below 1: PUE is facility energy over IT energy, so at least 1 "
            f"(1.0 counts the GPUs alone; industry average 1.58, hyperscale sites 1.1-1.2)."
        )
    if not float(e.usd_per_kwh) >= 0.0:
        raise ConfigError(f"energy.usd_per_kwh={e.usd_per_kwh!r} must be 0 or more (USD per kWh of facility energy).")
    if not 0.0 <= float(e.memory_power_share) <= 1.0:
        raise ConfigError(
            f"energy.memory_power_share={e.memory_power_share!r} must be between 0 and 1: the share of the "
            f"idle-to-TDP power range a fully memory-bound step draws."
        )
    for key, hw in hardware:
        idle, tdp = hw.idle_w, hw.tdp_w
        if idle is not None and not float(idle) >= 0.0:
            raise ConfigError(
                f"{key}.idle_w={idle!r} is negative: give the board's idle power in watts (0 or more), or null to skip energy."
            )
        if tdp is not None and not float(tdp) > 0.0:
            raise ConfigError(
                f"{key}.tdp_w={tdp!r} must be positive: the board's maximum power in watts, or null to skip energy."
            )
        if idle is not None and tdp is not None and float(idle) > float(tdp):
            raise ConfigError(
                f"{key}.idle_w={idle!r} is above {key}.tdp_w={tdp!r}: idle power cannot exceed the maximum board power."
            )


__all__ = ["CHUNK", "NOTE", "check_energy", "energy_section", "step_utilisation"]
