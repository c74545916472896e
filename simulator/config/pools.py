"""The pools a scenario's replicas form, each with the scenario as that pool sees it.

One colocated pool (``mixed``); one per ``cluster.groups`` entry (a
heterogeneous cluster); or, with ``cluster.disaggregation.enabled``, a
``prefill`` and a ``decode`` pool. Validation checks each pool's view and the
simulation builds each pool from it, so both read this one function.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from simulator.config.schema import GroupConfig, PoolConfig, ScenarioConfig, SchedulerConfig


def _pool_scheduler(cfg: ScenarioConfig, pool_cfg: PoolConfig | GroupConfig) -> SchedulerConfig:
    return replace(cfg.scheduler, **{k: v for k, v in vars(pool_cfg.scheduler).items() if v is not None})


def pool_configs(cfg: ScenarioConfig) -> list[tuple[str, ScenarioConfig]]:
    """(pool name, the scenario as that pool sees it), in replica-index order."""
    from simulator.config.catalog import load_hardware, load_model

    dis = cfg.cluster.disaggregation
    parts: list[tuple[str, PoolConfig | GroupConfig, str]]
    if dis.enabled:
        parts = [("prefill", dis.prefill, "cluster.disaggregation.prefill"), ("decode", dis.decode, "cluster.disaggregation.decode")]
    elif cfg.cluster.groups:
        parts = [(name, g, f"cluster.groups.{name}") for name, g in cfg.cluster.groups.items()]
    else:
        return [("mixed", cfg)]
    out = []
    for name, pool, key in parts:
        hw = load_hardware(pool.hardware, f"{key}.hardware") if pool.hardware else cfg.hardware
        model_name = getattr(pool, "model", None)  # groups may name a model; pools serve the scenario's
        model = load_model(model_name, f"{key}.model") if model_name else cfg.model
        tier = getattr(pool, "tier", None) or cfg.cluster.tier  # a group's pricing tier; pools pay the scenario's
        cluster = replace(cfg.cluster, replicas=pool.replicas, tp=pool.tp, tier=tier)
        sched = _pool_scheduler(cfg, pool)
        if name == "prefill" and dis.enabled:  # a prefill pool runs no decode steps to group
            sched = replace(sched, multi_step=1)
        out.append((name, replace(cfg, hardware=hw, model=model, scheduler=sched, cluster=cluster)))
    return out
