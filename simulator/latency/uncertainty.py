"""Model error carried into a run (``uncertainty=on``): one random step-time factor per run.

The published-measurement suite (``servesim-calibrate published``,
docs/fidelity.md) measures how far servesim's latency model is from real
engines on real GPUs. For each case it gives the ratio of the real step time
to the predicted one: measured / predicted for a latency figure (TTFT, TPOT,
ITL, batch latency), predicted / measured for a throughput. Its logarithm,
over the held-out cases (none of which any factor was fitted on), has a mean
(the model's bias) and a standard deviation (its spread) per GPU family;
:data:`MODEL_ERROR` holds them (``tests/test_uncertainty.py`` recomputes them
from ``docs/published/published.csv``, so the two cannot drift apart).

With ``uncertainty=on`` each run draws z ~ N(0, 1) from its own seed's
stream and multiplies every step time of a pool on GPU family g by
exp(mean_g + sd_g z): the run is one plausible version of the real system.
Replications (``replications=N``, seeds seed .. seed + N - 1) then sample seed
noise and model error together, and the summary's ``replications`` section
gives each headline figure's interval (:mod:`simulator.metrics.replications`).
One z per run: a fleet mixing GPU families errs the same way on all of them
(the families' errors are not known to be independent).

What it covers: the step-time error of the roofline on the suite's engines,
GPUs, models and workloads. What it cannot: engine behaviour servesim does not
model (scheduling heuristics, CUDA-graph padding, speculative decoding,
throttling), workloads unlike the suite's, GPU families with few cases (those
use the pooled figures).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from simulator.latency.base import LatencyModel, LatencyWrapper, StepShape

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig

#: log(real / predicted step time) over the held-out published cases, by GPU family:
#: (mean, standard deviation, cases). From docs/published/published.csv (servesim-calibrate
#: published, 99 held-out cases; tests/test_uncertainty.py recomputes it from that file, so the two
#: change together); families with fewer than MIN_CASES use "pooled".
MODEL_ERROR: dict[str, tuple[float, float, int]] = {
    "ampere": (-0.0481, 0.0700, 11),  # A100 40/80 GB, A30
    "hopper": (0.0028, 0.1175, 71),  # H100 SXM/PCIe, H200
    "cdna3": (0.0587, 0.0739, 15),  # MI300X
    "pooled": (0.0036, 0.1100, 99),  # every held-out case: L40S (2 cases), B200 (none), other GPUs
}
MIN_CASES = 5

_FAMILIES = (("a100", "ampere"), ("a30", "ampere"), ("h100", "hopper"), ("h200", "hopper"), ("mi300", "cdna3"))


def gpu_family(hardware: str) -> str:
    """The model-error family of a hardware catalog name ("pooled" when the suite has too few cases)."""
    for prefix, family in _FAMILIES:
        if hardware.startswith(prefix):
            return family
    return "pooled"


def error_figures(cfg: ScenarioConfig) -> tuple[str, float, float, int]:
    """(family, mean, sd, cases) of the log step-time error for ``cfg``'s hardware; ``latency.error_log_mean``
    and ``latency.error_log_sd`` override the table (cases -1 then)."""
    family = gpu_family(str(cfg.hardware.name))
    mean, sd, cases = MODEL_ERROR[family]
    lat = cfg.latency
    if lat.error_log_mean is not None or lat.error_log_sd is not None:
        cases = -1
        mean = float(lat.error_log_mean) if lat.error_log_mean is not None else mean
        sd = float(lat.error_log_sd) if lat.error_log_sd is not None else sd
    return family, mean, sd, cases


def error_draw(seed: int) -> float:
    """The run's standard normal draw z (its own stream of the seed)."""
    from simulator.workload.rng import stream

    return float(stream(int(seed), "uncertainty").standard_normal())


def error_factor(cfg: ScenarioConfig) -> float:
    """The step-time factor exp(mean + sd z) of a run of ``cfg`` (1 with uncertainty off)."""
    if cfg.uncertainty.enabled is not True:
        return 1.0
    _, mean, sd, _ = error_figures(cfg)
    return math.exp(mean + sd * error_draw(cfg.seed))


class ScaledLatency(LatencyWrapper):
    """``inner``'s step times times ``factor`` (one run's draw of the model error)."""

    def __init__(self, inner: LatencyModel, factor: float):
        super().__init__(inner)
        self.factor = factor

    def step_time(self, shape: StepShape) -> float:
        return self.inner.step_time(shape) * self.factor

    def decode_step_time(self, seqs: int, ctx_tokens: int) -> float:
        return self.inner.decode_step_time(seqs, ctx_tokens) * self.factor

    def cpu_s(self, shape: StepShape) -> float:
        return self.inner.cpu_s(shape) * self.factor

    def decode_times(self, seqs: int, ctx_tokens: int, count: int) -> list[float]:
        f = self.factor
        return [t * f for t in self.inner.decode_times(seqs, ctx_tokens, count)]

    def breakdown(self, shape: StepShape) -> dict[str, float]:
        return {k: v * self.factor for k, v in self.inner.breakdown(shape).items()}

    def describe(self) -> str:
        return f"{self.inner.describe()}; step times x {self.factor:.4f} (uncertainty=on: this run's draw of the model error)"


def uncertainty_section(cfg: ScenarioConfig) -> dict:
    """summary.json's ``uncertainty`` section: the run's draw and, per pool, the factor applied."""
    from simulator.config.pools import pool_configs

    pools = {}
    for name, pcfg in pool_configs(cfg):
        family, mean, sd, cases = error_figures(pcfg)
        pools[name] = {"hardware": str(pcfg.hardware.name), "family": family, "log_mean": mean, "log_sd": sd,
                       "cases": cases, "factor": error_factor(pcfg)}  # fmt: skip
    return {
        "z": error_draw(cfg.seed),
        "pools": pools,
        "note": "each step time x exp(log_mean + log_sd z), from the published suite's held-out errors for the GPU family "
        "(cases -1: set by latency.error_log_*); replications sample z with the seed: see replications.figures.*.interval",
    }
