"""The summary sections of the serving levers, each present only when its lever is on.

* ``speculative`` (``scheduler.speculative.method``): the acceptance model and
  the tokens the verification steps kept, from every replica's draws.
* ``response_cache`` (a positive hit rate): hits over every request issued,
  from the requests table's ``served_by``.
* ``cascade`` (``cluster.cascade.enabled``): each route, and escalations over
  the attempts completed on the small group (``cascade_route``,
  ``escalated_s``).
* ``beam_search`` (``workload.beam_width`` > 1): the blocks the beams held
  against separate copies, and the saving (the vLLM paper's Fig. 10 measure).
* ``parallel_sampling`` (``workload.n`` > 1): prompts and samples, the prompt
  blocks the samples shared instead of computing and storing them, and the
  time until a prompt's last sample ended.

docs/levers/ describes each lever.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from simulator.metrics.sections import (
    BeamSearchSection,
    CascadeSection,
    ParallelSamplingSection,
    PrefixCacheSection,
    ResponseCacheSection,
    SpeculativeSection,
)
from simulator.metrics.stats import series_stats

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def speculative_section(cfg: ScenarioConfig, pools: Sequence[Any]) -> SpeculativeSection:
    """The acceptance model and what the verification steps actually kept (every replica's draws)."""
    sp = cfg.scheduler.speculative
    draws = [r.acceptance for p in pools for r in p.replicas if r.acceptance is not None]
    seq_steps, tokens = sum(a.seq_steps for a in draws), sum(a.tokens for a in draws)
    a, k = float(sp.acceptance_rate), int(sp.num_tokens)
    return {
        "method": str(sp.method),
        "num_tokens": k,
        "acceptance_rate": a,
        "acceptance_spread": float(sp.acceptance_spread),
        "draft_model": sp.draft_model,
        "expected_tokens_per_step": expected_tokens(k, a, float(sp.acceptance_spread)),
        "tokens_per_step": tokens / seq_steps if seq_steps else None,
        "verified_seq_steps": int(seq_steps),
    }


def expected_tokens(k: int, rate: float, spread: float = 0.0) -> float:
    """E[tokens kept per verification step]: f(a) = (1 - a^(k+1)) / (1 - a) for a fixed acceptance
    rate a. With ``spread`` > 0 each request draws a from a Beta distribution, and a request that keeps
    fewer tokens takes more steps, so the average over steps is the harmonic mean 1 / E[1 / f(a)]
    (by quadrature over the Beta density), not E[f(a)]."""
    f = lambda a: np.where(a >= 1, k + 1.0, (1 - a ** (k + 1)) / np.maximum(1 - a, 1e-300))  # noqa: E731
    if spread <= 0:
        return float(f(np.float64(rate)))
    common = rate * (1 - rate) / (spread * spread) - 1
    alpha, beta = rate * common, (1 - rate) * common
    x = (np.arange(20_000) + 0.5) / 20_000  # midpoints of (0, 1)
    log_pdf = (alpha - 1) * np.log(x) + (beta - 1) * np.log1p(-x) - (math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta))
    w = np.exp(log_pdf)
    return float(w.sum() / (w / f(x)).sum())


def cache_hits(cfg: ScenarioConfig, requests: pd.DataFrame) -> int | None:
    """Requests the response cache answered; None when it is off (no positive hit rate)."""
    rc = cfg.cluster.response_cache
    if not (float(rc.hit_rate) > 0 or any(float(v) > 0 for v in rc.hit_rate_by_tenant.values())):
        return None
    return int((requests["served_by"] == "cache").sum())


def response_cache_section(cfg: ScenarioConfig, requests: pd.DataFrame) -> ResponseCacheSection:
    rc, hits, n = cfg.cluster.response_cache, cache_hits(cfg, requests) or 0, len(requests)
    return {
        "hit_rate": float(rc.hit_rate),
        "hit_rate_by_tenant": {str(k): float(v) for k, v in rc.hit_rate_by_tenant.items()},
        "requests": n,
        "hits": hits,
        "measured_hit_rate": hits / n if n else None,
        "latency_s": float(rc.latency_s),
        "usd_per_hit": float(rc.usd_per_hit),
        "usd": hits * float(rc.usd_per_hit),
        "note": "a hit never reaches a replica: TTFT = e2e = latency_s, every token at once; its usd is in cost.usd",
    }


def cascade_section(cfg: ScenarioConfig, requests: pd.DataFrame) -> CascadeSection:
    c = cfg.cluster.cascade
    route, served = requests["cascade_route"].fillna(""), requests["served_by"].fillna("")
    escalated, by_small = int(requests["escalated_s"].notna().sum()), int((served == c.small).sum())
    return {
        "small": str(c.small),
        "large": str(c.large),
        "share": float(c.share),
        "escalation_rate": float(c.escalation_rate),
        "overload_queue": None if c.overload_queue is None else int(c.overload_queue),
        "sent_to_small": int((route == "small").sum()),
        "by_overload": int((route == "overload").sum()),
        "straight_to_large": int((route == "large").sum()),
        "escalated": escalated,
        "measured_escalation_rate": escalated / (escalated + by_small) if escalated + by_small else None,
        "answered_by_small": by_small,
        "answered_by_large": int((served == c.large).sum()),
        "note": "an escalated request is redone on the large group; its TTFT and e2e count from its arrival",
    }


def parallel_sampling_section(
    cfg: ScenarioConfig, requests: pd.DataFrame, leader: np.ndarray, prefix: PrefixCacheSection | None, kv_bytes_per_token: float
) -> ParallelSamplingSection:
    """Samples per prompt, what they shared, and when each prompt's last sample ended."""
    n = int(cfg.workload.n)
    by_id = requests.set_index("request_id")
    lead = pd.Series(leader, index=np.arange(len(leader)))
    finish = by_id["finish_s"].reindex(lead.index)
    done = by_id["status"].reindex(lead.index) == "completed"
    whole = pd.DataFrame({"lead": lead, "finish": finish, "done": done}).groupby("lead")
    all_done = whole["done"].all()
    last = whole["finish"].max()[all_done]
    arrival = by_id["arrival_s"].reindex(last.index)
    shared_blocks = int(prefix["hit_blocks"]) if prefix is not None else 0
    return {
        "n": n,
        "prompts": int(len(whole)),
        "samples": int(len(leader)),
        "prompts_completed": int(all_done.sum()),
        "shared_prompt_blocks": shared_blocks,
        "shared_kv_gb": shared_blocks * int(cfg.memory.block_size) * kv_bytes_per_token / 1e9,
        "prompt_e2e_s": series_stats((last - arrival).to_numpy(dtype=np.float64)),
        "note": "samples share the prompt's full KV blocks through prefix caching (copy-on-write for the last partial "
        "block); shared blocks count every prefix-cache hit; prompt_e2e_s runs to the prompt's last sample",
    }


def beam_search_section(cfg: ScenarioConfig, pools: Sequence[Any]) -> BeamSearchSection:
    """Blocks the beam groups held against width separate copies, over every decode step (every replica)."""
    sets = [r.sched_state.running for p in pools for r in p.replicas]
    shared = sum(int(getattr(s, "shared_block_steps", 0)) for s in sets)
    unshared = sum(int(getattr(s, "unshared_block_steps", 0)) for s in sets)
    return {
        "width": int(cfg.workload.beam_width),
        "block_steps_shared": shared,
        "block_steps_unshared": unshared,
        "memory_saving": 1 - shared / unshared if unshared else None,
        "note": "beams share their common history's blocks (neutral genealogy: each beam's parent drawn uniformly); "
        "the saving compares with width separate copies of every beam, prompt included",
    }
