"""Per-tier and per-tenant figures, and the cluster's replica timeline and cost.

Breakdown by a label column (``tier`` or ``tenant`` of ``requests.parquet``):
for each label, the counts (requests, completed, rejected by reason), the SLO
attainment and goodput, throughput and the latency percentiles of its
completed requests. Definitions are the run's (see the summary module,
:func:`simulator.metrics.summarize`; percentiles and the per-request SLO
test are :mod:`simulator.metrics.stats`'s), per label:

* ``slo_attainment`` = share of *all* the label's requests (rejected ones
  count as misses) that completed and met *their tier's* SLO: a tier's
  ``ttft_s`` / ``tpot_s`` when set, else the scenario's ``slo.*``.
* ``goodput_rps`` = those requests per second of the whole run window;
  ``throughput`` counts completed requests and their output tokens over the
  same window.
* ``mean_attempts``: how many times, on average, a client sent a request
  (1 = no retries).

Tiers are listed in priority order (highest first), then by name; every
configured tier appears, even one that got no traffic. Tenants are sorted by
name.

Replica timeline (``replicas.parquet``): one row per lifecycle event with the
cluster's totals after it (``serving`` replicas, ``billed_gpus``). Both are
step functions of time; the figures integrate them over the window
``[0, end_s]``:

* serving replicas: min and max over spells of positive length, and the
  time-weighted mean;
* ``gpu_hours`` = the integral of ``billed_gpus`` (a replica is billed from
  provisioning until removed); the cost in USD prices each group's share of
  it (a group's billed GPUs follow the changes its own events make) at that
  group's hardware price.
* scale-ups = provisioning events after t=0 that do not replace a failed
  replica; ``replacements`` = failed replicas that served again after their
  repair (one removed before serving again is not replaced); scale-downs = draining events;
  failures = failed events (a spot replica's reclaim included); ``spot_interruptions`` =
  interrupted events (spot notices, docs/pricing.md).
* the cost's tier mix (``by_tier``): GPU-hours and USD of the groups paying
  each pricing tier; each group's entry of ``by_group`` names its ``tier``.

With no replica events (a fixed cluster), the figures fall back to the
static pools: every replica serving and billed for the whole window.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from simulator.metrics.sections import ClusterFigures, CostFigures, GroupCost, LabelHead, LabelSection, TierCost
from simulator.metrics.stats import percentiles, slo_met

LATENCIES = (("ttft", "ttft_s"), ("tpot", "tpot_s"), ("e2e", "e2e_s"))


def _labels(requests: pd.DataFrame, by: str) -> pd.Series:
    """The label column as plain strings ("" where missing or unlabelled)."""
    if by not in requests.columns:
        return pd.Series("", index=requests.index, dtype=object)
    return requests[by].astype(object).where(requests[by].notna(), "").astype(str)


def label_order(labels, by: str, tiers: Mapping | None = None) -> list[str]:
    """Tiers by priority (highest first) then name, configured ones first; anything else by name."""
    seen = sorted(set(labels))
    if by != "tier" or not tiers:
        return seen
    configured = sorted(tiers, key=lambda name: (-int(tiers[name].priority), str(name)))
    return list(configured) + [x for x in seen if x not in tiers]


def breakdown(
    requests: pd.DataFrame,
    by: str,
    *,
    window_s: float,
    slo,
    tiers: Mapping | None = None,
    met: pd.Series | None = None,
) -> dict[str, LabelSection]:
    """Figures per value of ``requests[by]`` (``"tier"`` or ``"tenant"``), in display order.

    ``slo`` is the scenario's ``SLOConfig`` and ``tiers`` its ``cfg.tiers``
    (name -> TierConfig); ``met`` may pass a precomputed :func:`slo_met`.
    """
    tiers = tiers or {}
    if met is None:
        met = slo_met(requests, slo, tiers)
    labels = _labels(requests, by)
    attempts = requests["attempts"] if "attempts" in requests.columns else pd.Series(1, index=requests.index)
    done_mask = requests["status"] == "completed"
    rejected_mask = requests["status"] == "rejected"
    groups = {k: idx for k, idx in requests.groupby(labels, sort=False).groups.items()}
    window = window_s if window_s and window_s > 0 else float("nan")
    out: dict[str, LabelSection] = {}
    for name in label_order(groups, by, tiers):
        idx = groups.get(name, requests.index[:0])
        rq = requests.loc[idx]
        done = rq[done_mask.loc[idx]]
        rej = rq[rejected_mask.loc[idx]]
        n = len(rq)
        n_met = int(met.loc[idx].sum())
        head: LabelHead = {}
        if by == "tier":
            t = tiers.get(name)
            head["priority"] = int(t.priority) if t is not None else None
            head["share"] = float(t.share) if t is not None else None
            head["ttft_s"] = t.ttft_s if t is not None and t.ttft_s is not None else slo.ttft_s
            head["tpot_s"] = t.tpot_s if t is not None and t.tpot_s is not None else slo.tpot_s
        elif "tier" in requests.columns and n:
            owners = _labels(rq, "tier").unique()
            if len(owners) == 1:
                head["tier"] = str(owners[0])
        reasons = rej["reject_reason"].astype(str).value_counts()
        out[name] = {
            **head,
            "requests": n,
            "completed": int(len(done)),
            "rejected": int(len(rej)),
            "rejected_by_reason": {str(k): int(v) for k, v in sorted(reasons.items())},
            "rejection_rate": len(rej) / n if n else None,
            "slo_attainment": n_met / n if n else None,
            "goodput_rps": n_met / window,
            "throughput": {
                "requests_per_s": len(done) / window,
                "output_tokens_per_s": float(done["output_tokens"].sum()) / window,
            },
            "latency_s": {key: percentiles(done[col]) for key, col in LATENCIES},
            "mean_attempts": float(attempts.loc[idx].mean()) if n else None,
        }
    return out


# -- the replica timeline ------------------------------------------------------


def _step_spells(times: np.ndarray, values: np.ndarray, end_s: float) -> tuple[np.ndarray, np.ndarray]:
    """(value, duration) of each spell of a step function on [0, end_s].

    ``values[i]`` holds from ``times[i]`` to the next event; the value before
    the first event is 0. Events at one instant leave only the last value.
    """
    t = np.clip(np.asarray(times, dtype=np.float64), 0.0, end_s)
    v = np.asarray(values, dtype=np.float64)
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    starts = np.concatenate(([0.0], t))
    vals = np.concatenate(([0.0], v))
    dur = np.diff(np.concatenate((starts, [end_s])))
    return vals, dur


def _integral(times, values, end_s: float) -> float:
    vals, dur = _step_spells(times, values, end_s)
    return float(np.dot(vals, dur))


def serving_seconds(replicas: pd.DataFrame, end_s: float) -> dict[str, float]:
    """Replica-seconds each group spent able to work (serving or draining), over ``[0, end_s]``.

    A replica is up from its ``serving`` event until it fails or is removed
    (or the window ends); provisioning and repair do not count.
    """
    out: dict[str, float] = {}
    since: dict[int, tuple[float, str]] = {}  # replica -> (serving since, its group)
    ev = replicas.iloc[np.argsort(replicas["time_s"].to_numpy(), kind="stable")]
    for t, rid, g, kind in zip(ev["time_s"].tolist(), ev["replica"].tolist(), ev["group"].astype(str).tolist(), ev["event"].astype(str).tolist()):
        out.setdefault(g, 0.0)
        if kind == "serving":
            since[rid] = (t, g)
        elif kind in ("failed", "removed") and rid in since:
            start, _ = since.pop(rid)
            out[g] += min(t, end_s) - min(start, end_s)
    for start, g in since.values():
        out[g] += max(0.0, end_s - start)
    return out


def _static_cluster(static_replicas: int, static_gpus: Mapping[str, int], window: float) -> tuple[ClusterFigures, dict[str, float]]:
    """(cluster figures, GPU-seconds per group) of a fixed fleet: every replica serving and billed throughout."""
    gpus = int(sum(static_gpus.values()))
    cluster: ClusterFigures = {
        "source": "static pools (no replica events)",
        "serving_replicas": {"min": int(static_replicas), "max": int(static_replicas), "mean": float(static_replicas)},
        "billed_gpus": {"max": gpus, "mean": float(gpus)},
        "scale_ups": 0,
        "scale_downs": 0,
        "failures": 0,
        "replacements": 0,
        "failure_times_s": [],
        "spot_interruptions": 0,
        "spot_reclaims": 0,
    }
    return cluster, {str(g): float(n) * window for g, n in static_gpus.items()}


def _scale_ups_and_replacements(times: np.ndarray, event: np.ndarray, replica: np.ndarray) -> tuple[int, int]:
    """Provisioning after t=0 of a replica that never failed, and failed replicas that served again."""
    failed_before: set = set()
    repairing: set = set()
    scale_ups = replacements = 0
    for t, kind, rid in zip(times, event, replica):
        if kind == "failed":
            failed_before.add(rid)
        elif kind == "provisioning" and t > 0:
            if rid in failed_before:
                repairing.add(rid)  # replaced only once it serves again
                failed_before.discard(rid)
            else:
                scale_ups += 1
        elif kind == "serving" and rid in repairing:
            replacements += 1
            repairing.discard(rid)
    return scale_ups, replacements


def _group_gpu_seconds(ev: pd.DataFrame, times: np.ndarray, window: float) -> dict[str, float]:
    """GPU-seconds billed per group: each event's change of the billed total belongs to its replica's group."""
    billed = ev["billed_gpus"].to_numpy(dtype=np.float64)
    delta = np.diff(np.concatenate(([0.0], billed)))
    group = ev["group"].astype(str).to_numpy()
    group_seconds = {}
    for g in dict.fromkeys(group):
        mine = group == g
        group_seconds[g] = _integral(times[mine], np.cumsum(delta[mine]), window)
    return group_seconds


def spot_reclaims(ev: pd.DataFrame, notice_s: float) -> np.ndarray:
    """Which rows of the replica events ``ev`` (in time order) are spot reclaims: a ``failed``
    event ``notice_s`` after its replica's ``interrupted`` event (the notice). A failure that
    strikes during a notice is a failure: the reclaim then never comes."""
    t = ev["time_s"].to_numpy(dtype=np.float64)
    by_replica = ev.assign(time_s=t).groupby("replica", sort=False)
    previous = by_replica["event"].shift().astype(object).fillna("").astype(str).to_numpy()
    since = t - by_replica["time_s"].shift().to_numpy(dtype=np.float64)
    failed = ev["event"].astype(str).to_numpy() == "failed"
    return failed & (previous == "interrupted") & np.isclose(since, notice_s, rtol=0.0, atol=1e-6)


def _event_cluster(replicas: pd.DataFrame, window: float, notice_s: float) -> tuple[ClusterFigures, dict[str, float]]:
    """(cluster figures, GPU-seconds per group) from the replica lifecycle events."""
    ev = replicas.iloc[np.argsort(replicas["time_s"].to_numpy(), kind="stable")]
    times = ev["time_s"].to_numpy(dtype=np.float64)
    event = ev["event"].astype(str).to_numpy()
    vals, dur = _step_spells(times, ev["serving"].to_numpy(), window)
    bvals, _ = _step_spells(times, ev["billed_gpus"].to_numpy(), window)
    lasting = dur > 0
    if not lasting.any():  # a zero-length window: the state after the last event
        lasting = np.zeros_like(lasting)
        lasting[-1] = True
    scale_ups, replacements = _scale_ups_and_replacements(times, event, ev["replica"].to_numpy())
    cluster: ClusterFigures = {
        "source": "replica events",
        "serving_replicas": {
            "min": int(vals[lasting].min()),
            "max": int(vals[lasting].max()),
            "mean": float(np.dot(vals, dur) / window) if window else float(vals[-1]),
        },
        "billed_gpus": {
            "max": int(bvals[lasting].max()),
            "mean": float(np.dot(bvals, dur) / window) if window else float(bvals[-1]),
        },
        "scale_ups": scale_ups,
        "scale_downs": int((event == "draining").sum()),
        "failures": int((event == "failed").sum()),
        "replacements": replacements,
        "failure_times_s": [float(t) for t in times[event == "failed"]],
        "spot_interruptions": int((event == "interrupted").sum()),
        "spot_reclaims": int(spot_reclaims(ev, notice_s).sum()),
    }
    return cluster, _group_gpu_seconds(ev, times, window)


def _cost(
    group_seconds: dict[str, float],
    prices: Mapping[str, float | None],
    default_price: float | None,
    tiers: Mapping[str, str] | None = None,
) -> CostFigures:
    """GPU-hours and USD, in all, per group and per pricing tier, each group priced at its own rate
    (its hardware's price at its tier: ``prices``; ``tiers`` names each group's tier, default on_demand)."""
    tiers = tiers or {}
    gpu_seconds = float(sum(group_seconds.values()))
    by_group: dict[str, GroupCost] = {}
    by_tier: dict[str, TierCost] = {}
    usd: float | None = 0.0
    for g, seconds in group_seconds.items():
        price = prices.get(g, default_price)
        group_usd = None if price is None else seconds / 3600.0 * float(price)
        tier = tiers.get(g, "on_demand")
        by_group[g] = {"gpu_hours": seconds / 3600.0, "price_per_gpu_hour": price, "usd": group_usd, "tier": tier}
        usd = None if usd is None or group_usd is None else usd + group_usd
        mix = by_tier.setdefault(tier, {"gpu_hours": 0.0, "usd": 0.0})
        mix["gpu_hours"] += seconds / 3600.0
        mix["usd"] = None if mix["usd"] is None or group_usd is None else mix["usd"] + group_usd
    used = {g for g, s in group_seconds.items() if s > 0} or set(group_seconds)
    distinct = {prices.get(g, default_price) for g in used}
    return {
        "gpu_hours": gpu_seconds / 3600.0,
        "price_per_gpu_hour": distinct.pop() if len(distinct) == 1 else None,
        "usd": usd,
        "by_group": by_group,
        "by_tier": by_tier,
    }


def replica_figures(
    replicas: pd.DataFrame | None,
    end_s: float,
    *,
    static_replicas: int,
    static_gpus: Mapping[str, int],
    prices: Mapping[str, float | None],
    default_price: float | None = None,
    tiers: Mapping[str, str] | None = None,
    notice_s: float = 0.0,
) -> tuple[ClusterFigures, CostFigures]:
    """(cluster figures, cost figures) of one run from its replica events.

    ``static_gpus``, ``prices`` and ``tiers`` are per group (pool) name: the fixed fleet
    used when there are no events, each group's price per GPU-hour (a group not
    named in ``prices`` costs ``default_price``) and the pricing tier it pays
    (default on_demand). ``notice_s``: the spot notice, which tells reclaims from failures.
    """
    window = float(end_s) if end_s and end_s > 0 else 0.0
    if replicas is None or len(replicas) == 0:
        cluster, group_seconds = _static_cluster(static_replicas, static_gpus, window)
    else:
        cluster, group_seconds = _event_cluster(replicas, window, notice_s)
    return cluster, _cost(group_seconds, prices, default_price, tiers)
