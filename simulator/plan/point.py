"""One point of a search: how many requests it simulates, its runs (one per seed), kept on disk.

:func:`_run_point` is module-level so joblib workers can import it;
:func:`_evaluate` runs a batch of candidate configurations, in parallel when asked.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from simulator.errors import ConfigError
from simulator.plan.settings import MIN_DURATION_S

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig


def probe_requests(
    rate: float, config_requests: int | None, *, requests: int | None = None, min_duration_s: float = MIN_DURATION_S
) -> int:
    """How many requests one probe at ``rate`` simulates.

    ``requests`` given: exactly that. Otherwise the larger of the scenario's own
    ``workload.num_requests`` and ``min_duration_s`` seconds of arrivals at ``rate``,
    so a probe covers the same stretch of time whatever the rate.
    """
    if requests is not None:
        return int(requests)
    return max(int(config_requests or 0), math.ceil(min_duration_s * rate), 1)


def _output_overrides() -> list[str]:
    """What every run of a search adds: no charts, console or progress bar, one seed per run
    (the search runs the replications itself)."""
    from simulator.config.schema import OutputConfig, ScenarioConfig

    out = ["output.charts=false", "output.console=false"]
    if "progress" in getattr(OutputConfig, "__dataclass_fields__", {}):
        out.append("output.progress=off")
    if "replications" in getattr(ScenarioConfig, "__dataclass_fields__", {}):
        out.append("replications=1")
    return out


def _replications(asked: int, cfg: ScenarioConfig) -> int:
    """A scenario's own ``replications=N`` counts as the search's, unless the search was given one."""
    own = getattr(cfg, "replications", 1)
    return own if asked == 1 and isinstance(own, int) and own > 1 else asked


def _run_point(overrides: list[str], seeds: list[int], run_dir: str | None) -> dict[str, Any]:
    """Simulate one point (one run per seed), save the runs, return mean figures.

    A module-level function so joblib workers can import it. A ConfigError is
    returned as ``{"error": message}`` instead of raised.
    """
    from simulator import api
    from simulator.metrics.headline import headline

    t0 = time.perf_counter()
    rows = []
    try:
        for k, seed in enumerate(seeds):
            result = api.run(list(overrides) + [f"seed={seed}"])
            if run_dir is not None:
                d = Path(run_dir) if len(seeds) == 1 else Path(run_dir) / f"rep-{k}"
                result.save(d, charts=False)
            rows.append(headline(result.summary))
    except ConfigError as exc:
        return {"error": str(exc), "wall_s": time.perf_counter() - t0}
    figures = {k: float(pd.Series([r[k] for r in rows], dtype=float).mean()) for k in rows[0]}
    return {"figures": figures, "per_seed": rows, "wall_s": time.perf_counter() - t0}


def _effective_jobs(n_jobs: int) -> int:
    if n_jobs == -1:
        import os

        return os.cpu_count() or 1
    return n_jobs


def _evaluate(rows: list[dict], batch: list[int], d: Path, seeds: list[int], jobs: int) -> list[dict]:
    args = [(rows[i]["_overrides"], seeds, str(d / rows[i]["config"])) for i in batch]
    if jobs <= 1 or len(batch) == 1:
        return [_run_point(*a) for a in args]
    from joblib import Parallel, delayed

    return Parallel(n_jobs=min(jobs, len(batch)))(delayed(_run_point)(*a) for a in args)
