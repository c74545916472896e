"""Cost per token and per request: the run's USD split between input and output work.

The ``cost`` section's total (``usd``, :func:`simulator.metrics.breakdown.replica_figures`)
is divided by what the run delivered, counting *completed* requests only:

* ``usd_per_request`` = usd / completed requests;
* ``usd_per_million_tokens`` = usd / (prompt + output tokens) x 1e6;
* ``usd_per_million_input_tokens`` = usd x ``input_gpu_share`` / prompt tokens x 1e6,
  and ``usd_per_million_output_tokens`` the same with the output share and
  output tokens.

``input_gpu_share`` splits GPU time between prefill (input) and decode
(output) work, step by step (an approximation: a step's time is not really
linear in its tokens). A step with only prefill tokens is input, one with only
decoding sequences is output; a mixed step is split in proportion to its
``prefill_tokens`` and ``decode_seqs`` (each decoding sequence counts as one
token). A step with neither (nothing but swapping) counts as idle. Idle time
(a replica billed but not stepping: provisioning, waiting for work, draining,
under repair) is shared in the proportion of the busy time. Each group (pool)
is split by its own steps and weighted by its own USD (its GPU-seconds for
``input_gpu_share``), so a disaggregated prefill pool's bill goes to input and
the decode pool's to output; a group that never stepped follows the busy split
of the whole fleet.

A response cache's bill (its hits x ``usd_per_hit``, docs/levers/cache_cascade.md)
is added to the total before it is divided, so every per-request and
per-token figure includes it (hits are completed requests, their tokens
delivered tokens); it is split between input and output in the proportion
of the GPU bill's split.

Every figure is ``None`` when its denominator is 0; the USD figures are
``None`` when the total is (a price is unknown). ``input_gpu_share`` does not
depend on prices: it is ``None`` only when no step did any work.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from simulator.metrics.sections import CostFigures, TokenCost


def prefill_seconds(steps: pd.DataFrame) -> tuple[float, float]:
    """(input, output) busy seconds of ``steps``: each step's duration split by its prefill tokens and decode sequences."""
    return _split_seconds(
        steps["duration_s"].to_numpy(dtype=np.float64),
        steps["prefill_tokens"].to_numpy(dtype=np.float64),
        steps["decode_seqs"].to_numpy(dtype=np.float64),
    )


def _split_seconds(dur: np.ndarray, prefill: np.ndarray, decode: np.ndarray) -> tuple[float, float]:
    # (the same values as prefill / work where work > 0, else 0, with few whole-table temporaries)
    work = prefill + decode
    busy = work > 0
    input_part = np.zeros_like(work)
    np.divide(prefill, work, out=input_part, where=busy)
    del work
    inp = float(np.dot(dur, input_part))
    rest = input_part[busy]
    del input_part
    np.subtract(1.0, rest, out=rest)
    return inp, float(np.dot(dur[busy], rest))


def group_input_shares(steps: pd.DataFrame, groups: Mapping[int, str], gpus: Mapping[str, int]) -> tuple[dict[str, float], float | None]:
    """(input share of busy time per group that stepped, the fleet's share weighted by GPUs) from ``steps``.

    ``groups`` maps a replica index to its group; ``gpus`` a group to its GPUs per replica (TP).
    Groups come in the order their first step does; only three columns are read (no copy of the table).
    """
    if len(steps) == 0:
        return {}, None
    replica = steps["replica"].to_numpy()
    by_group: dict[str, list[int]] = {}
    for r in pd.unique(replica).tolist():  # in the order of their first steps (a hash table: no sort of every step)
        by_group.setdefault(str(groups.get(r, "")), []).append(r)
    columns = [steps[c].to_numpy(dtype=np.float64) for c in ("duration_s", "prefill_tokens", "decode_seqs")]
    shares: dict[str, float] = {}
    fleet_in = fleet_out = 0.0
    for name, members in by_group.items():
        if len(by_group) == 1:
            inp, out = _split_seconds(*columns)
        else:
            mine = np.isin(replica, members)
            inp, out = _split_seconds(*(np.ascontiguousarray(c[mine]) for c in columns))
        if inp + out > 0:
            shares[name] = inp / (inp + out)
        n = float(gpus.get(name, 1))
        fleet_in, fleet_out = fleet_in + n * inp, fleet_out + n * out
    fleet = fleet_in / (fleet_in + fleet_out) if fleet_in + fleet_out > 0 else None
    return shares, fleet


def _per(amount: float | None, count: float, scale: float = 1.0) -> float | None:
    return None if amount is None or not count else amount / count * scale


def token_cost(
    cost: CostFigures,
    steps: pd.DataFrame,
    groups: Mapping[int, str],
    gpus: Mapping[str, int],
    *,
    completed: int,
    input_tokens: int,
    output_tokens: int,
    extra_usd: float = 0.0,
) -> TokenCost:
    """The per-request and per-token figures of the ``cost`` section (see the module's docstring).

    ``cost`` is the run's :class:`CostFigures` (``by_group`` gives each group's
    GPU-hours and USD); ``steps`` the steps table; ``groups`` and ``gpus`` as
    for :func:`group_input_shares`; the counts are of completed requests.
    ``extra_usd`` is spent outside the GPUs (a response cache's hits): it is
    added to ``cost["usd"]`` (the GPUs' bill) and split as the GPUs' bill is.
    """
    shares, fleet = group_input_shares(steps, groups, gpus)
    by_group = cost["by_group"]
    share: float | None = None
    input_usd: float | None = None
    output_usd: float | None = None
    if fleet is not None:
        of = {g: shares.get(g, fleet) for g in by_group}
        hours = sum(c["gpu_hours"] for c in by_group.values())
        share = sum(c["gpu_hours"] * of[g] for g, c in by_group.items()) / hours if hours > 0 else fleet
        if cost["usd"] is not None:
            input_usd = sum((c["usd"] or 0.0) * of[g] for g, c in by_group.items())
            output_usd = sum((c["usd"] or 0.0) * (1.0 - of[g]) for g, c in by_group.items())
            if extra_usd:
                gpu_usd = input_usd + output_usd
                part = input_usd / gpu_usd if gpu_usd > 0 else share
                input_usd += extra_usd * part
                output_usd += extra_usd * (1.0 - part)
    usd = cost["usd"] if cost["usd"] is None or not extra_usd else cost["usd"] + extra_usd
    return {
        "usd_per_request": _per(usd, completed),
        "usd_per_million_tokens": _per(usd, input_tokens + output_tokens, 1e6),
        "usd_per_million_input_tokens": _per(input_usd, input_tokens, 1e6),
        "usd_per_million_output_tokens": _per(output_usd, output_tokens, 1e6),
        "input_gpu_share": share,
    }


__all__ = ["group_input_shares", "prefill_seconds", "token_cost"]
