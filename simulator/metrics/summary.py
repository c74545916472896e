"""From the per-request and per-step tables to ``summary.json``.

Definitions (they match vLLM's benchmark tools):

* TTFT   = first token time - arrival.  Queue delay = first scheduled - arrival.
* TPOT   = (finish - first token) / (output_tokens - 1); undefined for 1 token.
* ITL    = every gap between consecutive tokens of a request, over all tokens
           of all requests (a re-prefill after preemption counts as one gap).
* e2e    = finish - arrival.
* Percentiles use numpy's default (linear interpolation); ITL percentiles are
  the weighted inverted-CDF over all gaps (:mod:`simulator.metrics.stats`).
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
  else ``slo.*`` (the per-request test is :func:`~simulator.metrics.stats.slo_met`);
  ``tiers`` and ``tenants`` break the figures down per label
  (:mod:`simulator.metrics.breakdown`).
* Cost: GPU-hours integrate the GPUs billed over the window (from the
  replica lifecycle events when the cluster changed size; a replica is
  billed from provisioning until removed), priced per group's hardware at
  the group's pricing tier (on-demand, reserved or spot: docs/pricing.md,
  :mod:`simulator.config.pricing`); ``mean_usd_per_hour`` = USD over the
  window's hours, ``by_tier`` the GPU-hours and USD of each tier.
  Per request and per token: USD over completed requests and their tokens;
  the input/output split divides GPU time by prefill and decode work step by
  step (:mod:`simulator.metrics.cost`). A response cache's hits (each at
  ``usd_per_hit``) are added to the total, so to every per-unit figure.
* The levers' sections (``speculative``, ``response_cache``, ``cascade``,
  ``parallel_sampling``), each only when its lever is on, are built in
  :mod:`simulator.metrics.levers`.

Each top-level section of the summary has its own builder below, in the
order the sections appear; :func:`summarize` gathers what several of them
share once (:class:`_Run`) and calls them in turn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pandas as pd

from simulator.config.pricing import tier_price
from simulator.metrics.breakdown import breakdown, replica_figures, serving_seconds
from simulator.metrics.cost import token_cost
from simulator.metrics.energy import energy_section
from simulator.metrics.levers import (
    beam_search_section,
    cache_hits,
    cascade_section,
    parallel_sampling_section,
    response_cache_section,
    speculative_section,
)
from simulator.metrics.sections import (
    ClusterSection,
    CostSection,
    DecodeBatch,
    EnergySection,
    EngineSection,
    KvCacheSection,
    KvTransferSection,
    LabelSection,
    LatencySection,
    LittlesLawSection,
    PoolSection,
    PreemptionSection,
    PrefixCacheSection,
    RequestsSection,
    ScenarioSection,
    SloSection,
    Summary,
    ThroughputSection,
    WindowSection,
)
from simulator.metrics.stats import PCTS, series_stats, slo_met, slo_targets, weighted_stats

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig, WorkloadConfig
    from simulator.metrics.recorder import Recorder

# Importable from here as before (the definitions live in simulator.metrics.stats).
__all__ = ["PCTS", "slo_met", "slo_targets", "summarize", "weighted_stats"]


class RunOutput(Protocol):
    """What the summary reads of a finished run: a :class:`simulator.simulation.SimulationOutput`
    (the simulation is a layer above metrics, so its output is named here by what it offers)."""

    @property
    def recorder(self) -> Recorder: ...
    @property
    def workload(self) -> Any: ...  # simulator.workload.Workload: its ``notes``
    @property
    def pools(self) -> Sequence[Any]: ...  # simulator.cluster.fleet.Pool, in replica-index order
    @property
    def end_s(self) -> float: ...
    @property
    def kv_blocks_in_use_at_end(self) -> int: ...
    @property
    def transfers(self) -> Any: ...  # the KV-transfer stage when disaggregated, else None
    @property
    def failures(self) -> Any: ...  # the failure injector, or None
    @property
    def uncertainty(self) -> dict | None: ...  # uncertainty=on: the run's draw of the model error


@dataclass
class _Run:
    """What several sections share: the run's tables, pools and the request-level tallies."""

    cfg: ScenarioConfig
    out: RunOutput
    requests: pd.DataFrame
    steps: pd.DataFrame
    window: float  # the measured window [0, end]; NaN for an empty run
    span: float  # the same, 0 for an empty run (for integrals over it)
    done: pd.DataFrame  # completed requests
    rejected: pd.DataFrame
    tiers: dict
    met: pd.Series  # per request: completed within its SLO
    lifecycle: pd.DataFrame  # replica lifecycle events
    up_s: dict  # replica-seconds serving, per pool
    pools: list[PoolSection]  # the "pools" section: one per pool
    disaggregated: bool

    @property
    def n(self) -> int:
        return len(self.requests)

    @property
    def first(self):
        return self.out.pools[0]

    @property
    def decoding(self):
        return self.out.pools[-1]  # where KV lives longest: the decode pool when disaggregated

    @property
    def decode_steps(self) -> pd.DataFrame:
        """The steps KV usage is measured over: the decode pool's when disaggregated, else every replica's."""
        if not self.disaggregated:
            return self.steps
        return self.steps[self.steps["replica"].isin([r.index for r in self.decoding.replicas])]


def _collect(cfg: ScenarioConfig, out: RunOutput, requests: pd.DataFrame, steps: pd.DataFrame) -> _Run:
    window = float(out.end_s) if out.end_s > 0 else float("nan")
    span = 0.0 if math.isnan(window) else window
    tiers = getattr(cfg, "tiers", None) or {}
    lifecycle = out.recorder.replicas_table()
    up_s = serving_seconds(lifecycle, span)
    return _Run(
        cfg=cfg,
        out=out,
        requests=requests,
        steps=steps,
        window=window,
        span=span,
        done=requests[requests["status"] == "completed"],
        rejected=requests[requests["status"] == "rejected"],
        tiers=tiers,
        met=slo_met(requests, cfg.slo, tiers),
        lifecycle=lifecycle,
        up_s=up_s,
        pools=[_pool_summary(p, steps, up_s.get(p.name, 0.0)) for p in out.pools],
        disaggregated=bool(cfg.cluster.disaggregation.enabled),
    )


def summarize(cfg: ScenarioConfig, out: RunOutput, requests: pd.DataFrame, steps: pd.DataFrame) -> Summary:
    """``summary.json`` of one run: its sections in their fixed order, then the optional ones."""
    run = _collect(cfg, out, requests, steps)
    cluster, cost = _cluster_and_cost(run)
    summary: Summary = {
        "scenario": _scenario(run),
        "pools": run.pools,
        "requests": _requests(run),
        "window": _window(run),
        "throughput": _throughput(run),
        "latency_s": _latency(run),
        "slo": _slo(run),
        "kv_cache": _kv_cache(run),
        "preemption": _preemption(run),
        "engine": _engine(run),
        "littles_law": _littles_law(run),
        "cluster": cluster,
        "cost": cost,
        "energy": _energy(run, cost),
    }
    tiers, tenants = _breakdowns(run)
    if tiers is not None:
        summary["tiers"] = tiers
    if tenants is not None:
        summary["tenants"] = tenants
    if out.workload.notes:
        summary["workload"] = {k: (v.item() if hasattr(v, "item") else v) for k, v in out.workload.notes.items()}
    prefix_cache = _prefix_cache(run)
    if prefix_cache is not None:
        summary["prefix_cache"] = prefix_cache
    if out.uncertainty is not None:  # uncertainty=on (made by the simulation, which knows the latency layer)
        summary["uncertainty"] = out.uncertainty
    if out.transfers is not None:
        summary["kv_transfer"] = _kv_transfer(out.transfers)
    if cfg.scheduler.speculative.method != "none":
        summary["speculative"] = speculative_section(cfg, out.pools)
    if cache_hits(cfg, run.requests) is not None:
        summary["response_cache"] = response_cache_section(cfg, run.requests)
    if cfg.cluster.cascade.enabled:
        summary["cascade"] = cascade_section(cfg, run.requests)
    if int(cfg.workload.beam_width) > 1:
        summary["beam_search"] = beam_search_section(cfg, out.pools)
    if out.workload.leader is not None:
        kv_per_token = run.decoding.spec.kv_bytes_per_token
        summary["parallel_sampling"] = parallel_sampling_section(cfg, run.requests, out.workload.leader, prefix_cache, kv_per_token)
    return summary


# -- the sections, in summary order ---------------------------------------------


def _scenario(run: _Run) -> ScenarioSection:
    cfg, pools = run.cfg, run.pools
    return {
        "name": cfg.name,
        "model": cfg.model.name,
        "hardware": "+".join(dict.fromkeys(p["hardware"] for p in pools)),
        "replicas": sum(p.initial for p in run.out.pools),  # at the start; see "cluster" for changes
        "tp": int(run.first.spec.tp),
        "pp": int(run.first.spec.pp),
        "scheduler": " / ".join(f"{p['name']}: {p['scheduler']}" for p in pools) if len(pools) > 1 else pools[0]["scheduler"],
        "disaggregated": run.disaggregated,
        "engine": cfg.engine_name,
        "memory_allocation": run.decoding.allocation,
        "latency_model": run.first.latency_description,
        "arrival": cfg.workload.arrival,
        "rate_rps": _offered_rate(cfg, run.requests),
        "seed": int(cfg.seed),
        **_arrival_shape(cfg.workload),
    }


def _requests(run: _Run) -> RequestsSection:
    requests, rejected = run.requests, run.rejected
    return {
        "total": run.n,
        "completed": int(len(run.done)),
        "rejected": int(len(rejected)),
        "rejected_by_reason": {str(k): int(v) for k, v in rejected["reject_reason"].value_counts().sort_index().items()},
        "preemptions": int(requests["preemptions"].sum()),
        "retries": int((requests["attempts"] - 1).sum()) if "attempts" in requests.columns else 0,
    }


def _window(run: _Run) -> WindowSection:
    arrival = run.requests["arrival_s"].to_numpy()
    finish = run.requests["finish_s"].to_numpy()
    last = float(arrival.max()) if run.n else 0.0

    def in_system(t: float) -> int:  # arrived by t and not ended by t (a request never ended counts)
        return int(((arrival <= t) & ~(finish <= t)).sum())

    return {
        "start_s": 0.0,
        "end_s": run.window,
        # the last arrival: what follows is the drain, which throughput and goodput include
        "last_arrival_s": last,
        # requests in the system halfway to the last arrival and at it: a backlog that grows between the
        # two (by more than a steady system's fluctuation) is offered load beyond what the run served
        "in_system_midway": in_system(last / 2),
        "in_system_at_last_arrival": in_system(last),
        "note": "whole run: warm-up and drain included",
    }


def _throughput(run: _Run) -> ThroughputSection:
    done, window = run.done, run.window
    out_tokens = int(done["output_tokens"].sum())
    in_tokens = int(done["prompt_tokens"].sum())
    return {
        "requests_per_s": len(done) / window,
        "output_tokens_per_s": out_tokens / window,
        "total_tokens_per_s": (in_tokens + out_tokens) / window,
    }


def _latency(run: _Run) -> LatencySection:
    done = run.done
    gaps, counts = run.out.recorder.itl()
    return {
        "ttft": series_stats(done["ttft_s"]),
        "tpot": series_stats(done["tpot_s"]),
        "itl": weighted_stats(gaps, counts),
        "e2e": series_stats(done["e2e_s"]),
        "queue": series_stats(done["queue_s"]),
    }


def _slo(run: _Run) -> SloSection:
    slo, met = run.cfg.slo, run.met
    return {
        "ttft_s": slo.ttft_s,
        "tpot_s": slo.tpot_s,
        "e2e_s": slo.e2e_s,
        "attainment": float(met.mean()) if run.n else None,
        "goodput_rps": float(met.sum()) / run.window,
    }


def _kv_cache(run: _Run) -> KvCacheSection:
    """KV usage of the decoding pool, and the share of allocated KV memory holding real tokens, time-weighted over steps."""
    cfg, decoding, dsteps = run.cfg, run.decoding, run.decode_steps
    ddur = dsteps["duration_s"].to_numpy()
    used = dsteps["kv_blocks_used"].to_numpy()
    kv_mean = float(np.dot(used, ddur) / np.dot(dsteps["kv_blocks_total"], ddur)) if ddur.sum() else 0.0
    kv_peak = float((dsteps["kv_blocks_used"] / dsteps["kv_blocks_total"]).max()) if len(dsteps) else 0.0
    allocated = used * cfg.memory.block_size
    share = float(np.dot(dsteps["kv_tokens"], ddur) / np.dot(allocated, ddur)) if np.dot(allocated, ddur) > 0 else None
    section: KvCacheSection = {
        "pool": decoding.name if len(run.out.pools) == 1 or run.disaggregated else "all",
        "allocation": decoding.allocation,
        "blocks_per_replica": int(decoding.budget.kv_blocks),
        "block_size": int(cfg.memory.block_size),
        "tokens_per_replica": int(decoding.budget.kv_tokens),
        "gb_per_replica": decoding.budget.kv / 1e9,
        "peak_usage": kv_peak,
        "mean_usage": kv_mean,
        "real_token_share": share,
        "blocks_in_use_at_end": int(run.out.kv_blocks_in_use_at_end),
    }
    placed = [r.kv.stats() for r in decoding.replicas if hasattr(r.kv, "allocator")]
    if placed:  # memory.contiguous_allocator: reservations placed as ranges of one pool
        pool = dsteps["kv_blocks_total"].to_numpy() * cfg.memory.block_size
        section["contiguous"] = {
            "allocator": str(placed[0]["allocator"]),
            "requests_delayed_by_fragmentation": sum(int(s["requests_delayed_by_fragmentation"]) for s in placed),
            "fragmentation_refusals": sum(int(s["fragmentation_refusals"]) for s in placed),
            "rounding_share": float(np.mean([float(s["rounding_share"]) for s in placed])),
            "external_fragmentation_mean": float(np.mean([float(s["external_fragmentation_mean"]) for s in placed])),
            "external_fragmentation_max": max(float(s["external_fragmentation_max"]) for s in placed),
            "pool_token_share": float(np.dot(dsteps["kv_tokens"], ddur) / np.dot(pool, ddur)) if np.dot(pool, ddur) > 0 else None,
        }
    return section


def _preemption(run: _Run) -> PreemptionSection:
    """Preemption and what it cost: recompute time is each step's duration times its recomputed share of tokens."""
    steps, requests = run.steps, run.requests
    dur = steps["duration_s"].to_numpy()
    recompute = steps["recompute_tokens"].to_numpy()
    work = steps["prefill_tokens"].to_numpy() + steps["decode_seqs"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        recompute_s = float(np.nansum(np.where(work > 0, dur * recompute / work, 0.0)))
    return {
        "mode": run.decoding.cfg.scheduler.preemption_mode,
        "count": int(requests["preemptions"].sum()),
        "swaps": int(requests["swaps"].sum()),
        "recomputed_tokens": int(recompute.sum()),
        "recompute_time_s": recompute_s,
        "swap_time_s": float(steps["swap_s"].sum()),
    }


def _engine(run: _Run) -> EngineSection:
    steps = run.steps
    busy = float(steps["duration_s"].to_numpy().sum())
    up = sum(run.up_s.values())
    return {
        "steps": int(len(steps)),
        "busy_fraction": busy / up if up > 0 else 0.0,
        "mean_batch_size": float(steps["batch_size"].mean()) if len(steps) else 0.0,  # every step, prefill-only ones too
        **_decode_batch(steps),
    }


def _littles_law(run: _Run) -> LittlesLawSection:
    """L from the engine's own state per step, lambda*W from timestamps."""
    steps, requests, window = run.steps, run.requests, run.window
    dur = steps["duration_s"].to_numpy()
    busy = float(dur.sum())
    in_system = (steps["num_waiting"] + steps["num_running"] + steps["num_swapped"]).to_numpy()
    blocked = run.out.recorder.blocked_area  # also requests answered by a response cache
    L = float((np.dot(in_system, dur) + blocked) / window) if busy or blocked else 0.0
    # every request counts from arrival to its end: one rejected at once adds 0, one that waited to retry adds its wait
    lam_w = float((requests["finish_s"] - requests["arrival_s"]).sum() / window) if run.n else 0.0
    return {
        "L_from_steps": L,
        "lambda_times_W": lam_w,
        "note": "L integrates the requests each replica holds over its steps (and idle spells with work queued)",
    }


def _cluster_and_cost(run: _Run) -> tuple[ClusterSection, CostSection]:
    """The "cluster" and "cost" sections, from the replica timeline (:func:`~simulator.metrics.breakdown.replica_figures`)."""
    pools, out = run.pools, run.out
    cluster, cost = replica_figures(
        run.lifecycle,
        run.span,
        static_replicas=sum(p.initial for p in out.pools),
        static_gpus={p["name"]: p["gpus"] for p in pools},
        prices={p["name"]: p["price_per_gpu_hour"] for p in pools},
        default_price=tier_price(run.cfg),
        tiers={p["name"]: p["tier"] for p in pools},
        notice_s=float(run.cfg.pricing.spot.notice_s),
    )
    cluster_section: ClusterSection = {**cluster, "failures_skipped": out.failures.skipped if out.failures is not None else 0}
    done, hits = run.done, cache_hits(run.cfg, run.requests)
    cache_usd = None if hits is None else hits * float(run.cfg.cluster.response_cache.usd_per_hit)
    per_token = token_cost(
        cost,
        run.steps,
        {r.index: p.name for p in out.pools for r in p.replicas},
        {p["name"]: p["tp"] for p in pools},
        completed=len(done),
        input_tokens=int(done["prompt_tokens"].sum()),
        output_tokens=int(done["output_tokens"].sum()),
        extra_usd=cache_usd or 0.0,
    )
    cost_section: CostSection = {
        "gpus": sum(p["gpus"] for p in pools),
        "peak_gpus": cluster["billed_gpus"]["max"],
        **cost,
        **per_token,
        "mean_usd_per_hour": None,
        "note": "GPU-hours integrate the GPUs billed over the window (provisioning to removal); "
        "per-token figures split GPU time between prefill (input) and decode (output) steps",
    }
    if cache_usd is not None:  # the cache's hits are part of the bill
        cost_section["usd"] = None if cost["usd"] is None else cost["usd"] + cache_usd
        cost_section["response_cache_usd"] = cache_usd
    usd = cost_section["usd"]
    cost_section["mean_usd_per_hour"] = None if usd is None or not run.span else usd / (run.span / 3600.0)
    return cluster_section, cost_section


def _energy(run: _Run, cost: CostSection) -> EnergySection:
    """GPU and facility energy over the billed GPU-hours of the cost section (:mod:`simulator.metrics.energy`)."""
    done = run.done
    return energy_section(
        run.cfg,
        run.out.pools,
        run.steps,
        cost.get("by_group", {}),
        window_s=run.span,
        input_tokens=int(done["prompt_tokens"].sum()),
        output_tokens=int(done["output_tokens"].sum()),
    )


def _breakdowns(run: _Run) -> tuple[dict[str, LabelSection] | None, dict[str, LabelSection] | None]:
    """(``tiers``, ``tenants``): per tier when tiers are configured, per tenant when any request carries one."""
    requests, tiers = run.requests, run.tiers
    by_tier = by_tenant = None
    if tiers:
        by_tier = breakdown(requests, "tier", window_s=run.window, slo=run.cfg.slo, tiers=tiers, met=run.met)
    if "tenant" in requests.columns and (requests["tenant"].fillna("").astype(str) != "").any():
        by_tenant = breakdown(requests, "tenant", window_s=run.window, slo=run.cfg.slo, tiers=tiers, met=run.met)
    return by_tier, by_tenant


def _prefix_cache(run: _Run) -> PrefixCacheSection | None:
    """Prefix-cache hits over every replica that caches prefixes; None when none does."""
    caches = [r.kv for p in run.out.pools for r in p.replicas if r.kv.caches_prefixes]
    if not caches:
        return None
    stats = [c.stats() for c in caches]
    lookups, hits, saved = (sum(s[k] for s in stats) for k in ("lookups_blocks", "hit_blocks", "saved_prefill_tokens"))
    requests = run.requests
    admitted_prompt = int(requests.loc[requests["status"] != "rejected", "prompt_tokens"].sum())
    section: PrefixCacheSection = {
        "lookups_blocks": lookups,
        "hit_blocks": hits,
        "saved_prefill_tokens": saved,
        "evictions": sum(s["evictions"] for s in stats),
        "cached_blocks_at_end": sum(s["cached_blocks_at_end"] for s in stats),
        "block_hit_rate": hits / lookups if lookups else 0.0,
        "token_hit_rate": saved / admitted_prompt if admitted_prompt else 0.0,
        "note": "token_hit_rate = prompt tokens found cached / prompt tokens of accepted requests (recomputes included)",
    }
    offload = [s["offload"] for s in stats if "offload" in s]
    if offload:  # memory.offload: the lower tiers, summed over the replicas that have them (hit_blocks above includes their hits)
        names = sorted({name for o in offload for name, t in o.items() if isinstance(t, dict)}, key=("host", "ssd").index)
        tiers = {}
        for name in names:
            mine = [o[name] for o in offload if name in o]
            tiers[name] = {k: sum(t[k] for t in mine) for k in mine[0]}
        section["offload"] = {**tiers, "loaded_gb": sum(o["loaded_gb"] for o in offload)}
    return section


def _kv_transfer(t: Any) -> KvTransferSection:
    """KV transfers between prefill and decode pools (disaggregated serving)."""
    return {
        "transfers": int(t.transfers),
        "gb": t.bytes / 1e9,
        "mean_s": t.busy_s / t.transfers if t.transfers else None,
        "bandwidth_gbps": t.bandwidth / 1e9,
        "layerwise": bool(t.layerwise),
        "mean_exposed_s": t.exposed_s / t.transfers if t.transfers else None,  # after the prefill: what TTFT waits
    }


# -- helpers --------------------------------------------------------------------


def _offered_rate(cfg: ScenarioConfig, requests: pd.DataFrame) -> float:
    """``workload.rate`` (times ``workload.n``: requests, not prompts) for a steady open process,
    else the mean rate of the arrivals that happened.

    A trace, a ``workload.rate_schedule`` or closed-loop users have no single
    rate: the figure is (arrivals - 1) / time of the last arrival.
    """
    wl = cfg.workload
    if wl.arrival not in ("trace", "closed_loop") and wl.rate_schedule is None:
        return float(wl.rate) * int(wl.n)  # parallel sampling: n requests per prompt
    a = np.sort(requests["arrival_s"].to_numpy(dtype=np.float64))
    return float((len(a) - 1) / a[-1]) if len(a) > 1 and a[-1] > 0 else 0.0


def _arrival_shape(wl: WorkloadConfig) -> dict:
    """What else defines the arrivals: the rate schedule, or the closed-loop users and think time."""
    if wl.arrival == "closed_loop":
        return {"users": int(wl.users), "think_s": float(wl.think_s)}
    if wl.rate_schedule is not None and wl.arrival != "trace":
        return {"rate_schedule": [[float(t), float(r)] for t, r in wl.rate_schedule]}
    return {}


def _pool_summary(pool: Any, steps: pd.DataFrame, up_s: float) -> PoolSection:
    """One pool's capacity and activity; ``up_s`` = its replica-seconds serving (see breakdown.serving_seconds)."""
    mine = steps["replica"].isin([r.index for r in pool.replicas])
    st = steps if mine.all() else steps[mine]  # (one pool: no copy of every step)
    busy = float(st["duration_s"].sum())
    cfg = pool.cfg
    out: PoolSection = {
        "name": pool.name,
        "model": cfg.model.name,
        "hardware": cfg.hardware.name,
        "replicas": pool.initial,  # at the start; the cluster section follows changes
        "tp": pool.spec.tp,
        "pp": pool.spec.pp,
        "gpus": pool.initial * pool.spec.gpus,
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
        "price_per_gpu_hour": tier_price(cfg),  # the hardware's price at the pool's tier (docs/pricing.md)
        "tier": cfg.cluster.tier,
    }
    if cfg.scheduler.multi_step > 1:
        out["multi_step"] = int(cfg.scheduler.multi_step)
    return out


def _decode_batch(steps: pd.DataFrame) -> DecodeBatch:
    """The decode batch users mean by "batch size": sequences per step that decodes, and the share of such steps."""
    dec = steps["decode_seqs"][steps["decode_seqs"] > 0] if len(steps) else steps.get("decode_seqs", [])
    return {
        "mean_decode_batch": float(dec.mean()) if len(dec) else 0.0,
        "decode_step_share": float(len(dec) / len(steps)) if len(steps) else 0.0,
    }
