"""Workload: when requests arrive, how long their prompts and outputs are, and who sends them.

:func:`generate` turns ``cfg.workload`` into aligned arrays. Arrival gaps,
prompt lengths and output lengths each come from their own named random
stream (see :mod:`simulator.workload.rng`). Requests are *fed* to the event
loop one at a time by a single arrival process; nothing is pre-scheduled.

Arrivals are open (``poisson``, ``gamma``, ``constant``, at ``workload.rate``
or along ``workload.rate_schedule``; see :mod:`simulator.workload.arrivals`),
replayed (``trace``), or closed (``closed_loop``): ``workload.users`` users
each send a request, wait for its answer, think for an exponential time of
mean ``workload.think_s``, then send the next. Closed-loop arrival times
depend on the simulation, so the workload leaves them NaN and carries each
request's think time (before it is sent) in ``think_s``; the engine issues
the requests. Tier and tenant labels: :mod:`simulator.workload.labels`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from simulator.workload import labels
from simulator.workload.arrivals import ARRIVALS, RateSchedule
from simulator.workload.lengths import LENGTHS
from simulator.workload.rng import stream

_CHUNK = 4096


@dataclass
class Workload:
    arrival_s: np.ndarray  # float64, non-decreasing, seconds from t=0 (all NaN for closed_loop)
    prompt_tokens: np.ndarray  # int64 >= 1
    output_tokens: np.ndarray  # int64 >= 1
    #: Optional prefix identity: for request i, ``prefix_ids[i]`` is a sequence
    #: of ints, one per ``prefix_block_tokens`` tokens of its prompt, chained
    #: (equal ids at position k mean equal prompts up to the end of block k).
    prefix_ids: list | None = None
    prefix_block_tokens: int = 512
    #: Optional labels carried to requests.parquet (trace columns; tenants may be drawn, see labels).
    tenant: np.ndarray | None = None
    session: np.ndarray | None = None
    #: Optional tier name of each request (a key of ``cfg.tiers``).
    tier: np.ndarray | None = None
    #: closed_loop only: the think time (s) its user spends before sending request i.
    think_s: np.ndarray | None = None
    #: What replay changed, for the summary (e.g. clipped requests).
    notes: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrival_s)


def generate(cfg) -> Workload:
    wl = cfg.workload
    if wl.arrival == "trace":
        from simulator.workload.traces import load

        return load(cfg)
    think = None
    if wl.arrival == "closed_loop":
        n = int(wl.num_requests)
        arrival_s = np.full(n, np.nan)
        think = stream(cfg.seed, "think").exponential(float(wl.think_s), size=n)
    else:
        arrival_s = _open_arrivals(cfg)
        n = len(arrival_s)
    prompt = LENGTHS.get(wl.prompt_tokens.dist)(wl.prompt_tokens, stream(cfg.seed, "prompt_tokens"), n)
    output = LENGTHS.get(wl.output_tokens.dist)(wl.output_tokens, stream(cfg.seed, "output_tokens"), n)
    w = Workload(arrival_s, prompt, output, think_s=think)
    pf = wl.prefix
    if pf.system_prompts > 0 or (pf.sessions > 0 and pf.turns > 1):
        from simulator.workload import prefixes

        w.prompt_tokens, w.prefix_ids, w.session = prefixes.apply(cfg, prompt, output)
        w.prefix_block_tokens = prefixes.GRANULARITY
    labels.label(cfg, w)
    return w


def _open_arrivals(cfg) -> np.ndarray:
    """Arrival times of an open process, up to ``workload.num_requests`` and before ``workload.duration_s``."""
    wl = cfg.workload
    arrivals = ARRIVALS.get(wl.arrival)
    rng_arr = stream(cfg.seed, "arrivals")
    warp: Callable[[np.ndarray], np.ndarray] | None = None
    params = wl
    if wl.rate_schedule is not None:  # rate 1 in operational time, then t = Λ⁻¹(u)
        warp = RateSchedule.from_config(wl.rate_schedule).inverse
        params = SimpleNamespace(rate=1.0, cv=wl.cv)
    limit_n = wl.num_requests if wl.num_requests is not None else np.iinfo(np.int64).max
    horizon = wl.duration_s if wl.duration_s is not None else np.inf

    times: list[np.ndarray] = []
    u0, count = 0.0, 0
    while count < limit_n:
        n = int(min(_CHUNK, limit_n - count))
        u = u0 + np.cumsum(arrivals(params, rng_arr, n))
        t = u if warp is None else warp(u)
        if t[-1] >= horizon:  # also a final rate of 0: the times after it are inf
            times.append(t[t < horizon])
            break
        times.append(t)
        u0, count = float(u[-1]), count + n
    return np.concatenate(times) if times else np.empty(0)


__all__ = ["Workload", "generate", "ARRIVALS", "LENGTHS", "RateSchedule"]
