"""Workload: when requests arrive and how long their prompts and outputs are.

:func:`generate` turns ``cfg.workload`` into three aligned arrays. Arrival gaps,
prompt lengths and output lengths each come from their own named random
stream (see :mod:`simulator.workload.rng`). Requests are *fed* to the event
loop one at a time by a single arrival process; nothing is pre-scheduled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simulator.workload.arrivals import ARRIVALS
from simulator.workload.lengths import LENGTHS
from simulator.workload.rng import stream

_CHUNK = 4096


@dataclass
class Workload:
    arrival_s: np.ndarray  # float64, non-decreasing, seconds from t=0
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    #: Optional prefix identity: for request i, ``prefix_ids[i]`` is a sequence
    #: of ints, one per ``prefix_block_tokens`` tokens of its prompt, chained
    #: (equal ids at position k mean equal prompts up to the end of block k).
    prefix_ids: list | None = None
    prefix_block_tokens: int = 512
    #: Optional labels carried to requests.parquet (trace columns).
    tenant: np.ndarray | None = None
    session: np.ndarray | None = None
    #: What replay changed, for the summary (e.g. clipped requests).
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrival_s)


def generate(cfg) -> Workload:
    wl = cfg.workload
    if wl.arrival == "trace":
        from simulator.workload.traces import load

        return load(cfg)
    arrivals = ARRIVALS.get(wl.arrival)
    rng_arr = stream(cfg.seed, "arrivals")
    limit_n = wl.num_requests if wl.num_requests is not None else np.iinfo(np.int64).max
    horizon = wl.duration_s if wl.duration_s is not None else np.inf

    times: list[np.ndarray] = []
    t0, count = 0.0, 0
    while count < limit_n:
        n = int(min(_CHUNK, limit_n - count))
        t = t0 + np.cumsum(arrivals(wl, rng_arr, n))
        if t[-1] >= horizon:
            times.append(t[t < horizon])
            break
        times.append(t)
        t0, count = float(t[-1]), count + n
    arrival_s = np.concatenate(times) if times else np.empty(0)
    n = len(arrival_s)
    prompt = LENGTHS.get(wl.prompt_tokens.dist)(wl.prompt_tokens, stream(cfg.seed, "prompt_tokens"), n)
    output = LENGTHS.get(wl.output_tokens.dist)(wl.output_tokens, stream(cfg.seed, "output_tokens"), n)
    pf = wl.prefix
    if pf.system_prompts > 0 or (pf.sessions > 0 and pf.turns > 1):
        from simulator.workload import prefixes

        prompt, ids = prefixes.apply(cfg, prompt, output)
        return Workload(arrival_s, prompt, output, prefix_ids=ids, prefix_block_tokens=prefixes.GRANULARITY)
    return Workload(arrival_s, prompt, output)


__all__ = ["Workload", "generate", "ARRIVALS", "LENGTHS"]
