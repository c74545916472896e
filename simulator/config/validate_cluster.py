"""Semantic checks of the cluster keys: groups, router, autoscaler, cold
start, failures, admission control, the response cache and the model
cascade (one sentence per problem)."""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from simulator.config.checks import fraction, need, positive
from simulator.config.validate_pool import check_fits, check_scheduler

if TYPE_CHECKING:
    from simulator.config.schema import ClusterConfig, ScenarioConfig

RESERVED_GROUPS = ("mixed", "prefill", "decode")


def check_cluster(cfg: ScenarioConfig, prompt_max: float | None) -> None:
    """The router, groups, autoscaler, cold start, failures and admission control."""
    from simulator.cluster.routers import ROUTERS

    cl = cfg.cluster
    ROUTERS.check(cl.router, cl, "cluster")
    positive(cl.affinity_slack, "cluster.affinity_slack")
    dis = cl.disaggregation.enabled
    need(
        dis or not cl.disaggregation.link.layerwise,
        "cluster.disaggregation.link.layerwise=true overlaps the prefill-to-decode KV transfer with prefill; "
        "it needs cluster.disaggregation.enabled=true (cluster=disaggregated).",
    )
    _unused_layout_keys(cl, dis)
    if cl.groups:
        need(not dis, "cluster.groups and cluster.disaggregation.enabled=true cannot be combined; choose one layout.")
        from simulator.config.pools import pool_configs

        for name, pcfg in pool_configs(cfg):
            key = f"cluster.groups.{name}"
            need(
                name.strip() != "" and name not in RESERVED_GROUPS,
                f"cluster.groups has a group named {name!r}; choose another name ({', '.join(RESERVED_GROUPS)} are reserved).",
            )
            need(pcfg.cluster.replicas >= 1, f"{key}.replicas must be >= 1 (got {pcfg.cluster.replicas}).")
            need(pcfg.cluster.tp >= 1, f"{key}.tp must be >= 1 (got {pcfg.cluster.tp}).")
            check_scheduler(pcfg.scheduler, f"{key}.scheduler", prompt_max)
            check_fits(pcfg, f"{key}.tp", f"{key}.hardware")
    _autoscaler(cl)
    cs = cl.cold_start
    positive(cs.provision_s, "cluster.cold_start.provision_s", allow_zero=True)
    positive(cs.storage_gbps, "cluster.cold_start.storage_gbps")
    _failures(cl, _initial_replicas(cfg))
    _admission(cfg)
    _response_cache(cl, cfg)
    _cascade(cl)


def _unused_layout_keys(cl: ClusterConfig, dis: bool) -> None:
    """``cluster.replicas``/``cluster.tp`` set beside a layout that has its own (disaggregated pools,
    heterogeneous groups): they are not used, which a user who set them should hear."""
    if not (dis or cl.groups):
        return
    unused = [f"cluster.{k}={getattr(cl, k)}" for k in ("replicas", "tp") if getattr(cl, k) != 1]
    if unused:
        where = (
            "the pools' cluster.disaggregation.prefill.* and decode.* (replicas, tp)"
            if dis
            else "each group's cluster.groups.<name>.replicas and .tp"
        )
        warnings.warn(f"{' and '.join(unused)} {'is' if len(unused) == 1 else 'are'} not used by this layout: set {where}.",
                      stacklevel=2)


def _autoscaler(cl: ClusterConfig) -> None:
    from simulator.cluster.autoscaler import SCALING_METRICS

    a, dis = cl.autoscaler, cl.disaggregation.enabled
    if a.enabled:
        need(not dis, "cluster.autoscaler works on colocated replicas; it cannot be combined with cluster.disaggregation.enabled=true.")
        positive(a.target, "cluster.autoscaler.target")
        SCALING_METRICS.check(a.metric, a, "cluster.autoscaler")
        need(
            1 <= a.min_replicas <= a.max_replicas,
            f"cluster.autoscaler needs 1 <= min_replicas <= max_replicas (got min_replicas={a.min_replicas}, max_replicas={a.max_replicas}).",
        )
        positive(a.interval_s, "cluster.autoscaler.interval_s")
        positive(a.up_window_s, "cluster.autoscaler.up_window_s", allow_zero=True)
        positive(a.down_window_s, "cluster.autoscaler.down_window_s", allow_zero=True)
        if a.group is not None:
            need(
                a.group in cl.groups,
                f"cluster.autoscaler.group={a.group!r} is not a group of cluster.groups"
                + (f"; choose one of: {', '.join(cl.groups)}." if cl.groups else " (none is defined); leave it null."),
            )


def _failures(cl: ClusterConfig, initial: int) -> None:
    f, dis = cl.failures, cl.disaggregation.enabled
    if f.at_s or f.mtbf_gpu_hours is not None:
        need(not dis, "cluster.failures works on colocated replicas; it cannot be combined with cluster.disaggregation.enabled=true.")
    for i, t in enumerate(f.at_s):
        need(math.isfinite(t) and t >= 0, f"cluster.failures.at_s[{i}] must be a time >= 0 s (got {t}).")
    need(
        len(f.replica) <= len(f.at_s),
        f"cluster.failures.replica names {len(f.replica)} replicas for {len(f.at_s)} failure times in cluster.failures.at_s; give at most one per time.",
    )
    for i, r in enumerate(f.replica):
        need(
            0 <= r < initial,
            f"cluster.failures.replica[{i}]={r} is not a replica index; the scenario starts with replicas 0..{initial - 1}.",
        )
    if f.mtbf_gpu_hours is not None:
        positive(f.mtbf_gpu_hours, "cluster.failures.mtbf_gpu_hours")
    positive(f.repair_s, "cluster.failures.repair_s", allow_zero=True)
    need(f.in_flight in ("retry", "lost"), f"cluster.failures.in_flight={f.in_flight!r} is not known; choose retry or lost.")


def _admission(cfg: ScenarioConfig) -> None:
    adm = cfg.admission
    if adm.max_queue is not None:
        need(adm.max_queue >= 0, f"admission.max_queue must be an integer >= 0, or null (got {adm.max_queue}).")
    if adm.max_wait_s is not None:
        positive(adm.max_wait_s, "admission.max_wait_s")
    if adm.kv_watermark is not None:
        fraction(adm.kv_watermark, "admission.kv_watermark")
    rl = adm.rate_limit
    if rl.tokens_per_s is not None:
        positive(rl.tokens_per_s, "admission.rate_limit.tokens_per_s")
    if rl.burst_tokens is not None:
        positive(rl.burst_tokens, "admission.rate_limit.burst_tokens")
    if adm.slo_aware:
        missing = [n for n, t in cfg.tiers.items() if t.ttft_s is None] if cfg.tiers else [""]
        need(
            cfg.slo.ttft_s is not None or not missing,
            "admission.slo_aware=true needs a TTFT deadline: set slo.ttft_s (or tiers.<name>.ttft_s for every tier).",
        )


def _response_cache(cl: ClusterConfig, cfg: ScenarioConfig) -> None:
    rc, key = cl.response_cache, "cluster.response_cache"
    fraction(rc.hit_rate, f"{key}.hit_rate", allow_zero=True)
    for tenant, rate in rc.hit_rate_by_tenant.items():
        fraction(rate, f"{key}.hit_rate_by_tenant.{tenant}", allow_zero=True)
    if rc.hit_rate_by_tenant and cfg.workload.arrival != "trace":
        _tenant_names(cfg, list(rc.hit_rate_by_tenant), f"{key}.hit_rate_by_tenant")
    positive(rc.latency_s, f"{key}.latency_s", allow_zero=True)
    positive(rc.usd_per_hit, f"{key}.usd_per_hit", allow_zero=True)


def _tenant_names(cfg: ScenarioConfig, named: list[str], key: str) -> None:
    """Synthetic tenants' names are known before the run (workload/labels.py): a name that never occurs is a typo."""
    count = int(cfg.workload.tenants)
    need(count > 0, f"{key} names tenants, but the workload has none (workload.tenants=0): set workload.tenants.")
    tiers = sorted(cfg.tiers) if cfg.tiers else None
    known = [f"{t}-{j}" for t in tiers for j in range(count)] if tiers else [f"tenant-{j}" for j in range(count)]
    unknown = [n for n in named if n not in known]
    need(not unknown, f"{key} names {', '.join(unknown)}, which the workload never labels; its tenants are: {', '.join(known[:12])}"
         + (" ..." if len(known) > 12 else "") + ".")  # fmt: skip


def _cascade(cl: ClusterConfig) -> None:
    c, key = cl.cascade, "cluster.cascade"
    if not c.enabled:
        return
    need(
        not cl.disaggregation.enabled,
        f"{key}.enabled=true is not supported with cluster.disaggregation.enabled=true: "
        "a cascade routes between two cluster.groups, which cannot be disaggregated; choose one.",
    )
    need(
        bool(cl.groups),
        f"{key}.enabled=true needs two cluster.groups named by {key}.small={c.small!r} and {key}.large={c.large!r} "
        "(each with its own model), but cluster.groups is empty.",
    )
    for role, name in (("small", c.small), ("large", c.large)):
        need(name in cl.groups, f"{key}.{role}={name!r} is not a group of cluster.groups; choose one of: {', '.join(cl.groups)}.")
    need(c.small != c.large, f"{key}.small and {key}.large must name two different groups (both are {c.small!r}).")
    fraction(c.share, f"{key}.share", allow_zero=True)
    fraction(c.escalation_rate, f"{key}.escalation_rate", allow_zero=True)
    if c.overload_queue is not None:
        need(c.overload_queue >= 0, f"{key}.overload_queue must be an integer >= 0, or null (got {c.overload_queue}).")


def _initial_replicas(cfg: ScenarioConfig) -> int:
    cl = cfg.cluster
    if cl.disaggregation.enabled:
        return cl.disaggregation.prefill.replicas + cl.disaggregation.decode.replicas
    if cl.groups:
        return sum(g.replicas for g in cl.groups.values())
    return cl.replicas
