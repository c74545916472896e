"""Checks of one pool of replicas: its scheduler settings, and whether the model fits its GPUs.

The colocated pool, each ``cluster.groups`` entry and each side of a
disaggregated cluster are checked with these, each under its own key.
"""

from __future__ import annotations

import math
import warnings

from simulator.config.checks import need, positive
from simulator.errors import ConfigError
from simulator.specs import ModelSpec, memory_budget


def check_scheduler(sched, key: str, prompt_max: float | None = None) -> None:
    from simulator.scheduling import SCHEDULERS

    if sched.policy not in SCHEDULERS:
        raise ConfigError(
            f"{key}.policy={sched.policy!r} is not a known scheduling policy; choose one of: {', '.join(SCHEDULERS.names())}."
        )
    need(sched.max_batch_size >= 1, f"{key}.max_batch_size must be >= 1 (got {sched.max_batch_size}).")
    need(sched.max_batch_tokens >= 1, f"{key}.max_batch_tokens must be >= 1 (got {sched.max_batch_tokens}).")
    positive(sched.max_wait_s, f"{key}.max_wait_s", allow_zero=True)
    modes = ("recompute", "swap")
    need(
        sched.preemption_mode in modes,
        f"{key}.preemption_mode={sched.preemption_mode!r} is not a known preemption mode; choose one of: {', '.join(modes)}.",
    )
    if sched.policy in ("continuous", "inflight") and prompt_max is not None and math.isfinite(prompt_max):
        need(
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
        need(
            sched.max_batch_tokens >= sched.max_batch_size,
            f"{key}.max_batch_tokens ({sched.max_batch_tokens}) must be >= {key}.max_batch_size "
            f"({sched.max_batch_size}) with chunked prefill, so every running request can decode each step.",
        )


def check_fits(cfg, tp_key: str, hw_key: str) -> None:
    """The model's weights fit on the hardware at the TP degree, with room for KV."""
    m, mem, tp = cfg.model, cfg.memory, cfg.cluster.tp
    need(tp >= 1, f"{tp_key} must be >= 1 (got {tp}).")
    valid = [d for d in range(1, m.num_attention_heads + 1) if m.num_attention_heads % d == 0]
    need(
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
