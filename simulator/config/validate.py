"""Semantic checks on a composed scenario.

Types and unknown keys are caught by hydra against the schema; everything
else that a user can get wrong is checked here and reported as *one sentence*
naming the key, the value and what is allowed (a :class:`ConfigError`).
:func:`validate` runs the sections in order: the run's own settings, the
workload (:mod:`~simulator.config.validate_workload`), each family member's
settings through its registry, the pools (:mod:`~simulator.config.validate_pool`)
and the cluster (:mod:`~simulator.config.validate_cluster`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.config.checks import fraction, need, positive
from simulator.config.pricing import check_pricing
from simulator.config.validate_cluster import check_cluster
from simulator.config.validate_pool import check_fits, check_scheduler
from simulator.config.validate_workload import (  # noqa: F401  (check_workload, max_len: re-exported)
    check_longest,
    check_run_memory,
    check_workload,
    check_workload_config,
    max_len,
)
from simulator.specs import ModelSpec

if TYPE_CHECKING:
    from simulator.config.schema import LatencyConfig, ModelConfig, ScenarioConfig


def validate(cfg: ScenarioConfig) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    _run(cfg)
    _model(cfg.model)
    check_workload_config(cfg)
    check_run_memory(cfg)  # before the workload is drawn: a run that cannot fit is refused, not killed
    prompt_max = check_longest(cfg)
    disagg = cfg.cluster.disaggregation.enabled
    check_scheduler(cfg.scheduler, "scheduler", None if disagg else prompt_max)
    _multi_step(cfg)
    check_latency(cfg.latency)
    _speculative(cfg)
    _memory(cfg)
    _cluster(cfg, prompt_max)
    check_cluster(cfg, None if disagg else prompt_max)
    check_pricing(cfg)  # tiers, the pricing catalog, spot interruptions (simulator/config/pricing.py)
    if cfg.latency.model == "profile":  # load it now, so a wrong profile fails before the run
        from simulator.config.pools import pool_configs
        from simulator.latency import build_latency_model

        for _, pcfg in pool_configs(cfg):
            build_latency_model(pcfg, ModelSpec.from_config(pcfg.model, pcfg.cluster.tp, pcfg.cluster.ep, pcfg.cluster.pp))
    for key in ("ttft_s", "tpot_s", "e2e_s"):
        v = getattr(cfg.slo, key)
        if v is not None:
            positive(v, f"slo.{key}")
    _tiers(cfg)
    _energy(cfg)
    _uncertainty(cfg)


def _uncertainty(cfg: ScenarioConfig) -> None:
    """uncertainty.* and the model-error overrides (simulator/latency/uncertainty.py)."""
    unc = cfg.uncertainty
    need(0 < unc.interval < 1, f"uncertainty.interval must be between 0 and 1 (the central share of replications; got {unc.interval}).")
    if cfg.latency.error_log_sd is not None:
        positive(cfg.latency.error_log_sd, "latency.error_log_sd", allow_zero=True)


def _energy(cfg: ScenarioConfig) -> None:
    """energy.* and every pool's hardware watts (simulator/metrics/energy.py)."""
    from simulator.config.pools import pool_configs
    from simulator.metrics.energy import check_energy

    hardware = [("hardware", cfg.hardware)]
    for name, pcfg in pool_configs(cfg):
        if pcfg.hardware.name != cfg.hardware.name:
            hardware.append((f"hardware {pcfg.hardware.name} (pool {name})", pcfg.hardware))
    check_energy(cfg, hardware)


SPECULATIVE_METHODS = ("none", "draft", "ngram", "mtp")


#: engine presets whose engine has multi-step scheduling (vLLM V0 from 0.5.5, vllm-project/vllm#7000)
MULTI_STEP_ENGINES = ("generic", "vllm_v0", "vllm_v05")


def _multi_step(cfg: ScenarioConfig) -> None:
    """scheduler.multi_step > 1 only where vLLM V0 would run it (its policies: Scheduler.check)."""
    n = cfg.scheduler.multi_step
    if n == 1:
        return
    need(
        cfg.engine_name in MULTI_STEP_ENGINES,
        f"scheduler.multi_step={n} is vLLM V0's multi-step scheduling; engine={cfg.engine_name} has none "
        f"(use engine=vllm_v0, or leave scheduler.multi_step at 1).",
    )
    sp = cfg.scheduler.speculative.method
    need(
        sp == "none",
        f"scheduler.multi_step={n} with speculative decoding (scheduler.speculative.method={sp}): vLLM refuses "
        f"the two together; set one of them.",
    )
    need(
        int(cfg.workload.beam_width) == 1,
        f"scheduler.multi_step={n} with beam search (workload.beam_width={cfg.workload.beam_width}): vLLM refuses "
        f"the two together; set one of them.",
    )


def _speculative(cfg: ScenarioConfig) -> None:
    """scheduler.speculative: a known method, k that fits a block, an acceptance model that is a distribution."""
    sp, key = cfg.scheduler.speculative, "scheduler.speculative"
    need(sp.method in SPECULATIVE_METHODS, f"{key}.method={sp.method!r} is not known; choose one of: {', '.join(SPECULATIVE_METHODS)}.")
    if sp.method == "none":
        return
    bs = int(cfg.memory.block_size)
    need(
        isinstance(sp.num_tokens, int) and 1 <= sp.num_tokens < bs,
        f"{key}.num_tokens must be an integer from 1 to memory.block_size - 1 = {bs - 1} (got {sp.num_tokens!r}).",
    )
    fraction(sp.acceptance_rate, f"{key}.acceptance_rate", allow_zero=True)
    spread, rate = float(sp.acceptance_spread), float(sp.acceptance_rate)
    need(
        spread == 0 or 0 < spread < (rate * (1 - rate)) ** 0.5,
        f"{key}.acceptance_spread must be 0 or between 0 and sqrt(rate x (1 - rate)) = {(rate * (1 - rate)) ** 0.5:.3g} "
        f"(a Beta distribution of mean {rate:g}); got {sp.acceptance_spread!r}.",
    )
    policies = {cfg.scheduler.policy, *(p.scheduler.policy for p in (cfg.cluster.disaggregation.prefill, cfg.cluster.disaggregation.decode))}
    bad = sorted(str(p) for p in policies - {None, "continuous", "chunked_prefill"})
    need(not bad, f"{key}.method={sp.method} runs with scheduler=continuous or chunked_prefill (the engines that ship it), not {', '.join(bad)}.")
    need(
        cfg.latency.model != "profile",
        f"{key}.method={sp.method} needs latency.model=roofline (or constant): a measured profile has no verification shapes.",
    )
    need(
        sp.method != "mtp" or int(getattr(cfg.model, "mtp_layers", 0) or 0) >= 1,
        f"{key}.method=mtp needs a model that ships multi-token-prediction modules (model.mtp_layers >= 1, as "
        f"deepseek-v3); model {cfg.model.name} has none: use method=draft or ngram.",
    )
    if sp.method == "draft":
        need(sp.draft_model is not None, f"{key}.method=draft needs {key}.draft_model (a model catalog name, e.g. llama-3.2-1b).")
        from simulator.config.catalog import load_model

        draft = load_model(str(sp.draft_model), f"{key}.draft_model")
        need(
            int(draft.vocab_size) == int(cfg.model.vocab_size),
            f"{key}.draft_model={sp.draft_model} has a vocabulary of {draft.vocab_size} tokens and model {cfg.model.name} "
            f"{cfg.model.vocab_size}: a draft must share the target's tokenizer.",
        )


def _model(m: ModelConfig) -> None:
    """The architecture fields beyond the dense defaults: MLP kind, experts, latent attention, windows."""
    need(m.mlp in ("gated", "plain"), f"model.mlp={m.mlp!r} is not known; choose gated (SwiGLU) or plain (GPT-style).")
    need(
        m.num_kv_heads >= 1 and m.num_attention_heads % m.num_kv_heads == 0,
        f"model {m.name}: num_attention_heads={m.num_attention_heads} must be a multiple of num_kv_heads={m.num_kv_heads} "
        "(each KV head serves a whole group of query heads).",
    )
    need(m.num_experts >= 0, f"model.num_experts must be >= 0 (got {m.num_experts}); 0 means a dense model.")
    if m.num_experts > 0:
        need(
            1 <= m.experts_per_token <= m.num_experts,
            f"model.experts_per_token must lie in [1, model.num_experts={m.num_experts}] (got {m.experts_per_token}).",
        )
        need(m.shared_experts >= 0, f"model.shared_experts must be >= 0 (got {m.shared_experts}).")
        need(m.moe_layer_step >= 1, f"model.moe_layer_step must be >= 1 (got {m.moe_layer_step}).")
        need(
            0 <= m.first_dense_layers < m.num_layers,
            f"model.first_dense_layers must lie in [0, model.num_layers={m.num_layers}) (got {m.first_dense_layers}).",
        )
        need(m.expert_imbalance >= 1, f"model.expert_imbalance must be >= 1 (1 = uniform routing; got {m.expert_imbalance}).")
    if m.kv_lora_rank:
        need(
            m.kv_lora_rank > 0 and m.qk_rope_head_dim > 0 and m.v_head_dim > 0,
            "model.kv_lora_rank > 0 (multi-head latent attention) needs model.qk_rope_head_dim and model.v_head_dim > 0 "
            f"(got kv_lora_rank={m.kv_lora_rank}, qk_rope_head_dim={m.qk_rope_head_dim}, v_head_dim={m.v_head_dim}).",
        )
    if m.sliding_window is not None:
        need(m.sliding_window >= 1, f"model.sliding_window must be >= 1 token, or null (got {m.sliding_window}).")
    if m.sliding_window_layers is not None:
        need(
            0 <= m.sliding_window_layers <= m.num_layers,
            f"model.sliding_window_layers must lie in [0, model.num_layers={m.num_layers}] (got {m.sliding_window_layers}).",
        )


def _run(cfg: ScenarioConfig) -> None:
    from simulator.progress import mode as progress_mode

    need(cfg.seed >= 0, f"seed must be an integer >= 0 (got {cfg.seed}).")
    need(
        cfg.replications >= 1,
        f"replications must be an integer >= 1 (got {cfg.replications}): the number of seeds to run this point with.",
    )
    progress_mode(cfg.output.progress)  # auto, on or off (booleans read as on/off)


#: hardware.vendor values whose catalog GPUs carry an engine's custom all-reduce timing (latency.custom_allreduce)
CUSTOM_ALLREDUCE_VENDORS = ("nvidia", "amd")


def check_latency(lat: LatencyConfig) -> None:
    """The latency block: a known model, efficiencies in (0, 1], costs >= 0, rates > 0."""
    from simulator.latency import LATENCY_MODELS

    LATENCY_MODELS.check(lat.model, lat, "latency")
    for key in ("compute_efficiency", "compute_efficiency_fp8", "memory_efficiency", "attention_efficiency", "comm_efficiency"):
        if getattr(lat, key) is not None:
            fraction(getattr(lat, key), f"latency.{key}")
    for key in ("step_overhead_s", "step_overhead_per_seq_s", "request_overhead_s", "allreduce_latency_s", "gemm_latency_s",
                "attention_row_pairs", "attention_latency_s"):
        if getattr(lat, key) is not None:
            positive(getattr(lat, key), f"latency.{key}", allow_zero=True)
    vendors = lat.custom_allreduce
    need(
        isinstance(vendors, list | tuple) and all(v in CUSTOM_ALLREDUCE_VENDORS for v in vendors),
        f"latency.custom_allreduce must be a list of GPU vendors among {', '.join(CUSTOM_ALLREDUCE_VENDORS)} "
        f"(those whose engines run their own all-reduce kernel; [] for NCCL/RCCL only); got {vendors!r}.",
    )
    rate = lat.attention_decode_kv_rate_g
    need(
        rate is None or rate == math.inf or (math.isfinite(rate) and rate > 0),
        f"latency.attention_decode_kv_rate_g must be a positive number of KV-cache entries, in billions a second, "
        f"or inf for no bound but HBM bandwidth (got {rate!r}).",
    )
    need(
        lat.overlap_exponent is None or lat.overlap_exponent >= 1,
        f"latency.overlap_exponent must be >= 1 (1 = compute and memory never overlap; inf = the plain roofline); "
        f"got {lat.overlap_exponent}.",
    )


def _memory(cfg: ScenarioConfig) -> None:
    from simulator.memory import ALLOCATIONS

    mem = cfg.memory
    ALLOCATIONS.check(mem.allocation, mem, "memory")
    need(mem.block_size >= 1, f"memory.block_size must be >= 1 token (got {mem.block_size}).")
    fraction(mem.gpu_memory_utilization, "memory.gpu_memory_utilization")
    fraction(mem.watermark, "memory.watermark", allow_zero=True, allow_one=False)
    positive(mem.activation_reserve_gb, "memory.activation_reserve_gb", allow_zero=True)
    if mem.prefix_caching:
        need(
            mem.allocation == "paged",
            f"memory.prefix_caching=true needs memory.allocation=paged (got {mem.allocation}): "
            "cached blocks are shared page by page.",
        )
        need(
            cfg.scheduler.policy != "static",
            "memory.prefix_caching=true is not supported with scheduler.policy=static, which reserves KV contiguously.",
        )
    positive(mem.swap_space_gb, "memory.swap_space_gb", allow_zero=True)
    off = mem.offload
    for key in ("host_gb", "ssd_gb", "host_latency_us", "ssd_latency_us"):
        positive(getattr(off, key), f"memory.offload.{key}", allow_zero=True)
    positive(off.ssd_gbps, "memory.offload.ssd_gbps")
    if off.host_gbps is not None:
        positive(off.host_gbps, "memory.offload.host_gbps")
    if off.host_gb or off.ssd_gb:
        need(
            mem.prefix_caching,
            "memory.offload.host_gb / ssd_gb hold blocks the prefix cache evicts: they need memory.prefix_caching=true "
            "(or set them to 0).",
        )


def check_pipeline(cfg: ScenarioConfig) -> None:
    """``cluster.pp``: a whole number of stages, priced by the roofline, without expert parallelism."""
    cl = cfg.cluster
    if cl.pp != 1:
        need(
            isinstance(cl.pp, int) and 1 <= cl.pp <= cfg.model.num_layers,
            f"cluster.pp must be an integer from 1 to model {cfg.model.name}'s {cfg.model.num_layers} layers (got {cl.pp!r}).",
        )
        need(
            cfg.latency.model == "roofline",
            f"cluster.pp={cl.pp} needs latency.model=roofline (the pipeline is priced from its per-layer times; got {cfg.latency.model}).",
        )
        need(cl.ep == 1, "cluster.pp and cluster.ep cannot be combined yet.")


def _cluster(cfg: ScenarioConfig, prompt_max: float | None) -> None:
    """Replica counts, TP, and the pools of a disaggregated cluster (groups: :func:`check_cluster`)."""
    cl = cfg.cluster
    need(cl.replicas >= 1, f"cluster.replicas must be >= 1 (got {cl.replicas}).")
    need(cl.tp >= 1, f"cluster.tp must be >= 1 (got {cl.tp}).")
    check_pipeline(cfg)
    if cl.ep != 1:
        m = cfg.model
        need(m.num_experts > 0, f"cluster.ep={cl.ep} needs a mixture-of-experts model; model={m.name} is dense.")
        need(
            cl.ep % cl.tp == 0 and m.num_experts % cl.ep == 0,
            f"cluster.ep={cl.ep} must be a multiple of cluster.tp={cl.tp} (the replica's GPUs, or several replicas' "
            f"with data-parallel attention) and divide model.num_experts={m.num_experts}.",
        )
        need(
            cl.replicas % (cl.ep // cl.tp) == 0,
            f"cluster.ep={cl.ep} spreads experts over {cl.ep // cl.tp} replicas of cluster.tp={cl.tp} GPUs, so "
            f"cluster.replicas must be a multiple of {cl.ep // cl.tp} (got {cl.replicas}).",
        )
        need(
            not cl.groups and not cl.disaggregation.enabled and not cl.autoscaler.enabled,
            "cluster.ep applies to a fixed set of colocated replicas; it cannot be combined with cluster.groups, "
            "disaggregation or the autoscaler.",
        )
    if cl.disaggregation.enabled:
        _disaggregation(cfg, prompt_max)
    elif not cl.groups:  # groups are checked one by one in check_cluster
        check_fits(cfg, "cluster.tp", "hardware")


def _disaggregation(cfg: ScenarioConfig, prompt_max: float | None) -> None:
    from simulator.cluster.disaggregation import DECODE_ROUTERS
    from simulator.config.pools import pool_configs

    dis = cfg.cluster.disaggregation
    DECODE_ROUTERS.check(dis.decode_router, dis, "cluster.disaggregation")
    positive(dis.link.bandwidth_gbps, "cluster.disaggregation.link.bandwidth_gbps")
    positive(dis.link.latency_s, "cluster.disaggregation.link.latency_s", allow_zero=True)
    for name, pcfg in pool_configs(cfg):
        key = f"cluster.disaggregation.{name}"
        need(pcfg.cluster.replicas >= 1, f"{key}.replicas must be >= 1 (got {pcfg.cluster.replicas}).")
        check_scheduler(pcfg.scheduler, f"{key}.scheduler", prompt_max if name == "prefill" else None)
        need(
            pcfg.scheduler.policy != "static",
            f"{key}.scheduler.policy=static is not supported: request-level batching has no separate "
            f"prefill and decode phases to split; choose continuous or chunked_prefill.",
        )
        check_fits(pcfg, f"{key}.tp", f"{key}.hardware")


def _tiers(cfg: ScenarioConfig) -> None:
    """``tiers``: named, shares >= 0 summing to > 0, limits in range where set."""
    tiers = cfg.tiers
    if not tiers:
        return
    for name, t in tiers.items():
        need(
            isinstance(name, str) and name.strip() != "",
            f"tiers has a tier named {name!r}; tier names must be non-empty strings such as free or pro.",
        )
        key = f"tiers.{name}"
        positive(t.share, f"{key}.share", allow_zero=True)
        for field in ("ttft_s", "tpot_s", "max_wait_s", "tokens_per_s", "burst_tokens"):
            if getattr(t, field) is not None:
                positive(getattr(t, field), f"{key}.{field}")
        if t.max_queue is not None:
            need(t.max_queue >= 0, f"{key}.max_queue must be an integer >= 0, or null (got {t.max_queue}).")
        if t.kv_watermark is not None:
            fraction(t.kv_watermark, f"{key}.kv_watermark")
    total = sum(float(t.share) for t in tiers.values())
    need(
        total > 0,
        f"tiers.*.share must sum to > 0, so some tier gets traffic (got {total:g} over {', '.join(map(str, tiers))}).",
    )
