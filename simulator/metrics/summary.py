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
* SLO attainment = share of *all* requests (rejected ones count as misses)
  that completed and met every configured SLO; goodput = those requests per
  second of the window.
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


def slo_met(requests: pd.DataFrame, slo) -> pd.Series:
    ok = requests["status"] == "completed"
    if slo.ttft_s is not None:
        ok &= requests["ttft_s"] <= slo.ttft_s
    if slo.tpot_s is not None:
        ok &= requests["tpot_s"].isna() | (requests["tpot_s"] <= slo.tpot_s)
    if slo.e2e_s is not None:
        ok &= requests["e2e_s"] <= slo.e2e_s
    return ok.fillna(False).astype(bool)


def summarize(cfg, out, requests: pd.DataFrame, steps: pd.DataFrame) -> dict:
    window = float(out.end_s) if out.end_s > 0 else float("nan")
    done = requests[requests["status"] == "completed"]
    rejected = requests[requests["status"] == "rejected"]
    n = len(requests)
    met = slo_met(requests, cfg.slo)
    out_tokens = int(done["output_tokens"].sum())
    in_tokens = int(done["prompt_tokens"].sum())
    gpus = int(cfg.cluster.replicas * cfg.cluster.tp)
    gpu_hours = gpus * window / 3600.0
    price = cfg.hardware.price_per_gpu_hour
    gaps, counts = out.recorder.itl()

    # KV usage, time-weighted over steps
    dur = steps["duration_s"].to_numpy()
    busy = float(dur.sum())
    kv_mean = float(np.dot(steps["kv_blocks_used"], dur) / np.dot(steps["kv_blocks_total"], dur)) if busy else 0.0
    kv_peak = float((steps["kv_blocks_used"] / steps["kv_blocks_total"]).max()) if len(steps) else 0.0

    # Little's law: L from the engine's own state per step, lambda*W from timestamps.
    in_system = (steps["num_waiting"] + steps["num_running"]).to_numpy()
    accepted = requests[requests["status"] != "rejected"]
    L = float(np.dot(in_system, dur) / window) if busy else 0.0
    lam_w = float((accepted["finish_s"] - accepted["arrival_s"]).sum() / window) if len(accepted) else 0.0

    return {
        "scenario": {
            "name": cfg.name,
            "model": cfg.model.name,
            "hardware": cfg.hardware.name,
            "replicas": int(cfg.cluster.replicas),
            "tp": int(cfg.cluster.tp),
            "scheduler": cfg.scheduler.policy,
            "latency_model": out.latency_description,
            "arrival": cfg.workload.arrival,
            "rate_rps": float(cfg.workload.rate),
            "seed": int(cfg.seed),
        },
        "requests": {
            "total": n,
            "completed": int(len(done)),
            "rejected": int(len(rejected)),
            "rejected_by_reason": {str(k): int(v) for k, v in rejected["reject_reason"].value_counts().sort_index().items()},
            "preemptions": int(requests["preemptions"].sum()),
        },
        "window": {
            "start_s": 0.0,
            "end_s": window,
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
            "blocks_per_replica": int(out.budget.kv_blocks),
            "block_size": int(cfg.memory.block_size),
            "tokens_per_replica": int(out.budget.kv_tokens),
            "gb_per_replica": out.budget.kv / 1e9,
            "peak_usage": kv_peak,
            "mean_usage": kv_mean,
            "blocks_in_use_at_end": int(out.kv_blocks_in_use_at_end),
        },
        "engine": {
            "steps": int(len(steps)),
            "busy_fraction": busy / (window * out.replicas) if window else 0.0,
            "mean_batch_size": float(steps["batch_size"].mean()) if len(steps) else 0.0,
        },
        "littles_law": {"L_from_steps": L, "lambda_times_W": lam_w},
        "cost": {
            "gpus": gpus,
            "gpu_hours": gpu_hours,
            "price_per_gpu_hour": price,
            "usd": gpu_hours * price if price is not None else None,
        },
    }
