"""Semantic checks on a composed scenario.

Types and unknown keys are caught by hydra against the schema; everything
else that a user can get wrong is checked here and reported as *one sentence*
naming the key, the value and what is allowed (a :class:`ConfigError`).
"""

from __future__ import annotations

import math
import warnings

from omegaconf import ListConfig, OmegaConf

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
    elif d == "empirical":
        q, v = list(spec.quantiles), list(spec.tokens)
        _need(
            len(q) == len(v) >= 2,
            f"{key}.quantiles and {key}.tokens must be lists of the same length, at least 2 "
            f"(got {len(q)} quantiles and {len(v)} tokens).",
        )
        _need(
            q[0] == 0 and q[-1] == 1 and all(a < b for a, b in zip(q, q[1:])),
            f"{key}.quantiles must rise strictly from 0 to 1 (got {q}); "
            "`servesim-trace fit TRACE` prints a table fitted to a trace.",
        )
        _need(
            v[0] >= 1 and all(a <= b for a, b in zip(v, v[1:])),
            f"{key}.tokens must be token counts >= 1 that never decrease (got {v}).",
        )
        _need(
            (spec.min or 1) >= 1 and (spec.max is None or spec.max >= (spec.min or 1)),
            f"{key}.min and {key}.max clip an empirical table and must satisfy 1 <= min <= max "
            f"(got min={spec.min}, max={spec.max}).",
        )


_BOUND_KEY = {"fixed": "value", "uniform": "high", "lognormal": "max", "empirical": "max"}


def _cap_hint(wl, limit: int) -> str:
    """`` (e.g. workload.prompt_tokens.max=N)`` when capping the prompt alone would fit ``limit``."""
    from simulator.workload.lengths import upper_bound

    out = upper_bound(wl.output_tokens)
    room = int(limit - out - wl.prefix.system_tokens) // max(wl.prefix.turns if wl.prefix.sessions > 0 else 1, 1)
    key = _BOUND_KEY.get(wl.prompt_tokens.dist)
    if key is None or not math.isfinite(out) or room < 1:
        return ""
    return f" (e.g. workload.prompt_tokens.{key}={room})"


def validate(cfg) -> None:
    """Raise :class:`ConfigError` for the first problem found in ``cfg``."""
    from simulator.latency import LATENCY_MODELS
    from simulator.memory import ALLOCATIONS
    from simulator.workload.arrivals import ARRIVALS, names
    from simulator.workload.lengths import upper_bound

    _need(cfg.seed >= 0, f"seed must be an integer >= 0 (got {cfg.seed}).")
    _need(
        cfg.replications >= 1,
        f"replications must be an integer >= 1 (got {cfg.replications}): the number of seeds to run this point with.",
    )
    from simulator.progress import mode as progress_mode

    progress_mode(cfg.output.progress)  # auto, on or off (booleans read as on/off)
    wl = cfg.workload
    if wl.arrival == "trace":
        from simulator.workload.traces import check_config

        _need(bool(wl.trace.path), "workload.arrival=trace needs workload.trace.path (a trace file).")
        check_config(wl.trace, wl.num_requests, wl.duration_s)
    elif wl.trace.path:
        raise ConfigError(
            f"workload.trace.path is set but workload.arrival={wl.arrival}; set workload.arrival=trace to replay "
            f"the trace, or clear workload.trace.path."
        )
    elif wl.arrival not in ARRIVALS and wl.arrival != "closed_loop":
        raise ConfigError(
            f"workload.arrival={wl.arrival!r} is not a known arrival process; choose one of: {', '.join(names())}."
        )
    if wl.rate_schedule is not None:
        _need(
            wl.arrival in ARRIVALS,
            f"workload.rate_schedule is set but workload.arrival={wl.arrival}, which has no rate; "
            f"use it with {', '.join(ARRIVALS.names())}, or set workload.rate_schedule=null.",
        )
        _rate_schedule(wl.rate_schedule)
    elif wl.arrival != "closed_loop":
        _positive(wl.rate, "workload.rate")
    if wl.arrival == "gamma":
        _positive(wl.cv, "workload.cv")
    if wl.arrival == "closed_loop":
        _need(
            wl.num_requests is not None,
            "workload.arrival=closed_loop needs workload.num_requests (got null): "
            "the users' requests are drawn before the run, so their number must be known.",
        )
        _need(wl.users >= 1, f"workload.users must be an integer >= 1 (got {wl.users}).")
        _positive(wl.think_s, "workload.think_s", allow_zero=True)
    _need(wl.tenants >= 0, f"workload.tenants must be an integer >= 0 (got {wl.tenants}).")
    _positive(wl.tenant_skew, "workload.tenant_skew", allow_zero=True)
    _retry(wl.retry)
    _need(
        wl.num_requests is not None or wl.duration_s is not None or (wl.arrival == "trace" and not wl.trace.loop),
        "set workload.num_requests or workload.duration_s (or both) so the workload ends"
        + (" (a looped trace never does)." if wl.arrival == "trace" else "."),
    )
    if wl.num_requests is not None:
        _need(wl.num_requests >= 1, f"workload.num_requests must be >= 1 (got {wl.num_requests}).")
    if wl.duration_s is not None:
        _positive(wl.duration_s, "workload.duration_s")
    _length(wl.prompt_tokens, "workload.prompt_tokens")
    _length(wl.output_tokens, "workload.output_tokens")
    _memory(cfg)  # before the workload is drawn: a run that cannot fit is refused, not killed

    m = cfg.model
    mem = cfg.memory
    if mem.max_model_len is not None:
        _need(
            1 <= mem.max_model_len <= m.max_context,
            f"memory.max_model_len must lie in [1, {m.max_context}] for model {m.name} (got {mem.max_model_len}).",
        )
    pf = wl.prefix
    longest = upper_bound(wl.prompt_tokens) + upper_bound(wl.output_tokens) + pf.system_tokens
    if pf.sessions > 0 and pf.turns > 1:
        longest *= pf.turns  # a last turn holds the whole conversation
    limit, what = max_len(cfg)
    if math.isfinite(longest) and wl.arrival != "trace":
        _need(
            longest <= limit,
            f"the workload can produce requests of {int(longest)} tokens (workload.prompt_tokens up to "
            f"{int(upper_bound(wl.prompt_tokens))} + workload.output_tokens up to {int(upper_bound(wl.output_tokens))}"
            + (", with shared prefixes and conversation history" if longest != upper_bound(wl.prompt_tokens) + upper_bound(wl.output_tokens) else "")
            + f"), longer than {what}; lower those maxima"
            + _cap_hint(wl, limit)
            + ".",
        )

    prompt_max = None if wl.arrival == "trace" else upper_bound(wl.prompt_tokens) + wl.prefix.system_tokens
    if wl.prefix.sessions > 0 and wl.prefix.turns > 1:
        prompt_max = None  # conversations grow; long turns are rejected at run time
    disagg = cfg.cluster.disaggregation.enabled
    _scheduler(cfg.scheduler, "scheduler", None if disagg else prompt_max)
    lat = cfg.latency
    LATENCY_MODELS.get(lat.model)
    if lat.model == "constant":
        _positive(lat.step_s, "latency.step_s")
    for key in ("compute_efficiency", "compute_efficiency_fp8", "memory_efficiency", "attention_efficiency", "comm_efficiency"):
        if getattr(lat, key) is not None:
            _fraction(getattr(lat, key), f"latency.{key}")
    for key in ("step_overhead_s", "step_overhead_per_seq_s", "request_overhead_s", "allreduce_latency_s", "gemm_latency_s"):
        if getattr(lat, key) is not None:
            _positive(getattr(lat, key), f"latency.{key}", allow_zero=True)
    _need(
        lat.overlap_exponent is None or lat.overlap_exponent >= 1,
        f"latency.overlap_exponent must be >= 1 (1 = compute and memory never overlap; inf = the plain roofline); "
        f"got {lat.overlap_exponent}.",
    )

    mem = cfg.memory
    ALLOCATIONS.get(mem.allocation)
    _need(mem.block_size >= 1, f"memory.block_size must be >= 1 token (got {mem.block_size}).")
    _fraction(mem.gpu_memory_utilization, "memory.gpu_memory_utilization")
    _fraction(mem.watermark, "memory.watermark", allow_zero=True, allow_one=False)
    _positive(mem.activation_reserve_gb, "memory.activation_reserve_gb", allow_zero=True)
    if mem.prefix_caching:
        _need(
            mem.allocation == "paged",
            f"memory.prefix_caching=true needs memory.allocation=paged (got {mem.allocation}): "
            "cached blocks are shared page by page.",
        )
        _need(
            cfg.scheduler.policy != "static",
            "memory.prefix_caching=true is not supported with scheduler.policy=static, which reserves KV contiguously.",
        )
    pf = wl.prefix
    for key in ("system_prompts", "system_tokens", "sessions"):
        _need(getattr(pf, key) >= 0, f"workload.prefix.{key} must be >= 0 (got {getattr(pf, key)}).")
    _need(pf.turns >= 1, f"workload.prefix.turns must be >= 1 (got {pf.turns}).")
    _need(
        (pf.system_prompts > 0) == (pf.system_tokens > 0),
        "set workload.prefix.system_prompts and workload.prefix.system_tokens together (both > 0, or both 0).",
    )

    _positive(mem.swap_space_gb, "memory.swap_space_gb", allow_zero=True)
    cl = cfg.cluster
    _need(cl.replicas >= 1, f"cluster.replicas must be >= 1 (got {cl.replicas}).")
    _need(cl.tp >= 1, f"cluster.tp must be >= 1 (got {cl.tp}).")
    dis = cl.disaggregation
    if dis.enabled:
        from simulator.engine.disaggregation import DECODE_ROUTERS
        from simulator.engine.simulation import pool_configs

        DECODE_ROUTERS.get(dis.decode_router)
        _positive(dis.link.bandwidth_gbps, "cluster.disaggregation.link.bandwidth_gbps")
        _positive(dis.link.latency_s, "cluster.disaggregation.link.latency_s", allow_zero=True)
        for name, pcfg in pool_configs(cfg):
            key = f"cluster.disaggregation.{name}"
            _need(pcfg.cluster.replicas >= 1, f"{key}.replicas must be >= 1 (got {pcfg.cluster.replicas}).")
            _scheduler(pcfg.scheduler, f"{key}.scheduler", prompt_max if name == "prefill" else None)
            _need(
                pcfg.scheduler.policy != "static",
                f"{key}.scheduler.policy=static is not supported: request-level batching has no separate "
                f"prefill and decode phases to split; choose continuous or chunked_prefill.",
            )
            _fits(pcfg, f"{key}.tp", f"{key}.hardware")
    elif not cl.groups:  # groups are checked one by one in check_cluster
        _fits(cfg, "cluster.tp", "hardware")
    from simulator.config.validate_cluster import check_cluster

    check_cluster(cfg, None if disagg else prompt_max)
    if lat.model == "profile":  # load it now, so a wrong profile fails before the run
        from simulator.engine.simulation import pool_configs
        from simulator.latency import build_latency_model

        for _, pcfg in pool_configs(cfg):
            build_latency_model(pcfg, ModelSpec.from_config(pcfg.model, pcfg.cluster.tp))

    for key in ("ttft_s", "tpot_s", "e2e_s"):
        v = getattr(cfg.slo, key)
        if v is not None:
            _positive(v, f"slo.{key}")
    _tiers(cfg)


def _rate_schedule(pieces) -> None:
    """``workload.rate_schedule``: ``[[start_s, rate], ...]`` from 0, starts increasing, some rate > 0."""
    key = "workload.rate_schedule"
    pieces = list(pieces)
    _need(len(pieces) >= 1, f"{key} must hold at least one [start_s, rate] pair, or be null (got []).")
    prev = None
    for i, p in enumerate(pieces):
        pair = list(p) if isinstance(p, (list, tuple, ListConfig)) else None
        _need(
            pair is not None
            and len(pair) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair),
            f"{key}[{i}] must be a [start_s, rate] pair of numbers (got {_plain(p)!r}).",
        )
        start, rate = pair
        if i == 0:
            _need(start == 0, f"{key}[0] must start at 0 s, so the rate is known from the start (got start_s={start}).")
        else:
            _need(
                math.isfinite(start) and start > prev,
                f"{key}[{i}] starts at {start} s, not after the previous piece's {prev} s; start times must strictly increase.",
            )
        _positive(rate, f"{key}[{i}] rate", allow_zero=True)
        prev = start
    rates = [list(p)[1] for p in pieces]
    _need(any(r > 0 for r in rates), f"{key} needs a piece with a rate > 0 (got rates {', '.join(map(str, rates))}).")


def _plain(value):
    """A config node as plain Python, for messages."""
    return OmegaConf.to_container(value) if isinstance(value, ListConfig) else value


def _retry(rt) -> None:
    key = "workload.retry"
    _need(rt.max_attempts >= 1, f"{key}.max_attempts must be an integer >= 1 (got {rt.max_attempts}).")
    _positive(rt.backoff_s, f"{key}.backoff_s", allow_zero=True)
    _need(
        rt.multiplier >= 1 and math.isfinite(rt.multiplier),
        f"{key}.multiplier must be a finite number >= 1 (got {rt.multiplier}).",
    )
    _need(
        rt.max_backoff_s >= rt.backoff_s,
        f"{key}.max_backoff_s must be >= {key}.backoff_s (got max_backoff_s={rt.max_backoff_s}, backoff_s={rt.backoff_s}).",
    )
    _fraction(rt.jitter, f"{key}.jitter", allow_zero=True)


def _tiers(cfg) -> None:
    """``tiers``: named, shares >= 0 summing to > 0, limits in range where set."""
    tiers = cfg.tiers
    if not tiers:
        return
    for name, t in tiers.items():
        _need(
            isinstance(name, str) and name.strip() != "",
            f"tiers has a tier named {name!r}; tier names must be non-empty strings such as free or pro.",
        )
        key = f"tiers.{name}"
        _positive(t.share, f"{key}.share", allow_zero=True)
        for field in ("ttft_s", "tpot_s", "max_wait_s", "tokens_per_s", "burst_tokens"):
            if getattr(t, field) is not None:
                _positive(getattr(t, field), f"{key}.{field}")
        if t.max_queue is not None:
            _need(t.max_queue >= 0, f"{key}.max_queue must be an integer >= 0, or null (got {t.max_queue}).")
        if t.kv_watermark is not None:
            _fraction(t.kv_watermark, f"{key}.kv_watermark")
    total = sum(float(t.share) for t in tiers.values())
    _need(
        total > 0,
        f"tiers.*.share must sum to > 0, so some tier gets traffic (got {total:g} over {', '.join(map(str, tiers))}).",
    )


def max_len(cfg) -> tuple[int, str]:
    """The longest request (prompt + output) the engine accepts, and its name for messages."""
    if cfg.memory.max_model_len is not None:
        return int(cfg.memory.max_model_len), f"memory.max_model_len={cfg.memory.max_model_len}"
    return int(cfg.model.max_context), f"model {cfg.model.name}'s context of {cfg.model.max_context} tokens"


def _scheduler(sched, key: str, prompt_max: float | None = None) -> None:
    from simulator.scheduling import SCHEDULERS

    if sched.policy not in SCHEDULERS:
        raise ConfigError(
            f"{key}.policy={sched.policy!r} is not a known scheduling policy; choose one of: {', '.join(SCHEDULERS.names())}."
        )
    _need(sched.max_batch_size >= 1, f"{key}.max_batch_size must be >= 1 (got {sched.max_batch_size}).")
    _need(sched.max_batch_tokens >= 1, f"{key}.max_batch_tokens must be >= 1 (got {sched.max_batch_tokens}).")
    _positive(sched.max_wait_s, f"{key}.max_wait_s", allow_zero=True)
    modes = ("recompute", "swap")
    _need(
        sched.preemption_mode in modes,
        f"{key}.preemption_mode={sched.preemption_mode!r} is not a known preemption mode; choose one of: {', '.join(modes)}.",
    )
    if sched.policy in ("continuous", "inflight") and prompt_max is not None and math.isfinite(prompt_max):
        _need(
            prompt_max <= sched.max_batch_tokens,
            f"{key}.max_batch_tokens={sched.max_batch_tokens} is below the longest prompt the workload can produce "
            f"({int(prompt_max)}), which {sched.policy} batching could never schedule (engines refuse to start likewise); "
            f"raise it or use scheduler=chunked_prefill"
            + (" (TensorRT-LLM: max_num_tokens, or enable_chunked_context)." if sched.policy == "inflight" else "."),
        )
    if sched.policy == "inflight" and prompt_max is not None and math.isfinite(prompt_max) and prompt_max > sched.max_batch_tokens / 2:
        warnings.warn(
            f"{key}.policy=inflight with prompts up to {int(prompt_max)} tokens against a step budget of "
            f"{sched.max_batch_tokens} ({key}.max_batch_tokens): a prompt joins only when the running batch leaves room "
            f"for it whole, so long prompts can wait for the batch to drain; TensorRT-LLM users raise max_num_tokens "
            f"or enable chunked context ({key}.policy=chunked_prefill).",
            stacklevel=2,
        )
    if sched.policy == "chunked_prefill":
        _need(
            sched.max_batch_tokens >= sched.max_batch_size,
            f"{key}.max_batch_tokens ({sched.max_batch_tokens}) must be >= {key}.max_batch_size "
            f"({sched.max_batch_size}) with chunked prefill, so every running request can decode each step.",
        )


def _fits(cfg, tp_key: str, hw_key: str) -> None:
    """The model's weights fit on the hardware at the TP degree, with room for KV."""
    m, mem, tp = cfg.model, cfg.memory, cfg.cluster.tp
    _need(tp >= 1, f"{tp_key} must be >= 1 (got {tp}).")
    valid = [d for d in range(1, m.num_attention_heads + 1) if m.num_attention_heads % d == 0]
    _need(
        m.num_attention_heads % tp == 0,
        f"{tp_key}={tp} must divide model {m.name}'s {m.num_attention_heads} attention heads; "
        f"choose one of: {', '.join(map(str, [d for d in valid if d <= 64]))}.",
    )
    spec = ModelSpec.from_config(m, tp)  # checks the precision names
    budget = memory_budget(cfg.hardware, mem, spec)
    if budget.kv_blocks < 1:
        # the smallest TP degree that both divides the heads and leaves room for KV
        need_tp = next(
            (d for d in valid if d > tp and memory_budget(cfg.hardware, mem, ModelSpec.from_config(m, d)).kv_blocks >= 1),
            None,
        )
        hint = f"raise {tp_key} to {need_tp}" if need_tp else "lower memory.activation_reserve_gb"
        raise ConfigError(
            f"model={m.name} does not fit: its weights need {spec.weight_bytes / 1e9:.1f} GB but "
            f"{hw_key}={cfg.hardware.name} x {tp_key}={tp} leaves "
            f"{(budget.usable - budget.activation_reserve) / 1e9:.1f} GB at "
            f"memory.gpu_memory_utilization={mem.gpu_memory_utilization}, with no room for a KV block; "
            f"{hint}, pick a larger GPU, or a smaller model.weight_dtype."
        )


def check_workload(cfg, workload) -> None:
    """Checks that need the sampled requests (unbounded distributions)."""
    if len(workload) == 0:
        wl = cfg.workload
        rate = (
            f"workload.rate={wl.rate}"
            if wl.rate_schedule is None
            else f"workload.rate_schedule={_plain(wl.rate_schedule)}".replace(" ", "")
        )
        raise ConfigError(
            f"the workload is empty: no request arrives within workload.duration_s={wl.duration_s} at {rate}; raise either."
        )
    longest = int((workload.prompt_tokens + workload.output_tokens).max())
    limit, what = max_len(cfg)
    if longest > limit:
        raise ConfigError(
            f"the workload drew a request of {longest} tokens, longer than {what}; "
            f"lower workload.prompt_tokens / workload.output_tokens."
        )



def _memory(cfg) -> None:
    """Refuse, before the workload is drawn, a run that cannot fit in memory: a run keeps
    every request and step until it writes its tables (see ``simulator.workload.BYTES_PER_REQUEST``)."""
    import simulator.workload as workload

    expected = workload.expected_requests(cfg)
    available = workload.available_memory()
    if expected is None or available is None:  # a trace of unknown length, or not Linux: no check
        return
    n, source = expected
    need = workload.memory_needed(cfg, n)
    share = workload.MEMORY_SHARE
    if need <= share * available:
        return
    per = workload.memory_needed(cfg, 1.0) - workload.BASE_BYTES
    fits = int((share * available - workload.BASE_BYTES) / per) // 1000 * 1000
    wl = cfg.workload
    what = source if source.startswith("workload.num_requests") else f"about {n:,.0f} requests ({source})"
    reps = f" over replications={cfg.replications}" if cfg.replications > 1 else ""
    gb = lambda b: f"{b / 1e9:,.0f}" if b >= 100e9 else f"{b / 1e9:,.1f}"  # noqa: E731
    fewer = f"at most about workload.num_requests={fits} could fit" if fits >= 1000 else "even a small run may not fit"
    if wl.arrival in ("closed_loop", "trace"):  # their requests are drawn (or looped) up to workload.num_requests
        advice = f"ask for fewer requests ({fewer})"
    elif wl.rate_schedule is not None:
        advice = f"set a shorter workload.duration_s or ask for fewer requests ({fewer})"
    else:
        advice = (
            f"set workload.duration_s to end the run sooner (about {max(fits, 1) / float(wl.rate):,.0f} s at "
            f"workload.rate={wl.rate}) or ask for fewer requests ({fewer})"
        )
    raise ConfigError(
        f"{what} would need about {gb(need)} GB of memory{reps} (a run keeps every request and engine step "
        f"until it ends), more than {share:.0%} of the {gb(available)} GB available; {advice}."
    )
