"""The public Python API: ``simulator.run(overrides) -> Result``."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import OmegaConf

from simulator.config import ScenarioConfig, apply_overrides, compose, to_scenario, validate
from simulator.config.validate import check_workload

#: Files every run directory holds (the public contract).
REQUESTS_FILE = "requests.parquet"
STEPS_FILE = "steps.parquet"
SUMMARY_FILE = "summary.json"
REPLICAS_FILE = "replicas.parquet"
CDF_CHART = "latency_cdf.png"
TIMELINE_CHART = "cluster_timeline.png"
CONFIG_FILE = "scenario.yaml"


@dataclass
class Result:
    """What one simulated scenario produced."""

    config: ScenarioConfig
    requests: pd.DataFrame  # one row per request
    steps: pd.DataFrame  # one row per engine iteration
    summary: dict
    itl: tuple[Any, Any] | None = None  # (gaps, counts): inter-token gaps over all tokens
    replicas: pd.DataFrame | None = None  # one row per replica lifecycle event

    def save(self, directory: str | Path, *, charts: bool | None = None) -> Path:
        """Write requests.parquet, steps.parquet, replicas.parquet, summary.json,
        scenario.yaml, and the charts (the latency CDFs; the cluster timeline
        when the scenario has tiers, autoscaling or failures)."""
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        self.requests.to_parquet(out / REQUESTS_FILE, index=False)
        self.steps.to_parquet(out / STEPS_FILE, index=False)
        if self.replicas is not None:
            self.replicas.to_parquet(out / REPLICAS_FILE, index=False)
        (out / SUMMARY_FILE).write_text(json.dumps(_json_safe(self.summary), indent=2) + "\n")
        (out / CONFIG_FILE).write_text(OmegaConf.to_yaml(OmegaConf.structured(self.config)))
        if self.config.output.charts if charts is None else charts:
            from simulator.report.charts import latency_cdf_chart

            latency_cdf_chart(self, out / CDF_CHART)
            from simulator.report.timeline import cluster_timeline_chart, wants_cluster_timeline

            if wants_cluster_timeline(self.config):
                cluster_timeline_chart(self, out / TIMELINE_CHART)
        return out


def _json_safe(obj):
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def load_config(overrides: Iterable[str] | None = None, *, config: Any = None) -> ScenarioConfig:
    """Compose (or take) a scenario, apply overrides, validate it."""
    overrides = list(overrides or [])
    if config is None:
        cfg = to_scenario(compose(overrides))
    else:
        cfg = apply_overrides(config, overrides) if overrides else to_scenario(config)
    validate(cfg)
    return cfg


def run(overrides: list[str] | None = None, *, config: Any = None) -> Result:
    """Simulate one scenario.

    ``overrides`` are hydra overrides on the packaged scenario tree
    (``["scheduler.policy=continuous", "workload.rate=8", "hardware=h200"]``).
    ``config`` may instead be a composed DictConfig, a dict or a
    :class:`ScenarioConfig`; ``overrides`` then apply to it as ``key=value``.
    Raises :class:`simulator.errors.ConfigError` for invalid scenarios.
    """
    from simulator.engine import simulate
    from simulator.metrics import summarize
    from simulator.workload import generate

    cfg = load_config(overrides, config=config)
    workload = generate(cfg)
    check_workload(cfg, workload)
    out = simulate(cfg, workload)
    requests = out.recorder.requests_table()
    steps = out.recorder.steps_table()
    summary = summarize(cfg, out, requests, steps)
    return Result(
        config=cfg,
        requests=requests,
        steps=steps,
        summary=summary,
        itl=out.recorder.itl(),
        replicas=out.recorder.replicas_table(),
    )
