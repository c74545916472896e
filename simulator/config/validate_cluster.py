"""Semantic checks of the cluster keys: groups, router, autoscaler, cold
start, failures and admission control (one sentence per problem)."""

from __future__ import annotations

import math

from simulator.config.validate import _fits, _fraction, _need, _positive, _scheduler

RESERVED_GROUPS = ("mixed", "prefill", "decode")


def check_cluster(cfg, prompt_max: float | None) -> None:
    from simulator.cluster.autoscaler import METRICS
    from simulator.cluster.routers import ROUTERS

    cl = cfg.cluster
    ROUTERS.get(cl.router)
    _positive(cl.affinity_slack, "cluster.affinity_slack")
    dis = cl.disaggregation.enabled
    if cl.groups:
        _need(not dis, "cluster.groups and cluster.disaggregation.enabled=true cannot be combined; choose one layout.")
        from simulator.engine.simulation import pool_configs

        for name, pcfg in pool_configs(cfg):
            key = f"cluster.groups.{name}"
            _need(
                name.strip() != "" and name not in RESERVED_GROUPS,
                f"cluster.groups has a group named {name!r}; choose another name ({', '.join(RESERVED_GROUPS)} are reserved).",
            )
            _need(pcfg.cluster.replicas >= 1, f"{key}.replicas must be >= 1 (got {pcfg.cluster.replicas}).")
            _need(pcfg.cluster.tp >= 1, f"{key}.tp must be >= 1 (got {pcfg.cluster.tp}).")
            _scheduler(pcfg.scheduler, f"{key}.scheduler", prompt_max)
            _fits(pcfg, f"{key}.tp", f"{key}.hardware")
    initial = _initial_replicas(cfg)

    a = cl.autoscaler
    if a.enabled:
        _need(not dis, "cluster.autoscaler works on colocated replicas; it cannot be combined with cluster.disaggregation.enabled=true.")
        _need(a.metric in METRICS, f"cluster.autoscaler.metric={a.metric!r} is not known; choose one of: {', '.join(METRICS)}.")
        _positive(a.target, "cluster.autoscaler.target")
        if a.metric == "kv_usage":
            _fraction(a.target, "cluster.autoscaler.target (a KV usage fraction)")
        _need(
            1 <= a.min_replicas <= a.max_replicas,
            f"cluster.autoscaler needs 1 <= min_replicas <= max_replicas (got min_replicas={a.min_replicas}, max_replicas={a.max_replicas}).",
        )
        _positive(a.interval_s, "cluster.autoscaler.interval_s")
        _positive(a.up_window_s, "cluster.autoscaler.up_window_s", allow_zero=True)
        _positive(a.down_window_s, "cluster.autoscaler.down_window_s", allow_zero=True)
        if a.group is not None:
            _need(
                a.group in cl.groups,
                f"cluster.autoscaler.group={a.group!r} is not a group of cluster.groups"
                + (f"; choose one of: {', '.join(cl.groups)}." if cl.groups else " (none is defined); leave it null."),
            )
    cs = cl.cold_start
    _positive(cs.provision_s, "cluster.cold_start.provision_s", allow_zero=True)
    _positive(cs.storage_gbps, "cluster.cold_start.storage_gbps")

    f = cl.failures
    if f.at_s or f.mtbf_gpu_hours is not None:
        _need(not dis, "cluster.failures works on colocated replicas; it cannot be combined with cluster.disaggregation.enabled=true.")
    for i, t in enumerate(f.at_s):
        _need(math.isfinite(t) and t >= 0, f"cluster.failures.at_s[{i}] must be a time >= 0 s (got {t}).")
    _need(
        len(f.replica) <= len(f.at_s),
        f"cluster.failures.replica names {len(f.replica)} replicas for {len(f.at_s)} failure times in cluster.failures.at_s; give at most one per time.",
    )
    for i, r in enumerate(f.replica):
        _need(
            0 <= r < initial,
            f"cluster.failures.replica[{i}]={r} is not a replica index; the scenario starts with replicas 0..{initial - 1}.",
        )
    if f.mtbf_gpu_hours is not None:
        _positive(f.mtbf_gpu_hours, "cluster.failures.mtbf_gpu_hours")
    _positive(f.repair_s, "cluster.failures.repair_s", allow_zero=True)
    _need(f.in_flight in ("retry", "lost"), f"cluster.failures.in_flight={f.in_flight!r} is not known; choose retry or lost.")

    adm = cfg.admission
    if adm.max_queue is not None:
        _need(adm.max_queue >= 0, f"admission.max_queue must be an integer >= 0, or null (got {adm.max_queue}).")
    if adm.max_wait_s is not None:
        _positive(adm.max_wait_s, "admission.max_wait_s")
    if adm.kv_watermark is not None:
        _fraction(adm.kv_watermark, "admission.kv_watermark")
    rl = adm.rate_limit
    if rl.tokens_per_s is not None:
        _positive(rl.tokens_per_s, "admission.rate_limit.tokens_per_s")
    if rl.burst_tokens is not None:
        _positive(rl.burst_tokens, "admission.rate_limit.burst_tokens")
    if adm.slo_aware:
        missing = [n for n, t in cfg.tiers.items() if t.ttft_s is None] if cfg.tiers else [""]
        _need(
            cfg.slo.ttft_s is not None or not missing,
            "admission.slo_aware=true needs a TTFT deadline: set slo.ttft_s (or tiers.<name>.ttft_s for every tier).",
        )


def _initial_replicas(cfg) -> int:
    cl = cfg.cluster
    if cl.disaggregation.enabled:
        return cl.disaggregation.prefill.replicas + cl.disaggregation.decode.replicas
    if cl.groups:
        return sum(g.replicas for g in cl.groups.values())
    return cl.replicas
