"""The standard charts of a sweep (one table row per run, see :mod:`simulator.report.sweep`).

* :func:`latency_vs_load_chart` -> ``latency_vs_load``: p50 (dashed) and p99
  (solid) TTFT and TPOT against the load axis, one colour per series, the SLO
  as a dotted line and each series' knee (the highest load whose p99 still
  meets the SLO) as a hollow diamond; error bars where runs were replicated.
* :func:`cdfs_chart` -> ``cdfs``: TTFT, TPOT and end-to-end latency ECDFs of
  the completed requests of a few runs (read from their ``requests.parquet``).
* :func:`cost_frontier_chart` -> ``cost_frontier``: throughput and goodput of
  every run against what it costs ($/hour, or GPUs without prices), with the
  Pareto front (most goodput for least cost) drawn and labelled.
* :func:`run_timeline_chart` -> ``timeline``: one run over simulated time:
  batch size, KV-cache usage, requests waiting, and replicas serving.

Every chart is written in each of the requested formats (PNG, SVG) with fixed
metadata, under the project style sheet loaded inside the function, so the
same table gives byte-identical files.

Each chart family lives in its own module (:mod:`~simulator.report.sweep_latency`,
:mod:`~simulator.report.sweep_cdfs`, :mod:`~simulator.report.sweep_cost`,
:mod:`~simulator.report.sweep_timeline`), on the shared styling, colours and
caption of :mod:`~simulator.report.sweep_style`; this module gathers them.
"""

from __future__ import annotations

from simulator.report.sweep_cdfs import cdfs_chart
from simulator.report.sweep_cost import cost_frontier_chart
from simulator.report.sweep_latency import latency_vs_load_chart
from simulator.report.sweep_style import (
    CDFS_KEY,
    COST_CHART,
    FORMATS,
    LATENCY_CHART,
    LINESTYLES,
    MARKERS,
    METADATA,
    POLICY_KEYS,
    RC,
    SLO_COLOR,
    TIMELINE_CHART,
    runs_caption,
)
from simulator.report.sweep_style import label_colors as _colors  # noqa: F401 - tests read the palette here
from simulator.report.sweep_timeline import run_timeline_chart

__all__ = [
    "CDFS_KEY",
    "COST_CHART",
    "FORMATS",
    "LATENCY_CHART",
    "LINESTYLES",
    "MARKERS",
    "METADATA",
    "POLICY_KEYS",
    "RC",
    "SLO_COLOR",
    "TIMELINE_CHART",
    "cdfs_chart",
    "cost_frontier_chart",
    "latency_vs_load_chart",
    "run_timeline_chart",
    "runs_caption",
]
