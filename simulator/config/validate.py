"""Semantic checks on a composed scenario.

Types and unknown keys are caught by hydra against the schema; everything
else that a user can get wrong is checked here and reported as *one sentence*
naming the key, the value and what is allowed (a :class:`ConfigError`).
"""

from __future__ import annotations

import math

from simulator.errors import ConfigError
from simulator.specs import ModelSpec, memory_budget


def _need(cond: bool, message: str) -> None:
    if not cond:
        raise ConfigError(message)


def _positive(value, key: str, *, allow_zero: bool = False) -> None:
    ok = value is not None and (value >= 0 if allow_zero else value > 0) and math.isfinite(value)
    bound = ">= 0" if allow_zero else "> 0"
    _need(ok, f"{key} must be a finite number {bound} (got {value!r}).")


def _fraction(value, key: str, *, allow_zero: bool = False, allow_one: bool = True) -> None:
    lo_ok = value >= 0 if allow_zero else value > 0
    hi_ok = value <= 1 if allow_one else value < 1
    lo = "[0" if allow_zero else "(0"
    hi = "1]" if allow_one else "1)"
    _need(lo_ok and hi_ok, f"{key} must lie in {lo}, {hi} (got {value!r}).")


def _length(spec, key: str) -> None:
    from simulator.workload.lengths import LENGTHS, PARAMS

    if spec.dist not in LENGTHS:
        raise ConfigError(
            f"{key}.dist={spec.dist!r} is not a known length distribution; choose one of: {', '.join(LENGTHS.names())}."
        )
    missing = [p for p in PARAMS[spec.dist] if getattr(spec, p) is None]
    _need(
        not missing,
        f"{key}.dist={spec.dist} needs {', '.join(f'{key}.{p}' for p in PARAMS[spec.dist])}; "
        f"missing: {', '.join(missing)}.",
    )
    d = spec.dist
    if d == "fixed":
        _need(spec.value >= 1, f"{key}.value must be an integer >= 1 (got {spec.value}).")
    elif d == "uniform":
        _need(
            1 <= spec.low <= spec.high,
            f"{key}.low and {key}.high must satisfy 1 <= low <= high (got low={spec.low}, high={spec.high}).",
        )
    elif d == "lognormal":
        _positive(spec.median, f"{key}.median")
        _positive(spec.sigma, f"{key}.sigma", allow_zero=True)
        _need(
            1 <= spec.min <= spec.max,
            f"{key}.min and {key}.max must satisfy 1 <= min <= max (got min={spec.min}, max={spec.max}).",
        )
    elif d == "exponential":
        _need(spec.mean >= 1, f"{key}.mean must be >= 1 token (got {spec.mean}).")


def validate(cfg) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    from simulator.latency import LATENCY_MODELS
    from simulator.memory import ALLOCATIONS
    from simulator.scheduling import SCHEDULERS
    from simulator.workload.arrivals import ARRIVALS
    from simulator.workload.lengths import upper_bound

    _need(cfg.seed >= 0, f"seed must be an integer >= 0 (got {cfg.seed}).")
    wl = cfg.workload
    ARRIVALS.get(wl.arrival)
    _positive(wl.rate, "workload.rate")
    if wl.arrival == "gamma":
        _positive(wl.cv, "workload.cv")
    _need(
        wl.num_requests is not None or wl.duration_s is not None,
        "set workload.num_requests or workload.duration_s (or both) so the workload ends.",
    )
    if wl.num_requests is not None:
        _need(wl.num_requests >= 1, f"workload.num_requests must be >= 1 (got {wl.num_requests}).")
    if wl.duration_s is not None:
        _positive(wl.duration_s, "workload.duration_s")
    _length(wl.prompt_tokens, "workload.prompt_tokens")
    _length(wl.output_tokens, "workload.output_tokens")

    SCHEDULERS.get(cfg.scheduler.policy)
    _need(cfg.scheduler.max_batch_size >= 1, f"scheduler.max_batch_size must be >= 1 (got {cfg.scheduler.max_batch_size}).")
    _need(
        cfg.scheduler.max_batch_tokens >= 1,
        f"scheduler.max_batch_tokens must be >= 1 (got {cfg.scheduler.max_batch_tokens}).",
    )
    _positive(cfg.scheduler.max_wait_s, "scheduler.max_wait_s", allow_zero=True)

    lat = cfg.latency
    LATENCY_MODELS.get(lat.model)
    if lat.model == "constant":
        _positive(lat.step_s, "latency.step_s")
    _fraction(lat.compute_efficiency, "latency.compute_efficiency")
    _fraction(lat.memory_efficiency, "latency.memory_efficiency")
    _fraction(lat.comm_efficiency, "latency.comm_efficiency")
    _positive(lat.step_overhead_s, "latency.step_overhead_s", allow_zero=True)
    _positive(lat.allreduce_latency_s, "latency.allreduce_latency_s", allow_zero=True)

    mem = cfg.memory
    ALLOCATIONS.get(mem.allocation)
    _need(mem.block_size >= 1, f"memory.block_size must be >= 1 token (got {mem.block_size}).")
    _fraction(mem.gpu_memory_utilization, "memory.gpu_memory_utilization")
    _fraction(mem.watermark, "memory.watermark", allow_zero=True, allow_one=False)
    _positive(mem.activation_reserve_gb, "memory.activation_reserve_gb", allow_zero=True)
    _need(not mem.prefix_caching, "memory.prefix_caching=true is not supported yet; set it to false.")

    cl = cfg.cluster
    _need(cl.replicas >= 1, f"cluster.replicas must be >= 1 (got {cl.replicas}).")
    _need(cl.tp >= 1, f"cluster.tp must be >= 1 (got {cl.tp}).")
    m = cfg.model
    _need(
        m.num_attention_heads % cl.tp == 0,
        f"cluster.tp={cl.tp} must divide model {m.name}'s {m.num_attention_heads} attention heads.",
    )

    for key in ("ttft_s", "tpot_s", "e2e_s"):
        v = getattr(cfg.slo, key)
        if v is not None:
            _positive(v, f"slo.{key}")

    spec = ModelSpec.from_config(m, cl.tp)  # checks the precision names
    budget = memory_budget(cfg.hardware, mem, spec)
    if budget.kv_blocks < 1:
        per_gpu = float(cfg.hardware.memory_gb) * mem.gpu_memory_utilization - mem.activation_reserve_gb
        need_tp = math.ceil(spec.weight_bytes / 1e9 / per_gpu) if per_gpu > 0 else None
        hint = f"raise cluster.tp to at least {need_tp}" if need_tp else "lower memory.activation_reserve_gb"
        raise ConfigError(
            f"model={m.name} does not fit: its weights need {spec.weight_bytes / 1e9:.1f} GB but "
            f"hardware={cfg.hardware.name} x cluster.tp={cl.tp} leaves "
            f"{(budget.usable - budget.activation_reserve) / 1e9:.1f} GB at "
            f"memory.gpu_memory_utilization={mem.gpu_memory_utilization}, with no room for a KV block; "
            f"{hint}, pick a larger GPU, or a smaller model.weight_dtype."
        )

    longest = upper_bound(wl.prompt_tokens) + upper_bound(wl.output_tokens)
    if math.isfinite(longest):
        _need(
            longest <= m.max_context,
            f"the workload can produce requests of {int(longest)} tokens (workload.prompt_tokens up to "
            f"{int(upper_bound(wl.prompt_tokens))} + workload.output_tokens up to {int(upper_bound(wl.output_tokens))}), "
            f"longer than model {m.name}'s context of {m.max_context} tokens; lower those maxima.",
        )


def check_workload(cfg, workload) -> None:
    """Checks that need the sampled requests (unbounded distributions)."""
    if len(workload) == 0:
        raise ConfigError(
            f"the workload is empty: no request arrives within workload.duration_s={cfg.workload.duration_s} "
            f"at workload.rate={cfg.workload.rate}; raise either."
        )
    longest = int((workload.prompt_tokens + workload.output_tokens).max())
    if longest > cfg.model.max_context:
        raise ConfigError(
            f"the workload drew a request of {longest} tokens, longer than model {cfg.model.name}'s context "
            f"of {cfg.model.max_context} tokens; lower workload.prompt_tokens / workload.output_tokens."
        )
