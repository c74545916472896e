"""Parallel sampling: ``workload.n`` completions of every prompt (OpenAI's ``n``).

Each drawn request becomes ``n`` consecutive requests with the same arrival,
prompt and labels: the first keeps its drawn output length, the others draw
theirs from ``workload.output_tokens`` (a trace's recorded length is kept for
all, having no distribution). They share the prompt's KV the way vLLM V1
serves ``n > 1``: as separate requests whose prompt blocks are one prefix
(its hash chain), so with ``memory.prefix_caching=true`` the first sample
computes and caches the prompt's full blocks and the others reference them,
each recomputing only the last partial block and the last token, and each
holding its own blocks for what it generates (copy-on-write of the shared
part). The engine holds a prompt's later samples until the first one's
prefill has registered the blocks, and the gateway sends them to its replica
(:mod:`simulator.engine.replica`, :mod:`simulator.cluster.gateway`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from simulator.workload.base import Workload
from simulator.workload.lengths import sample
from simulator.workload.rng import stream

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def fan_out(cfg: ScenarioConfig, w: Workload) -> Workload:
    """``w`` with every request repeated ``workload.n`` times as samples of one prompt (``n`` = 1: ``w``)."""
    n = int(cfg.workload.n)
    if n <= 1 or len(w) == 0:
        return w
    idx = np.repeat(np.arange(len(w)), n)
    first = np.arange(len(idx)) % n == 0
    output = w.output_tokens[idx].copy()
    if cfg.workload.arrival != "trace":
        output[~first] = sample(cfg.workload.output_tokens, stream(cfg.seed, "parallel_samples"), int((~first).sum()))
    take = lambda a: None if a is None else a[idx]  # noqa: E731
    ids, granularity = _shared_ids(cfg, w)
    out = Workload(
        arrival_s=w.arrival_s[idx],
        prompt_tokens=w.prompt_tokens[idx],
        output_tokens=output,
        prefix_ids=[ids[i] for i in idx.tolist()],
        prefix_block_tokens=granularity,
        tenant=take(w.tenant),
        session=take(w.session),
        tier=take(w.tier),
        think_s=take(w.think_s),
        leader=(np.arange(len(idx)) // n) * n,
        notes={**w.notes, "parallel_sampling_n": n},
    )
    return out


def _shared_ids(cfg: ScenarioConfig, w: Workload) -> tuple[list, int]:
    """Prefix ids covering every prompt to its end: its own ids (if the workload has any), then one id
    unique to the prompt (negative: no workload id is negative) for the rest."""
    granularity = int(w.prefix_block_tokens) if w.prefix_ids is not None else int(cfg.memory.block_size)
    out = []
    for i, prompt in enumerate(w.prompt_tokens.tolist()):
        own = list(w.prefix_ids[i]) if w.prefix_ids is not None else []
        need = -(-int(prompt) // granularity)
        out.append(np.asarray(own[:need] + [-(i + 1)] * max(0, need - len(own)), dtype=np.int64))
    return out, granularity
