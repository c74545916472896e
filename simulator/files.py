"""The files a run directory holds (the public contract), and how a summary becomes JSON.

The lowest layer of the package: the API writes these names, the report
tools read them, and neither has to import the other to agree on them.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path
from typing import Any

#: Files every run directory holds.
REQUESTS_FILE = "requests.parquet"
STEPS_FILE = "steps.parquet"
SUMMARY_FILE = "summary.json"
REPLICAS_FILE = "replicas.parquet"
CDF_CHART = "latency_cdf.png"
TIMELINE_CHART = "cluster_timeline.png"
CONFIG_FILE = "scenario.yaml"
PERFETTO_FILE = "timeline.perfetto.json"  # with output.perfetto: the run as a Perfetto trace
REPLICATION_DIR = "replication"  # replication-1/, replication-2/ ... beside the first run's files


def json_safe(obj: Any) -> Any:
    """``obj`` with non-finite floats as None, numpy scalars as Python numbers and keys as strings,
    so ``json.dumps`` writes standard JSON."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return json_safe(obj.item())
    return obj


def discard_empty_run_dir(directory: str | Path, leftovers: set[str], up_to: str | Path) -> None:
    """Remove ``directory`` if it holds nothing but ``leftovers`` (what hydra writes before a run
    or sweep starts), and the folders above it left empty (``outputs/<date>/``), up to ``up_to``,
    where servesim was started. A working directory inside it (``hydra.job.chdir``) moves to ``up_to``."""
    d = Path(directory).resolve()
    if not d.is_dir() or not {p.name for p in d.iterdir()} <= leftovers:
        return
    top = Path(up_to).resolve()
    os.chdir(top)  # (leave the run directory before removing it)
    shutil.rmtree(d, ignore_errors=True)
    for parent in d.parents:
        if parent == top or top not in parent.parents:
            break
        try:
            parent.rmdir()  # only succeeds when empty
        except OSError:
            break


#: what a run writes into its directory (REPLICATION_DIR folders besides): what a failed run must not leave from an earlier one
RUN_FILES = (REQUESTS_FILE, STEPS_FILE, SUMMARY_FILE, REPLICAS_FILE, CDF_CHART, TIMELINE_CHART, CONFIG_FILE, PERFETTO_FILE)


def discard_stale_outputs(directory: str | Path) -> None:
    """Remove an earlier run's outputs from ``directory``, where a run just failed (a sweep re-run into
    the same folders): its summary.json would otherwise pass for this run's."""
    d = Path(directory)
    for name in RUN_FILES:
        (d / name).unlink(missing_ok=True)
    for rep in d.glob(f"{REPLICATION_DIR}-*"):
        shutil.rmtree(rep, ignore_errors=True)
