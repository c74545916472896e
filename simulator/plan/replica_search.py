"""The order in which :func:`cheapest` simulates configurations.

* :func:`_search_grid` (a list of replica counts): ascending cost, a cost level
  at a time, stopping after the first level where a configuration passes.
* :func:`_search_replicas` (the default): for each TP x GPU x policy, the
  smallest passing replica count, galloping (1, 2, 4, ...) then bisecting,
  cheapest probes first and none dearer than the best passing configuration.

Both only choose batches of rows; ``run_batch`` simulates and judges them.
"""

from __future__ import annotations

import math
from collections.abc import Callable


def _search_grid(rows: list[dict], exhaustive: bool, jobs: int, run_batch: Callable[[list[int]], None]) -> None:
    """A grid of replica counts: simulate in ascending cost, a cost level at a time, and stop after
    the first level where a configuration passes (unless exhaustive)."""
    order = sorted(
        (i for i, row in enumerate(rows) if not row["skipped"]), key=lambda i: (round(rows[i]["usd_per_hour"], 6), i)
    )
    # cost levels: configurations of equal cost are judged together
    levels: list[list[int]] = []
    for i in order:
        if levels and round(rows[levels[-1][0]]["usd_per_hour"], 6) == round(rows[i]["usd_per_hour"], 6):
            levels[-1].append(i)
        else:
            levels.append([i])
    found = False
    li = 0
    while li < len(levels) and (not found or exhaustive):
        batch_levels = [levels[li]]
        while sum(map(len, batch_levels)) < jobs and li + len(batch_levels) < len(levels):
            batch_levels.append(levels[li + len(batch_levels)])
        run_batch([i for lv in batch_levels for i in lv])
        found = found or any(rows[i]["met"] for lv in batch_levels for i in lv)
        li += len(batch_levels)


def _search_replicas(
    families: list[dict],
    rows: list[dict],
    prices: dict,
    max_replicas: int,
    exhaustive: bool,
    jobs: int,
    make_row: Callable[..., dict],
    run_batch: Callable[[list[int]], None],
) -> None:
    """For each TP x GPU x pricing tier x policy (a family), the smallest replica count meeting the requirements.

    Per family, ``fail`` is the largest count known to fail (0 at first) and
    ``pass`` the smallest known to pass. Until a count passes, the next probe
    doubles ``fail`` (1, 2, 4, ...); then it bisects ``(fail, pass)``. Every
    probe is capped at ``max_replicas`` and, unless exhaustive, at the largest
    count whose cost does not exceed the cheapest passing configuration so far
    (``best``): a family whose next count costs more is done. Each round probes
    the ``jobs`` families whose next probe is cheapest. Correct when passing is
    monotone in the replica count: then every family costing at most ``best``
    ends with its smallest passing count simulated.
    """
    best = math.inf
    for f in families:
        price = prices.get((f["hw"], f.get("tier", "on_demand")))
        f["unit"] = f["t"] * price if price is not None else math.nan
        f["done"] = bool(rows[f["first"]]["skipped"])

    def cap(f: dict) -> int:
        c = max_replicas if f["pass"] is None else f["pass"] - 1
        if not exhaustive and math.isfinite(best):
            c = min(c, math.floor(best / f["unit"] * (1 + 1e-9)))
        return c

    def next_count(f: dict) -> int:
        r = (1 if f["fail"] == 0 else 2 * f["fail"]) if f["pass"] is None else (f["fail"] + f["pass"]) // 2
        return min(r, cap(f))

    while True:
        active = [k for k, f in enumerate(families) if not f["done"] and f["fail"] + 1 <= cap(f)]
        if not active:
            return
        picks = sorted(active, key=lambda k: (round(next_count(families[k]) * families[k]["unit"], 6), k))[:jobs]
        batch, probed = [], []
        for k in picks:
            f = families[k]
            r = next_count(f)
            if r == 1:
                i = f["first"]  # checked when the families were made
            else:
                rows.append(make_row(r, f["t"], f["hw"], f["pol"], (k, r), check=False, tier=f.get("tier", "on_demand")))
                i = len(rows) - 1
            batch.append(i)
            probed.append((f, r, i))
        run_batch(batch)
        for f, r, i in probed:
            row = rows[i]
            if not row["evaluated"]:  # the run itself refused the configuration
                f["done"] = True
            elif row["met"]:
                f["pass"] = r
                best = min(best, row["usd_per_hour"])
            else:
                f["fail"] = r
