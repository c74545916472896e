"""Capacity search: the highest rate a scenario sustains, the cheapest cluster for a rate.

Both searches are loops of ordinary simulated runs (:func:`simulator.run`);
each run is judged by :class:`Requirement` s written against the flat
headline figures of :func:`simulator.metrics.headline.headline`
(``ttft_p99_s<=2``, ``slo_attainment>=0.99``, ...).

* :func:`max_rate` brackets the answer by doubling the request rate from a
  low start until a probe fails (or halving until one passes), then bisects
  until the bracket is narrower than ``rel_tol``.
* :func:`cheapest` prices a grid of replicas x TP x GPU type x batching
  policy from the hardware catalog and simulates it at the target rate,
  cheapest first, stopping at the first cost that meets the requirements. By
  default the replica count is searched (galloping then bisection, per TP x
  GPU x policy), so the answer does not depend on a grid of counts.

Every run is kept on disk (``Result.save``, charts off) under one plan
directory, with the table of probes or candidates (``plan.parquet``,
``plan.csv``) and the answer and settings (``plan.json``). docs/plan.md
explains the rules (notably how many requests a probe simulates) and how far
to trust the answers.

The search lives in modules of this package; this one keeps the names it has
always offered:

* :mod:`simulator.plan.requirements`: :class:`Requirement`, parsing and judging;
* :mod:`simulator.plan.settings`: defaults, :class:`SearchError`, argument checks;
* :mod:`simulator.plan.point`: requests per probe, simulating one point;
* :mod:`simulator.plan.maxrate`: :func:`max_rate` (bracketing, bisection);
* :mod:`simulator.plan.cheapest`: :func:`cheapest` (its checks, grid, answer);
* :mod:`simulator.plan.candidates`: the candidates' rows, prices, runs;
* :mod:`simulator.plan.replica_search`: the order candidates are simulated in;
* :mod:`simulator.plan.planfiles`: the plan directory and its files;
* :mod:`simulator.plan.formatting`: the printed lines.
"""

from __future__ import annotations

from simulator.plan.cheapest import CheapestResult, cheapest
from simulator.plan.formatting import describe
from simulator.plan.maxrate import MaxRateResult, max_rate
from simulator.plan.point import probe_requests
from simulator.plan.requirements import FIGURES, Requirement
from simulator.plan.settings import MAX_REJECTION, MAX_REPLICAS, MIN_DURATION_S, SearchError

__all__ = [
    "Requirement",
    "FIGURES",
    "MaxRateResult",
    "CheapestResult",
    "SearchError",
    "max_rate",
    "cheapest",
    "probe_requests",
    "describe",
    "MIN_DURATION_S",
    "MAX_REJECTION",
    "MAX_REPLICAS",
]
