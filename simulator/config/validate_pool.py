"""Checks of one pool of replicas: its scheduler settings, and whether the model fits its GPUs.

The colocated pool, each ``cluster.groups`` entry and each side of a
disaggregated cluster are checked with these, each under its own key.
"""

from __future__ import annotations

from simulator.config.checks import need
from simulator.config.schema import ScenarioConfig
from simulator.errors import ConfigError
from simulator.specs import ModelSpec, memory_budget


def check_scheduler(sched, key: str, prompt_max: float | None = None) -> None:
    """The policy's own settings, and whether it can ever schedule the workload's longest prompt."""
    from simulator.scheduling import SCHEDULERS

    policy = SCHEDULERS.check(sched.policy, sched, key)
    if prompt_max is not None:
        policy.check_prompts(sched, key, prompt_max)


def check_fits(cfg: ScenarioConfig, tp_key: str, hw_key: str) -> None:
    """The model's weights fit on the hardware at the TP degree, with room for KV."""
    m, mem, tp = cfg.model, cfg.memory, cfg.cluster.tp
    need(tp >= 1, f"{tp_key} must be >= 1 (got {tp}).")
    valid = [d for d in range(1, m.num_attention_heads + 1) if m.num_attention_heads % d == 0]
    need(
        m.num_attention_heads % tp == 0,
        f"{tp_key}={tp} must divide model {m.name}'s {m.num_attention_heads} attention heads; "
        f"choose one of: {', '.join(map(str, [d for d in valid if d <= 64]))}.",
    )
    spec = ModelSpec.from_config(m, tp, cfg.cluster.ep, cfg.cluster.pp)  # checks the precision names
    budget = memory_budget(cfg.hardware, mem, spec, int(cfg.scheduler.max_batch_size))
    if budget.kv_blocks < 1:
        # the smallest TP degree that both divides the heads and leaves room for KV
        need_tp = next(
            (d for d in valid if d > tp and memory_budget(cfg.hardware, mem, ModelSpec.from_config(m, d, pp=cfg.cluster.pp), int(cfg.scheduler.max_batch_size)).kv_blocks >= 1),
            None,
        )
        hint = f"raise {tp_key} to {need_tp}" if need_tp else "lower memory.activation_reserve_gb"
        if m.num_experts > 0 and hw_key == "hardware":
            hint += " or spread the experts over more GPUs (cluster.ep, a multiple of cluster.tp, with as many replicas)"
        raise ConfigError(
            f"model={m.name} does not fit: its weights need {spec.weight_bytes / 1e9:.1f} GB but "
            f"{hw_key}={cfg.hardware.name} x {tp_key}={tp} leaves "
            f"{(budget.usable - budget.activation_reserve) / 1e9:.1f} GB at "
            f"memory.gpu_memory_utilization={mem.gpu_memory_utilization}, with no room for a KV block; "
            f"{hint}, pick a larger GPU, or a smaller model.weight_dtype."
        )
    _check_proposer_fits(cfg, spec, tp_key, hw_key)


def _check_proposer_fits(cfg: ScenarioConfig, spec: ModelSpec, tp_key: str, hw_key: str) -> None:
    """A speculative draft (or MTP module) is smaller than the model and fits beside it, with room for KV."""
    from simulator.latency.speculative import proposer_spec

    sp = cfg.scheduler.speculative
    proposer = proposer_spec(cfg, spec) if sp.method in ("draft", "mtp") else None
    if proposer is None:
        return
    key = "scheduler.speculative.draft_model" if sp.method == "draft" else "scheduler.speculative.method=mtp"
    need(
        sp.method != "draft" or proposer.params_total < spec.params_total,
        f"{key}={sp.draft_model} ({proposer.params_total / 1e9:.1f}B parameters) is not smaller than model "
        f"{cfg.model.name} ({spec.params_total / 1e9:.1f}B): a draft must be cheaper than the model it drafts for.",
    )
    budget = memory_budget(cfg.hardware, cfg.memory, spec, int(cfg.scheduler.max_batch_size), proposer)
    need(
        budget.kv_blocks >= 1,
        f"model={cfg.model.name} with its {'draft ' + str(sp.draft_model) if sp.method == 'draft' else 'MTP module'} "
        f"does not fit: their weights need {budget.weights / 1e9:.1f} GB but {hw_key}={cfg.hardware.name} x "
        f"{tp_key}={cfg.cluster.tp} leaves {(budget.usable - budget.activation_reserve) / 1e9:.1f} GB, with no room "
        f"for a KV block; raise {tp_key}, pick a smaller draft, or a larger GPU.",
    )
