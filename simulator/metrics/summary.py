"""From the per-request and per-step tables to ``summary.json``.

Definitions (they match vLLM's benchmark tools):

* TTFT   = first token time - arrival.  Queue delay = first scheduled - arrival.
* TPOT   = (finish - first token) / (output_tokens - 1); undefined for 1 token.
* ITL    = every gap between consecutive tokens of a request, over all tokens
           of all requests (a re-prefill after preemption counts as one gap).
* e2e    = finish - arrival.
* Percentiles use numpy's default (linear interpolation); ITL percentiles are
  the weighted inverted-CDF over all gaps.
* The measured window is the whole run, from t=0 to the last event: warm-up
  and drain are *included* in throughput and goodput.
* KV figures describe the pool that decodes (the decode pool when
  disaggregated; each pool's capacity is under ``pools``). The real-token
  share is stored KV tokens over allocated block capacity, time-weighted.
* Recompute time is attributed per step: a step's duration times the share
  of its tokens that recompute preempted work.
* SLO attainment = share of *all* requests (rejected ones count as misses)
  that completed and met every configured SLO; goodput = those requests per
  second of the window. With priority tiers, a request's TTFT and TPOT
  targets are its tier's where the tier sets them (``tiers.<name>.ttft_s``),
  else ``slo.*``; ``tiers`` and ``tenants`` break the figures down per label
  (:mod:`simulator.metrics.breakdown`).
* Cost: GPU-hours integrate the GPUs billed over the window (from the
  replica lifecycle events when the cluster changed size; a replica is
  billed from provisioning until removed), priced per group's hardware.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

PCTS = (50, 90, 99)


def _stats(x: pd.Series | np.ndarray) -> dict:
    a = np.asarray(x, dtype=np.float64)
    a = a[~np.isnan(a)]
    if a.size == 0:
        return {"mean": None, **{f"p{p}": None for p in PCTS}, "max": None}
    q = np.percentile(a, PCTS)
    return {"mean": float(a.mean()), **{f"p{p}": float(v) for p, v in zip(PCTS, q)}, "max": float(a.max())}


def weighted_stats(values: np.ndarray, weights: np.ndarray) -> dict:
    """Mean and inverted-CDF percentiles of ``values`` repeated ``weights`` times."""
    total = int(weights.sum()) if weights.size else 0
    if total == 0:
        return {"mean": None, **{f"p{p}": None for p in PCTS}, "max": None}
    order = np.argsort(values, kind="stable")
    v, w = values[order], weights[order]
    cum = np.cumsum(w)
    out = {"mean": float(np.dot(values, weights) / total)}
    for p in PCTS:
        idx = int(np.searchsorted(cum, math.ceil(p / 100 * total), side="left"))
        out[f"p{p}"] = float(v[min(idx, len(v) - 1)])
    out["max"] = float(v[-1])
    return out


def slo_targets(requests: pd.DataFrame, slo, tiers=None) -> tuple[pd.Series, pd.Series]:
    """Each request's (TTFT, TPOT) target in seconds: its tier's where set, else ``slo``'s; NaN = none."""

    def per_request(field: str) -> pd.Series:
        default = getattr(slo, field)
        default = np.nan if default is None else float(default)
        own = {name: getattr(t, field) for name, t in (tiers or {}).items() if getattr(t, field) is not None}
        if not own or "tier" not in requests.columns:
            return pd.Series(default, index=requests.index, dtype=np.float64)
        return requests["tier"].astype(object).map(own).astype(np.float64).fillna(default)

    return per_request("ttft_s"), per_request("tpot_s")


def slo_met(requests: pd.DataFrame, slo, tiers=None) -> pd.Series:
    """Completed and within every SLO; ``tiers`` (name -> TierConfig) override TTFT/TPOT per tier."""
    ok = requests["status"] == "completed"
    ttft, tpot = slo_targets(requests, slo, tiers)
    ok &= ttft.isna() | (requests["ttft_s"] <= ttft)
    ok &= tpot.isna() | requests["tpot_s"].isna() | (requests["tpot_s"] <= tpot)
    if slo.e2e_s is not None:
        ok &= requests["e2e_s"] <= slo.e2e_s
    return ok.fillna(False).astype(bool)


def _offered_rate(cfg, requests: pd.DataFrame) -> float:
    """``workload.rate`` for a steady open process, else the mean rate of the arrivals that happened.

    A trace, a ``workload.rate_schedule`` or closed-loop users have no single
    rate: the figure is (arrivals - 1) / time of the last arrival.
    """
    wl = cfg.workload
    if wl.arrival not in ("trace", "closed_loop") and wl.rate_schedule is None:
        return float(wl.rate)
    a = np.sort(requests["arrival_s"].to_numpy(dtype=np.float64))
    return float((len(a) - 1) / a[-1]) if len(a) > 1 and a[-1] > 0 else 0.0


def _arrival_shape(wl) -> dict:
    """What else defines the arrivals: the rate schedule, or the closed-loop users and think time."""
    if wl.arrival == "closed_loop":
        return {"users": int(wl.users), "think_s": float(wl.think_s)}
    if wl.rate_schedule is not None and wl.arrival != "trace":
        return {"rate_schedule": [[float(t), float(r)] for t, r in wl.rate_schedule]}
    return {}


def _pool_summary(pool, steps: pd.DataFrame, up_s: float) -> dict:
    """One pool's capacity and activity; ``up_s`` = its replica-seconds serving (see breakdown.serving_seconds)."""
    st = steps[steps["replica"].isin([r.index for r in pool.replicas])]
    busy = float(st["duration_s"].sum())
    cfg = pool.cfg
    return {
        "name": pool.name,
        "hardware": cfg.hardware.name,
        "replicas": pool.initial,  # at the start; the cluster section follows changes
        "tp": pool.spec.tp,
        "gpus": pool.initial * pool.spec.tp,
        "scheduler": cfg.scheduler.policy,
        "allocation": pool.allocation,
        "latency_model": pool.latency_description,
        "kv_blocks_per_replica": int(pool.budget.kv_blocks),
        "kv_tokens_per_replica": int(pool.budget.kv_tokens),
        "kv_gb_per_replica": pool.budget.kv / 1e9,
        "steps": int(len(st)),
        "busy_fraction": busy / up_s if up_s > 0 else 0.0,
        "mean_batch_size": float(st["batch_size"].mean()) if len(st) else 0.0,
        **_decode_batch(st),
        "prefill_tokens": int(st["prefill_tokens"].sum()),
        "decode_tokens": int(st["decode_seqs"].sum()),
        "price_per_gpu_hour": cfg.hardware.price_per_gpu_hour,
    }


def summarize(cfg, out, requests: pd.DataFrame, steps: pd.DataFrame) -> dict:
    window = float(out.end_s) if out.end_s > 0 else float("nan")
    done = requests[requests["status"] == "completed"]
    rejected = requests[requests["status"] == "rejected"]
    n = len(requests)
    tiers = getattr(cfg, "tiers", None) or {}
    met = slo_met(requests, cfg.slo, tiers)
    out_tokens = int(done["output_tokens"].sum())
    in_tokens = int(done["prompt_tokens"].sum())
    gaps, counts = out.recorder.itl()
    from simulator.metrics.breakdown import breakdown, replica_figures, serving_seconds

    lifecycle = out.recorder.replicas_table()
    up_s = serving_seconds(lifecycle, 0.0 if math.isnan(window) else window)
    pools = [_pool_summary(p, steps, up_s.get(p.name, 0.0)) for p in out.pools]
    first = out.pools[0]
    decoding = out.pools[-1]  # where KV lives longest: the decode pool when disaggregated
    disaggregated = bool(cfg.cluster.disaggregation.enabled)
    # KV usage: the decode pool's when disaggregated, else every replica's (all groups)
    dsteps = steps[steps["replica"].isin([r.index for r in decoding.replicas])] if disaggregated else steps

    gpus = sum(p["gpus"] for p in pools)
    cluster, cost = replica_figures(
        lifecycle,
        0.0 if math.isnan(window) else window,
        static_replicas=sum(p.initial for p in out.pools),
        static_gpus={p["name"]: p["gpus"] for p in pools},
        prices={p["name"]: p["price_per_gpu_hour"] for p in pools},
        default_price=cfg.hardware.price_per_gpu_hour,
    )

    # KV usage and the share of allocated KV memory holding real tokens, time-weighted over steps
    dur = steps["duration_s"].to_numpy()
    busy = float(dur.sum())
    ddur = dsteps["duration_s"].to_numpy()
    used = dsteps["kv_blocks_used"].to_numpy()
    kv_mean = float(np.dot(used, ddur) / np.dot(dsteps["kv_blocks_total"], ddur)) if ddur.sum() else 0.0
    kv_peak = float((dsteps["kv_blocks_used"] / dsteps["kv_blocks_total"]).max()) if len(dsteps) else 0.0
    allocated = used * cfg.memory.block_size
    share = float(np.dot(dsteps["kv_tokens"], ddur) / np.dot(allocated, ddur)) if np.dot(allocated, ddur) > 0 else None

    # Little's law: L from the engine's own state per step, lambda*W from timestamps.
    in_system = (steps["num_waiting"] + steps["num_running"] + steps["num_swapped"]).to_numpy()
    L = float((np.dot(in_system, dur) + out.recorder.blocked_area) / window) if busy else 0.0
    # every request counts from arrival to its end: one rejected at once adds 0, one that waited to retry adds its wait
    lam_w = float((requests["finish_s"] - requests["arrival_s"]).sum() / window) if n else 0.0

    # Preemption and what it cost
    prefill_tok = steps["prefill_tokens"].to_numpy()
    recompute = steps["recompute_tokens"].to_numpy()
    work = prefill_tok + steps["decode_seqs"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        recompute_s = float(np.nansum(np.where(work > 0, dur * recompute / work, 0.0)))
    swap_s = float(steps["swap_s"].sum())

    summary = {
        "scenario": {
            "name": cfg.name,
            "model": cfg.model.name,
            "hardware": "+".join(dict.fromkeys(p["hardware"] for p in pools)),
            "replicas": sum(p.initial for p in out.pools),  # at the start; see "cluster" for changes
            "tp": int(first.spec.tp),
            "scheduler": " / ".join(f"{p['name']}: {p['scheduler']}" for p in pools) if len(pools) > 1 else pools[0]["scheduler"],
            "disaggregated": disaggregated,
            "engine": cfg.engine_name,
            "memory_allocation": decoding.allocation,
            "latency_model": first.latency_description,
            "arrival": cfg.workload.arrival,
            "rate_rps": _offered_rate(cfg, requests),
            "seed": int(cfg.seed),
            **_arrival_shape(cfg.workload),
        },
        "pools": pools,
        "requests": {
            "total": n,
            "completed": int(len(done)),
            "rejected": int(len(rejected)),
            "rejected_by_reason": {str(k): int(v) for k, v in rejected["reject_reason"].value_counts().sort_index().items()},
            "preemptions": int(requests["preemptions"].sum()),
            "retries": int((requests["attempts"] - 1).sum()) if "attempts" in requests.columns else 0,
        },
        "window": {
            "start_s": 0.0,
            "end_s": window,
            # the last arrival: what follows is the drain, which throughput and goodput include
            "last_arrival_s": float(requests["arrival_s"].max()) if n else 0.0,
            "note": "whole run: warm-up and drain included",
        },
        "throughput": {
            "requests_per_s": len(done) / window,
            "output_tokens_per_s": out_tokens / window,
            "total_tokens_per_s": (in_tokens + out_tokens) / window,
        },
        "latency_s": {
            "ttft": _stats(done["ttft_s"]),
            "tpot": _stats(done["tpot_s"]),
            "itl": weighted_stats(gaps, counts),
            "e2e": _stats(done["e2e_s"]),
            "queue": _stats(done["queue_s"]),
        },
        "slo": {
            "ttft_s": cfg.slo.ttft_s,
            "tpot_s": cfg.slo.tpot_s,
            "e2e_s": cfg.slo.e2e_s,
            "attainment": float(met.mean()) if n else None,
            "goodput_rps": float(met.sum()) / window,
        },
        "kv_cache": {
            "pool": decoding.name if len(out.pools) == 1 or disaggregated else "all",
            "allocation": decoding.allocation,
            "blocks_per_replica": int(decoding.budget.kv_blocks),
            "block_size": int(cfg.memory.block_size),
            "tokens_per_replica": int(decoding.budget.kv_tokens),
            "gb_per_replica": decoding.budget.kv / 1e9,
            "peak_usage": kv_peak,
            "mean_usage": kv_mean,
            "real_token_share": share,
            "blocks_in_use_at_end": int(out.kv_blocks_in_use_at_end),
        },
        "preemption": {
            "mode": decoding.cfg.scheduler.preemption_mode,
            "count": int(requests["preemptions"].sum()),
            "swaps": int(requests["swaps"].sum()),
            "recomputed_tokens": int(recompute.sum()),
            "recompute_time_s": recompute_s,
            "swap_time_s": swap_s,
        },
        "engine": {
            "steps": int(len(steps)),
            "busy_fraction": busy / sum(up_s.values()) if sum(up_s.values()) > 0 else 0.0,
            "mean_batch_size": float(steps["batch_size"].mean()) if len(steps) else 0.0,  # every step, prefill-only ones too
            **_decode_batch(steps),
        },
        "littles_law": {
            "L_from_steps": L,
            "lambda_times_W": lam_w,
            "note": "L integrates the requests each replica holds over its steps (and idle spells with work queued)",
        },
        "cluster": {**cluster, "failures_skipped": out.failures.skipped if out.failures is not None else 0},
        "cost": {
            "gpus": gpus,
            "peak_gpus": cluster["billed_gpus"]["max"],
            **cost,
            "note": "GPU-hours integrate the GPUs billed over the window (provisioning to removal)",
        },
    }
    if tiers:
        summary["tiers"] = breakdown(requests, "tier", window_s=window, slo=cfg.slo, tiers=tiers, met=met)
    if "tenant" in requests.columns and (requests["tenant"].fillna("").astype(str) != "").any():
        summary["tenants"] = breakdown(requests, "tenant", window_s=window, slo=cfg.slo, tiers=tiers, met=met)
    if out.workload.notes:
        summary["workload"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.workload.notes.items()}
    caches = [r.kv for p in out.pools for r in p.replicas if r.kv.caches_prefixes]
    if caches:
        st = {k: sum(c.stats()[k] for c in caches) for k in ("lookups_blocks", "hit_blocks", "saved_prefill_tokens", "evictions", "cached_blocks_at_end")}
        admitted_prompt = int(requests.loc[requests["status"] != "rejected", "prompt_tokens"].sum())
        summary["prefix_cache"] = {
            **st,
            "block_hit_rate": st["hit_blocks"] / st["lookups_blocks"] if st["lookups_blocks"] else 0.0,
            "token_hit_rate": st["saved_prefill_tokens"] / admitted_prompt if admitted_prompt else 0.0,
            "note": "token_hit_rate = prompt tokens found cached / prompt tokens of accepted requests (recomputes included)",
        }
    if out.transfers is not None:
        t = out.transfers
        summary["kv_transfer"] = {
            "transfers": int(t.transfers),
            "gb": t.bytes / 1e9,
            "mean_s": t.busy_s / t.transfers if t.transfers else None,
            "bandwidth_gbps": t.bandwidth / 1e9,
        }
    return summary


def _decode_batch(steps) -> dict:
    """The decode batch users mean by "batch size": sequences per step that decodes, and the share of such steps."""
    dec = steps["decode_seqs"][steps["decode_seqs"] > 0] if len(steps) else steps.get("decode_seqs", [])
    return {
        "mean_decode_batch": float(dec.mean()) if len(dec) else 0.0,
        "decode_step_share": float(len(dec) / len(steps)) if len(steps) else 0.0,
    }
